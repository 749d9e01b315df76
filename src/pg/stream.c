/*
 * stream.c: training on a table whose rows would hold more memory than
 * unlearn.max_training_memory allows, a chunk at a time.
 *
 * Chunks are ranges of ids: every id is read first (sorted; it is the
 * manifest anyway), and chunk k holds ids[k * chunk_rows ..] up to the next
 * chunk's first, read with "id >= lo AND id <= hi ORDER BY id" (operators
 * of pg_catalog; an index range scan when the id column has a btree index).  One pass over the
 * chunks fixes the feature range and standardisation (nn_stats), then each
 * epoch reads every chunk again in an order shuffled with the training's
 * seed, and one last pass measures the accuracy.  Every read runs under the
 * caller's snapshot (SPI read-only), so each chunk has exactly the rows the
 * first read counted.  Each chunk's rows live in a memory context reset
 * after it.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "unlearn_pg.h"

int			unlearn_max_training_memory = -1;	/* kB; -1: no bound */

/* MIN_TRAINING_MEMORY kB at least, or -1: a bound smaller could not hold a batch of any width. */
#define MIN_TRAINING_MEMORY 64

/* The check of unlearn.max_training_memory: -1 (no bound) or at least MIN_TRAINING_MEMORY kB. */
bool
unlearn_check_training_memory(int *newval, void **extra, GucSource source)
{
	if (*newval == -1 || *newval >= MIN_TRAINING_MEMORY)
		return true;
	GUC_check_errdetail("unlearn.max_training_memory must be -1 (no bound) or at least %d kB.",
						MIN_TRAINING_MEMORY);
	return false;
}

/* unlearn.max_training_memory in bytes; 0: no bound. */
int64
unlearn_training_memory_bytes(void)
{
	return unlearn_max_training_memory < 0 ? 0 : (int64) unlearn_max_training_memory * 1024;
}

/*
 * Every id of the table, sorted, into st->ids: NULLs refused, duplicates
 * refused, the row cap kept.  With classes_only, only the rows whose label
 * is a class of spec.model (as unlearn_read_rows_by_id keeps).
 */
static void
read_ids(UnlearnStream *st, bool classes_only)
{
	const UnlearnDataSpec *spec = &st->spec;
	const UnlearnModel *model = spec->model;
	Oid			id_type = unlearn_column_type(spec->relid, spec->id_column, "id");
	int64		cap = 1024;
	Portal		portal;
	Oid			argtypes[1];
	Datum		args[1];
	char	   *where = "";

	if (classes_only)
	{
		Datum	   *d = palloc(sizeof(Datum) * Max(model->n_classes, 1));

		for (int i = 0; i < model->n_classes; i++)
			d[i] = model->label_kind == LABEL_INT ? Int64GetDatum(model->class_ints[i])
				: CStringGetTextDatum(model->classes[i]);
		argtypes[0] = model->label_kind == LABEL_INT ? INT8ARRAYOID : TEXTARRAYOID;
		args[0] = PointerGetDatum(model->label_kind == LABEL_INT
								  ? construct_array(d, model->n_classes, INT8OID, 8, true, TYPALIGN_DOUBLE)
								  : construct_array(d, model->n_classes, TEXTOID, -1, false, TYPALIGN_INT));
		/* texts compared bytewise, as the classes are: the column's collation may be nondeterministic */
		where = psprintf(" WHERE %s::%s OPERATOR(pg_catalog.=) ANY($1)", quote_identifier(spec->label_column),
						 model->label_kind == LABEL_INT ? "pg_catalog.int8" : "pg_catalog.text COLLATE \"C\"");
	}
	st->ids = MemoryContextAllocHuge(CurrentMemoryContext, sizeof(int64) * cap);
	st->n = 0;
	portal = SPI_cursor_open_with_args(NULL, psprintf("SELECT %s FROM %s%s ORDER BY 1",
													   quote_identifier(spec->id_column),
													   unlearn_qualified_name(spec->relid), where),
									   classes_only ? 1 : 0, argtypes, args, NULL, true, CURSOR_OPT_NO_SCROLL);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 8192);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);

			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("id column \"%s\" must not be NULL", spec->id_column)));
			if (st->n >= unlearn_max_rows)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("relation \"%s\" has more than %d rows",
								get_rel_name(spec->relid), unlearn_max_rows),
						 errhint("Raise unlearn.max_training_rows or use a sample of the table.")));
			if (st->n == cap)
				st->ids = repalloc_huge(st->ids, sizeof(int64) * (cap *= 2));
			st->ids[st->n] = unlearn_int_datum(d, id_type);
			if (st->n > 0 && st->ids[st->n] == st->ids[st->n - 1])
				ereport(ERROR,
						(errcode(ERRCODE_UNIQUE_VIOLATION),
						 errmsg("id column \"%s\" must be unique", spec->id_column),
						 errdetail("Id %lld appears more than once.", (long long) st->ids[st->n])));
			st->n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
}

