/*
 * train.c: unlearn_train(): check the arguments, read a table, register the
 * model, and train and store version 1 with the manifest of the rows it saw
 * (trainer.c).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/relation.h"
#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "commands/tablecmds.h"
#include "tcop/utility.h"

#include "unlearn_pg.h"

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

/* The arguments of one unlearn_train call. */
typedef struct TrainArgs
{
	char	   *name;
	Oid			relid;
	char	   *id_col;
	char	   *feat_col;		/* array models; NULL for a column model */
	ArrayType  *feature_columns;	/* column models: the columns asked for (NULL: every other) */
	bool		nulls_error;	/* column models: {"nulls": "error"} */
	UnlearnEncoder *encoder;	/* column models: the input columns, then their encoding */
	char	   *label_col;
	Oid			label_type;
	int		   *hidden;
	int			n_hidden;
	nn_train_options topts;
	UnlearnArch arch;			/* input_shape and layers, if given */
	bool		auto_unlearn;
	CommandId	read_cid;		/* auto_unlearn: the command id the rows are read under */
	int			shards;			/* the training option "shards": 1 for one network, 0 by partition */
	bool		by_partition;	/* "shards": "partition": one shard per partition (partition_shards.c) */
	const UnlearnData *data;	/* the rows read (for registering the model) */
} TrainArgs;

/*
 * Takes "nulls" ("impute" or "error", column models only) out of the
 * training options: it belongs to the encoding, not to the network.
 */
static Jsonb *
take_nulls_option(Jsonb *options, TrainArgs *a)
{
	char	   *v = unlearn_jsonb_take_string(&options, "nulls", "training", "\"impute\" or \"error\"");

	a->nulls_error = false;
	if (v == NULL)
		return options;
	if (strcmp(v, "error") != 0 && strcmp(v, "impute") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid training option \"nulls\""),
				 errdetail("Expected \"impute\" or \"error\".")));
	if (a->feat_col)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("training option \"nulls\" is for column models"),
				 errdetail("NULL elements of a features array are always an error.")));
	a->nulls_error = strcmp(v, "error") == 0;
	return options;
}

/*
 * The default number of epochs, from the table: enough passes for a budget
 * of UNLEARN_STEP_BUDGET optimiser steps (a small table needs many passes to
 * converge, a large one few), at least MIN and at most MAX passes (scikit-
 * learn's MLPClassifier default).  See docs/sql-reference.md#training.
 */
#define DEFAULT_MIN_EPOCHS 10
#define DEFAULT_MAX_EPOCHS 200
static int
derive_epochs(int64 rows, int batch_size)
{
	int64		steps_per_epoch = (rows + batch_size - 1) / Max(batch_size, 1);
	int64		epochs = (UNLEARN_STEP_BUDGET + steps_per_epoch - 1) / Max(steps_per_epoch, 1);

	return (int) Min(Max(epochs, DEFAULT_MIN_EPOCHS), DEFAULT_MAX_EPOCHS);
}

/* Reads and checks the arguments that need no table access. */
static void
parse_train_args(FunctionCallInfo fcinfo, TrainArgs *a)
{
	int			epochs;

	memset(a, 0, sizeof(*a));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model, relation, id_column and label_column must not be NULL")));
	a->name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	a->relid = PG_GETARG_OID(1);
	a->id_col = NameStr(*PG_GETARG_NAME(2));
	a->feat_col = PG_ARGISNULL(3) ? NULL : NameStr(*PG_GETARG_NAME(3));
	a->label_col = NameStr(*PG_GETARG_NAME(4));
	a->feature_columns = PG_NARGS() > 9 && !PG_ARGISNULL(9) ? PG_GETARG_ARRAYTYPE_P(9) : NULL;
	if (a->feat_col && a->feature_columns)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("give features_column or feature_columns, not both"),
				 errhint("features_column names one array column; feature_columns names ordinary columns.")));
	check_model_name(a->name);

	if (PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("hidden must not be NULL"),
				 errhint("Use '{}' for softmax regression.")));
	a->hidden = parse_hidden(PG_GETARG_ARRAYTYPE_P(5), &a->n_hidden);
	epochs = PG_ARGISNULL(6) ? 0 : PG_GETARG_INT32(6);	/* 0: derived from the table (derive_epochs) */
	if (!PG_ARGISNULL(6) && (epochs < 1 || epochs > 100000))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epochs must be between 1 and 100000, got %d", epochs)));
	unlearn_parse_train_options(take_nulls_option(PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7), a),
								&a->topts);
	if (unlearn_parse_arch(PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7), &a->arch) && a->arch.has_layers)
	{
		a->hidden = a->arch.dense;	/* layers take precedence over hidden */
		a->n_hidden = a->arch.n_dense;
	}
	a->topts.epochs = epochs;
	a->shards = unlearn_shards_option(PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7));
	a->by_partition = unlearn_shard_by_partition(PG_ARGISNULL(7) ? NULL : PG_GETARG_JSONB_P(7));
	a->auto_unlearn = PG_ARGISNULL(8) ? true : PG_GETARG_BOOL(8);
}

