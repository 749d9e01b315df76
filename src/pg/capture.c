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

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "parser/parse_func.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "queue.h"
#include "unlearn_pg.h"
#include "worker.h"

static bool queued_in_xact = false;

static void check_capturable(Oid relid);

/* The first parent of rel (pg_inherits) that is not in tree, or InvalidOid. */
static Oid
parent_outside(Oid rel, List *tree)
{
	Relation	inh = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			found = InvalidOid;

	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(rel));
	scan = systable_beginscan(inh, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while (!OidIsValid(found) && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Oid			parent = ((Form_pg_inherits) GETSTRUCT(tup))->inhparent;

		if (!list_member_oid(tree, parent))
			found = parent;
	}
	systable_endscan(scan);
	table_close(inh, AccessShareLock);
	return found;
}

/* Errors unless the current user may install capture triggers on relid and every table below it. */
void
unlearn_check_capture_allowed(Oid relid)
{
	if (pg_class_aclcheck(relid, GetUserId(), ACL_TRIGGER) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to capture deletes on table %s", get_rel_name(relid)),
				 errdetail("Automatic unlearning installs triggers and needs TRIGGER privilege on the table."),
				 errhint("Train with auto_unlearn => false, or ask the table's owner.")));
	check_capturable(relid);
}

/*
 * Errors unless relid and every relation below it are tables whose deletes
 * can be captured: not a view or foreign table, not temporary (its rows
 * vanish at session end with no trigger, and the worker cannot read it), and
 * relid itself below no other table (a DELETE addressed to a parent fires
 * only the parent's statement triggers).
 */
static void
check_capturable(Oid relid)
{
	List	   *tree = find_all_inheritors(relid, NoLock, NULL);
	ListCell   *lc;

	/* relid and every table below it: an unlogged or temporary child loses its rows unseen */
	foreach(lc, tree)
	{
		Oid			rel = lfirst_oid(lc);
		Oid			other = rel == relid ? InvalidOid : parent_outside(rel, tree);

		if (get_rel_persistence(rel) == RELPERSISTENCE_UNLOGGED)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("automatic unlearning cannot follow unlogged table \"%s\"", get_rel_name(rel)),
					 errdetail("A crash empties it without firing any trigger."),
					 errhint("ALTER TABLE ... SET LOGGED, or train with auto_unlearn => false.")));
		if (get_rel_persistence(rel) == RELPERSISTENCE_TEMP)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("automatic unlearning cannot follow temporary table \"%s\"", get_rel_name(rel)),
					 errdetail("Its rows vanish at the end of the session without firing any trigger."),
					 errhint("Train with auto_unlearn => false and call unlearn_rows yourself.")));
		/* a child that also inherits from another table loses rows through a DELETE on that one */
		if (OidIsValid(other))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("automatic unlearning cannot follow \"%s\": its child \"%s\" also inherits from \"%s\"",
							get_rel_name(relid), get_rel_name(rel), get_rel_name(other)),
					 errdetail("Rows deleted through \"%s\" would leave \"%s\" without being captured.",
							   get_rel_name(other), get_rel_name(rel)),
					 errhint("Remove that inheritance (ALTER TABLE ... NO INHERIT), or train with auto_unlearn => false.")));
	}
	if (has_superclass(relid))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("automatic unlearning cannot follow \"%s\": it is a partition or inheritance child",
						get_rel_name(relid)),
				 errdetail("Rows deleted through the table above it would not be captured."),
				 errhint("Train on the table at the top, or with auto_unlearn => false.")));
	unlearn_check_table_tree(relid, NoLock);
}

/*
 * Errors (42809) unless relid and every relation below it are tables: the
 * capture's condition, and the worker's before it reads a model's rows (a
 * view, made of a table once its capture was off, or a foreign table would
 * run code of their owners in the worker's session).  lockmode (NoLock:
 * none) is taken on each first and held to the end of the transaction, so
 * that none becomes a view before the caller reads it.
 */
