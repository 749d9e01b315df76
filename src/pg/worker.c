/*
 * worker.c: the background workers that unlearn queued requests.
 *
 * A launcher (registered when the library is preloaded) lists the databases
 * and starts one worker per database; a worker whose database lacks the
 * extension exits, and the launcher retries it later or as soon as a commit
 * in that database asks for it.  Each worker waits on its latch, which the
 * commit callback of a transaction that queued requests sets (a worker
 * cannot LISTEN), with unlearn.naptime as a timed backstop.
 *
 * A worker coalesces each model's pending requests (up to unlearn.max_batch,
 * after unlearn.batch_window), marks them running in a committed
 * transaction, then in one transaction runs the same unlearning as
 * unlearn_rows as the model's owner, stores the version, fills the ledger
 * and marks the requests done.  A crash leaves them running; the next worker
 * start puts them back to pending, so they are processed once.  A run that
 * errors is recorded and retried with exponential backoff, and fails for
 * good after unlearn.max_attempts.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "unlearn_pg.h"

#define MAX_DATABASES 64

/* One database the launcher knows about. */
typedef struct DatabaseSlot
{
	Oid			dboid;
	Latch	   *latch;			/* the worker's latch while it runs, else NULL */
	pid_t		pid;
	bool		wanted;			/* a commit there queued requests: start a worker now */
} DatabaseSlot;

typedef struct UnlearnShared
{
	slock_t		mutex;
	pg_atomic_uint64 catalog_generation;	/* see unlearn_catalog_generation */
	Latch	   *launcher_latch;
	DatabaseSlot slots[MAX_DATABASES];
} UnlearnShared;

static UnlearnShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

int			unlearn_naptime = 5000;
int			unlearn_batch_window = 20;
int			unlearn_max_batch = 1024;
int			unlearn_max_attempts = 5;
int			unlearn_retry_delay = 2000;
int			unlearn_request_history = 7 * 24 * 3600;

static Datum scalar_in_transaction(const char *sql, int nargs, Oid *argtypes, Datum *args);

PGDLLEXPORT void unlearn_launcher_main(Datum arg);
PGDLLEXPORT void unlearn_worker_main(Datum arg);

/* Asks for our shared memory. */
static void
unlearn_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(UnlearnShared)));
}

/* Creates or attaches our shared memory. */
static void
unlearn_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("unlearn", sizeof(UnlearnShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(UnlearnShared));
		SpinLockInit(&shared->mutex);
		pg_atomic_init_u64(&shared->catalog_generation, 1);
	}
	LWLockRelease(AddinShmemInitLock);
}

static bool catalog_changed_in_xact = false;
static bool exiting_idle = false;	/* this worker leaves because nothing is queued */

/* The current catalog generation (0 without shared memory: then nothing may be cached). */
uint64
unlearn_catalog_generation(void)
{
	return shared ? pg_atomic_read_u64(&shared->catalog_generation) : 0;
}

/* This transaction changed unlearn.models: move the generation at commit. */
void
unlearn_note_catalog_changed(void)
{
	catalog_changed_in_xact = true;
}

/*
 * At commit of a transaction that queued requests, wakes this database's
 * worker, or asks the launcher to start one; at commit of one that changed
 * unlearn.models, moves the catalog generation (after the commit is
 * visible, so a backend that reads the new generation sees the change).
 */
static void
unlearn_xact_callback(XactEvent event, void *arg)
{
	bool		queued;

	if (event != XACT_EVENT_COMMIT && event != XACT_EVENT_PARALLEL_COMMIT &&
		event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	if (catalog_changed_in_xact)
	{
		if (shared != NULL && (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT))
			pg_atomic_fetch_add_u64(&shared->catalog_generation, 1);
		else
			unlearn_capture_cache_invalidate();	/* built from a change that rolled back */
		catalog_changed_in_xact = false;
	}
	queued = unlearn_take_queued();
	if (!queued || event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT || shared == NULL)
		return;

	SpinLockAcquire(&shared->mutex);
	{
		Latch	   *to_set = NULL;
		bool		found = false;

		for (int i = 0; i < MAX_DATABASES; i++)
			if (shared->slots[i].dboid == MyDatabaseId)
			{
				found = true;
				if (shared->slots[i].latch)
					to_set = shared->slots[i].latch;
				else
				{
					shared->slots[i].wanted = true;
					to_set = shared->launcher_latch;
				}
				break;
			}
		if (!found)
		{
			for (int i = 0; i < MAX_DATABASES; i++)
				if (shared->slots[i].dboid == InvalidOid)
				{
					shared->slots[i].dboid = MyDatabaseId;
					shared->slots[i].wanted = true;
					break;
				}
			to_set = shared->launcher_latch;
		}
		SpinLockRelease(&shared->mutex);
		if (to_set)
			SetLatch(to_set);
	}
}

/* Registers hooks and, when preloaded, the launcher. */
void
unlearn_worker_init(void)
{
	BackgroundWorker worker;

	RegisterXactCallback(unlearn_xact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = unlearn_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = unlearn_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "unlearn");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "unlearn_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "unlearn launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "unlearn launcher");
	RegisterBackgroundWorker(&worker);
}

