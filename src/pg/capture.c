/*
 * capture.c: automatic unlearning on DELETE and UPDATE of training tables.
 *
 * Statement-level AFTER triggers with transition tables copy the deleted
 * (or changed) rows into unlearn.requests in the deleting transaction, with
 * one INSERT ... SELECT per statement, so a rolled-back DELETE leaves no
 * request and deleting 10 000 rows is one insert.  TRUNCATE and DROP of a
 * training table are refused: both would leave a model that silently
 * remembers every row.  unlearn_auto switches the capture per model and
 * unlearn_wait lets a session wait for the background worker.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "unlearn_pg.h"

static bool queued_in_xact = false;

/* The relation's schema-qualified, quoted name. */
static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));
}

/* Errors unless the capture triggers may be installed on relid by the current user. */
void
unlearn_check_capture_allowed(Oid relid)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("automatic unlearning needs a table, and \"%s\" is not one", get_rel_name(relid)),
				 errhint("Train with auto_unlearn => false and call unlearn_rows yourself.")));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to capture deletes on table %s", get_rel_name(relid)),
				 errdetail("Automatic unlearning installs triggers and needs TRIGGER privilege on the table."),
				 errhint("Train with auto_unlearn => false, or ask the table's owner.")));
}

/* Installs the capture and guard triggers on a training table (idempotent). */
void
unlearn_install_capture(Oid relid)
{
	char	   *rel = qualified_name(relid);
	UnlearnCatalogUser saved;

	unlearn_check_capture_allowed(relid);
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute(psprintf("CREATE OR REPLACE TRIGGER unlearn_capture_delete AFTER DELETE ON %s"
							 " REFERENCING OLD TABLE AS unlearn_old"
							 " FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture()", rel),
					false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("CREATE OR REPLACE TRIGGER unlearn_capture_update AFTER UPDATE ON %s"
							 " REFERENCING OLD TABLE AS unlearn_old NEW TABLE AS unlearn_new"
							 " FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture()", rel),
					false, 0) != SPI_OK_UTILITY ||
		SPI_execute(psprintf("CREATE OR REPLACE TRIGGER unlearn_guard_truncate BEFORE TRUNCATE ON %s"
							 " FOR EACH STATEMENT EXECUTE FUNCTION unlearn.guard_truncate()", rel),
					false, 0) != SPI_OK_UTILITY)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not install the unlearn triggers on %s", rel)));
	unlearn_restore_user(&saved);
}

/* Drops the triggers from a table no model trains on any more. */
void
unlearn_remove_capture_if_unused(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	UnlearnCatalogUser saved;
	char	   *rel;

	if (get_rel_name(relid) == NULL)
		return;
	rel = qualified_name(relid);
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT 1 FROM unlearn.models WHERE relation = $1", 1, argtypes, args,
							  NULL, false, 1) == SPI_OK_SELECT && SPI_processed == 0 &&
		SPI_execute_with_args("SELECT tgname FROM pg_trigger WHERE tgrelid = $1 AND tgname IN"
							  " ('unlearn_capture_delete', 'unlearn_capture_update', 'unlearn_guard_truncate')",
							  1, argtypes, args, NULL, false, 0) == SPI_OK_SELECT)
	{
		SPITupleTable *triggers = SPI_tuptable;
		uint64		n = SPI_processed;

		for (uint64 i = 0; i < n; i++)
			if (SPI_execute(psprintf("DROP TRIGGER %s ON %s",
									 quote_identifier(SPI_getvalue(triggers->vals[i], triggers->tupdesc, 1)), rel),
							false, 0) != SPI_OK_UTILITY)
				ereport(ERROR,
						(errcode(ERRCODE_INTERNAL_ERROR),
						 errmsg("could not drop the unlearn triggers of %s", rel)));
	}
	unlearn_restore_user(&saved);
}

/* Remembers that this transaction queued requests. */
void
unlearn_note_queued(void)
{
	queued_in_xact = true;
}

/* True (and reset) if the ending transaction queued requests. */
bool
unlearn_take_queued(void)
{
	bool		was = queued_in_xact;

	queued_in_xact = false;
	return was;
}

