/*
 * consolidate.c: the worker's consolidation when a model's deletes pause.
 *
 * Approximate versions forget rows one run at a time; with
 * unlearn.feature_retention = 0 later runs cannot keep earlier rows
 * forgotten, and every run adds a little drift.  Once a model with automatic
 * unlearning has had no open request for unlearn.consolidate_idle seconds
 * and its current version is approximate, the worker retrains it from
 * scratch on the rows of that version's manifest (unlearn_consolidate in
 * execute.c), within unlearn.retrain_budget: every row its approximate runs
 * forgot is then forgotten by construction.  A model that cannot be
 * consolidated (over the budget, or the retrain failed) is not tried again
 * until it has a new version.
 *
 * The catalog query runs as the worker (bootstrap superuser, search_path
 * pinned) on the extension's own tables; the retrain runs as the model's
 * owner, as the worker's other runs do.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "unlearn_pg.h"
#include "capture.h"
#include "consolidate.h"
#include "queue.h"

#define SKIP_SLOTS 64			/* models remembered as not to consolidate again */

/* A model (by name) and the version it could not be consolidated at. */
typedef struct SkippedModel
{
	char	   *name;			/* in TopMemoryContext; NULL: free slot */
	int			version;
} SkippedModel;

static SkippedModel skipped[SKIP_SLOTS];
static int	skip_next = 0;		/* the slot the next skip overwrites when all are used */

/* True if the model was remembered as not to consolidate at this version. */
static bool
is_skipped(const char *name, int version)
{
	for (int i = 0; i < SKIP_SLOTS; i++)
		if (skipped[i].name != NULL && skipped[i].version == version && strcmp(skipped[i].name, name) == 0)
			return true;
	return false;
}

/* Remembers not to consolidate the model again at this version (the oldest entry goes when full). */
void
unlearn_consolidation_skip(const char *name, int version)
{
	SkippedModel *slot = &skipped[skip_next];

	if (slot->name != NULL)
		pfree(slot->name);
	slot->name = MemoryContextStrdup(TopMemoryContext, name);
	slot->version = version;
	skip_next = (skip_next + 1) % SKIP_SLOTS;
}

/*
 * The model to consolidate now (palloc'd name and *version), or NULL.
 * Candidates: automatic unlearning on, not sharded, the current version
 * approximate; the one idle longest first.  The worker asks only when no
 * request of the database is pending or running (worker_housekeeping), and
 * unlearn_consolidate_model checks the model's again under its lock.
 * *pending tells whether a candidate is still inside its quiet period, so
 * that the worker stays up for it.  Caller connected to SPI.
 */
char *
unlearn_consolidation_next(int idle_seconds, int *version, bool *pending)
{
	Datum		args[1] = {Int32GetDatum(idle_seconds)};
	Oid			argtypes[1] = {INT4OID};
	char	   *name = NULL;

	*pending = false;
	if (SPI_execute_with_args("SELECT m.name, m.current_version,"
							  "  v.created_at <= clock_timestamp() - $1 * interval '1 s'"
							  " FROM unlearn.models m JOIN unlearn.versions v"
							  "   ON v.model = m.name AND v.version = m.current_version"
							  " WHERE m.auto_unlearn AND v.guarantee = 'approximate'"
							  "   AND coalesce(m.options->>'shards', '1') = '1'"
							  " ORDER BY v.created_at",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "unlearn worker could not read the models to consolidate");
	for (uint64 i = 0; i < SPI_processed && name == NULL; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	td = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *candidate = SPI_getvalue(tup, td, 1);
		int			v = DatumGetInt32(SPI_getbinval(tup, td, 2, &isnull));

		if (is_skipped(candidate, v))
			continue;
		if (!DatumGetBool(SPI_getbinval(tup, td, 3, &isnull)))
		{
			*pending = true;
			continue;
		}
		name = SPI_palloc(strlen(candidate) + 1);
		strcpy(name, candidate);
		*version = v;
	}
	return name;
}

/*
 * Consolidates the model if it still qualifies under its lock: the same
 * version as when chosen, still approximate, no request queued meanwhile.
 * Returns the outcome's version, or 0 when nothing was stored (the model is
 * then remembered as skipped at that version unless requests came in).
 * Caller: in a transaction, connected to SPI, as the worker.
 */
int
unlearn_consolidate_model(const char *name, int version, UnlearnOutcome *out)
{
	UnlearnModel *model;
	UnlearnCatalogUser as_owner;
	bool		stored;

	/* step 1: serialise with runs and unlearn_rows, then read what the lock now protects */
	(void) unlearn_model_lookup(name, false);
	unlearn_lock_model(name);
	PopActiveSnapshot();
	PushActiveSnapshot(GetTransactionSnapshot());
	model = unlearn_model_lookup(name, true);
	if (model == NULL || model->version != version)
		return 0;				/* dropped, or a run made a newer version: chosen again later */
	if (unlearn_queue_count_open(name) > 0)
		return 0;				/* the requests run first */
	/* step 2: tables only, locked until the retrain ends, as a run checks them (worker.c) */
	unlearn_check_table_tree(model->relid, AccessShareLock);
	/* step 3: the exact retrain, as the model's owner */
	unlearn_become_role(model->owner, &as_owner);
	stored = unlearn_consolidate(model, out);
	unlearn_restore_user(&as_owner);
	if (!stored)
		unlearn_consolidation_skip(name, version);
	return stored ? out->version : 0;
}
