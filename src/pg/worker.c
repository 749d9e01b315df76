/*
 * worker.c: the per-database background worker that unlearns queued requests.
 *
 * The launcher (launcher.c) starts one per database; the commit of a
 * transaction that queued requests sets its latch.  A worker coalesces each
 * model's pending requests (up to unlearn.max_batch, after
 * unlearn.batch_window), marks them running in a committed transaction,
 * then in one transaction runs the same unlearning as unlearn_rows as the
 * model's owner, stores the version, fills the ledger and marks the requests
 * done.  A crash leaves them running; the next worker start puts them back
 * to pending, so they are processed once.  A run that errors is recorded and
 * retried with exponential backoff, and fails for good after
 * unlearn.max_attempts.  The queue's SQL is in queue.c.
 */
#include "postgres.h"

#include "storage/lock.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "consolidate.h"
#include "queue.h"
#include "unlearn_pg.h"
#include "warm.h"
#include "worker.h"

#define WORKER_IDLE_EXIT_MS 60000	/* a worker with nothing queued leaves after this */
#define WORKER_LOCK_KEY INT64CONST(0x756e6c6561726e)	/* "unlearn" */

static MemoryContext loop_context = NULL;	/* reset at the top of every pass of the loop */
static bool exiting_idle = false;	/* this worker leaves because nothing is queued */

/* ------------------------------------------------------------------ transactions */

/* Opens a step's transaction (snapshot, SPI); SPI_palloc'ed results land in the loop's context. */
static void
begin_step(void)
{
	StartTransactionCommand();
	MemoryContextSwitchTo(loop_context);
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
}

/* Opens a step that runs for a model: begin_step within unlearn.max_run_time (run_limit.c). */
static void
begin_limited_step(void)
{
	unlearn_run_limit_arm();
	begin_step();
}

/* Commits a step's transaction, ends its time limit if it had one, returns to the loop's context. */
static void
end_step(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	unlearn_run_limit_disarm();
	MemoryContextSwitchTo(loop_context);
}

/*
 * In a PG_CATCH of a step: takes the error, aborts the step's transaction,
 * logs "unlearn worker: <what> "<model>" failed: ..." and returns the error
 * (in the loop's context) for the caller to record and free.
 */
static ErrorData *
abort_step(const char *what, const char *model)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(loop_context);
	edata = CopyErrorData();
	FlushErrorState();
	AbortCurrentTransaction();
	MemoryContextSwitchTo(loop_context);
	/* the error names the time limit if that cancelled the step; what follows is not bounded by it */
	(void) unlearn_run_limit_explain(edata);
	unlearn_run_limit_disarm();
	ereport(LOG,
			(errmsg("unlearn worker: %s \"%s\" failed: %s", what, model, edata->message)));
	return edata;
}

/* Runs one statement in its own transaction (housekeeping outside the queue). */
static void
run_statement(const char *sql, int nargs, Oid *argtypes, Datum *args)
{
	begin_step();
	if (SPI_execute_with_args(sql, nargs, argtypes, args, NULL, false, 0) < 0)
		elog(ERROR, "unlearn worker could not run: %s", sql);
	end_step();
}

/* Requests of this database that are pending or running. */
static int64
open_requests(void)
{
	int64		n;

	begin_step();
	n = unlearn_queue_count_open(NULL);
	end_step();
	return n;
}

/* True if the extension exists in this database. */
static bool
extension_present(void)
{
	bool		present;

	StartTransactionCommand();
	present = OidIsValid(get_extension_oid("unlearn", true));
	CommitTransactionCommand();
	MemoryContextSwitchTo(loop_context);
	return present;
}

/*
 * Takes the session-level lock that makes this the only worker of its
 * database (a restarted launcher may start a second one); false if another
 * worker holds it.  An advisory lock tag no SQL function can form (field4 3;
 * pg_advisory_lock uses 1 and 2), so no role can take it first and keep the
 * database without a worker.
 */