/* A stream of spec's table under the bound, before its ids are read. */
static void
stream_init(UnlearnStream *st, const UnlearnDataSpec *spec, int n_features)
{
	Assert(spec->where_clause == NULL && spec->id_column != NULL && spec->encoder == NULL);
	Assert(n_features > 0);
	memset(st, 0, sizeof(*st));
	st->spec = *spec;
	st->spec.n_features = n_features;
	st->spec.max_held_bytes = 0;
	st->n_features = n_features;
	st->bound = unlearn_training_memory_bytes();
	Assert(st->bound > 0);
}

/* The chunks of as many rows as the bound holds, and their memory context. */
static void
stream_cut(UnlearnStream *st)
{
	int64		rows = st->bound / UNLEARN_ROW_BYTES(st->n_features);

	st->chunk_rows = (int) Max(Min(rows, (int64) INT_MAX / 2), 1);
	st->n_chunks = (int) ((st->n + st->chunk_rows - 1) / st->chunk_rows);
	st->chunk_cxt = AllocSetContextCreate(CurrentMemoryContext, "unlearn training chunk",
										  ALLOCSET_DEFAULT_SIZES);
}

/*
 * Starts reading spec's table in chunks: the bound, every id (sorted,
 * checked), and the chunks of as many rows as the bound holds.
 */
void
unlearn_stream_open(UnlearnStream *st, const UnlearnDataSpec *spec, int n_features)
{
	stream_init(st, spec, n_features);
	read_ids(st, false);
	stream_cut(st);
}

/*
 * The same for the rows of ids[0..n) (sorted) the table has with a label
 * that is a class of spec->model: the ids read are those (a caller compares
 * them with its list for rows gone), and each chunk drops the other rows of
 * its range (rows added since, or relabelled to no class).
 */
void
unlearn_stream_open_ids(UnlearnStream *st, const UnlearnDataSpec *spec, int n_features, const int64 *ids,
						int64 n)
{
	int64		m = 0;

	stream_init(st, spec, n_features);
	read_ids(st, true);
	/* the table's ids that are in the list (both sorted) */
	for (int64 i = 0, j = 0; i < st->n; i++)
	{
		while (j < n && ids[j] < st->ids[i])
			j++;
		if (j < n && ids[j] == st->ids[i])
			st->ids[m++] = st->ids[i];
	}
	st->filtered = m < st->n;
	st->n = m;
	stream_cut(st);
}

/* Drops the rows of a chunk whose ids are not in ids[0..n) (both sorted), keeping the order. */
static void
keep_listed(UnlearnData *rows, const int64 *ids, int64 n)
{
	int64		m = 0;
	int64		j = 0;
	int			F = rows->n_features;

	for (int64 i = 0; i < rows->n; i++)
	{
		while (j < n && ids[j] < rows->ids[i])
			j++;
		if (j == n || ids[j] != rows->ids[i])
			continue;
		if (m != i)
		{
			memcpy(rows->X + m * F, rows->X + i * F, sizeof(float) * F);
			rows->y[m] = rows->y[i];
			rows->ids[m] = rows->ids[i];
		}
		m++;
	}
	rows->n = m;
}

/*
 * The table's classes for a new model, sorted as an in-memory read sorts
 * them (integers by value, texts bytewise): a model for the chunks' labels
 * to map to, and the meta data the trainer records (labels, ids, sizes).
 */
