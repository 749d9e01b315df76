/*
 * queue.c: the queue of unlearning requests, unlearn.requests.
 *
 * The only code with SQL on unlearn.requests: what the capture inserts (the
 * statement capture's text, which capture.c prepares for an UPDATE and a
 * column model's DELETE; the rest goes through the writer of
 * queue_writer.c), what the worker claims, reads, finishes,
 * retries and prunes, and what unlearn_wait, unlearn_retry, unlearn_purge
 * and unlearn_drop_model read or change.
 *
 * Every function runs in the caller's transaction with SPI connected, as a
 * role that may read and write the queue (see queue.h); none changes the
 * user.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"

#include "queue.h"
#include "unlearn_pg.h"

int			unlearn_batch_window = 20;
int			unlearn_max_batch = 1024;
int			unlearn_max_attempts = 5;
int			unlearn_retry_delay = 2000;
int			unlearn_request_history = 7 * 24 * 3600;

/* Runs one statement of the worker's housekeeping, erroring if it fails. */
static void
worker_statement(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	if (SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0) < 0)
		elog(ERROR, "unlearn worker could not run: %s", sql);
}

/* A copy of s that outlives SPI_finish. */
static char *
spi_strdup(const char *s)
{
	char	   *copy = SPI_palloc(strlen(s) + 1);

	strcpy(copy, s);
	return copy;
}

/* ------------------------------------------------------------------ queueing */

/*
 * The INSERT ... SELECT that queues one model's requests for one statement.
 * $1 model, $2 requesting role, $3 ids not to queue (those unlearn_rows is
 * unlearning in this statement).  Text labels compare under "C", so a
 * nondeterministic collation cannot hide a relabel.  feat is an array
 * model's features column; NULL for a column model, whose rows are encoded
 * by unlearn.encode_row (NULL for a row the model could not have learned),
 * and whose UPDATE forgets when the encoded input changes.  With
 * real_features, feat is double precision[] and its copy is converted by
 * unlearn.real_features as training reads it (the cast to real[] errors on
 * values real cannot hold, which would fail the user's statement).
 */
char *
unlearn_queue_capture_sql(bool is_update, const char *id, const char *feat, bool real_features,
						  const char *label, bool text_label)
{
	const char *c = text_label ? " COLLATE \"C\"" : "";
	const char *old_feat = feat ? psprintf("o.%s", feat) : "fo.v";
	const char *copy = real_features ? psprintf("unlearn.real_features(%s)", old_feat) : psprintf("%s::real[]", old_feat);
	const char *new_feat = feat ? psprintf("n.%s", feat) : "fn.v";
	const char *old_from = feat ? "unlearn_old o" : "unlearn_old o CROSS JOIN LATERAL unlearn.encode_row($1, o) AS fo(v)";
	const char *new_join = feat ? "LEFT JOIN unlearn_new n ON n.%s = o.%s" :
		"LEFT JOIN unlearn_new n ON n.%s = o.%s LEFT JOIN LATERAL unlearn.encode_row($1, n) AS fn(v) ON true";
	/* the old row could have been learned */
	const char *learnable = psprintf("o.%s IS NOT NULL AND o.%s IS NOT NULL AND %s IS NOT NULL AND o.%s <> ALL($3)",
									 id, label, old_feat, id);
	/* the new row is another row to the model: id or input changed, or it holds a NULL */
	const char *changed = psprintf("n.%s IS NULL OR n.%s IS NULL OR %s IS DISTINCT FROM %s",
								   id, label, new_feat, old_feat);

	if (!is_update)
		return psprintf("INSERT INTO unlearn.requests (model, kind, id, label, features, requested_by)"
						" SELECT $1, 'forget', o.%s, o.%s::text, %s, $2::name"
						" FROM %s WHERE %s",
						id, label, copy, old_from, learnable);
	return psprintf("INSERT INTO unlearn.requests (model, kind, id, label, new_label, features, requested_by)"
					" SELECT $1, CASE WHEN %s THEN 'forget' ELSE 'relabel' END,"
					"  o.%s, o.%s::text, CASE WHEN %s THEN NULL ELSE n.%s::text END, %s, $2::name"
					" FROM %s %s"
					" WHERE %s AND (%s OR n.%s%s IS DISTINCT FROM o.%s%s)",
					changed,
					id, label, changed, label, copy,
					old_from, psprintf(new_join, id, id),
					learnable, changed, label, c, label, c);
}

/*
 * Queues one request, requested by requested_by (the role that removed the
 * row: the caller runs this as the catalog owner, so not current_user).
 */
void
unlearn_queue_insert_row(const char *model, const char *kind, int64 id, const char *label,
						 const char *new_label, Datum features, const char *requested_by)
{
	UnlearnQueueWriter *w = unlearn_queue_writer_open(requested_by);

	unlearn_queue_writer_put(w, model, kind, id, label, new_label, features);
	unlearn_queue_writer_close(w);
}