static bool
become_only_worker(void)
{
	LOCKTAG		tag;
	LockAcquireResult res;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) (WORKER_LOCK_KEY >> 32),
						 (uint32) WORKER_LOCK_KEY, 3);
	begin_step();
	res = LockAcquire(&tag, ExclusiveLock, true, true);
	end_step();
	return res != LOCKACQUIRE_NOT_AVAIL;
}

/*
 * Releases this database's slot when the worker exits, and asks the
 * launcher for a new worker at once unless it leaves idle: its database has
 * the extension, and requests may be waiting (after a pg_terminate_backend,
 * say).
 */
static void
release_slot(int code, Datum arg)
{
	unlearn_slot_release(!exiting_idle);
}

/* ------------------------------------------------------------------ one run */

/* One claimed request, with the output units of its labels for the current pass. */
typedef struct PickedRequest
{
	UnlearnQueuedRequest q;
	int			cls;			/* output unit of label, -1 if none */
	int			target;			/* relabel: output unit of new_label, else -1 */
} PickedRequest;

/* A run over one model's claimed requests. */
typedef struct ClaimedRun
{
	const char *name;
	UnlearnModel *model;		/* re-read after a pass stores a version */
	UnlearnRunOptions opts;		/* the model's auto_options */
	char	   *auto_options;	/* their text ("{}" when none) */
	UnlearnWarm *warm;			/* the worker's cached samples of the model, or NULL */
	PickedRequest *req;			/* in request_id order */
	int			n;
	int64	   *manifest;		/* the rows the current version learned, sorted */
	int64		n_manifest;
	UnlearnPhases *phases;		/* where the next pass's time goes, from the claim on */
} ClaimedRun;

/* What the worker does with one claimed request in a pass. */
typedef enum RequestFate
{
	FATE_USE,					/* unlearn it */
	FATE_SKIP,					/* not learned, or another request for the row stands for it */
	FATE_FAIL_LABEL,			/* learned, but its label is not a class of the model */
	FATE_FAIL_COPY				/* learned, but its feature copy is unusable */
} RequestFate;

/* What one pass does with its requests. */
typedef struct PassPlan
{
	PickedRequest **use;		/* to unlearn, sorted by row id */
	int64	   *skipped,		/* request ids of the others, by fate */
			   *failed_label,
			   *failed_copy;
	int			n_use,
				n_skipped,
				n_failed_label,
				n_failed_copy;
} PassPlan;

/* Orders picked requests by row id. */
static int
cmp_request_id(const void *a, const void *b)
{
	const PickedRequest *x = *(PickedRequest *const *) a;
	const PickedRequest *y = *(PickedRequest *const *) b;

	return (x->q.id > y->q.id) - (x->q.id < y->q.id);
}

/* True if a request carries what unlearning needs: a class and a usable feature copy. */
static bool
request_usable(const PickedRequest *r, const UnlearnModel *model)
{
	return r->cls >= 0 && r->q.features != NULL && unlearn_feature_array_ok(r->q.features, model->n_features);
}

/*
 * True if the request belongs to the pass: the forget pass takes forget
 * requests and relabels to a label that is no class (the learned row must
 * go); the relabel pass takes relabels to a class.
 */
static bool
in_pass(const PickedRequest *r, bool relabel_pass)
{
	return relabel_pass ? (r->q.relabel && r->target >= 0) : (!r->q.relabel || r->target < 0);
}

/*
 * Decides request i's fate.  A row's learned copy is its earliest usable
 * forget request (later ones carry what an UPDATE made of it); its final
 * label is its latest usable relabel.  A learned row none of whose requests
 * is usable fails rather than being skipped.
 */