void
unlearn_stream_classes(UnlearnStream *st, const char *model, UnlearnData *meta)
{
	UnlearnModel *stub = palloc0(sizeof(UnlearnModel));
	const char *label = quote_identifier(st->spec.label_column);
	int			ret;

	stub->name = pstrdup(model);
	stub->relid = st->spec.relid;
	if (!unlearn_label_kind_for_type(unlearn_column_type(st->spec.relid, st->spec.label_column, "label"),
									 &stub->label_kind))
		elog(ERROR, "label column \"%s\" has an unsupported type", st->spec.label_column);
	/*
	 * s.l, the column's own value: a bare "l" would sort the text output
	 * column ("10" before "2"); texts distinct and sorted bytewise, as a read
	 * in memory takes them (a nondeterministic collation would merge "a" and
	 * "A")
	 */
	ret = SPI_execute(psprintf("SELECT l::text FROM (SELECT DISTINCT %s%s AS l FROM %s WHERE %s IS NOT NULL) s"
							   " ORDER BY s.l", label, stub->label_kind == LABEL_INT ? "" : " COLLATE \"C\"",
							   unlearn_qualified_name(st->spec.relid), label),
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the classes: %s", SPI_result_code_string(ret));
	stub->n_classes = (int) Min(SPI_processed, (uint64) INT_MAX);
	stub->classes = palloc(sizeof(char *) * Max(stub->n_classes, 1));
	stub->class_ints = palloc(sizeof(int64) * Max(stub->n_classes, 1));
	for (int i = 0; i < stub->n_classes; i++)
	{
		stub->classes[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		if (stub->label_kind == LABEL_INT)
			stub->class_ints[i] = strtoll(stub->classes[i], NULL, 10);
	}
	SPI_freetuptable(SPI_tuptable);
	st->spec.model = stub;
	memset(meta, 0, sizeof(*meta));
	meta->n = st->n;
	meta->n_features = st->n_features;
	meta->ids = st->ids;
	meta->labels = stub->classes;
	meta->n_labels = stub->n_classes;
}

/* Errors (0A000) if the training asks for what streaming does not do: shards, early stopping. */
void
unlearn_stream_check_options(const UnlearnStream *st, const char *model, int shards,
							 const nn_train_options *o)
{
	const char *what = shards != 1 ? "a sharded model" : o->validation > 0 ? "early stopping (\"validation\")" : NULL;

	if (what != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" cannot train %s in chunks", model, what),
				 errdetail("Its " INT64_FORMAT " rows of %d features hold more than unlearn.max_training_memory"
						   " (%d kB).", st->n, st->n_features, unlearn_max_training_memory),
				 errhint("Raise unlearn.max_training_memory (-1: no bound) to train in memory.")));
}

/*
 * Chunk k's rows into out, in the chunk context (the caller resets it):
 * the range of its ids, ordered by id, checked to be exactly those rows,
 * every label a class of the model.
 */
static void
read_chunk(UnlearnStream *st, int k, UnlearnData *out)
{
	int64		first = (int64) k * st->chunk_rows;
	int64		rows = Min((int64) st->chunk_rows, st->n - first);
	UnlearnDataSpec spec = st->spec;
	Oid			argtypes[2] = {INT8OID, INT8OID};
	Datum		args[2];
	MemoryContext old = MemoryContextSwitchTo(st->chunk_cxt);

	Assert(k >= 0 && k < st->n_chunks && rows > 0);
	args[0] = Int64GetDatum(st->ids[first]);
	args[1] = Int64GetDatum(st->ids[first + rows - 1]);
	spec.where_clause = psprintf("%s OPERATOR(pg_catalog.>=) $1 AND %s OPERATOR(pg_catalog.<=) $2",
								 quote_identifier(spec.id_column), quote_identifier(spec.id_column));
	spec.nargs = 2;
	spec.argtypes = argtypes;
	spec.args = args;
	spec.expect_rows = rows;
	unlearn_read_data(&spec, out);
	MemoryContextSwitchTo(old);
	if (st->filtered)
		keep_listed(out, st->ids + first, rows);
	if (out->n != rows)
		elog(ERROR, "chunk %d of relation \"%s\" has " INT64_FORMAT " rows, not " INT64_FORMAT,
			 k, get_rel_name(spec.relid), out->n, rows);
	for (int64 i = 0; i < rows; i++)
		if (out->y[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("row " INT64_FORMAT " has a label that is not a class of model \"%s\"",
							out->ids[i], spec.model->name),
					 errhint("A model's classes are fixed; train a new model for new classes.")));
	st->chunks_read++;
	st->peak_rows = Max(st->peak_rows, rows);
	CHECK_FOR_INTERRUPTS();
}

