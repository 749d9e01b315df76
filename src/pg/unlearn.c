/*
 * unlearn.c: module entry point: settings and start-up of the extension.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "queue.h"
#include "unlearn_pg.h"
#include "warm.h"
#include "worker.h"

PG_MODULE_MAGIC;

int			unlearn_threads = 2;
int			unlearn_shard_workers = 0;
int			unlearn_max_rows = 10000000;
bool		unlearn_progress = false;
int			unlearn_feature_retention = 0;
double		unlearn_max_accuracy_drop = 2.0;
int			unlearn_retrain_budget = 60;
int			unlearn_max_categories = 1000;
bool		unlearn_exact_when_cheaper = true;
double		unlearn_consolidate_after = 0.01;
double		unlearn_consolidate_drop = 0.0;
int			unlearn_consolidate_idle = 60;
int			unlearn_target = UNLEARN_TARGET_MISCLASSIFY;

static const struct config_enum_entry target_options[] = {
	{"misclassify", UNLEARN_TARGET_MISCLASSIFY, false},
	{"unseen", UNLEARN_TARGET_UNSEEN, false},
	{NULL, 0, false}
};
UnlearnSuppress unlearn_suppress_capture = {NULL, (Datum) 0};
int			unlearn_worker_lock_timeout = 5000;
bool		unlearn_in_worker = false;

void		_PG_init(void);

/*
 * The settings' check: in the unlearn worker, a value from ALTER DATABASE or
 * ALTER ROLE (sources global to database-user) is refused, with a WARNING in
 * the log.  The worker acts for every model of its database as the bootstrap
 * superuser; a database owner's ALTER DATABASE ... SET of a user setting
 * (unlearn.max_accuracy_drop = 100, unlearn.consolidate_after = 0, ...) would
 * otherwise weaken the runs of models it does not own.  The worker keeps the
 * server's values (postgresql.conf, ALTER SYSTEM).
 */
static bool
worker_source_ok(GucSource source)
{
	if (!unlearn_in_worker || source < PGC_S_GLOBAL || source > PGC_S_DATABASE_USER)
		return true;
	GUC_check_errdetail("The unlearn worker takes unlearn.* settings from the server's configuration only "
						"(postgresql.conf, ALTER SYSTEM), not from ALTER DATABASE or ALTER ROLE.");
	return false;
}

/* worker_source_ok for each type of setting. */
static bool
check_int(int *newval, void **extra, GucSource source)
{
	return worker_source_ok(source);
}

/*
 * unlearn.threads: the numeric core takes the count at once, so workspaces
 * made before the first product (whose convolutions keep a buffer per
 * thread) see it; OpenBLAS gets it when it is loaded (blas.c).  Setting the
 * core's count starts no thread.
 */
static void
assign_threads(int newval, void *extra)
{
	nn_set_threads(newval);
}

/* unlearn.max_training_memory: its range (stream.c), and the worker's source rule. */
static bool
check_training_memory(int *newval, void **extra, GucSource source)
{
	return worker_source_ok(source) && unlearn_check_training_memory(newval, extra, source);
}

static bool
check_real(double *newval, void **extra, GucSource source)
{
	return worker_source_ok(source);
}

static bool
check_bool(bool *newval, void **extra, GucSource source)
{
	return worker_source_ok(source);
}

static bool
check_enum(int *newval, void **extra, GucSource source)
{
	return worker_source_ok(source);
}

