/*
 * train.c: unlearn_train(): read a table, train a classifier, register it
 * as version 1 with the manifest of the rows it saw.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "unlearn_pg.h"

/* Per-epoch hook: lets a cancel through and reports progress. */
static int
train_epoch_callback(void *arg, int epoch, int epochs, double mean_loss)
{
	CHECK_FOR_INTERRUPTS();
	if (unlearn_progress)
		ereport(NOTICE,
				(errmsg("unlearn_train \"%s\": epoch %d/%d, mean loss %.4f",
						(const char *) arg, epoch, epochs, mean_loss)));
	return 0;
}

/* Reads and checks the hidden-layer widths argument. */
static int *
parse_hidden(ArrayType *arr, int *n_hidden)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int		   *hidden;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hidden must be a one-dimensional array of layer widths")));
	deconstruct_array(arr, INT4OID, 4, true, TYPALIGN_INT, &elems, &nulls, &n);
	if (n > NN_MAX_LAYERS - 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at most %d hidden layers are supported, got %d", NN_MAX_LAYERS - 1, n)));
	hidden = palloc(sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i] || DatumGetInt32(elems[i]) < 1 || DatumGetInt32(elems[i]) > 65536)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("hidden layer widths must be integers from 1 to 65536"),
					 errdetail("Element %d is %s.", i + 1,
							   nulls[i] ? "NULL" : psprintf("%d", DatumGetInt32(elems[i])))));
		hidden[i] = DatumGetInt32(elems[i]);
	}
	*n_hidden = n;
	return hidden;
}

/* Builds the text[] of class labels. */
static Datum
classes_array(char **labels, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		d[i] = CStringGetTextDatum(labels[i]);
	return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

/* Builds the int[] of hidden widths. */
static Datum
hidden_array(const int *hidden, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int32GetDatum(hidden[i]);
	return PointerGetDatum(construct_array(d, n, INT4OID, 4, true, TYPALIGN_INT));
}

/* Errors unless name is a usable model name. */
static void
check_model_name(const char *name)
{
	if (name[0] == '\0' || strlen(name) > 200)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("model names must have 1 to 200 characters")));
}

PG_FUNCTION_INFO_V1(unlearn_train);

/*
 * unlearn_train(model, relation, id_column, features_column, label_column,
 *               hidden, epochs, options, auto_unlearn) returns unlearn_train_result.
 * With auto_unlearn the capture triggers are installed on the table.
 */
