/*
 * retrain.c: unlearn_retrain(model, options): a new version trained from
 * scratch, with the model's recorded options, on the rows now in the table
 * (exact unlearning, and the reference audits compare against).  The
 * training and storing are unlearn_train's (trainer.c).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "unlearn_pg.h"

/* Reads the model's hidden widths and its recorded training options (without "hidden"). */
void
unlearn_read_model_training(const char *name, int **hidden, int *n_hidden, Jsonb **stored)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	bool		isnull;
	ArrayType  *harr;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT hidden, options - 'hidden' FROM unlearn.models WHERE name = $1",
								1, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read model \"%s\"", name);
	harr = DatumGetArrayTypeP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (ARR_NDIM(harr) > 1 || array_contains_nulls(harr) || ARR_ELEMTYPE(harr) != INT4OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("hidden of model \"%s\" is corrupt", name),
				 errdetail("unlearn.models.hidden must be a one-dimensional integer[] without NULLs.")));
	*n_hidden = ArrayGetNItems(ARR_NDIM(harr), ARR_DIMS(harr));
	*hidden = palloc(sizeof(int) * Max(*n_hidden, 1));
	memcpy(*hidden, ARR_DATA_PTR(harr), sizeof(int) * *n_hidden);
	*stored = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
}

/*
 * Splits the options argument: "reference" (store the retrained version
 * without making it current) is ours; the rest override the recorded
 * training options.
 */
static Jsonb *
take_reference_option(Jsonb *given, bool *reference)
{
	JsonbValue *v = unlearn_jsonb_take(&given, "reference");

	*reference = false;
	if (v == NULL)
		return given;
	if (v->type != jbvBool)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid training option \"reference\""),
				 errdetail("Expected true or false.")));
	*reference = v->val.boolean;
	return given;
}

/*
 * Reads the rows now in the table (with their tableoids when sharded by
 * partition); errors unless there are some, all labelled with classes, ids
 * unique.  When they would hold more than unlearn.max_training_memory,
 * opens *stream instead (data gets the ids; the chunks' reads check the
 * labels) and returns true.
 */
static bool
read_retrain_rows(const UnlearnModel *model, bool by_partition, UnlearnData *data, UnlearnStream *stream)
{
	UnlearnDataSpec spec;

	unlearn_model_data_spec(model, &spec);
	spec.read_tableoid = by_partition;
	if (unlearn_read_data_bounded(&spec, data))
	{
		if (model->encoder)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("column model \"%s\" cannot be retrained in chunks", model->name),
					 errdetail("Its rows hold more than unlearn.max_training_memory (%d kB).",
							   unlearn_max_training_memory),
					 errhint("Raise unlearn.max_training_memory (-1: no bound).")));
		unlearn_stream_open(stream, &spec, model->n_features);
		memset(data, 0, sizeof(*data));
		data->n = stream->n;	/* ids checked unique; labels checked as the chunks are read */
		data->n_features = model->n_features;
		data->ids = stream->ids;
		return true;
	}
	if (data->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("the training table of model \"%s\" has no rows", model->name)));
	/* one pass, so the first row with either problem is the one reported */
	for (int64 i = 0; i < data->n; i++)
	{
		if (data->y[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("row " INT64_FORMAT " has a label that is not a class of model \"%s\"",
							data->ids[i], model->name),
					 errhint("A model's classes are fixed; train a new model for new classes.")));
		if (i > 0 && data->ids[i] == data->ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("id column \"%s\" must be unique", model->id_column)));
	}
	return false;
}

PG_FUNCTION_INFO_V1(unlearn_retrain);
/*
 * unlearn_retrain(model, options): a new version trained from scratch, with
 * the model's recorded options, on the rows now in the table (exact
 * unlearning, and the reference audits compare against).
 */
Datum
unlearn_retrain(PG_FUNCTION_ARGS)
{
	char	   *name;
	UnlearnModel *model;
	nn_train_options topts;
	Jsonb	   *stored;
	int		   *hidden;
	int			n_hidden;
	UnlearnData data;
	UnlearnStream stream;
	bool		streamed;
	UnlearnTrainRun run;
	instr_time	t_start;
	TupleDesc	desc;
	Datum		result;
	bool		reference = false;
	bool		by_partition;
	Jsonb	   *overrides = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	INSTR_TIME_SET_CURRENT(t_start);

	SPI_connect();
	model = unlearn_open_model_for_change(name, "retrain", 0);
	unlearn_read_model_training(name, &hidden, &n_hidden, &stored);
	if (!PG_ARGISNULL(1))
		overrides = take_reference_option(PG_GETARG_JSONB_P(1), &reference);
	unlearn_parse_retrain_options(stored, overrides, &topts);
	by_partition = unlearn_shard_by_partition(stored);
	streamed = read_retrain_rows(model, by_partition, &data, &stream);
	if (streamed)				/* before anything reads the rows' partitions */
		unlearn_stream_check_options(&stream, name, unlearn_shards_option(stored), &topts);

	memset(&run, 0, sizeof(run));
	run.model = name;
	run.retrain = true;
	run.parent = model->version;
	run.reason = reference ? "reference" : "retrain";
	run.hidden = hidden;
	run.n_hidden = n_hidden;
	run.n_classes = model->n_classes;
	run.topts = &topts;
	run.shards = unlearn_shards_option(stored);
	run.data = &data;
	run.stream = streamed ? &stream : NULL;
	if (by_partition)			/* the partitions as they are now: one attached since is learned */
		unlearn_shard_run_by_partition(&run, model->relid, 0);
	run.load_seconds = unlearn_seconds_since(&t_start);
	unlearn_train_and_store(&run);
	if (!reference)
		unlearn_set_current_version(name, run.version);

	desc = BlessTupleDesc(desc);
	result = SPI_datumTransfer(unlearn_train_result(desc, &run, unlearn_seconds_since(&t_start)), false, -1);
	unlearn_close_model_change();
	SPI_finish();
	PG_RETURN_DATUM(result);
}
