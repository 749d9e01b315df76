/*
 * launcher.c: shared memory, the wake-up at commit, and the launcher.
 *
 * A launcher (registered when the library is preloaded) lists the databases
 * and starts one worker per database (worker.c); a worker whose database
 * lacks the extension exits, and the launcher retries it later or as soon as
 * a commit in that database asks for it.  Each worker waits on its latch,
 * which the commit callback of a transaction that queued requests sets (a
 * worker cannot LISTEN), with unlearn.naptime as a timed backstop.  Shared
 * memory holds one slot per database (its worker's latch, or a flag asking
 * the launcher for one) and the catalog generation.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
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
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "unlearn_pg.h"
#include "worker.h"

#define MAX_DATABASES 64
#define RETRY_IDLE_DATABASE_MS 300000	/* backstop: restart a database's stopped worker */

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
	/* see unlearn_session_commits: every commit in the cluster adds to it, so a cache line of its own */
	union
	{
		pg_atomic_uint64 value;
		char		pad[PG_CACHE_LINE_SIZE];
	}			session_commits;
	slock_t		mutex;
	pg_atomic_uint64 catalog_generation;	/* see unlearn_catalog_generation */
	Latch	   *launcher_latch;
	DatabaseSlot slots[MAX_DATABASES];
} UnlearnShared;

static UnlearnShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool catalog_changed_in_xact = false;

int			unlearn_naptime = 5000;

/* ------------------------------------------------------------------ shared memory */

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
		pg_atomic_init_u64(&shared->session_commits.value, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Index of dboid's slot, or -1 (shared->mutex held). */
static int
slot_of(Oid dboid)
{
	for (int i = 0; i < MAX_DATABASES; i++)
		if (shared->slots[i].dboid == dboid)
			return i;
	return -1;
}

/* Index of dboid's slot, claiming the first free one if it has none; -1 if all are taken (mutex held). */
static int
slot_for(Oid dboid)
{
	int			i = slot_of(dboid);

	if (i < 0 && (i = slot_of(InvalidOid)) >= 0)
		shared->slots[i].dboid = dboid;
	Assert(i >= -1 && i < MAX_DATABASES);
	return i;
}

/* Index of this worker's slot (its database's, holding our pid), or -1 (mutex held). */
static int
own_slot(void)
{
	int			i = slot_of(MyDatabaseId);

	return i >= 0 && shared->slots[i].pid == MyProcPid ? i : -1;
}

/*
 * Flags slot i (if there is one) as wanting a worker and returns the
 * launcher's latch, to be set once the mutex is released (mutex held).
 */
static Latch *
ask_launcher(int i)
{
	Assert(i >= -1 && i < MAX_DATABASES);
	if (i >= 0)
		shared->slots[i].wanted = true;
	return shared->launcher_latch;
}

/* Publishes this worker's latch and pid in its database's slot. */
void
unlearn_slot_publish(void)
{
	int			i;

	Assert(shared != NULL);
	SpinLockAcquire(&shared->mutex);
	i = slot_for(MyDatabaseId);
	if (i >= 0)
	{
		shared->slots[i].latch = MyLatch;
		shared->slots[i].pid = MyProcPid;
		shared->slots[i].wanted = false;
	}
	SpinLockRelease(&shared->mutex);
}

/* Withdraws this worker's latch: commits from now on ask the launcher. */
void
unlearn_slot_hide_latch(void)
{
	int			i;

	Assert(shared != NULL);
	SpinLockAcquire(&shared->mutex);
	if ((i = own_slot()) >= 0)
		shared->slots[i].latch = NULL;
	SpinLockRelease(&shared->mutex);
}

/* Leaves this database's slot; want_successor asks the launcher for a new worker at once. */
void
unlearn_slot_release(bool want_successor)
{
	Latch	   *launcher = NULL;
	int			i;

	Assert(shared != NULL);
	SpinLockAcquire(&shared->mutex);
	if ((i = own_slot()) >= 0)
	{
		shared->slots[i].latch = NULL;
		shared->slots[i].pid = 0;
		if (want_successor)
			launcher = ask_launcher(i);
	}
	SpinLockRelease(&shared->mutex);
	if (launcher)
		SetLatch(launcher);
}

/* True (and reset) if dboid's slot asks for a worker. */
static bool
take_wanted(Oid dboid)
{
	bool		wanted = false;
	int			i;

	SpinLockAcquire(&shared->mutex);
	i = slot_of(dboid);
	if (i >= 0 && shared->slots[i].wanted)
	{
		wanted = true;
		shared->slots[i].wanted = false;
	}
	SpinLockRelease(&shared->mutex);
	return wanted;
}

/* ------------------------------------------------------------------ the commit callback */

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

/* See worker.h. */
uint64
unlearn_session_commits(void)
{
	return shared ? pg_atomic_read_u64(&shared->session_commits.value) : 0;
}

/* Sets this database's worker latch, or flags the database and sets the launcher's. */
static void
wake_worker(void)
{
	Latch	   *to_set;
	int			i;

	SpinLockAcquire(&shared->mutex);
	i = slot_for(MyDatabaseId);
	if (i >= 0 && shared->slots[i].latch)
	{
		Assert(shared->slots[i].dboid == MyDatabaseId);
		to_set = shared->slots[i].latch;
	}
	else
		to_set = ask_launcher(i);
	SpinLockRelease(&shared->mutex);
	if (to_set)
		SetLatch(to_set);
}

/*
 * At commit of a session's transaction that wrote, counts it (the worker's
 * throttle); at commit of one that queued requests, wakes this database's
 * worker, or asks the launcher to start one; at commit of one that changed
 * unlearn.models, moves the catalog generation (after the commit is
 * visible, so a backend that reads the new generation sees the change).
 */
static void
unlearn_xact_callback(XactEvent event, void *arg)
{
	bool		commit = event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT;
	bool		queued;

	if (!commit && event != XACT_EVENT_ABORT && event != XACT_EVENT_PARALLEL_ABORT)
		return;
	/* a session's write committed: the worker computes its share only (throttle.c) */
	if (event == XACT_EVENT_COMMIT && shared != NULL && !unlearn_in_worker &&
		FullTransactionIdIsValid(GetTopFullTransactionIdIfAny()))
		pg_atomic_fetch_add_u64(&shared->session_commits.value, 1);
	if (catalog_changed_in_xact)
	{
		if (shared != NULL && commit)
			pg_atomic_fetch_add_u64(&shared->catalog_generation, 1);
		else
			unlearn_capture_cache_invalidate();	/* built from a change that rolled back */
		catalog_changed_in_xact = false;
	}
	queued = unlearn_take_queued();
	if (queued && commit && shared != NULL)
		wake_worker();
}

/*
 * A subtransaction rolled back (ROLLBACK TO SAVEPOINT, a PL/pgSQL exception
 * block) after this transaction changed unlearn.models: capture entries
 * built since may name models as the rolled-back change left them.
 */
static void
unlearn_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && catalog_changed_in_xact)
		unlearn_capture_cache_invalidate();
}