/* The settings of training, prediction, unlearning and erasure. */
static void
define_run_settings(void)
{
	DefineCustomIntVariable("unlearn.threads",
							"Threads (OpenBLAS and the numeric core) a backend or worker uses for training, prediction and unlearning.",
							NULL,
							&unlearn_threads,
							2, 1, 64,
							PGC_USERSET,
							0,
							check_int, assign_threads, NULL);

	DefineCustomIntVariable("unlearn.shard_workers",
							"Parallel workers that train the shards of a sharded model beside the calling backend.",
							"0 trains them one after the other.  Limited by max_parallel_workers and max_worker_processes.",
							&unlearn_shard_workers,
							0, 0, NN_MAX_SHARDS - 1,
							PGC_SUSET,
							0,
							check_int, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_training_rows",
							"Largest number of rows unlearn reads from one table (training, evaluation, retraining).",
							"Guards against reading a huge table into memory by mistake.",
							&unlearn_max_rows,
							10000000, 1, INT_MAX,
							PGC_SUSET,
							0,
							check_int, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_training_memory",
							"Most memory the rows of one training run may hold at once; larger tables are read in chunks.",
							"Counts each row's features, label, id and place in the order.  -1: no bound, the table is "
							"read whole.  Applies to unlearn_train and unlearn_retrain of array models, and to the "
							"samples unlearning reads.",
							&unlearn_max_training_memory,
							-1, -1, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_KB,
							check_training_memory, NULL, NULL);

	DefineCustomBoolVariable("unlearn.exact_when_cheaper",
							 "Retrain exactly, without an approximate run first, when that takes no more steps.",
							 "With the default method: when retraining the remaining rows takes no more optimiser "
							 "steps than the approximate run is expected to (twice its repair phase), within "
							 "unlearn.retrain_budget, the new version is trained from scratch.",
							 &unlearn_exact_when_cheaper,
							 true,
							 PGC_USERSET,
							 0,
							 check_bool, NULL, NULL);

	DefineCustomRealVariable("unlearn.consolidate_after",
							 "Share of a model's rows forgotten approximately after which it is retrained exactly.",
							 "Counted since the newest exact version on the current version's chain, this run's rows "
							 "included; the retrain must fit unlearn.retrain_budget.  0 turns consolidation off.",
							 &unlearn_consolidate_after,
							 0.01, 0.0, 1.0,
							 PGC_USERSET,
							 0,
							 check_real, NULL, NULL);

	DefineCustomRealVariable("unlearn.consolidate_drop",
							 "Points of held-out accuracy approximate runs may lose in all before the model is retrained exactly.",
							 "Summed over the runs since the newest exact version on the current version's chain "
							 "(each run's accuracy on its held-out remaining rows, before minus after); the retrain "
							 "must fit unlearn.retrain_budget.  0 turns this trigger off.",
							 &unlearn_consolidate_drop,
							 0.0, 0.0, 100.0,
							 PGC_USERSET,
							 0,
							 check_real, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_categories",
							"Most categories one text, boolean or enum feature column may have.",
							"Each category seen in training becomes one input of the model; a column with "
							"more is refused at training.",
							&unlearn_max_categories,
							1000, 1, 100000,
							PGC_USERSET,
							0,
							check_int, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_model_size",
							"Most memory one training run (unlearn_train, unlearn_retrain) may allocate for its network.",
							"Counts the parameters with their gradient, optimiser state and stored copy, "
							"and the batch workspace; checked before anything is allocated.",
							&unlearn_max_model_size,
							1024 * 1024, 1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_KB,
							check_int, NULL, NULL);

	DefineCustomBoolVariable("unlearn.progress",
							 "Report the progress of training and unlearning runs as NOTICEs.",
							 NULL,
							 &unlearn_progress,
							 false,
							 PGC_USERSET,
							 0,
							 check_bool, NULL, NULL);

	DefineCustomRealVariable("unlearn.max_accuracy_drop",
							 "Largest fall of accuracy on held-out remaining rows an unlearning run may cause, in points.",
							 "A run that lowers it more is not stored: the rows are retrained away "
							 "exactly if unlearn.retrain_budget allows, else the run fails.  100 turns the guard off.",
							 &unlearn_max_accuracy_drop,
							 2.0, 0.0, 100.0,
							 PGC_USERSET,
							 0,
							 check_real, NULL, NULL);

	DefineCustomIntVariable("unlearn.retrain_budget",
							"Longest estimated time of an exact retrain that replaces an unlearning run the accuracy guard refused.",
							"Estimated from the last training of the current version's lineage, scaled by "
							"the remaining rows.  0 never retrains: the run fails.",
							&unlearn_retrain_budget,
							60, 0, INT_MAX,
							PGC_USERSET,
							GUC_UNIT_S,
							check_int, NULL, NULL);

	DefineCustomIntVariable("unlearn.feature_retention",
							"How long the ledger keeps a copy of each forgotten row's features.",
							"0 erases the copy as soon as the run that forgot the row has verified it "
							"(its sha256 and id stay); -1 keeps it; otherwise the background worker "
							"erases copies older than this.  Without the copy a row cannot be "
							"re-checked, nor kept misclassified by later runs.",
							&unlearn_feature_retention,
							0, -1, INT_MAX,
							PGC_SUSET,
							GUC_UNIT_S,
							check_int, NULL, NULL);

	DefineCustomEnumVariable("unlearn.target",
							 "What forgetting a row means when a run's options do not say.",
							 "misclassify: every forgotten row is misclassified (the paper's criterion). "
							 "unseen: its loss is raised to that of rows the model never saw (a model "
							 "trained with held-out rows, option validation); a model without them is "
							 "unlearned with misclassify.",
							 &unlearn_target,
							 UNLEARN_TARGET_MISCLASSIFY,
							 target_options,
							 PGC_SUSET,
							 0,
							 check_enum, NULL, NULL);
}