void
unlearn_check_table_tree(Oid relid, LOCKMODE lockmode)
{
	ListCell   *lc;

	if (lockmode != NoLock)
		LockRelationOid(relid, lockmode);
	foreach(lc, find_all_inheritors(relid, lockmode, NULL))
	{
		Oid			rel = lfirst_oid(lc);
		char		relkind = get_rel_relkind(rel);

		if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 rel == relid ?
					 errmsg("automatic unlearning needs a table, and \"%s\" is not one", get_rel_name(rel)) :
					 errmsg("automatic unlearning needs tables, and \"%s\" below \"%s\" is not one",
							get_rel_name(rel), get_rel_name(relid)),
					 errhint("Train with auto_unlearn => false and call unlearn_rows yourself.")));
	}
}

/* Runs one utility statement (caller elevated), erroring if it fails. */
static void
run_utility(const char *sql)
{
	if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not run: %s", sql)));
}

/*
 * Installs the triggers on one table: statement-level capture of DELETE and
 * UPDATE and the TRUNCATE guard, ENABLE ALWAYS so that they fire under
 * session_replication_role = replica too, and on a leaf table the row-level
 * capture of logical replication apply, ENABLE REPLICA: it fires in replica
 * mode only, so an ordinary DELETE queues no event for it and evaluates no
 * WHEN clause (whose parse and plan per statement cost a single-row DELETE
 * about 5 % of its time).
 */
static void
install_on_table(Oid relid)
{
	char	   *rel = unlearn_qualified_name(relid);

	run_utility(psprintf("CREATE OR REPLACE TRIGGER unlearn_capture_delete AFTER DELETE ON %s"
						 " REFERENCING OLD TABLE AS unlearn_old"
						 " FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture()", rel));
	run_utility(psprintf("CREATE OR REPLACE TRIGGER unlearn_capture_update AFTER UPDATE ON %s"
						 " REFERENCING OLD TABLE AS unlearn_old NEW TABLE AS unlearn_new"
						 " FOR EACH STATEMENT EXECUTE FUNCTION unlearn.capture()", rel));
	run_utility(psprintf("CREATE OR REPLACE TRIGGER unlearn_guard_truncate BEFORE TRUNCATE ON %s"
						 " FOR EACH STATEMENT EXECUTE FUNCTION unlearn.guard_truncate()", rel));
	run_utility(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER unlearn_capture_delete,"
						 " ENABLE ALWAYS TRIGGER unlearn_capture_update,"
						 " ENABLE ALWAYS TRIGGER unlearn_guard_truncate", rel));
	/*
	 * logical replication apply fires row triggers only (capture_apply.c);
	 * rows live in leaf tables.  An installation still at version 0.1 (the
	 * library updated, ALTER EXTENSION not yet run) lacks the function.
	 */
	if (get_rel_relkind(relid) != RELKIND_RELATION ||
		!OidIsValid(LookupFuncName(list_make2(makeString("unlearn"), makeString("capture_row")),
								   0, NULL, true)))
		return;
	run_utility(psprintf("CREATE OR REPLACE TRIGGER unlearn_capture_apply AFTER DELETE OR UPDATE ON %s"
						 " FOR EACH ROW EXECUTE FUNCTION unlearn.capture_row()", rel));
	run_utility(psprintf("ALTER TABLE %s ENABLE REPLICA TRIGGER unlearn_capture_apply", rel));
}

/*
 * Our triggers on relid (those matching cond, an SQL condition on
 * pg_trigger added as is): (tgname, is the apply capture), n of them.
 * Caller connected to SPI (elevated).
 */