/* ------------------------------------------------------------------ launcher */

/* What the launcher remembers about each database's worker. */
typedef struct LaunchedWorker
{
	Oid			dboid;
	BackgroundWorkerHandle *handle;
	TimestampTz last_start;
} LaunchedWorker;

#define RETRY_IDLE_DATABASE_MS 300000	/* backstop: restart a database's stopped worker */
#define WORKER_IDLE_EXIT_MS 60000	/* a worker with nothing queued leaves after this */

/* Databases that accept connections and are not templates. */
static int
list_databases(Oid *out, int max)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			n = 0;

	StartTransactionCommand();
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL && n < max)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (db->datallowconn && !db->datistemplate)
			out[n++] = db->oid;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	return n;
}

/* Starts the worker of one database. */
static BackgroundWorkerHandle *
start_database_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "unlearn");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "unlearn_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "unlearn worker for database %u", dboid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "unlearn worker");
	worker.bgw_main_arg = ObjectIdGetDatum(dboid);
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(LOG,
				(errmsg("unlearn launcher could not start a worker for database %u", dboid),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

/* Launcher: keeps one worker per database where one is needed. */
void
unlearn_launcher_main(Datum arg)
{
	LaunchedWorker launched[MAX_DATABASES];
	int			n_launched = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&shared->mutex);
	shared->launcher_latch = MyLatch;
	SpinLockRelease(&shared->mutex);
	memset(launched, 0, sizeof(launched));

	for (;;)
	{
		Oid			dbs[MAX_DATABASES];
		int			n_dbs = list_databases(dbs, MAX_DATABASES);
		TimestampTz now = GetCurrentTimestamp();

		for (int i = 0; i < n_dbs; i++)
		{
			LaunchedWorker *lw = NULL;
			bool		wanted = false;
			pid_t		pid;

			for (int j = 0; j < n_launched; j++)
				if (launched[j].dboid == dbs[i])
					lw = &launched[j];
			if (lw == NULL && n_launched < MAX_DATABASES)
			{
				lw = &launched[n_launched++];
				lw->dboid = dbs[i];
				lw->handle = NULL;
				lw->last_start = 0;
			}
			if (lw == NULL)
				continue;

			/*
			 * A worker still running (or starting, or not yet reaped) is left
			 * alone, and so is its wanted flag: the postmaster sets our latch
			 * when it stops (bgw_notify_pid), and the next round starts the
			 * new one.
			 */
			if (lw->handle && GetBackgroundWorkerPid(lw->handle, &pid) != BGWH_STOPPED)
				continue;
			SpinLockAcquire(&shared->mutex);
			for (int s = 0; s < MAX_DATABASES; s++)
				if (shared->slots[s].dboid == dbs[i] && shared->slots[s].wanted)
				{
					wanted = true;
					shared->slots[s].wanted = false;
				}
			SpinLockRelease(&shared->mutex);
			if (wanted || lw->last_start == 0 ||
				TimestampDifferenceExceeds(lw->last_start, now, RETRY_IDLE_DATABASE_MS))
			{
				lw->handle = start_database_worker(dbs[i]);
				lw->last_start = now;
			}
		}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 unlearn_naptime, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

/* ------------------------------------------------------------------ worker */

/* Publishes this worker's latch for its database's commits. */
static void
register_worker_slot(void)
{
	SpinLockAcquire(&shared->mutex);
	{
		int			free_slot = -1;
		bool		done = false;

		for (int i = 0; i < MAX_DATABASES && !done; i++)
		{
			if (shared->slots[i].dboid == MyDatabaseId)
			{
				shared->slots[i].latch = MyLatch;
				shared->slots[i].pid = MyProcPid;
				shared->slots[i].wanted = false;
				done = true;
			}
			else if (shared->slots[i].dboid == InvalidOid && free_slot < 0)
				free_slot = i;
		}
		if (!done && free_slot >= 0)
		{
			shared->slots[free_slot].dboid = MyDatabaseId;
			shared->slots[free_slot].latch = MyLatch;
			shared->slots[free_slot].pid = MyProcPid;
		}
	}
	SpinLockRelease(&shared->mutex);
}

/*
 * Withdraws this worker's latch when it exits, and asks the launcher for a
 * new worker at once: its database has the extension, and requests may be
 * waiting (after a pg_terminate_backend, say).
 */
static void
unregister_worker_slot(int code, Datum arg)
{
	Latch	   *launcher = NULL;

	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < MAX_DATABASES; i++)
		if (shared->slots[i].dboid == MyDatabaseId && shared->slots[i].pid == MyProcPid)
		{
			shared->slots[i].latch = NULL;
			shared->slots[i].pid = 0;
			if (!exiting_idle)
			{
				shared->slots[i].wanted = true;
				launcher = shared->launcher_latch;
			}
		}
	SpinLockRelease(&shared->mutex);
	if (launcher)
		SetLatch(launcher);
}

#define WORKER_LOCK_KEY INT64CONST(0x756e6c6561726e)	/* "unlearn" */

/*
 * Takes the session-level advisory lock that makes this the only worker of
 * its database (a restarted launcher may start a second one); false if
 * another worker holds it.
 */
static bool
become_only_worker(void)
{
	return DatumGetBool(scalar_in_transaction("SELECT pg_try_advisory_lock($1)", 1, (Oid[]) {INT8OID},
											  (Datum[]) {Int64GetDatum(WORKER_LOCK_KEY)}));
}

/* True if the extension exists in this database (inside a transaction). */
static bool
extension_present(void)
{
	bool		present;

	StartTransactionCommand();
	present = OidIsValid(get_extension_oid("unlearn", true));
	CommitTransactionCommand();
	return present;
}

/* Runs one SQL statement in its own transaction (worker housekeeping). */
static void
run_in_transaction(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0) < 0)
		elog(ERROR, "unlearn worker could not run: %s", sql);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/*
 * Runs a query returning one non-NULL pass-by-value column in its own
 * transaction and returns that value (worker housekeeping).
 */
static Datum
scalar_in_transaction(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	Datum		value;
	bool		isnull;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "unlearn worker could not run: %s", sql);
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		elog(ERROR, "unlearn worker got NULL from: %s", sql);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return value;
}