/* Registers hooks and, when preloaded, the launcher. */
void
unlearn_worker_init(void)
{
	BackgroundWorker worker;

	RegisterXactCallback(unlearn_xact_callback, NULL);
	RegisterSubXactCallback(unlearn_subxact_callback, NULL);
	if (!process_shared_preload_libraries_in_progress)
		return;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = unlearn_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = unlearn_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* never on a hot standby (the workers write), started at promotion: test/standby */
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
	BackgroundWorkerHandle *handle; /* in TopMemoryContext; NULL before the first start */
	TimestampTz last_start;
} LaunchedWorker;

/* Databases that accept connections and are not templates (the first max of them). */
static int
list_databases(Oid *out, int max)
{
	static bool warned_full = false;

	MemoryContext cxt = CurrentMemoryContext;
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
	if (tup != NULL && !warned_full)
	{
		ereport(LOG,
				(errmsg("unlearn launcher serves the first %d databases only", max)));
		warned_full = true;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return n;
}

/* Starts the worker of one database; its handle lives in TopMemoryContext. */
static BackgroundWorkerHandle *
start_database_worker(Oid dboid)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	bool		started;

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
	old = MemoryContextSwitchTo(TopMemoryContext);
	started = RegisterDynamicBackgroundWorker(&worker, &handle);
	MemoryContextSwitchTo(old);
	if (!started)
	{
		ereport(LOG,
				(errmsg("unlearn launcher could not start a worker for database %u", dboid),
				 errhint("Raise max_worker_processes.")));
		return NULL;
	}
	return handle;
}