static RequestFate
request_fate(const ClaimedRun *run, int i, bool relabel_pass)
{
	const PickedRequest *req = run->req;
	const PickedRequest *r = &req[i];
	bool		usable = request_usable(r, run->model);

	Assert(i >= 0 && i < run->n);
	Assert(in_pass(r, relabel_pass));
	/* step 1: a row the current version never learned needs nothing */
	if (!bsearch(&r->q.id, run->manifest, run->n_manifest, sizeof(int64), unlearn_cmp_int64))
		return FATE_SKIP;
	/* step 2: another usable request of the row in this pass stands for this one */
	for (int j = 0; j < run->n; j++)
	{
		if (j == i || req[j].q.id != r->q.id || !in_pass(&req[j], relabel_pass) ||
			!request_usable(&req[j], run->model))
			continue;
		if (!usable || (relabel_pass ? j > i : j < i))
			return FATE_SKIP;
	}
	/* step 3: the only requests of a learned row are unusable */
	if (!usable)
		return r->cls < 0 ? FATE_FAIL_LABEL : FATE_FAIL_COPY;
	return FATE_USE;
}

/* Step 1 of a run: lock the model's catalog row, then re-read the model and its auto_options. */
static void
lock_model(ClaimedRun *run)
{
	Datum		name = CStringGetTextDatum(run->name);
	bool		explicit_method;

	(void) unlearn_model_lookup(run->name, false);
	/* serialise with unlearn_rows and other changes of this model */
	unlearn_lock_model(run->name);
	/* read everything after the lock: a concurrent unlearn_rows may have made a new version */
	PopActiveSnapshot();
	PushActiveSnapshot(GetTransactionSnapshot());
	run->model = unlearn_model_lookup(run->name, false);
	/*
	 * tables only, locked until the run ends: a view made of the table after
	 * its capture was turned off would run its owner's code here
	 */
	unlearn_check_table_tree(run->model->relid, AccessShareLock);
	unlearn_parse_run_options(NULL, &run->opts);
	run->auto_options = "{}";
	explicit_method = false;
	if (SPI_execute_with_args("SELECT auto_options FROM unlearn.models WHERE name = $1",
							  1, (Oid[]) {TEXTOID}, &name, NULL, true, 1) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		bool		isnull;
		Jsonb	   *options = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

		unlearn_parse_run_options(options, &run->opts);
		run->auto_options = JsonbToCString(NULL, &options->root, VARSIZE(options));
		explicit_method = unlearn_jsonb_key(&options->root, "method") != NULL;
	}
	/*
	 * a sharded model unlearns exactly (the shards that held the rows are
	 * retrained) unless its auto_options name a method
	 */
	if (unlearn_shards_option(run->model->options) > 1 && !explicit_method)
		run->opts.exact = true;
}

/* Step 2 of a run: read the claimed requests and the rows the current version learned. */
static void
read_claimed(ClaimedRun *run, const int64 *claimed, int n_claimed)
{
	UnlearnQueuedRequest *q = unlearn_queue_read(claimed, n_claimed, &run->n);

	run->req = palloc(sizeof(PickedRequest) * Max(run->n, 1));
	for (int i = 0; i < run->n; i++)
	{
		run->req[i].q = q[i];
		run->req[i].cls = -1;
		run->req[i].target = -1;
	}
	run->manifest = unlearn_load_manifest(run->model, run->model->version, &run->n_manifest);
}

/* Step 3 of a pass: decide each request's fate, the ones to unlearn sorted by row id. */
static void
plan_pass(ClaimedRun *run, bool relabel, PassPlan *plan)
{
	PickedRequest *req = run->req;
	int			n = run->n;
	int			n_in_pass = 0;

	memset(plan, 0, sizeof(*plan));
	plan->use = palloc(sizeof(PickedRequest *) * Max(n, 1));
	plan->skipped = palloc(sizeof(int64) * Max(n, 1));
	plan->failed_label = palloc(sizeof(int64) * Max(n, 1));
	plan->failed_copy = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		req[i].cls = req[i].q.label ? unlearn_class_index(run->model, req[i].q.label) : -1;
		req[i].target = req[i].q.relabel && req[i].q.new_label ?
			unlearn_class_index(run->model, req[i].q.new_label) : -1;
	}
	for (int i = 0; i < n; i++)
	{
		if (!in_pass(&req[i], relabel))
			continue;
		n_in_pass++;
		switch (request_fate(run, i, relabel))
		{
			case FATE_USE:
				plan->use[plan->n_use++] = &req[i];
				break;
			case FATE_SKIP:
				plan->skipped[plan->n_skipped++] = req[i].q.request_id;
				break;
			case FATE_FAIL_LABEL:
				plan->failed_label[plan->n_failed_label++] = req[i].q.request_id;
				break;
			case FATE_FAIL_COPY:
				plan->failed_copy[plan->n_failed_copy++] = req[i].q.request_id;
				break;
		}
	}
	Assert(plan->n_use + plan->n_skipped + plan->n_failed_label + plan->n_failed_copy == n_in_pass);
	/* unlearn_execute wants the rows sorted by id */
	qsort(plan->use, plan->n_use, sizeof(PickedRequest *), cmp_request_id);
}