/* Checks the table: it exists, the caller may read it, the label column, capture allowed. */
static void
check_train_table(TrainArgs *a)
{
	if (get_rel_name(a->relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", a->relid)));
	if (pg_class_aclcheck(a->relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(a->relid)),
				 errdetail("Training reads the table and needs SELECT on it.")));
	a->label_type = unlearn_column_type(a->relid, a->label_col, "label");
	if (a->feat_col == NULL && !unlearn_catalog_has_column_models())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column models need version 0.2 of extension unlearn"),
				 errhint("Run ALTER EXTENSION unlearn UPDATE, or give features_column.")));
	if (a->feat_col == NULL)
		a->encoder = unlearn_encoder_columns(a->relid, a->id_col, a->label_col, a->feature_columns,
											 a->nulls_error);
	if (a->by_partition)
		unlearn_check_partitioned(a->relid);	/* before the read, not after */
	if (a->auto_unlearn)
		unlearn_check_capture_allowed(a->relid);	/* before the work, not after */
}

/* Errors (55006) if a table of relid's tree is in use by a statement of this session. */
static void
foreach_table_not_in_use(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Relation	rel = relation_open(lfirst_oid(lc), NoLock);

		CheckTableNotInUse(rel, "unlearn_train with automatic unlearning on");
		relation_close(rel, NoLock);
	}
}

/*
 * With automatic unlearning, keeps writes to the table out from the read to
 * the commit: a row deleted by a transaction still open when training read
 * the table (or committed after its snapshot) would be learned, and the
 * triggers installed at the end would never see its DELETE.  Takes SHARE ROW
 * EXCLUSIVE on the table and every table below it (the lock CREATE TRIGGER
 * takes at the end anyway), which waits for the transactions writing to them
 * and holds new writes until this one ends, then pushes a snapshot taken
 * after the wait for the reads (popped by the caller).  REPEATABLE READ and
 * SERIALIZABLE read with their first snapshot, which can predate such a
 * DELETE: refused (0A000).  A read-only transaction (a standby) is refused
 * first, as the catalog writes would refuse it (25006).
 */
static void
hold_table_writes(TrainArgs *a)
{
	PreventCommandIfReadOnly("unlearn_train");
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("unlearn_train with automatic unlearning needs a READ COMMITTED transaction"),
				 errdetail("This transaction's snapshot can still show rows deleted since it was taken,"
						   " and no trigger would queue their deletion for the new model."),
				 errhint("Train in a READ COMMITTED transaction, or with auto_unlearn => false.")));
	unlearn_check_table_tree(a->relid, ShareRowExclusiveLock);
	/* a statement of this session still using a table (a DELETE calling the training) could write after the read */
	foreach_table_not_in_use(a->relid);
	/* a fresh command id, unused, so that a write during the read moves it (check_read_unchanged) */
	CommandCounterIncrement();
	a->read_cid = GetCurrentCommandId(false);
	PushActiveSnapshot(GetTransactionSnapshot());
}

/*
 * Errors (55000) if this transaction wrote anything while training read the
 * table: code the read runs in this backend (a row-level security policy,
 * a view's or an index's function, all of the table owner's) could delete a
 * row after the read's snapshot saw it, in this very transaction, where the
 * lock does not stop it and no trigger exists yet: the row would be learned
 * and never unlearned.  The command counter moves only if something wrote.
 */
static void
check_read_unchanged(const TrainArgs *a)
{
	if (!a->auto_unlearn)
		return;
	CommandCounterIncrement();
	if (GetCurrentCommandId(false) != a->read_cid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("something wrote in this transaction while unlearn_train read table \"%s\"",
						get_rel_name(a->relid)),
				 errdetail("Code run by the read (a row-level security policy, or a function of a view or an index)"
						   " changed data; a row it deleted would be learned and never unlearned."),
				 errhint("Train with auto_unlearn => false, or remove the code that writes.")));
}