static SPITupleTable *
our_triggers_on(Oid relid, const char *cond, uint64 *n)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};

	if (SPI_execute_with_args(psprintf("SELECT tgname, tgname = 'unlearn_capture_apply' FROM pg_catalog.pg_trigger"
									   " WHERE tgrelid = $1 AND tgname IN " UNLEARN_TRIGGER_NAMES_SQL "%s", cond),
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_trigger");
	*n = SPI_processed;
	return SPI_tuptable;
}

/*
 * Puts our triggers on relid back into their modes (ALWAYS; the row capture
 * of replication apply REPLICA) after an ENABLE TRIGGER [ALL | USER], which
 * sets ORIGIN, as the caller (the table's owner, who ran it): a data-only
 * restore with --disable-triggers runs one before unlearn.models is loaded,
 * when no guard stops it, and in ORIGIN mode our triggers do not fire under
 * session_replication_role = replica.
 */
void
unlearn_reassert_trigger_modes(Oid relid)
{
	UnlearnCatalogUser saved;
	char	   *rel = unlearn_qualified_name(relid);
	SPITupleTable *wrong;
	uint64		n;

	/* step 1: ours not in their modes, read with the catalog owner's pinned search_path */
	unlearn_become_catalog_owner(&saved);
	wrong = our_triggers_on(relid, " AND tgenabled <> CASE tgname WHEN 'unlearn_capture_apply' THEN 'R' ELSE 'A' END",
							&n);
	unlearn_restore_user(&saved);
	/* step 2: set back by the caller, the table's owner (who just ran ENABLE TRIGGER), the guard off */
	unlearn_installing_capture = true;
	PG_TRY();
	{
		for (uint64 i = 0; i < n; i++)
			run_utility(psprintf("ALTER TABLE %s ENABLE %s TRIGGER %s", rel,
								 strcmp(SPI_getvalue(wrong->vals[i], wrong->tupdesc, 2), "t") == 0 ? "REPLICA" : "ALWAYS",
								 quote_identifier(SPI_getvalue(wrong->vals[i], wrong->tupdesc, 1))));
	}
	PG_FINALLY();
	{
		unlearn_installing_capture = false;
	}
	PG_END_TRY();
}

/*
 * Installs the capture and guard triggers on a training table and on every
 * partition or inheritance child below it (a DELETE addressed to a partition
 * fires only the partition's statement triggers).  Idempotent.
 */
void
unlearn_install_capture(Oid relid)
{
	unlearn_check_capture_allowed(relid);
	unlearn_install_capture_as_owner(relid);
}

/* The same without the caller's TRIGGER check (a new partition of a training table). */
void
unlearn_install_capture_as_owner(Oid relid)
{
	UnlearnCatalogUser saved;
	ListCell   *lc;

	check_capturable(relid);
	unlearn_become_catalog_owner(&saved);
	/* our own DDL fires the event triggers again: they must not re-enter */
	unlearn_installing_capture = true;
	PG_TRY();
	{
		foreach(lc, find_all_inheritors(relid, NoLock, NULL))
			install_on_table(lfirst_oid(lc));
	}
	PG_FINALLY();
	{
		unlearn_installing_capture = false;
	}
	PG_END_TRY();
	unlearn_restore_user(&saved);
}

PG_FUNCTION_INFO_V1(unlearn_install_capture_sql);
/* unlearn.install_capture(regclass): (re)installs the triggers (upgrade scripts). */
Datum
unlearn_install_capture_sql(PG_FUNCTION_ARGS)
{
	SPI_connect();
	unlearn_install_capture(PG_GETARG_OID(0));
	SPI_finish();
	PG_RETURN_VOID();
}

/* Set while we drop our own triggers, so the DROP guard lets them go. */
bool		unlearn_dropping_own_triggers = false;

/* Set while we install them, so the DDL event triggers do not re-enter. */
bool		unlearn_installing_capture = false;

/* Drops our triggers from one table (caller elevated, connected to SPI). */
static void
remove_from_table(Oid relid)
{
	char	   *rel = unlearn_qualified_name(relid);
	uint64		n;
	SPITupleTable *triggers = our_triggers_on(relid, "", &n);

	unlearn_dropping_own_triggers = true;
	PG_TRY();
	{
		for (uint64 i = 0; i < n; i++)
			run_utility(psprintf("DROP TRIGGER %s ON %s",
								 quote_identifier(SPI_getvalue(triggers->vals[i], triggers->tupdesc, 1)), rel));
	}
	PG_FINALLY();
	{
		unlearn_dropping_own_triggers = false;
	}
	PG_END_TRY();
}

/*
 * Names of the models trained on relid or on a table above it (partitioned
 * parent, inheritance parent), quoted and comma-separated, or NULL.  Only
 * those with automatic unlearning on when auto_only.  Read under the latest
 * snapshot, whatever the isolation level: the models committed by now (a
 * training that held a lock the caller waited for) and this transaction's.
 * Caller connected to SPI.
 */
char *
unlearn_models_above(Oid relid, bool auto_only)
{
	Oid			argtypes[2] = {OIDOID, BOOLOID};
	Datum		args[2] = {ObjectIdGetDatum(relid), BoolGetDatum(auto_only)};
	UnlearnCatalogUser saved;
	char	   *names = NULL;

	unlearn_become_catalog_owner(&saved);
	if (unlearn_catalog_execute_latest(UNLEARN_ANCESTORS_CTE
									   " SELECT string_agg(quote_literal(name), ', ' ORDER BY name) FROM unlearn.models"
									   " WHERE relation::oid IN (SELECT r FROM up) AND (auto_unlearn OR NOT $2)",
									   2, argtypes, args, 0) != SPI_OK_SELECT)
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
	return names;
}

/*
 * Drops the triggers from the tables of relid's tree that no model with
 * automatic unlearning on trains on any more (itself or a table above it).
 * A training with automatic unlearning holds SHARE ROW EXCLUSIVE on its
 * tables from its read to its commit, and its model is not visible before:
 * a table that looks unused is locked so first, then looked at again, so
 * the triggers that model installed stay.
 */
void
unlearn_remove_capture_if_unused(Oid relid)
{
	UnlearnCatalogUser saved;
	ListCell   *lc;

	if (get_rel_name(relid) == NULL)
		return;
	unlearn_become_catalog_owner(&saved);
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			rel = lfirst_oid(lc);

		if (unlearn_models_above(rel, true) != NULL)
			continue;
		/* step 1: wait for a training still installing its triggers here */
		LockRelationOid(rel, ShareRowExclusiveLock);
		/* step 2: unused still (its model, committed meanwhile, is seen now) */
		if (unlearn_models_above(rel, true) == NULL)
			remove_from_table(rel);
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
	Oid			relid;			/* the model's table (this one or one above it) */
	SPIPlanPtr	plan;			/* NULL: queued by the writer (a DELETE, an array model) */
	UnlearnRowColumns cols;		/* the writer's: where the table holds the model's columns */
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

/* Type of column `name` of a trigger's relation, or InvalidOid if it has none. */
static Oid
column_type(Relation rel, const char *name)
{
	int			att = unlearn_desc_attnum(RelationGetDescr(rel), name);

	return att ? TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid : InvalidOid;
}

/* Errors (55000) about a model column of the table being changed that no longer matches. */
static void
column_mismatch(Relation rel, const char *model, const char *column)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("column \"%s\" of table \"%s\" no longer matches model \"%s\"",
					column, RelationGetRelationName(rel), model),
			 errdetail("Deleted rows cannot be queued for unlearning, so the change is refused."),
			 errhint("Restore the column, or drop the model with unlearn_drop_model().")));
}