/* The rows a pass unlearns, as unlearn_execute takes them, with their new labels and request ids. */
static void
gather_rows(const ClaimedRun *run, const PassPlan *plan, UnlearnData *rows, int **new_labels, int64 **used)
{
	int			nf = run->model->n_features;
	int			n = plan->n_use;

	memset(rows, 0, sizeof(*rows));
	rows->n_features = nf;
	rows->X = palloc(sizeof(float) * Max(n, 1) * nf);
	rows->y = palloc(sizeof(int) * Max(n, 1));
	rows->ids = palloc(sizeof(int64) * Max(n, 1));
	rows->requested_by = palloc(sizeof(char *) * Max(n, 1));
	*new_labels = palloc(sizeof(int) * Max(n, 1));
	*used = palloc(sizeof(int64) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		const PickedRequest *r = plan->use[i];
		float	   *x = unlearn_features_from_array(r->q.features, nf);

		memcpy(rows->X + (size_t) i * nf, x, sizeof(float) * nf);
		pfree(x);
		rows->y[i] = r->cls;
		rows->ids[i] = r->q.id;
		rows->requested_by[i] = r->q.requested_by;
		(*new_labels)[i] = r->target;
		(*used)[i] = r->q.request_id;
	}
	rows->n = n;
}

/* Gives requests a final state; the run acts as the model's owner, so the catalog owner writes the queue. */
static void
finish_requests(const int64 *request_ids, int n, const char *state, int version, const char *note)
{
	UnlearnCatalogUser saved;

	if (n == 0)
		return;
	unlearn_become_catalog_owner(&saved);
	unlearn_queue_finish(request_ids, n, state, version, note);
	unlearn_restore_user(&saved);
}

/* Marks the pass's requests that need no run skipped, and the ones that cannot run failed. */
static void
finish_unused(const PassPlan *plan)
{
	finish_requests(plan->skipped, plan->n_skipped, "skipped", 0,
					"not learned by the current version, or superseded by another request for the row");
	/* a learned row that cannot be unlearned is a failure, never a silent skip */
	finish_requests(plan->failed_label, plan->n_failed_label, "failed", 0,
					"its label is not a class of the model and no other request for the row has one");
	finish_requests(plan->failed_copy, plan->n_failed_copy, "failed", 0,
					"its feature copy is missing, malformed or not finite and no other request for the row has one");
}

/* The LOG line of a pass that stored a version, with where its time went. */
static void
log_pass(const ClaimedRun *run, bool relabel, UnlearnOutcome *outcome)
{
	double		total;
	char	   *phases = unlearn_phases_json(&outcome->phases, &total);

	ereport(LOG,
			(errmsg("unlearn worker: model \"%s\" version %d %s %d rows in %.3f s (%d steps)",
					run->name, outcome->version, relabel ? "relabelled" : "forgot", outcome->rows,
					outcome->seconds, outcome->steps),
			 errdetail("%.3f s from the claim; phases (s): %s", total, phases)));
}