/* One request picked for a run. */
typedef struct PickedRequest
{
	int64		request_id;
	bool		relabel;
	int64		id;
	char	   *label;
	char	   *new_label;
	ArrayType  *features;
	char	   *requested_by;
	int			cls;			/* output unit of label */
	int			target;			/* relabel: output unit of new_label */
} PickedRequest;

/* Orders picked requests by row id. */
static int
cmp_request_id(const void *a, const void *b)
{
	const PickedRequest *x = *(PickedRequest *const *) a;
	const PickedRequest *y = *(PickedRequest *const *) b;

	return (x->id > y->id) - (x->id < y->id);
}

/*
 * The next model with requests due, or NULL.  *wait_ms is set when the
 * oldest pending request of the model arrived less than a batching window ago
 * (the window runs from the first request of a batch, so a steady stream of
 * DELETEs cannot postpone a run for ever).
 */
static char *
next_due_model(long *wait_ms)
{
	char	   *model = NULL;

	*wait_ms = 0;
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* models whose batching window has passed first, then the oldest request */
	if (SPI_execute(psprintf("SELECT model, age_ms FROM ("
							 "  SELECT model, min(request_id) AS first,"
							 "   extract(epoch FROM clock_timestamp() - min(enqueued_at)) * 1000 AS age_ms"
							 "  FROM unlearn.requests"
							 "  WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()"
							 "  GROUP BY model) s"
							 " ORDER BY age_ms >= %d DESC, first LIMIT 1", unlearn_batch_window),
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "unlearn worker could not read unlearn.requests");
	if (SPI_processed == 1)
	{
		bool		isnull;
		double		age_ms = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
																SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)));

		if (age_ms < unlearn_batch_window)
			*wait_ms = (long) (unlearn_batch_window - age_ms) + 1;
		else
			model = MemoryContextStrdup(TopMemoryContext,
										SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	return model;
}