/* The INSERT ... SELECT that queues one model's requests for one statement. */
static char *
capture_sql(bool is_update, const char *id, const char *feat, const char *label)
{
	if (!is_update)
		return psprintf("INSERT INTO unlearn.requests (model, kind, id, label, features, requested_by)"
						" SELECT $1, 'forget', o.%s, o.%s::text, o.%s::real[], $2::name FROM unlearn_old o"
						" WHERE o.%s IS NOT NULL AND o.%s IS NOT NULL AND o.%s IS NOT NULL",
						id, label, feat, id, label, feat);
	return psprintf("INSERT INTO unlearn.requests (model, kind, id, label, new_label, features, requested_by)"
					" SELECT $1, CASE WHEN n.%s IS NULL OR n.%s IS NULL"
					"   OR n.%s IS DISTINCT FROM o.%s THEN 'forget' ELSE 'relabel' END,"
					"  o.%s, o.%s::text,"
					"  CASE WHEN n.%s IS NULL OR n.%s IS NULL OR n.%s IS DISTINCT FROM o.%s"
					"   THEN NULL ELSE n.%s::text END,"
					"  o.%s::real[], $2::name"
					" FROM unlearn_old o LEFT JOIN unlearn_new n ON n.%s = o.%s"
					" WHERE o.%s IS NOT NULL AND o.%s IS NOT NULL AND o.%s IS NOT NULL"
					"   AND (n.%s IS NULL OR n.%s IS NULL OR n.%s IS DISTINCT FROM o.%s"
					"        OR n.%s IS DISTINCT FROM o.%s)",
					id, label, feat, feat,
					id, label,
					id, label, feat, feat,
					label,
					feat,
					id, id,
					id, label, feat,
					id, label, feat, feat,
					label, label);
}

/*
 * Prepared capture statements per (table, event), kept across statements:
 * a single-row DELETE then costs one plan execution, not a catalog query and
 * a parse.  An entry is rebuilt when the catalog generation moves (a model
 * was trained, dropped or switched, see unlearn_models_changed) or the
 * table's relcache entry is invalidated (ALTER TABLE).
 */
typedef struct CaptureModel
{
	char	   *name;
	SPIPlanPtr	plan;
} CaptureModel;

typedef struct CaptureEntry
{
	Oid			relid;
	bool		is_update;
	bool		valid;
	uint64		generation;
	int			n_models;
	CaptureModel *models;
} CaptureEntry;

#define CAPTURE_CACHE_SIZE 32
static CaptureEntry capture_cache[CAPTURE_CACHE_SIZE];
static int	capture_cache_used = 0;
static bool capture_callback_registered = false;

/* Frees an entry's plans and names. */
static void
capture_entry_clear(CaptureEntry *e)
{
	for (int i = 0; i < e->n_models; i++)
	{
		if (e->models[i].plan)
			SPI_freeplan(e->models[i].plan);
		pfree(e->models[i].name);
	}
	if (e->models)
		pfree(e->models);
	e->models = NULL;
	e->n_models = 0;
	e->valid = false;
}

/* Marks every cached capture entry of this backend for rebuilding. */
void
unlearn_capture_cache_invalidate(void)
{
	for (int i = 0; i < capture_cache_used; i++)
		capture_cache[i].valid = false;
}

/* Relcache invalidation: entries of that table (or all) must be rebuilt. */
static void
capture_relcache_callback(Datum arg, Oid relid)
{
	for (int i = 0; i < capture_cache_used; i++)
		if (!OidIsValid(relid) || capture_cache[i].relid == relid)
			capture_cache[i].valid = false;
}