/* Step 4 of a run: one pass, its usable requests unlearned as one version and marked done. */
static void
run_pass(ClaimedRun *run, bool relabel)
{
	PassPlan	plan;
	UnlearnData rows;
	int		   *new_labels;
	int64	   *used;
	UnlearnOutcome outcome;
	UnlearnRunOptions opts;

	plan_pass(run, relabel, &plan);
	gather_rows(run, &plan, &rows, &new_labels, &used);
	finish_unused(&plan);
	if (rows.n == 0)
		return;
	unlearn_phase_end(run->phases, "plan");
	outcome.phases = *run->phases;
	opts = run->opts;
	if (relabel && unlearn_shards_option(run->model->options) > 1)
		opts.exact = true;		/* a sharded model relabels exactly only */
	unlearn_execute(run->model, &rows, relabel ? new_labels : NULL, &opts,
					relabel ? "auto-relabel" : "auto-unlearn", false, run->warm, &outcome);
	finish_requests(used, plan.n_use, "done", outcome.version, NULL);
	unlearn_phase_end(&outcome.phases, "finish_requests");
	log_pass(run, relabel, &outcome);
	/* a second pass is timed from here */
	unlearn_phases_start(run->phases);

	/*
	 * the relabel pass starts from the version the forget pass made: the
	 * catalog reads are read-only SPI under the run's snapshot, which must
	 * first see this transaction's new version, manifest and ledger
	 */
	CommandCounterIncrement();
	UpdateActiveSnapshotCommandId();
	run->model = unlearn_model_lookup(run->name, false);
	unlearn_warm_stored(run->warm, run->model);
	if (!relabel)
		run->manifest = unlearn_load_manifest(run->model, run->model->version, &run->n_manifest);
}

/*
 * Runs the claimed requests of one model (in the caller's transaction):
 * forget requests as one version, relabel requests as another.
 */
static void
process_claimed(const char *name, const int64 *claimed, int n_claimed, UnlearnPhases *phases)
{
	ClaimedRun	run;
	UnlearnCatalogUser as_owner;

	memset(&run, 0, sizeof(run));
	run.name = name;
	run.phases = phases;
	lock_model(&run);
	unlearn_phase_end(phases, "lock");
	read_claimed(&run, claimed, n_claimed);
	run.warm = unlearn_warm_open(run.model, run.auto_options);
	unlearn_phase_end(phases, "read_requests");
	/* run as the model's owner (restricted, search_path pinned) */
	unlearn_become_role(run.model->owner, &as_owner);
	run_pass(&run, false);
	run_pass(&run, true);
	unlearn_restore_user(&as_owner);
}

/*
 * After a run's commit, in a transaction of its own and within
 * unlearn.max_run_time: the warm samples' refresh (warm.c), off the next
 * request's path.  It changes nothing but the worker's memory: a failure
 * only empties the entry.
 */
static void
refresh_warm_samples(const char *model)
{
	PG_TRY();
	{
		begin_limited_step();
		unlearn_warm_refresh();
		end_step();
	}
	PG_CATCH();
	{
		unlearn_warm_abort();
		FreeErrorData(abort_step("refreshing the samples of model", model));
	}
	PG_END_TRY();
}

/*
 * Runs claimed requests in their own transaction, within unlearn.max_run_time;
 * a failure is recorded, not raised.
 */