/* Errors unless each input column of a column model still has the type it was trained with. */
static void
check_input_columns(Relation rel, const char *model, Datum columns, Datum types)
{
	Datum	   *names,
			   *typs;
	int			n,
				nt;

	deconstruct_array(DatumGetArrayTypeP(columns), TEXTOID, -1, false, TYPALIGN_INT, &names, NULL, &n);
	deconstruct_array(DatumGetArrayTypeP(types), OIDOID, 4, true, TYPALIGN_INT, &typs, NULL, &nt);
	if (n != nt)
		column_mismatch(rel, model, "feature_types");
	for (int i = 0; i < n; i++)
	{
		char	   *col = TextDatumGetCString(names[i]);

		if (column_type(rel, col) != DatumGetObjectId(typs[i]))
			column_mismatch(rel, model, col);
	}
}

/*
 * Reads row i of UNLEARN_CAPTURED_MODELS_SQL's result, and errors unless the
 * model's columns in the table being changed still have the types it was
 * trained with (built-in, or the enum and domain types of a column model).
 * The capture statement reads them as the catalog owner, so a column of
 * another type (whose casts or operators a user may have written) must
 * never reach it.
 */
void
unlearn_captured_model(Relation rel, SPITupleTable *models, uint64 i, UnlearnCapturedModel *out)
{
	HeapTuple	tup = models->vals[i];
	TupleDesc	td = models->tupdesc;
	bool		isnull;
	Oid			id_type;
	Datum		columns;

	out->name = SPI_getvalue(tup, td, 1);
	out->id = SPI_getvalue(tup, td, 2);
	out->feat = SPI_getvalue(tup, td, 3);
	out->label = SPI_getvalue(tup, td, 4);
	out->label_type = DatumGetObjectId(SPI_getbinval(tup, td, 5, &isnull));
	out->relid = DatumGetObjectId(SPI_getbinval(tup, td, 6, &isnull));
	columns = SPI_getbinval(tup, td, 7, &isnull);

	id_type = column_type(rel, out->id);
	if (!unlearn_is_int_type(id_type))
		column_mismatch(rel, out->name, out->id);
	if (out->feat == NULL && isnull)
		column_mismatch(rel, out->name, "feature_columns");
	if (out->feat != NULL && column_type(rel, out->feat) != FLOAT4ARRAYOID &&
		column_type(rel, out->feat) != FLOAT8ARRAYOID)
		column_mismatch(rel, out->name, out->feat);
	if (out->feat == NULL)
		check_input_columns(rel, out->name, columns, SPI_getbinval(tup, td, 8, &isnull));
	if (column_type(rel, out->label) != out->label_type)
		column_mismatch(rel, out->name, out->label);
}