/* Builds (or rebuilds) the entry of a table and event; SPI connected, transition tables registered. */
static CaptureEntry *
capture_entry(Oid relid, bool is_update)
{
	CaptureEntry *e = NULL;
	uint64		generation = unlearn_catalog_generation();
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	SPITupleTable *models;
	uint64		n_models;
	MemoryContext old;

	if (!capture_callback_registered)
	{
		CacheRegisterRelcacheCallback(capture_relcache_callback, (Datum) 0);
		capture_callback_registered = true;
	}
	for (int i = 0; i < capture_cache_used; i++)
		if (capture_cache[i].relid == relid && capture_cache[i].is_update == is_update)
			e = &capture_cache[i];
	if (e && e->valid && e->generation == generation && generation != 0)
		return e;
	if (e == NULL)
	{
		if (capture_cache_used == CAPTURE_CACHE_SIZE)
		{
			/* full: drop everything, the next statements rebuild what they need */
			for (int i = 0; i < capture_cache_used; i++)
				capture_entry_clear(&capture_cache[i]);
			capture_cache_used = 0;
		}
		e = &capture_cache[capture_cache_used++];
		memset(e, 0, sizeof(*e));
		e->relid = relid;
		e->is_update = is_update;
	}
	else
		capture_entry_clear(e);

	if (SPI_execute_with_args("SELECT name, id_column::text, features_column::text, label_column::text"
							  " FROM unlearn.models WHERE relation = $1 AND auto_unlearn ORDER BY name",
							  1, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	models = SPI_tuptable;
	n_models = SPI_processed;
	old = MemoryContextSwitchTo(TopMemoryContext);
	e->models = palloc0(sizeof(CaptureModel) * Max(n_models, 1));
	MemoryContextSwitchTo(old);
	for (uint64 i = 0; i < n_models; i++)
	{
		HeapTuple	tup = models->vals[i];
		TupleDesc	td = models->tupdesc;
		Oid			ptypes[2] = {TEXTOID, TEXTOID};
		char	   *sql = capture_sql(is_update,
									  quote_identifier(SPI_getvalue(tup, td, 2)),
									  quote_identifier(SPI_getvalue(tup, td, 3)),
									  quote_identifier(SPI_getvalue(tup, td, 4)));
		SPIPlanPtr	plan = SPI_prepare(sql, 2, ptypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the capture of model \"%s\": %s",
				 SPI_getvalue(tup, td, 1), SPI_result_code_string(SPI_result));
		e->models[i].plan = plan;
		e->models[i].name = MemoryContextStrdup(TopMemoryContext, SPI_getvalue(tup, td, 1));
		e->n_models = (int) i + 1;
	}
	e->generation = generation;
	e->valid = true;
	return e;
}

PG_FUNCTION_INFO_V1(unlearn_capture);
/*
 * Trigger: AFTER DELETE / AFTER UPDATE FOR EACH STATEMENT.  Queues a forget
 * request per deleted row (and per updated row whose features or id changed)
 * and a relabel request per row whose label alone changed, for every model
 * of the table with automatic unlearning on.
 */
Datum
unlearn_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	UnlearnCatalogUser saved;
	CaptureEntry *e;
	Datum		args[2];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.capture() must be a statement-level trigger")));
	if (unlearn_suppress_capture || trigdata->tg_oldtable == NULL)
		return PointerGetDatum(NULL);
	args[1] = CStringGetTextDatum(GetUserNameFromId(GetUserId(), false));

	SPI_connect();
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "could not register the transition tables");
	unlearn_become_catalog_owner(&saved);
	e = capture_entry(RelationGetRelid(trigdata->tg_relation), TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event));
	for (int i = 0; i < e->n_models; i++)
	{
		args[0] = CStringGetTextDatum(e->models[i].name);
		if (SPI_execute_plan(e->models[i].plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not queue unlearning requests");
		if (SPI_processed > 0)
			unlearn_note_queued();
	}
	unlearn_restore_user(&saved);
	SPI_finish();
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(unlearn_models_changed);
/* Trigger on unlearn.models: capture caches of every backend go stale at commit. */
Datum
unlearn_models_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.models_changed() must be called as a trigger")));
	/* this backend sees its own change at once, others at commit */
	unlearn_capture_cache_invalidate();
	unlearn_note_catalog_changed();
	return PointerGetDatum(NULL);
}

/* Names of the models trained on relid (optionally only those with auto on), or NULL. */
static char *
models_of_relation(Oid relid, bool auto_only)
{
	Oid			argtypes[2] = {OIDOID, BOOLOID};
	Datum		args[2] = {ObjectIdGetDatum(relid), BoolGetDatum(auto_only)};
	UnlearnCatalogUser saved;
	char	   *names = NULL;

	SPI_connect();
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT string_agg(quote_literal(name), ', ' ORDER BY name) FROM unlearn.models"
							  " WHERE relation = $1 AND (auto_unlearn OR NOT $2)",
							  2, argtypes, args, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	unlearn_restore_user(&saved);
	if (SPI_processed == 1)
	{
		char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v)
		{
			names = SPI_palloc(strlen(v) + 1);
			strcpy(names, v);
		}
	}
	SPI_finish();
	return names;
}

PG_FUNCTION_INFO_V1(unlearn_guard_truncate);
/* Trigger: BEFORE TRUNCATE: refuses while a model unlearns this table's deletes. */
Datum
unlearn_guard_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	Oid			relid;
	char	   *names;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.guard_truncate() must be called as a trigger")));
	relid = RelationGetRelid(trigdata->tg_relation);
	names = models_of_relation(relid, true);
	if (names != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot truncate \"%s\": it is the training table of model %s",
						get_rel_name(relid), names),
				 errdetail("TRUNCATE fires no row deletes, so the model would silently remember every row."),
				 errhint("DELETE the rows to have them unlearned, drop the model with unlearn_drop_model(),"
						 " or turn automatic unlearning off with unlearn_auto(model, false).")));
	return PointerGetDatum(NULL);
}