Datum
unlearn_train(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			relid;
	char	   *id_col,
			   *feat_col,
			   *label_col;
	int		   *hidden;
	int			n_hidden;
	int			epochs;
	nn_train_options topts;
	Jsonb	   *used_options;
	UnlearnDataSpec spec;
	UnlearnData data;
	nn_model   *net;
	char		err[256];
	instr_time	t_start,
				t_train;
	double		load_seconds,
				train_seconds,
				accuracy;
	TupleDesc	result_desc;
	Datum		values[8];
	bool		nulls[8] = {0};
	Oid			label_type;
	bool		auto_unlearn;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("model, relation, id_column, features_column and label_column must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	id_col = NameStr(*PG_GETARG_NAME(2));
	feat_col = NameStr(*PG_GETARG_NAME(3));
	label_col = NameStr(*PG_GETARG_NAME(4));
	check_model_name(name);

	if (PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("hidden must not be NULL"),
				 errhint("Use '{}' for softmax regression.")));
	hidden = parse_hidden(PG_GETARG_ARRAYTYPE_P(5), &n_hidden);
	epochs = PG_ARGISNULL(6) ? 10 : PG_GETARG_INT32(6);
	if (epochs < 1 || epochs > 100000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epochs must be between 1 and 100000, got %d", epochs)));
	unlearn_parse_train_options(PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7), &topts);
	topts.epochs = epochs;
	auto_unlearn = PG_ARGISNULL(8) ? true : PG_GETARG_BOOL(8);

	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "unlearn_train must return a composite type");
	result_desc = BlessTupleDesc(result_desc);

	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid)),
				 errdetail("Training reads the table and needs SELECT on it.")));
	label_type = unlearn_column_type(relid, label_col, "label");
	if (auto_unlearn)
		unlearn_check_capture_allowed(relid);	/* before the work, not after */

	INSTR_TIME_SET_CURRENT(t_start);
	SPI_connect();

	if (unlearn_model_lookup(name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", name),
				 errhint("Drop it with unlearn_drop_model('%s') or choose another name.", name)));

	memset(&spec, 0, sizeof(spec));
	spec.relid = relid;
	spec.id_column = id_col;
	spec.features_column = feat_col;
	spec.label_column = label_col;
	unlearn_read_data(&spec, &data);

	if (data.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation \"%s\" has no rows to train on", get_rel_name(relid))));
	if (data.n_labels < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training needs at least two classes, relation \"%s\" has %d",
						get_rel_name(relid), data.n_labels)));
	if (data.n_labels > 65536)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most 65536 classes are supported, found %d", data.n_labels)));
	for (int64 i = 1; i < data.n; i++)
		if (data.ids[i] == data.ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("id column \"%s\" must be unique", id_col),
					 errdetail("Id %lld appears more than once.", (long long) data.ids[i])));
	if (data.n > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows to train on")));
	load_seconds = unlearn_seconds_since(&t_start);

	unlearn_check_model_size(name, data.n_features, n_hidden, hidden, data.n_labels, &topts, data.n);
	net = nn_create(data.n_features, n_hidden, hidden, data.n_labels, topts.seed, err, sizeof(err));
	if (net == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid network shape: %s", err)));

	INSTR_TIME_SET_CURRENT(t_train);
	nn_train(net, data.X, data.y, (int) data.n, &topts, train_epoch_callback, name);
	train_seconds = unlearn_seconds_since(&t_train);
	if (!nn_params_finite(net))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training diverged: the weights are no longer finite"),
				 errhint("Lower lr, or scale the features.")));
	accuracy = nn_accuracy(net, data.X, data.y, (int) data.n);

	used_options = unlearn_train_options_to_jsonb(&topts, hidden, n_hidden, epochs);
	{
		Oid			argtypes[12] = {TEXTOID, OIDOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, OIDOID,
		INT4OID, INT4ARRAYOID, TEXTARRAYOID, JSONBOID, BOOLOID};
		Datum		args[12];
		UnlearnCatalogUser saved;
		int			ret;

		args[0] = CStringGetTextDatum(name);
		args[1] = ObjectIdGetDatum(GetUserId());
		args[2] = ObjectIdGetDatum(relid);
		args[3] = CStringGetTextDatum(id_col);
		args[4] = CStringGetTextDatum(feat_col);
		args[5] = CStringGetTextDatum(label_col);
		args[6] = ObjectIdGetDatum(label_type);
		args[7] = Int32GetDatum(data.n_features);
		args[8] = hidden_array(hidden, n_hidden);
		args[9] = classes_array(data.labels, data.n_labels);
		args[10] = JsonbPGetDatum(used_options);
		args[11] = BoolGetDatum(auto_unlearn);

		unlearn_become_catalog_owner(&saved);
		ret = SPI_execute_with_args("INSERT INTO unlearn.models (name, owner, relation, id_column,"
									" features_column, label_column, label_type, features, hidden,"
									" classes, options, current_version, auto_unlearn)"
									" VALUES ($1, $2::regrole, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12)",
									12, argtypes, args, NULL, false, 0);
		unlearn_restore_user(&saved);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not register model: %s", SPI_result_code_string(ret));
	}
	if (auto_unlearn)
		unlearn_install_capture(relid);
	{
		char	   *metrics = psprintf("{\"train_accuracy\": %.6f, \"load_seconds\": %.3f,"
									   " \"train_seconds\": %.3f, \"rows\": " INT64_FORMAT "}",
									   accuracy, load_seconds, train_seconds, data.n);

		unlearn_store_version(name, 1, 0, "train", NULL, used_options, net, data.ids, data.n, NULL, 0,
							  DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(metrics))));
	}

	SPI_finish();

	values[0] = CStringGetTextDatum(name);
	values[1] = Int32GetDatum(1);
	values[2] = Int64GetDatum(data.n);
	values[3] = Int32GetDatum(data.n_labels);
	values[4] = Float8GetDatum(accuracy);
	values[5] = Float8GetDatum(unlearn_seconds_since(&t_start));
	values[6] = Float8GetDatum(load_seconds);
	values[7] = Float8GetDatum(train_seconds);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(result_desc, values, nulls)));
}