/* The launcher's entry for a database, made on first sight; NULL when all are taken. */
static LaunchedWorker *
launched_entry(LaunchedWorker *launched, int *n_launched, Oid dboid)
{
	LaunchedWorker *lw = NULL;

	for (int j = 0; j < *n_launched; j++)
		if (launched[j].dboid == dboid)
			lw = &launched[j];
	if (lw == NULL && *n_launched < MAX_DATABASES)
	{
		lw = &launched[(*n_launched)++];
		lw->dboid = dboid;
		lw->handle = NULL;
		lw->last_start = 0;
	}
	Assert(*n_launched <= MAX_DATABASES);
	return lw;
}

/* Frees dboid's shared slot if no worker holds it (a dropped database's). */
static void
free_slot(Oid dboid)
{
	int			i;

	SpinLockAcquire(&shared->mutex);
	if ((i = slot_of(dboid)) >= 0 && shared->slots[i].pid == 0)
		memset(&shared->slots[i], 0, sizeof(DatabaseSlot));
	SpinLockRelease(&shared->mutex);
}

/*
 * Forgets the databases that are gone and whose worker has stopped: their
 * entries and shared slots serve new databases (a role creating and dropping
 * many databases must not leave a new one without a worker).
 */
static void
forget_dropped(LaunchedWorker *launched, int *n_launched, const Oid *dbs, int n_dbs)
{
	int			kept = 0;

	for (int j = 0; j < *n_launched; j++)
	{
		bool		present = false;
		pid_t		pid;

		for (int i = 0; i < n_dbs && !present; i++)
			present = dbs[i] == launched[j].dboid;
		if (!present && (launched[j].handle == NULL ||
						 GetBackgroundWorkerPid(launched[j].handle, &pid) == BGWH_STOPPED))
		{
			if (launched[j].handle)
				pfree(launched[j].handle);
			free_slot(launched[j].dboid);
			continue;
		}
		launched[kept++] = launched[j];
	}
	Assert(kept <= *n_launched);
	*n_launched = kept;
}

/* Starts a database's worker if none runs and one is wanted, never started, or due again. */
static void
serve_database(LaunchedWorker *lw, TimestampTz now)
{
	pid_t		pid;

	/*
	 * A worker still running (or starting, or not yet reaped) is left alone,
	 * and so is its wanted flag: the postmaster sets our latch when it stops
	 * (bgw_notify_pid), and the next round starts the new one.
	 */
	if (lw->handle && GetBackgroundWorkerPid(lw->handle, &pid) != BGWH_STOPPED)
		return;
	if (take_wanted(lw->dboid) || lw->last_start == 0 ||
		TimestampDifferenceExceeds(lw->last_start, now, RETRY_IDLE_DATABASE_MS))
	{
		if (lw->handle)
			pfree(lw->handle);	/* its worker has stopped */
		lw->handle = start_database_worker(lw->dboid);
		lw->last_start = now;
	}
}

/* Sleeps until a commit, a stopping worker or the naptime wakes us; reloads the configuration. */
static void
launcher_wait(void)
{
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

/* Launcher: keeps one worker per database where one is needed. */
void
unlearn_launcher_main(Datum arg)
{
	LaunchedWorker launched[MAX_DATABASES];
	int			n_launched = 0;
	MemoryContext loop_context;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	SpinLockAcquire(&shared->mutex);
	shared->launcher_latch = MyLatch;
	SpinLockRelease(&shared->mutex);
	memset(launched, 0, sizeof(launched));
	loop_context = AllocSetContextCreate(TopMemoryContext, "unlearn launcher loop", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		Oid			dbs[MAX_DATABASES];
		int			n_dbs;
		TimestampTz now;

		/* nothing a round allocates outlives it (the workers' handles live in TopMemoryContext) */
		MemoryContextReset(loop_context);
		MemoryContextSwitchTo(loop_context);
		n_dbs = list_databases(dbs, MAX_DATABASES);
		forget_dropped(launched, &n_launched, dbs, n_dbs);
		now = GetCurrentTimestamp();
		for (int i = 0; i < n_dbs; i++)
		{
			LaunchedWorker *lw = launched_entry(launched, &n_launched, dbs[i]);

			if (lw != NULL)
				serve_database(lw, now);
		}
		launcher_wait();
	}
}