/* ------------------------------------------------------------------ SQL functions */

/* Requests pending or running, of one model or (model NULL) of every model. */
int64
unlearn_queue_count_open(const char *model)
{
	int			ret;
	bool		isnull;
	Datum		count;

	if (model)
		ret = SPI_execute_with_args("SELECT count(*) FROM unlearn.requests"
									" WHERE model = $1 AND state IN ('pending', 'running')",
									1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(model)},
									NULL, false, 1);
	else
		ret = SPI_execute("SELECT count(*) FROM unlearn.requests WHERE state IN ('pending', 'running')",
						  false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read unlearn.requests");
	count = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	Assert(!isnull);
	SPI_freetuptable(SPI_tuptable);	/* unlearn_wait counts in a loop */
	return DatumGetInt64(count);
}

/* Failed requests of a model back to pending, attempts reset; how many. */
uint64
unlearn_queue_retry_failed(const char *model)
{
	if (SPI_execute_with_args("UPDATE unlearn.requests SET state = 'pending', attempts = 0,"
							  " next_attempt_at = clock_timestamp()"
							  " WHERE model = $1 AND state = 'failed'",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(model)},
							  NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update unlearn.requests");
	return SPI_processed;
}

/* Erases the feature copies of a model's finished requests queued before now - older_than. */
uint64
unlearn_queue_erase_features(const char *model, Interval *older_than)
{
	if (SPI_execute_with_args("UPDATE unlearn.requests SET features = NULL"
							  " WHERE model = $1 AND features IS NOT NULL AND state IN ('done', 'failed', 'skipped')"
							  "   AND enqueued_at <= clock_timestamp() - $2",
							  2, (Oid[]) {TEXTOID, INTERVALOID},
							  (Datum[]) {CStringGetTextDatum(model), IntervalPGetDatum(older_than)},
							  NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not purge the queue");
	return SPI_processed;
}

/* ------------------------------------------------------------------ the worker */

/*
 * Requests a crash or a stop left running were never committed as done:
 * they run again, unless that run was their unlearn.max_attempts'th (its
 * claim counted it), so that a request whose run always brings the worker
 * down, or is always terminated, fails instead of coming back for ever.
 */
void
unlearn_queue_reset_running(void)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(unlearn_max_attempts)};

	worker_statement("UPDATE unlearn.requests"
					 " SET state = CASE WHEN attempts >= $1 THEN 'failed' ELSE 'pending' END,"
					 "  last_error = 'the run of attempt ' || attempts || ' was interrupted (the worker or the server stopped)'"
					 " WHERE state = 'running'",
					 1, argtypes, args);
}

/* ------------------------------------------------------------------ turns */

/* When a pending request became due: a new one when it was queued, a retry when its backoff ended. */
#define DUE_SINCE "CASE WHEN attempts = 0 THEN enqueued_at ELSE next_attempt_at END"

#define SERVED_MAX 256			/* models whose last turn the worker remembers */

static char *served_model[SERVED_MAX];	/* in TopMemoryContext */
static TimestampTz served_at[SERVED_MAX];
static int	n_served = 0;

/* The worker ended a turn of this model (a run, failed or not): it goes to the back of the line. */
void
unlearn_queue_note_served(const char *model)
{
	int			slot = 0;

	/* step 1: its entry, else a free one, else the oldest */
	for (int i = 0; i < n_served; i++)
	{
		if (strcmp(served_model[i], model) == 0)
		{
			served_at[i] = GetCurrentTimestamp();
			return;
		}
		if (served_at[i] < served_at[slot])
			slot = i;
	}
	if (n_served < SERVED_MAX)
		slot = n_served++;
	else
		pfree(served_model[slot]);
	/* step 2: the model and now */
	served_model[slot] = MemoryContextStrdup(TopMemoryContext, model);
	served_at[slot] = GetCurrentTimestamp();
}

/* The remembered turns as text[] and timestamptz[] for the queue's SQL. */
static void
served_arrays(Datum *models, Datum *ats)
{
	Datum	   *m = palloc(sizeof(Datum) * Max(n_served, 1));
	Datum	   *t = palloc(sizeof(Datum) * Max(n_served, 1));

	for (int i = 0; i < n_served; i++)
	{
		m[i] = CStringGetTextDatum(served_model[i]);
		t[i] = TimestampTzGetDatum(served_at[i]);
	}
	*models = PointerGetDatum(construct_array(m, n_served, TEXTOID, -1, false, TYPALIGN_INT));
	*ats = PointerGetDatum(construct_array(t, n_served, TIMESTAMPTZOID, sizeof(TimestampTz), FLOAT8PASSBYVAL,
										   TYPALIGN_DOUBLE));
}

/*
 * The next model with requests due, or NULL.  *wait_ms is set when the
 * oldest pending request of the model arrived less than a batching window ago
 * (the window runs from the first request of a batch, so a steady stream of
 * DELETEs cannot postpone a run for ever).  Models take turns: a model's
 * turn comes when its earliest request became due (a new request when it was
 * queued, a retry when its backoff ended), but not before the end of its last
 * turn.  So a model with many requests (more than unlearn.max_batch) or whose
 * runs keep failing (say, cancelled by unlearn.max_run_time) goes to the back
 * of the line after each run, and another model's request waits for at most
 * one run of each model ahead of it.
 */
char *
unlearn_queue_next_due(long *wait_ms)
{
	char	   *model = NULL;
	bool		isnull;
	double		age_ms;
	Datum		args[2];

	*wait_ms = 0;
	served_arrays(&args[0], &args[1]);
	/* models whose batching window has passed first, then by turn, then the oldest request */
	if (SPI_execute_with_args(psprintf("SELECT model, age_ms FROM ("
									   "  SELECT r.model, min(r.request_id) AS first,"
									   "   greatest(min(" DUE_SINCE "), coalesce(max(s.at), '-infinity')) AS turn,"
									   "   extract(epoch FROM clock_timestamp() - min(r.enqueued_at)) * 1000 AS age_ms"
									   "  FROM unlearn.requests r"
									   "  LEFT JOIN unnest($1::text[], $2::timestamptz[]) AS s(model, at) ON s.model = r.model"
									   "  WHERE r.state = 'pending' AND r.next_attempt_at <= clock_timestamp()"
									   "  GROUP BY r.model) q"
									   " ORDER BY age_ms >= %d DESC, turn, first LIMIT 1", unlearn_batch_window),
							  2, (Oid[]) {TEXTARRAYOID, TIMESTAMPTZARRAYOID}, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "unlearn worker could not read unlearn.requests");
	if (SPI_processed != 1)
		return NULL;
	age_ms = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
												SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)));
	if (age_ms < unlearn_batch_window)
		*wait_ms = (long) (unlearn_batch_window - age_ms) + 1;
	else
		model = spi_strdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	return model;
}