/*
 * True if unlearn.real_features exists: an installation still at version
 * 0.1 (the library updated, ALTER EXTENSION not yet run) copies a double
 * precision[] column with the cast to real[] instead.
 */
static bool
has_real_features(void)
{
	Oid			argtypes[1] = {FLOAT8ARRAYOID};

	return OidIsValid(LookupFuncName(list_make2(makeString("unlearn"), makeString("real_features")),
									 1, argtypes, true));
}

/*
 * Builds (or rebuilds) the entry of a table and event: one prepared
 * statement per model trained on the table or on a table above it, with
 * automatic unlearning on.  SPI connected, transition tables registered,
 * caller elevated.
 */
static CaptureEntry *
capture_entry(Relation rel, bool is_update)
{
	Oid			relid = RelationGetRelid(rel);
	CaptureEntry *e = NULL;
	uint64		generation = unlearn_catalog_generation();
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(relid)};
	SPITupleTable *models;
	uint64		n_models;
	MemoryContext old;
	SPIPlanPtr	plan;

	if (!capture_callback_registered)
	{
		CacheRegisterRelcacheCallback(capture_relcache_callback, (Datum) 0);
		capture_callback_registered = true;
	}
	/* step 1: a valid cached entry is used as is */
	for (int i = 0; i < capture_cache_used; i++)
		if (capture_cache[i].relid == relid && capture_cache[i].is_update == is_update)
			e = &capture_cache[i];
	if (e && e->valid && e->generation == generation && generation != 0)
		return e;
	/* step 2: a slot for the entry (the cache is emptied when full) */
	if (e == NULL)
	{
		if (capture_cache_used == CAPTURE_CACHE_SIZE)
		{
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

	/*
	 * step 3: the models of this table and of the tables above it, as
	 * committed now (not as this statement's or transaction's snapshot saw
	 * them: the entry is stamped with the current generation)
	 */
	plan = SPI_prepare(UNLEARN_CAPTURED_MODELS_SQL, 1, argtypes);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	models = SPI_tuptable;
	n_models = SPI_processed;
	old = MemoryContextSwitchTo(TopMemoryContext);
	e->models = palloc0(sizeof(CaptureModel) * Max(n_models, 1));
	MemoryContextSwitchTo(old);
	/*
	 * step 4: check each model's column types, then note where its columns
	 * are (the DELETE of an array model: the writer queues it) or prepare its
	 * statement (an UPDATE; a column model, whose rows unlearn.encode_row
	 * encodes)
	 */
	for (uint64 i = 0; i < n_models; i++)
	{
		Oid			ptypes[3] = {TEXTOID, TEXTOID, INT8ARRAYOID};
		UnlearnCapturedModel m;

		unlearn_captured_model(rel, models, i, &m);
		e->models[i].name = MemoryContextStrdup(TopMemoryContext, m.name);
		e->models[i].relid = m.relid;
		e->n_models = (int) i + 1;
		if (!is_update && m.feat != NULL)
		{
			unlearn_capture_columns(RelationGetDescr(rel), &m, &e->models[i].cols);
			continue;
		}
		plan = SPI_prepare(unlearn_queue_capture_sql(is_update, quote_identifier(m.id),
													 m.feat ? quote_identifier(m.feat) : NULL,
													 m.feat && column_type(rel, m.feat) == FLOAT8ARRAYOID &&
													 has_real_features(),
													 quote_identifier(m.label), type_is_collatable(m.label_type)),
						   3, ptypes);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the capture of model \"%s\": %s",
				 m.name, SPI_result_code_string(SPI_result));
		e->models[i].plan = plan;
	}
	e->generation = generation;
	e->valid = true;
	return e;
}