/* The settings of the background workers and the queue. */
static void
define_worker_settings(void)
{
	DefineCustomIntVariable("unlearn.naptime",
							"Longest time a background worker sleeps before looking for queued requests.",
							"Commits that queue requests wake the worker at once; this is the backstop.",
							&unlearn_naptime,
							5000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.batch_window",
							"How long the worker lets new requests of a model gather before a run.",
							NULL,
							&unlearn_batch_window,
							20, 0, 60 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_batch",
							"Most queued rows the worker unlearns in one run.",
							NULL,
							&unlearn_max_batch,
							1024, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.consolidate_idle",
							"How long a model's stream of deletes must pause before the worker retrains it exactly.",
							"A model with automatic unlearning whose current version is approximate, with no "
							"request open for that long, is retrained without the rows its approximate runs "
							"forgot, within unlearn.retrain_budget.  0 turns this off.",
							&unlearn_consolidate_idle,
							60, 0, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_attempts",
							"Failed runs after which the worker marks a request failed.",
							NULL,
							&unlearn_max_attempts,
							5, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.request_history",
							"How long finished (done or skipped) requests stay in unlearn.requests.",
							"The background worker deletes older ones; -1 keeps them. Failed requests "
							"stay until retried (unlearn_retry) or the model is dropped. The ledger "
							"(unlearn.forgotten) is not affected.",
							&unlearn_request_history,
							7 * 24 * 3600, -1, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.retry_delay",
							"Delay before the worker retries a failed run; doubled after each failure.",
							NULL,
							&unlearn_retry_delay,
							2000, 0, 300 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.worker_cache_size",
							"Memory the background worker keeps samples of remaining rows in between requests (warm samples); 0 turns them off.",
							"Per model, the held-out and replay samples of the version the worker stored; the least recently used models' go first.",
							&unlearn_worker_cache_size,
							256, 0, INT_MAX / 1024,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.worker_cpu_share",
							"Share of the time the background worker computes while other sessions commit writes, in percent; 100 never pauses.",
							"While sessions commit transactions that wrote, the worker pauses after every 10 ms of work so that it computes this share of the time; on a quiet server it never pauses.",
							&unlearn_worker_cpu_share,
							50, 1, 100,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.worker_lock_timeout",
							"Longest the background worker waits for a lock (a training table, a model's row); 0 waits for ever.",
							"A run that times out fails and is retried with backoff, so one locked table cannot stall every model.",
							&unlearn_worker_lock_timeout,
							5000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("unlearn.max_run_time",
							"Longest a run of the background worker may last (a batch's unlearning, an exact retrain, a consolidation); 0 = no limit.",
							"A longer run is cancelled and counts as a failed attempt of its requests, so one model's options cannot hold the worker that serves every model.",
							&unlearn_max_run_time,
							300000, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * Module start-up, as named steps.  Nothing here touches BLAS: when preloaded
 * this runs in the postmaster, which must stay free of OpenBLAS threads.
 */
void
_PG_init(void)
{
	/* step 1: the settings, and the prefix reserved for them */
	define_run_settings();
	define_worker_settings();
	MarkGUCPrefixReserved("unlearn");
	/* step 2: shared memory, the commit callback and the launcher (when preloaded) */
	unlearn_worker_init();
	/* step 3: the numeric core allocates with palloc */
	unlearn_core_use_palloc();
}