/* Marks up to unlearn.max_batch due requests of a model running; returns their ids. */
int64 *
unlearn_queue_claim(const char *model, int *n_out)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model), Int32GetDatum(unlearn_max_batch)};
	int64	   *ids = NULL;
	int			n;

	if (SPI_execute_with_args("UPDATE unlearn.requests SET state = 'running', attempts = attempts + 1"
							  " WHERE request_id IN (SELECT request_id FROM unlearn.requests"
							  "   WHERE model = $1 AND state = 'pending' AND next_attempt_at <= clock_timestamp()"
							  "   ORDER BY " DUE_SINCE ", request_id"
							  "   LIMIT $2 FOR UPDATE SKIP LOCKED)"
							  " RETURNING request_id",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "unlearn worker could not claim requests");
	n = (int) SPI_processed;
	Assert(n <= unlearn_max_batch);
	if (n > 0)
	{
		ids = SPI_palloc(sizeof(int64) * n);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		}
	}
	*n_out = n;
	return ids;
}

/* Reads claimed requests, in request_id order. */
UnlearnQueuedRequest *
unlearn_queue_read(const int64 *request_ids, int n, int *n_out)
{
	UnlearnQueuedRequest *req;
	int			n_read;

	if (SPI_execute_with_args("SELECT request_id, kind = 'relabel', id, label, new_label, features, requested_by"
							  " FROM unlearn.requests WHERE request_id = ANY($1) ORDER BY request_id",
							  1, (Oid[]) {INT8ARRAYOID}, (Datum[]) {unlearn_int8_array(request_ids, n)},
							  NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "unlearn worker could not read its requests");
	n_read = (int) SPI_processed;
	Assert(n_read <= n);
	req = palloc(sizeof(UnlearnQueuedRequest) * Max(n_read, 1));
	for (int i = 0; i < n_read; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		f;

		req[i].request_id = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
		req[i].relabel = DatumGetBool(SPI_getbinval(tup, td, 2, &isnull));
		req[i].id = DatumGetInt64(SPI_getbinval(tup, td, 3, &isnull));
		req[i].label = SPI_getvalue(tup, td, 4);
		req[i].new_label = SPI_getvalue(tup, td, 5);
		f = SPI_getbinval(tup, td, 6, &isnull);
		req[i].features = isnull ? NULL : DatumGetArrayTypePCopy(f);
		req[i].requested_by = SPI_getvalue(tup, td, 7);
	}
	*n_out = n_read;
	return req;
}

/* Marks running requests with a final state, the version that did it and an optional note. */
void
unlearn_queue_finish(const int64 *request_ids, int n, const char *state, int version, const char *note)
{
	Oid			argtypes[4] = {INT8ARRAYOID, TEXTOID, INT4OID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";

	Assert(n > 0);
	args[0] = unlearn_int8_array(request_ids, n);
	args[1] = CStringGetTextDatum(state);
	args[2] = Int32GetDatum(version);
	if (version <= 0)
		nulls[2] = 'n';
	if (note)
		args[3] = CStringGetTextDatum(note);
	else
		nulls[3] = 'n';
	/* the ledger keeps what re-verification needs: the queue's copy goes */
	/* only requests this worker claimed: a finished request is never rewritten */
	if (SPI_execute_with_args("UPDATE unlearn.requests SET state = $2, version = $3, note = $4,"
							  " done_at = clock_timestamp(), features = NULL,"
							  " last_error = CASE WHEN $2 = 'failed' THEN $4 END"
							  " WHERE request_id = ANY($1) AND state = 'running'",
							  4, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "unlearn worker could not update requests");
}

/* Records a failed run: back to pending with backoff, or failed after max_attempts. */
void
unlearn_queue_record_failure(const int64 *request_ids, int n, const char *message)
{
	Oid			argtypes[4] = {INT8ARRAYOID, TEXTOID, INT4OID, INT4OID};
	Datum		args[4];

	args[0] = unlearn_int8_array(request_ids, n);
	args[1] = CStringGetTextDatum(message);
	args[2] = Int32GetDatum(unlearn_max_attempts);
	args[3] = Int32GetDatum(unlearn_retry_delay);
	/* exponential backoff: retry_delay, 2x, 4x ... capped at five minutes */
	worker_statement("UPDATE unlearn.requests SET last_error = $2,"
					 " state = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,"
					 " next_attempt_at = clock_timestamp()"
					 "   + least(300000, $4 * power(2, attempts - 1)) * interval '1 ms'"
					 " WHERE request_id = ANY($1) AND state = 'running'",
					 4, argtypes, args);
}

/* Finished requests leave the queue once past the history window. */
void
unlearn_queue_prune(int history_s)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		args[1] = {Int32GetDatum(history_s)};

	Assert(history_s >= 0);
	worker_statement("DELETE FROM unlearn.requests"
					 " WHERE state IN ('done', 'skipped')"
					 "   AND done_at < clock_timestamp() - $1 * interval '1 s'",
					 1, argtypes, args);
}

/*
 * The queued copies of rows the table no longer has: for each id of `ids`
 * (sorted) with a pending or running forget request of the model whose copy
 * is usable, its earliest such copy, into `rows` (ids, class, features,
 * requested_by).  Caller elevated (the catalog owner), connected to SPI.
 */
void
unlearn_queue_gone_rows(const UnlearnModel *model, const int64 *ids, int64 n, UnlearnData *rows)
{
	int64		m = 0;

	memset(rows, 0, sizeof(*rows));
	rows->n_features = model->n_features;
	if (SPI_execute_with_args("SELECT DISTINCT ON (id) id, label, features, requested_by FROM unlearn.requests"
							  " WHERE model = $1 AND id = ANY($2) AND kind = 'forget'"
							  "   AND state IN ('pending', 'running') AND features IS NOT NULL"
							  " ORDER BY id, request_id",
							  2, (Oid[]) {TEXTOID, INT8ARRAYOID},
							  (Datum[]) {CStringGetTextDatum(model->name), unlearn_int8_array(ids, n)},
							  NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the queued copies of model \"%s\"", model->name);
	rows->ids = palloc(sizeof(int64) * Max(SPI_processed, 1));
	rows->y = palloc(sizeof(int) * Max(SPI_processed, 1));
	rows->requested_by = palloc(sizeof(char *) * Max(SPI_processed, 1));
	rows->X = palloc(sizeof(float) * Max(SPI_processed, 1) * model->n_features);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *label = SPI_getvalue(tup, td, 2);
		ArrayType  *f = DatumGetArrayTypeP(SPI_getbinval(tup, td, 3, &isnull));
		int			cls = label ? unlearn_class_index(model, label) : -1;

		if (cls < 0 || !unlearn_feature_array_ok(f, model->n_features))
			continue;			/* unusable: the worker will fail its request */
		rows->ids[m] = DatumGetInt64(SPI_getbinval(tup, td, 1, &isnull));
		rows->y[m] = cls;
		rows->requested_by[m] = SPI_getvalue(tup, td, 4);
		memcpy(rows->X + m * model->n_features, ARR_DATA_PTR(f), sizeof(float) * model->n_features);
		m++;
	}
	rows->n = m;
}