/*
 * Reads the table's rows and checks there is something to train on: rows,
 * 2+ classes, unique ids.  When they would hold more than
 * unlearn.max_training_memory, *stream is opened instead (the ids and the
 * classes in data; the rows read so far dropped) and true returned; column
 * models cannot be trained in chunks (0A000).
 */
static bool
read_train_rows(const TrainArgs *a, UnlearnData *data, UnlearnStream *stream)
{
	UnlearnDataSpec spec;
	bool		streamed;

	memset(&spec, 0, sizeof(spec));
	spec.relid = a->relid;
	spec.id_column = a->id_col;
	spec.features_column = a->feat_col;
	spec.label_column = a->label_col;
	spec.encoder = a->encoder;
	spec.fit_encoder = a->encoder != NULL;
	spec.read_tableoid = a->by_partition;
	streamed = unlearn_read_data_bounded(&spec, data);
	if (streamed && a->encoder)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("column model \"%s\" cannot be trained in chunks", a->name),
				 errdetail("The rows of relation \"%s\" hold more than unlearn.max_training_memory (%d kB).",
						   get_rel_name(a->relid), unlearn_max_training_memory),
				 errhint("Raise unlearn.max_training_memory (-1: no bound), or train on a features array.")));
	if (streamed)
	{
		unlearn_stream_open(stream, &spec, data->n_features);
		unlearn_stream_check_options(stream, a->name, a->shards, &a->topts);
		unlearn_stream_classes(stream, a->name, data);
	}

	if (data->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("relation \"%s\" has no rows to train on", get_rel_name(a->relid))));
	if (data->n_labels < 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training needs at least two classes, relation \"%s\" has %d",
						get_rel_name(a->relid), data->n_labels)));
	if (data->n_labels > 65536)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("at most 65536 classes are supported, found %d", data->n_labels)));
	for (int64 i = 1; i < data->n; i++)
		if (data->ids[i] == data->ids[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("id column \"%s\" must be unique", a->id_col),
					 errdetail("Id %lld appears more than once.", (long long) data->ids[i])));
	if (data->n > INT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many rows to train on")));
	return streamed;
}

/*
 * Deletes the requests queued under a model's name before the model existed
 * (caller: the catalog owner, once the model's row is inserted, so no capture
 * queues for it until commit).  They are an earlier model's of the same name
 * that its drop missed (a REPEATABLE READ drop before that was fixed, or an edit of
 * the catalog): this model must not unlearn rows on their account.
 */
static void
drop_stale_requests(const char *name)
{
	uint64		n = unlearn_catalog_delete_latest("DELETE FROM unlearn.requests WHERE model = $1", name);

	if (n > 0)
		ereport(WARNING,
				(errmsg("removed %llu requests of an earlier model named \"%s\"", (unsigned long long) n, name),
				 errdetail("They were queued for a model of the same name that was dropped"
						   " (pending or finished); they are not requests for the new model.")));
}

/*
 * Registers the trained model in unlearn.models (current version 1), and
 * installs the capture triggers with auto_unlearn: the hook between
 * training and storing version 1.
 */