static void
run_claimed_requests(const char *model, const int64 *claimed, int n_claimed, UnlearnPhases *phases)
{
	PG_TRY();
	{
		begin_limited_step();
		process_claimed(model, claimed, n_claimed, phases);
		end_step();
		unlearn_warm_commit();
		refresh_warm_samples(model);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		unlearn_warm_abort();
		edata = abort_step("run for model", model);
		begin_step();
		unlearn_queue_record_failure(claimed, n_claimed, edata->message);
		end_step();
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * Processes every due model once; returns how long to wait for a batching
 * window (ms).  Claimed requests make the worker busy: a stream of requests
 * that each drain the queue must not look idle to the housekeeping.
 */
static long
process_due_requests(TimestampTz *last_busy)
{
	for (;;)
	{
		long		wait_ms;
		char	   *model;
		int64	   *claimed;
		int			n_claimed;
		UnlearnPhases phases;

		CHECK_FOR_INTERRUPTS();
		unlearn_phases_start(&phases);
		begin_step();
		model = unlearn_queue_next_due(&wait_ms);
		end_step();
		if (model == NULL)
			return wait_ms;
		/* claimed in a committed transaction: a crash leaves them running */
		begin_step();
		claimed = unlearn_queue_claim(model, &n_claimed);
		end_step();
		if (n_claimed > 0)
		{
			char		activity[256];

			*last_busy = GetCurrentTimestamp();

			snprintf(activity, sizeof(activity), "unlearning %d requests of model %s", n_claimed, model);
			pgstat_report_activity(STATE_RUNNING, activity);
			unlearn_phase_end(&phases, "claim");
			run_claimed_requests(model, claimed, n_claimed, &phases);
			unlearn_queue_note_served(model);
			pgstat_report_activity(STATE_IDLE, NULL);
			pfree(claimed);
		}
		pfree(model);
	}
}

/* ------------------------------------------------------------------ consolidation */

/*
 * Consolidates, in its own transaction, the model whose stream of deletes
 * has paused longest (consolidate.c); a failure is logged and that version
 * not tried again.  Returns true when one was consolidated or one is still
 * waiting out its quiet period: the worker must not leave meanwhile.
 */
static bool
consolidate_when_idle(void)
{
	char	   *name;
	int			version = 0;
	bool		pending = false;
	UnlearnOutcome outcome;

	if (unlearn_consolidate_idle <= 0 || unlearn_retrain_budget == 0)
		return false;
	/* step 1: the candidate, if the catalog records guarantees (0.2) */
	begin_step();
	name = unlearn_catalog_has_guarantees() ?
		unlearn_consolidation_next(unlearn_consolidate_idle, &version, &pending) : NULL;
	end_step();
	if (name == NULL)
		return pending;
	/* step 2: the exact retrain, as a run is (within unlearn.max_run_time): a failure is recorded, not raised */
	PG_TRY();
	{
		memset(&outcome, 0, sizeof(outcome));
		unlearn_phases_start(&outcome.phases);
		pgstat_report_activity(STATE_RUNNING, "consolidating a model");
		begin_limited_step();
		if (unlearn_consolidate_model(name, version, &outcome) > 0)
			ereport(LOG,
					(errmsg("unlearn worker: consolidated model \"%s\": version %d retrained exactly from version %d in %.3f s",
							name, outcome.version, version, outcome.seconds)));
		end_step();
	}
	PG_CATCH();
	{
		ErrorData  *edata = abort_step("consolidating model", name);

		unlearn_consolidation_skip(name, version);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return true;
}

/* ------------------------------------------------------------------ housekeeping */

/*
 * Leaves when nothing is queued, so an idle database has no session of ours
 * (DROP DATABASE works).  The latch is withdrawn first and the queue checked
 * after, so a commit in between either sees no latch (and asks the launcher
 * for a new worker) or is seen here.
 */
static void
exit_if_idle(void)
{
	unlearn_slot_hide_latch();
	if (open_requests() == 0)
	{
		exiting_idle = true;
		proc_exit(0);
	}
	unlearn_slot_publish();
}

/*
 * Periodic chores of a worker: consolidate a model whose deletes paused
 * (or stay up for one), leave when idle for long, prune finished
 * requests past unlearn.request_history, erase ledger copies past
 * unlearn.feature_retention, and leave if the extension was dropped.
 */
static void
worker_housekeeping(TimestampTz *last_busy)
{
	if (!extension_present())
		proc_exit(0);
	if (open_requests() > 0 || consolidate_when_idle())
		*last_busy = GetCurrentTimestamp();
	else if (TimestampDifferenceExceeds(*last_busy, GetCurrentTimestamp(), WORKER_IDLE_EXIT_MS))
		exit_if_idle();
	if (unlearn_request_history >= 0)
	{
		begin_step();
		unlearn_queue_prune(unlearn_request_history);
		end_step();
	}
	/* the samples of dropped models, or of versions someone else made, go */
	begin_step();
	unlearn_warm_prune();
	end_step();
	if (unlearn_feature_retention > 0)
	{
		/* ledger copies past their retention window go */
		Oid			argtypes[1] = {INT4OID};
		Datum		args[1] = {Int32GetDatum(unlearn_feature_retention)};

		run_statement("UPDATE unlearn.forgotten SET features = NULL"
					  " WHERE features IS NOT NULL"
					  "   AND forgotten_at < clock_timestamp() - $1 * interval '1 s'",
					  1, argtypes, args);
	}
}

/* ------------------------------------------------------------------ the loop's steps */

/*
 * Bounds every lock wait of the worker by unlearn.worker_lock_timeout: a role
 * that holds a lock on its training table (or its model's catalog row) must
 * not stall the worker that serves every model of the database.  A run that
 * times out fails like any other and is retried with backoff.
 */
static void
apply_lock_timeout(void)
{
	char		value[32];

	snprintf(value, sizeof(value), "%d", unlearn_worker_lock_timeout);
	SetConfigOption("lock_timeout", value, PGC_SUSET, PGC_S_OVERRIDE);
}

/* Start-up: signals, the database connection, a pinned search_path, the loop's memory context. */
static void
connect_worker(Oid dboid)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* the database's and roles' unlearn.* values are refused from here on (unlearn.c) */
	unlearn_in_worker = true;
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	/* we run as the bootstrap superuser: resolve nothing a database owner created, take no setting that stops us */
	unlearn_pin_worker_session();
	apply_lock_timeout();
	unlearn_run_limit_init();
	loop_context = AllocSetContextCreate(TopMemoryContext, "unlearn worker loop", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(loop_context);
}

/* Start-up: requests a crash left running were never committed as done: run them again. */
static void
requeue_interrupted_runs(void)
{
	begin_step();
	unlearn_queue_reset_running();
	end_step();
}

/* Top of a pass: nothing the previous pass allocated survives it; the throttle's slice starts. */
static void
start_pass(void)
{
	MemoryContextReset(loop_context);
	MemoryContextSwitchTo(loop_context);
	unlearn_throttle_reset();
}

/*
 * A batch is gathering: sleep the window out.  Commits need not wake us
 * meanwhile (under a stream of DELETEs they would keep the worker spinning);
 * the latch stays set for afterwards.
 */
static void
sleep_out_window(long wait_ms)
{
	(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 Min(wait_ms, unlearn_naptime), PG_WAIT_EXTENSION);
}

/* Housekeeping at most once a naptime, however often commits wake us. */
static void
housekeeping_if_due(TimestampTz *last_busy, TimestampTz *last_housekeeping)
{
	if (TimestampDifferenceExceeds(*last_housekeeping, GetCurrentTimestamp(), unlearn_naptime))
	{
		worker_housekeeping(last_busy);
		*last_housekeeping = GetCurrentTimestamp();
	}
}

/* Sleeps on the latch until a commit queues requests, for at most unlearn.naptime. */
static void
wait_for_work(void)
{
	(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
					 unlearn_naptime, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/* Bottom of a pass: a pending cancel or terminate, a configuration reload. */
static void
handle_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
		apply_lock_timeout();
	}
}

/* Worker of one database: sleeps on its latch, unlearns what is queued. */
void
unlearn_worker_main(Datum arg)
{
	TimestampTz last_busy,
				last_housekeeping = 0;

	connect_worker(DatumGetObjectId(arg));
	if (!extension_present())
		proc_exit(0);			/* the launcher retries later, or on demand */
	if (!become_only_worker())
		proc_exit(0);			/* another worker serves this database */
	unlearn_slot_publish();
	on_shmem_exit(release_slot, (Datum) 0);
	pgstat_report_appname("unlearn worker");
	requeue_interrupted_runs();

	last_busy = GetCurrentTimestamp();
	for (;;)
	{
		long		wait_ms;

		start_pass();
		wait_ms = process_due_requests(&last_busy);
		if (wait_ms > 0)
			sleep_out_window(wait_ms);
		else
		{
			housekeeping_if_due(&last_busy, &last_housekeeping);
			wait_for_work();
		}
		handle_interrupts();
	}
}