/*
 * Errors unless this is one of the capture triggers we installed, with our
 * transition-table names: the statement we run as the catalog owner names
 * them, and a trigger a user made with other names would let those names
 * resolve to the user's own relations.
 */
static void
check_our_trigger(TriggerData *trigdata)
{
	Trigger    *tg = trigdata->tg_trigger;
	bool		is_update = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event);
	const char *name = is_update ? "unlearn_capture_update" : "unlearn_capture_delete";

	if (strcmp(tg->tgname, name) != 0 || tg->tgoldtable == NULL ||
		strcmp(tg->tgoldtable, "unlearn_old") != 0 || trigdata->tg_oldtable == NULL ||
		(is_update && (tg->tgnewtable == NULL || strcmp(tg->tgnewtable, "unlearn_new") != 0 ||
					   trigdata->tg_newtable == NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.capture() may only run as the trigger unlearn installs"),
				 errhint("Use unlearn_auto(model, true) to install the capture triggers.")));
}

/* The ids of an int8[] sorted, for is_suppressed. */
static int64 *
sorted_ids(Datum ids, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int64	   *out;

	deconstruct_array(DatumGetArrayTypeP(ids), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
	out = palloc(sizeof(int64) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		Assert(!nulls[i]);		/* unlearning's ids are checked */
		out[i] = DatumGetInt64(elems[i]);
	}
	qsort(out, *n, sizeof(int64), unlearn_cmp_int64);
	return out;
}

/* True if id is one of the sorted ids (id <> ALL(ids) is false). */
static bool
is_suppressed(int64 id, const int64 *ids, int n)
{
	return n > 0 && bsearch(&id, ids, n, sizeof(int64), unlearn_cmp_int64) != NULL;
}

/*
 * Queues a forget request with the writer per row of the DELETE's
 * transition table that the model could have learned and unlearning is not
 * deleting itself (suppress, an int8[]), as the INSERT ... SELECT of
 * unlearn_queue_capture_sql would; how many.
 */
static uint64
queue_deleted_rows(TriggerData *trigdata, const CaptureModel *m, Datum suppress, UnlearnQueueWriter *w)
{
	Tuplestorestate *ts = trigdata->tg_oldtable;
	TupleDesc	desc = RelationGetDescr(trigdata->tg_relation);
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	MemoryContext rowcxt = AllocSetContextCreate(CurrentMemoryContext, "unlearn capture row",
												 ALLOCSET_DEFAULT_SIZES);
	int			n_skip;
	int64	   *skip = sorted_ids(suppress, &n_skip);
	uint64		queued = 0;

	/* step 1: a read pointer of our own over the transition table, from its start */
	tuplestore_select_read_pointer(ts, tuplestore_alloc_read_pointer(ts, EXEC_FLAG_REWIND));
	tuplestore_rescan(ts);
	/* step 2: each row, in a memory context reset per row */
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		MemoryContext old = MemoryContextSwitchTo(rowcxt);
		bool		should_free;
		HeapTuple	tup = ExecFetchSlotHeapTuple(slot, false, &should_free);
		UnlearnCapturedRow row;

		if (unlearn_capture_read_row(desc, tup, &m->cols, &row) && !is_suppressed(row.id, skip, n_skip))
		{
			unlearn_queue_writer_put(w, m->name, "forget", row.id, row.label, NULL, row.features);
			queued++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(rowcxt);
	}
	tuplestore_select_read_pointer(ts, 0);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(rowcxt);
	return queued;
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
	Datum		args[3];
	Datum		no_ids = PointerGetDatum(construct_empty_array(INT8OID));
	char	   *requested_by;
	UnlearnQueueWriter *writer = NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.capture() must be a statement-level trigger")));
	check_our_trigger(trigdata);
	requested_by = GetUserNameFromId(GetUserId(), false);
	args[1] = CStringGetTextDatum(requested_by);

	SPI_connect();
	if (SPI_register_trigger_data(trigdata) != SPI_OK_TD_REGISTER)
		elog(ERROR, "could not register the transition tables");
	unlearn_become_catalog_owner(&saved);
	e = capture_entry(trigdata->tg_relation, TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event));
	for (int i = 0; i < e->n_models; i++)
	{
		/* the rows unlearning itself deletes are not queued again for the model that unlearns them */
		args[2] = unlearn_suppress_capture.model != NULL &&
			strcmp(unlearn_suppress_capture.model, e->models[i].name) == 0 ?
			unlearn_suppress_capture.ids : no_ids;
		if (!unlearn_lock_model_row(e->models[i].name, e->models[i].relid))
			continue;			/* dropped since the entry was built */
		if (e->models[i].plan == NULL)
		{
			/* a DELETE of an array model: the writer, no statement */
			if (writer == NULL)
				writer = unlearn_queue_writer_open(requested_by);
			if (queue_deleted_rows(trigdata, &e->models[i], args[2], writer) > 0)
				unlearn_note_queued();
			continue;
		}
		args[0] = CStringGetTextDatum(e->models[i].name);
		if (SPI_execute_plan(e->models[i].plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not queue unlearning requests");
		if (SPI_processed > 0)
			unlearn_note_queued();
	}
	if (writer)
		unlearn_queue_writer_close(writer);
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
	/* locked, and checked as it is once locked (a model of the name made since by another role is not ours) */
	model = unlearn_open_model_for_change(name, "change", 0);
	if (enabled)
		unlearn_install_capture(model->relid);
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("UPDATE unlearn.models SET auto_unlearn = $2,"
							  " auto_options = coalesce($3, auto_options) WHERE name = $1",
							  3, argtypes, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not update model \"%s\"", name);
	unlearn_restore_user(&saved);
	/* off: the triggers go where no other model needs them (TRUNCATE and DROP of partitions are the user's) */
	if (!enabled)
		unlearn_remove_capture_if_unused(model->relid);
	unlearn_close_model_change();
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
		int64		open;

		unlearn_become_catalog_owner(&saved);
		open = unlearn_queue_count_open(name);
		unlearn_restore_user(&saved);
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
	uint64		n;

	SPI_connect();
	model = unlearn_open_model_for_change(name, "retry requests for", 0);
	unlearn_become_catalog_owner(&saved);
	n = unlearn_queue_retry_failed(model->name);
	unlearn_restore_user(&saved);
	unlearn_close_model_change();
	SPI_finish();
	if (n > 0)
		unlearn_note_queued();
	PG_RETURN_INT64((int64) n);
}