static void
register_model(void *arg, Jsonb *used_options)
{
	const TrainArgs *a = arg;
	Oid			argtypes[14] = {TEXTOID, OIDOID, OIDOID, TEXTOID, TEXTOID, TEXTOID, OIDOID,
	INT4OID, INT4ARRAYOID, TEXTARRAYOID, JSONBOID, BOOLOID, NAMEARRAYOID, REGTYPEARRAYOID};
	Datum		args[14];
	char		nulls[14] = "              ";
	UnlearnCatalogUser saved;
	int			ret;

	check_read_unchanged(a);	/* the chunks of a streamed table are read while training */
	args[0] = CStringGetTextDatum(a->name);
	args[1] = ObjectIdGetDatum(GetUserId());
	args[2] = ObjectIdGetDatum(a->relid);
	args[3] = CStringGetTextDatum(a->id_col);
	args[4] = a->feat_col ? CStringGetTextDatum(a->feat_col) : (Datum) 0;
	nulls[4] = a->feat_col ? ' ' : 'n';
	args[5] = CStringGetTextDatum(a->label_col);
	args[6] = ObjectIdGetDatum(a->label_type);
	args[7] = Int32GetDatum(a->data->n_features);
	args[8] = hidden_array(a->hidden, a->n_hidden);
	args[9] = classes_array(a->data->labels, a->data->n_labels);
	args[10] = JsonbPGetDatum(used_options);
	args[11] = BoolGetDatum(a->auto_unlearn);
	args[12] = a->encoder ? unlearn_encoder_column_array(a->encoder) : (Datum) 0;
	args[13] = a->encoder ? unlearn_encoder_type_array(a->encoder) : (Datum) 0;
	nulls[12] = nulls[13] = a->encoder ? ' ' : 'n';

	unlearn_become_catalog_owner(&saved);
	/* a catalog still at 0.1 (array models only) lacks the last two columns */
	ret = SPI_execute_with_args(psprintf("INSERT INTO unlearn.models (name, owner, relation, id_column,"
										 " features_column, label_column, label_type, features, hidden,"
										 " classes, options, current_version, auto_unlearn%s)"
										 " VALUES ($1, $2::regrole, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12%s)",
										 a->encoder ? ", feature_columns, feature_types" : "",
										 a->encoder ? ", $13, $14" : ""),
								a->encoder ? 14 : 12, argtypes, args, nulls, false, 0);
	if (ret == SPI_OK_INSERT && a->encoder)
		ret = SPI_execute_with_args("INSERT INTO unlearn.encodings (model, inputs) VALUES ($1, $2)",
									2, (Oid[]) {TEXTOID, JSONBOID},
									(Datum[]) {args[0], JsonbPGetDatum(unlearn_encoder_to_jsonb(a->encoder))},
									NULL, false, 0);
	if (ret == SPI_OK_INSERT)
		drop_stale_requests(a->name);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "could not register model: %s", SPI_result_code_string(ret));
	if (a->auto_unlearn)
		unlearn_install_capture(a->relid);
}

PG_FUNCTION_INFO_V1(unlearn_train);

/*
 * unlearn_train(model, relation, id_column, features_column, label_column,
 *               hidden, epochs, options, auto_unlearn, feature_columns)
 * returns unlearn_train_result.  A NULL features_column makes a column model.
 * With auto_unlearn the capture triggers are installed on the table.
 */
Datum
unlearn_train(PG_FUNCTION_ARGS)
{
	TrainArgs	a;
	UnlearnData data;
	UnlearnStream stream;
	bool		streamed;
	UnlearnTrainRun run;
	TupleDesc	result_desc;
	instr_time	t_start;

	parse_train_args(fcinfo, &a);
	if (get_call_result_type(fcinfo, NULL, &result_desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "unlearn_train must return a composite type");
	result_desc = BlessTupleDesc(result_desc);
	check_train_table(&a);

	INSTR_TIME_SET_CURRENT(t_start);
	SPI_connect();
	if (unlearn_model_lookup(a.name, true) != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("model \"%s\" already exists", a.name),
				 errhint("Drop it with unlearn_drop_model('%s') or choose another name.", a.name)));
	if (a.auto_unlearn)
		hold_table_writes(&a);
	streamed = read_train_rows(&a, &data, &stream);
	check_read_unchanged(&a);
	a.data = &data;
	/*
	 * early stopping only when asked for ({"validation": 0.1}): as the default
	 * with derived epochs it lost 1 to 11 points on the benchmark suite
	 * (docs/benchmarks.md), stopping on a transient plateau
	 */
	if (a.topts.validation < 0)
		a.topts.validation = 0;
	if (a.topts.epochs == 0)
		a.topts.epochs = derive_epochs(data.n, a.topts.batch_size);

	memset(&run, 0, sizeof(run));
	run.model = a.name;
	run.reason = "train";
	run.hidden = a.hidden;
	run.n_hidden = a.n_hidden;
	run.arch = &a.arch;
	run.n_classes = data.n_labels;
	run.topts = &a.topts;
	run.shards = a.shards;
	run.data = &data;
	run.stream = streamed ? &stream : NULL;
	if (a.by_partition)
		unlearn_shard_run_by_partition(&run, a.relid, a.shards);
	run.load_seconds = unlearn_seconds_since(&t_start);
	run.before_store = register_model;
	run.before_store_arg = &a;
	unlearn_train_and_store(&run);
	if (a.auto_unlearn)
		PopActiveSnapshot();
	SPI_finish();

	PG_RETURN_DATUM(unlearn_train_result(result_desc, &run, unlearn_seconds_since(&t_start)));
}