/*
 * Marks up to unlearn.max_batch pending requests of a model running, in a
 * committed transaction; returns their ids (in TopMemoryContext).
 */
static int64 *
claim_requests(const char *model, int *n_out)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model), Int32GetDatum(unlearn_max_batch)};
	int64	   *ids = NULL;
	int			n = 0;

	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_execute_with_args("UPDATE unlearn.requests SET state = 'running', attempts = attempts + 1"
							  " WHERE request_id IN (SELECT request_id FROM unlearn.requests"
							  "   WHERE model = $1 AND state = 'pending' AND next_attempt_at <= clock_timestamp()"
							  "   ORDER BY request_id LIMIT $2 FOR UPDATE SKIP LOCKED)"
							  " RETURNING request_id",
							  2, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "unlearn worker could not claim requests");
	n = (int) SPI_processed;
	if (n > 0)
	{
		ids = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * n);
		for (int i = 0; i < n; i++)
		{
			bool		isnull;

			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		}
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	*n_out = n;
	return ids;
}

/* Marks requests with a final state and an optional note (caller in a transaction, SPI connected). */
static void
finish_requests(const int64 *request_ids, int n, const char *state, int version, const char *note)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	Oid			argtypes[4] = {INT8ARRAYOID, TEXTOID, INT4OID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = "    ";
	UnlearnCatalogUser saved;

	if (n == 0)
		return;
	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(request_ids[i]);
	args[0] = PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
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
	/* the run acts as the model's owner, who may not write the queue: the catalog owner does */
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("UPDATE unlearn.requests SET state = $2, version = $3, note = $4,"
							  " done_at = clock_timestamp(), features = NULL,"
							  " last_error = CASE WHEN $2 = 'failed' THEN $4 END"
							  " WHERE request_id = ANY($1) AND state = 'running'",
							  4, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "unlearn worker could not update requests");
	unlearn_restore_user(&saved);
}

/* What the worker does with one claimed request in a pass. */
typedef enum RequestFate
{
	FATE_USE,					/* unlearn it */
	FATE_SKIP,					/* not learned, or another request for the row stands for it */
	FATE_FAIL_LABEL,			/* learned, but its label is not a class of the model */
	FATE_FAIL_COPY				/* learned, but its feature copy is unusable */
} RequestFate;

/* True if a request carries what unlearning needs: a class and a usable feature copy. */
static bool
request_usable(const PickedRequest *r, const UnlearnModel *model)
{
	return r->cls >= 0 && r->features != NULL && unlearn_feature_array_ok(r->features, model->n_features);
}

/*
 * True if the request belongs to the pass: the forget pass takes forget
 * requests and relabels to a label that is no class (the learned row must
 * go); the relabel pass takes relabels to a class.
 */
static bool
in_pass(const PickedRequest *r, bool relabel_pass)
{
	return relabel_pass ? (r->relabel && r->target >= 0) : (!r->relabel || r->target < 0);
}

/*
 * Decides request i's fate.  A row's learned copy is its earliest usable
 * forget request (later ones carry what an UPDATE made of it); its final
 * label is its latest usable relabel.  A learned row none of whose requests
 * is usable fails rather than being skipped.
 */
static RequestFate
request_fate(const PickedRequest *req, int n, int i, bool relabel_pass, const UnlearnModel *model,
			 const int64 *manifest, int64 n_manifest)
{
	const PickedRequest *r = &req[i];
	bool		usable = request_usable(r, model);

	Assert(in_pass(r, relabel_pass));
	/* step 1: a row the current version never learned needs nothing */
	if (!bsearch(&r->id, manifest, n_manifest, sizeof(int64), unlearn_cmp_int64))
		return FATE_SKIP;
	/* step 2: another usable request of the row in this pass stands for this one */
	for (int j = 0; j < n; j++)
	{
		if (j == i || req[j].id != r->id || !in_pass(&req[j], relabel_pass) || !request_usable(&req[j], model))
			continue;
		if (!usable || (relabel_pass ? j > i : j < i))
			return FATE_SKIP;
	}
	/* step 3: the only requests of a learned row are unusable */
	if (!usable)
		return r->cls < 0 ? FATE_FAIL_LABEL : FATE_FAIL_COPY;
	return FATE_USE;
}