/* Drops a chunk's rows. */
static void
release_chunk(UnlearnStream *st)
{
	MemoryContextReset(st->chunk_cxt);
}

/* The statistics pass: every chunk in order, its rows added to the feature range and moments. */
static void
fix_statistics(UnlearnStream *st, nn_model *net, const nn_train_options *o)
{
	nn_stats   *stats = nn_stats_create(st->n_features);

	for (int k = 0; k < st->n_chunks; k++)
	{
		UnlearnData chunk;

		read_chunk(st, k, &chunk);
		nn_stats_add(stats, chunk.X, (int) chunk.n);
		release_chunk(st);
	}
	Assert(nn_stats_rows(stats) == (double) st->n);
	nn_stats_apply(net, stats, o->standardize);
	nn_stats_free(stats);
	st->passes++;
}

/*
 * Trains net for o->epochs passes: the statistics fixed from a first pass,
 * then per epoch every chunk in an order shuffled with the seed, each one
 * pass of shuffled mini-batches; cb after each epoch with its mean loss.
 */
void
unlearn_stream_fit(UnlearnStream *st, nn_model *net, const nn_train_options *o,
				   nn_epoch_callback cb, void *cb_arg)
{
	nn_stream  *train;
	int		   *order = palloc(sizeof(int) * st->n_chunks);

	if (st->chunk_rows < o->batch_size)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unlearn.max_training_memory (%d kB) holds %d rows of %d features, fewer than a batch"
						" (%d)", unlearn_max_training_memory, st->chunk_rows, st->n_features, o->batch_size),
				 errhint("Raise unlearn.max_training_memory to at least %lld kB, or lower batch_size.",
						 (long long) ((UNLEARN_ROW_BYTES(st->n_features) * o->batch_size + 1023) / 1024))));
	/* step 1: the statistics, fixed before the first step */
	fix_statistics(st, net, o);
	train = nn_stream_begin(net, o, st->chunk_rows);
	if (train == NULL)
		elog(ERROR, "could not start training model in chunks");
	/* step 2: the epochs */
	for (int e = 0; e < o->epochs; e++)
	{
		double		loss = 0;

		for (int k = 0; k < st->n_chunks; k++)
			order[k] = k;
		nn_stream_shuffle(train, order, st->n_chunks);
		for (int k = 0; k < st->n_chunks; k++)
		{
			UnlearnData chunk;

			read_chunk(st, order[k], &chunk);
			loss += nn_stream_chunk(train, chunk.X, chunk.y, (int) chunk.n);
			release_chunk(st);
		}
		st->passes++;
		if (cb && cb(cb_arg, e + 1, o->epochs, loss / (double) st->n) != 0)
			break;
	}
	nn_stream_end(train);
	pfree(order);
}

/* net's accuracy on every row, a chunk at a time (one more pass). */
double
unlearn_stream_accuracy(UnlearnStream *st, const nn_model *net)
{
	double		correct = 0;

	for (int k = 0; k < st->n_chunks; k++)
	{
		UnlearnData chunk;

		read_chunk(st, k, &chunk);
		correct += nn_accuracy(net, chunk.X, chunk.y, (int) chunk.n) * (double) chunk.n;
		release_chunk(st);
	}
	st->passes++;
	return correct / (double) st->n;
}

/* The metrics' "stream" entry: the bound, the chunks, the reads and the most rows held. */
char *
unlearn_stream_metrics(const UnlearnStream *st)
{
	return psprintf(", \"stream\": {\"memory_kb\": %d, \"chunk_rows\": %d, \"chunks\": %d, \"passes\": %d,"
					" \"chunks_read\": " INT64_FORMAT ", \"peak_rows_held\": " INT64_FORMAT "}",
					unlearn_max_training_memory, st->chunk_rows, st->n_chunks, st->passes,
					st->chunks_read, st->peak_rows);
}