PG_FUNCTION_INFO_V1(unlearn_guard_drop);
/* Event trigger on sql_drop: refuses to drop a table that trains a model. */
Datum
unlearn_guard_drop(PG_FUNCTION_ARGS)
{
	UnlearnCatalogUser saved;
	char	   *table = NULL,
			   *names = NULL;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.guard_drop() must be called as an event trigger")));
	SPI_connect();
	unlearn_become_catalog_owner(&saved);
	/* when the catalog itself is being dropped (DROP EXTENSION) there is nothing to guard */
	if (SPI_execute("SELECT d.object_identity, string_agg(quote_literal(m.name), ', ' ORDER BY m.name)"
					" FROM pg_event_trigger_dropped_objects() d"
					" JOIN unlearn.models m ON m.relation = d.objid"
					" WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0"
					"   AND to_regclass('unlearn.models') IS NOT NULL"
					" GROUP BY d.object_identity ORDER BY 1 LIMIT 1", true, 0) == SPI_OK_SELECT &&
		SPI_processed == 1)
	{
		table = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		names = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
	unlearn_restore_user(&saved);
	SPI_finish();
	if (table)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop table %s: it is the training table of model %s", table, names),
				 errdetail("The model would remember every row with no table left to delete them from."),
				 errhint("Drop the model first with unlearn_drop_model().")));
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(unlearn_auto);
/* unlearn_auto(model, enabled, options): switches automatic unlearning, sets its options. */
Datum
unlearn_auto(PG_FUNCTION_ARGS)
{
	char	   *name;
	bool		enabled;
	UnlearnModel *model;
	UnlearnCatalogUser saved;
	Oid			argtypes[3] = {TEXTOID, BOOLOID, JSONBOID};
	Datum		args[3];
	char		nulls[3] = "   ";

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model and enabled must not be NULL")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	enabled = PG_GETARG_BOOL(1);
	args[0] = CStringGetTextDatum(name);
	args[1] = BoolGetDatum(enabled);
	if (PG_ARGISNULL(2))
		nulls[2] = 'n';
	else
	{
		UnlearnRunOptions check;

		/* reject bad options now rather than in the worker */
		unlearn_parse_run_options(PG_GETARG_JSONB_P(2), &check);
		args[2] = PointerGetDatum(PG_GETARG_JSONB_P(2));
	}

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_owner(model, "change");
	if (enabled)
		unlearn_install_capture(model->relid);
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("UPDATE unlearn.models SET auto_unlearn = $2,"
							  " auto_options = coalesce($3, auto_options) WHERE name = $1",
							  3, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update model \"%s\"", name);
	unlearn_restore_user(&saved);
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(unlearn_wait);
/*
 * unlearn_wait(model, timeout): waits until no request of the model is
 * pending or running; false if the timeout passes first.
 */
Datum
unlearn_wait(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Interval   *timeout = PG_GETARG_INTERVAL_P(1);
	TimestampTz deadline;
	UnlearnModel *model;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		done = false;

	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("unlearn_wait needs READ COMMITTED isolation"),
				 errdetail("Under a transaction snapshot the worker's progress is never visible.")));
	if (queued_in_xact)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("this transaction queued unlearning requests that the worker cannot see yet"),
				 errhint("COMMIT the DELETE or UPDATE first, then call unlearn_wait.")));
	deadline = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
													   TimestampTzGetDatum(GetCurrentTimestamp()),
													   IntervalPGetDatum(timeout)));

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_can_use(model);
	for (;;)
	{
		UnlearnCatalogUser saved;
		bool		isnull;
		int64		open;

		unlearn_become_catalog_owner(&saved);
		if (SPI_execute_with_args("SELECT count(*) FROM unlearn.requests"
								  " WHERE model = $1 AND state IN ('pending', 'running')",
								  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read unlearn.requests");
		unlearn_restore_user(&saved);
		open = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (open == 0)
		{
			done = true;
			break;
		}
		if (GetCurrentTimestamp() >= deadline)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_finish();
	PG_RETURN_BOOL(done);
}

PG_FUNCTION_INFO_V1(unlearn_retry);
/*
 * unlearn_retry(model): puts the model's failed requests back to pending
 * (attempts reset), e.g. after unlearn_auto changed the options that made
 * them fail; returns how many.  The worker is woken at commit.
 */
Datum
unlearn_retry(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	UnlearnModel *model;
	UnlearnCatalogUser saved;
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	uint64		n;

	SPI_connect();
	model = unlearn_model_lookup(name, false);
	unlearn_check_owner(model, "retry requests for");
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("UPDATE unlearn.requests SET state = 'pending', attempts = 0,"
							  " next_attempt_at = clock_timestamp()"
							  " WHERE model = $1 AND state = 'failed'",
							  1, argtypes, args, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update unlearn.requests");
	unlearn_restore_user(&saved);
	n = SPI_processed;
	SPI_finish();
	if (n > 0)
		unlearn_note_queued();
	PG_RETURN_INT64((int64) n);
}