/*
 * Runs the claimed requests of one model in one transaction: forget
 * requests as one version, relabel requests as another.
 */
static void
process_claimed(const char *name, const int64 *claimed, int n_claimed)
{
	Oid			argtypes[1] = {INT8ARRAYOID};
	Datum		args[1];
	Datum	   *d = palloc(sizeof(Datum) * n_claimed);
	PickedRequest *req;
	PickedRequest **order;
	int			n,
				n_order;
	UnlearnModel *model;
	UnlearnCatalogUser as_owner;
	int64	   *manifest_ids;
	int64		n_manifest;
	UnlearnRunOptions opts;

	for (int i = 0; i < n_claimed; i++)
		d[i] = Int64GetDatum(claimed[i]);
	args[0] = PointerGetDatum(construct_array(d, n_claimed, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));

	model = unlearn_model_lookup(name, false);
	/* serialise with unlearn_rows and other changes of this model */
	if (SPI_execute_with_args("SELECT 1 FROM unlearn.models WHERE name = $1 FOR NO KEY UPDATE",
							  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(name)}, NULL, false, 1) != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not lock model \"%s\"", name)));
	/* read everything after the lock: a concurrent unlearn_rows may have made a new version */
	PopActiveSnapshot();
	PushActiveSnapshot(GetTransactionSnapshot());
	model = unlearn_model_lookup(name, false);
	unlearn_parse_run_options(NULL, &opts);
	{
		bool		isnull;

		if (SPI_execute_with_args("SELECT auto_options FROM unlearn.models WHERE name = $1",
								  1, (Oid[]) {TEXTOID}, (Datum[]) {CStringGetTextDatum(name)}, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
			unlearn_parse_run_options(DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
									  &opts);
	}

	if (SPI_execute_with_args("SELECT request_id, kind = 'relabel', id, label, new_label, features, requested_by"
							  " FROM unlearn.requests WHERE request_id = ANY($1) ORDER BY request_id",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "unlearn worker could not read its requests");
	n = (int) SPI_processed;
	req = palloc(sizeof(PickedRequest) * Max(n, 1));
	order = palloc(sizeof(PickedRequest *) * Max(n, 1));
	for (int i = 0; i < n; i++)
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

	/* the rows the current version learned */
	manifest_ids = unlearn_load_manifest(model, model->version, &n_manifest);

	/* run as the model's owner (restricted, search_path pinned) */
	unlearn_become_role(model->owner, &as_owner);

	for (int pass = 0; pass < 2; pass++)
	{
		bool		relabel = pass == 1;
		UnlearnData rows;
		int		   *new_labels = palloc(sizeof(int) * Max(n, 1));
		int64	   *used = palloc(sizeof(int64) * Max(n, 1));
		int64	   *skipped = palloc(sizeof(int64) * Max(n, 1));
		int64	   *failed_label = palloc(sizeof(int64) * Max(n, 1));
		int64	   *failed_copy = palloc(sizeof(int64) * Max(n, 1));
		int			n_used = 0,
					n_skipped = 0,
					n_failed_label = 0,
					n_failed_copy = 0;
		UnlearnOutcome outcome;

		memset(&rows, 0, sizeof(rows));
		rows.n_features = model->n_features;
		rows.X = palloc(sizeof(float) * Max(n, 1) * model->n_features);
		rows.y = palloc(sizeof(int) * Max(n, 1));
		rows.ids = palloc(sizeof(int64) * Max(n, 1));
		rows.requested_by = palloc(sizeof(char *) * Max(n, 1));
		n_order = 0;
		for (int i = 0; i < n; i++)
		{
			req[i].cls = req[i].label ? unlearn_class_index(model, req[i].label) : -1;
			req[i].target = req[i].relabel && req[i].new_label ? unlearn_class_index(model, req[i].new_label) : -1;
		}
		for (int i = 0; i < n; i++)
		{
			if (!in_pass(&req[i], relabel))
				continue;
			switch (request_fate(req, n, i, relabel, model, manifest_ids, n_manifest))
			{
				case FATE_USE:
					order[n_order++] = &req[i];
					break;
				case FATE_SKIP:
					skipped[n_skipped++] = req[i].request_id;
					break;
				case FATE_FAIL_LABEL:
					failed_label[n_failed_label++] = req[i].request_id;
					break;
				case FATE_FAIL_COPY:
					failed_copy[n_failed_copy++] = req[i].request_id;
					break;
			}
		}
		/* unlearn_execute wants the rows sorted by id */
		qsort(order, n_order, sizeof(PickedRequest *), cmp_request_id);
		for (int i = 0; i < n_order; i++)
		{
			float	   *x = unlearn_features_from_array(order[i]->features, model->n_features);

			memcpy(rows.X + (size_t) i * model->n_features, x, sizeof(float) * model->n_features);
			pfree(x);
			rows.y[i] = order[i]->cls;
			rows.ids[i] = order[i]->id;
			rows.requested_by[i] = order[i]->requested_by;
			new_labels[i] = order[i]->target;
			used[n_used++] = order[i]->request_id;
		}
		rows.n = n_order;
		finish_requests(skipped, n_skipped, "skipped", 0,
						"not learned by the current version, or superseded by another request for the row");
		/* a learned row that cannot be unlearned is a failure, never a silent skip */
		finish_requests(failed_label, n_failed_label, "failed", 0,
						"its label is not a class of the model and no other request for the row has one");
		finish_requests(failed_copy, n_failed_copy, "failed", 0,
						"its feature copy is missing, malformed or not finite and no other request for the row has one");
		if (rows.n == 0)
			continue;
		unlearn_execute(model, &rows, relabel ? new_labels : NULL, &opts,
						relabel ? "auto-relabel" : "auto-unlearn", false, &outcome);
		finish_requests(used, n_used, "done", outcome.version, NULL);
		ereport(LOG,
				(errmsg("unlearn worker: model \"%s\" version %d %s %d rows in %.3f s (%d steps)",
						name, outcome.version, relabel ? "relabelled" : "forgot", outcome.rows,
						outcome.seconds, outcome.steps)));
		/*
		 * the relabel pass starts from the version the forget pass made: the
		 * catalog reads are read-only SPI under the run's snapshot, which
		 * must first see this transaction's new version, manifest and ledger
		 */
		CommandCounterIncrement();
		UpdateActiveSnapshotCommandId();
		model = unlearn_model_lookup(name, false);
		if (!relabel)
			manifest_ids = unlearn_load_manifest(model, model->version, &n_manifest);
	}
	unlearn_restore_user(&as_owner);
}

/* Records a failed run: back to pending with backoff, or failed after max_attempts. */
static void
record_failure(const int64 *claimed, int n, const char *message)
{
	MemoryContext tmp = AllocSetContextCreate(TopMemoryContext, "unlearn failure", ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	Datum	   *d = palloc(sizeof(Datum) * n);
	Oid			argtypes[4] = {INT8ARRAYOID, TEXTOID, INT4OID, INT4OID};
	Datum		args[4];

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(claimed[i]);
	args[0] = PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	args[1] = CStringGetTextDatum(message);
	args[2] = Int32GetDatum(unlearn_max_attempts);
	args[3] = Int32GetDatum(unlearn_retry_delay);
	/* exponential backoff: retry_delay, 2x, 4x ... capped at five minutes */
	run_in_transaction("UPDATE unlearn.requests SET last_error = $2,"
					   " state = CASE WHEN attempts >= $3 THEN 'failed' ELSE 'pending' END,"
					   " next_attempt_at = clock_timestamp()"
					   "   + least(300000, $4 * power(2, attempts - 1)) * interval '1 ms'"
					   " WHERE request_id = ANY($1) AND state = 'running'",
					   4, argtypes, args);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
}

/* Runs claimed requests in their own transaction; a failure is recorded, not raised. */
static void
run_claimed_requests(const char *model, const int64 *claimed, int n_claimed)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		process_claimed(model, claimed, n_claimed);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		ereport(LOG,
				(errmsg("unlearn worker: run for model \"%s\" failed: %s", model, edata->message)));
		record_failure(claimed, n_claimed, edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* Processes every due model once; returns how long to wait for a batching window (ms). */
static long
process_due_requests(void)
{
	for (;;)
	{
		long		wait_ms;
		char	   *model;
		int64	   *claimed;
		int			n_claimed;

		CHECK_FOR_INTERRUPTS();
		model = next_due_model(&wait_ms);
		if (model == NULL)
			return wait_ms;
		claimed = claim_requests(model, &n_claimed);
		if (n_claimed > 0)
		{
			char		activity[256];

			snprintf(activity, sizeof(activity), "unlearning %d requests of model %s", n_claimed, model);
			pgstat_report_activity(STATE_RUNNING, activity);
			run_claimed_requests(model, claimed, n_claimed);
			pgstat_report_activity(STATE_IDLE, NULL);
			pfree(claimed);
		}
		pfree(model);
	}
}

/* Requests of this database that are pending or running. */
static int64
open_requests(void)
{
	return DatumGetInt64(scalar_in_transaction("SELECT count(*) FROM unlearn.requests"
											   " WHERE state IN ('pending', 'running')", 0, NULL, NULL));
}

/*
 * Leaves when nothing is queued, so an idle database has no session of ours
 * (DROP DATABASE works).  The latch is withdrawn first and the queue checked
 * after, so a commit in between either sees no latch (and asks the launcher
 * for a new worker) or is seen here.
 */
static void
exit_if_idle(void)
{
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < MAX_DATABASES; i++)
		if (shared->slots[i].dboid == MyDatabaseId && shared->slots[i].pid == MyProcPid)
			shared->slots[i].latch = NULL;
	SpinLockRelease(&shared->mutex);
	if (open_requests() == 0)
	{
		exiting_idle = true;
		proc_exit(0);
	}
	register_worker_slot();
}

/*
 * Periodic chores of a worker: leave when idle for long, prune finished
 * requests past unlearn.request_history, erase ledger copies past
 * unlearn.feature_retention, and leave if the extension was dropped.
 */
static void
worker_housekeeping(TimestampTz *last_busy)
{
	if (!extension_present())
		proc_exit(0);
	if (open_requests() > 0)
		*last_busy = GetCurrentTimestamp();
	else if (TimestampDifferenceExceeds(*last_busy, GetCurrentTimestamp(), WORKER_IDLE_EXIT_MS))
		exit_if_idle();
	if (unlearn_request_history >= 0)
	{
		/* finished requests leave the queue once past the history window */
		Oid			argtypes[1] = {INT4OID};
		Datum		args[1] = {Int32GetDatum(unlearn_request_history)};

		run_in_transaction("DELETE FROM unlearn.requests"
						   " WHERE state IN ('done', 'skipped')"
						   "   AND done_at < clock_timestamp() - $1 * interval '1 s'",
						   1, argtypes, args);
	}
	if (unlearn_feature_retention > 0)
	{
		/* ledger copies past their retention window go */
		Oid			argtypes[1] = {INT4OID};
		Datum		args[1] = {Int32GetDatum(unlearn_feature_retention)};

		run_in_transaction("UPDATE unlearn.forgotten SET features = NULL"
						   " WHERE features IS NOT NULL"
						   "   AND forgotten_at < clock_timestamp() - $1 * interval '1 s'",
						   1, argtypes, args);
	}
}

/* Worker of one database: sleeps on its latch, unlearns what is queued. */
void
unlearn_worker_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	TimestampTz last_busy,
				last_housekeeping;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* we run as the bootstrap superuser: resolve nothing a database owner created */
	unlearn_pin_session_search_path();

	if (!extension_present())
		proc_exit(0);			/* the launcher retries later, or on demand */
	if (!become_only_worker())
		proc_exit(0);			/* another worker serves this database */

	register_worker_slot();
	on_shmem_exit(unregister_worker_slot, (Datum) 0);
	pgstat_report_appname("unlearn worker");

	/* requests a crash left running were never committed as done: run them again */
	run_in_transaction("UPDATE unlearn.requests SET state = 'pending' WHERE state = 'running'", 0, NULL, NULL);

	last_busy = GetCurrentTimestamp();
	last_housekeeping = 0;
	for (;;)
	{
		long		wait_ms;

		wait_ms = process_due_requests();
		if (wait_ms > 0)
		{
			/*
			 * A batch is gathering: sleep the window out.  Commits need not
			 * wake us meanwhile (under a stream of DELETEs they would keep
			 * the worker spinning); the latch stays set for afterwards.
			 */
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 Min(wait_ms, unlearn_naptime), PG_WAIT_EXTENSION);
		}
		else
		{
			/* housekeeping at most once a naptime, however often commits wake us */
			if (TimestampDifferenceExceeds(last_housekeeping, GetCurrentTimestamp(), unlearn_naptime))
			{
				worker_housekeeping(&last_busy);
				last_housekeeping = GetCurrentTimestamp();
			}
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 unlearn_naptime, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}
