/*
 * guard.c: what keeps deletions from bypassing the capture triggers.
 *
 * A model must hear of every row that leaves its table.  Row deletes are
 * captured by capture.c; the ways around that are refused here with a hint:
 * TRUNCATE, DROP of a training table or of a table below it, DETACH PARTITION
 * or NO INHERIT of such a table, renaming, retyping or dropping a model's
 * columns, and disabling, renaming or dropping our triggers.  New partitions
 * of a training table get the capture triggers as they are created.
 */
#include "postgres.h"

#include "commands/extension.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"

#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "unlearn_pg.h"

/* Our triggers as install_on_table (capture.c) creates them. */
typedef struct OurTrigger
{
	const char *name;
	const char *func;			/* in schema unlearn, no arguments */
	bool		row;
	int16		timing;
	int16		events;
	const char *old_table;		/* REFERENCING OLD TABLE AS, or NULL */
	const char *new_table;		/* REFERENCING NEW TABLE AS, or NULL */
} OurTrigger;

static const OurTrigger our_triggers[] = {
	{"unlearn_capture_delete", "capture", false, TRIGGER_TYPE_AFTER, TRIGGER_TYPE_DELETE, "unlearn_old", NULL},
	{"unlearn_capture_update", "capture", false, TRIGGER_TYPE_AFTER, TRIGGER_TYPE_UPDATE, "unlearn_old", "unlearn_new"},
	{"unlearn_guard_truncate", "guard_truncate", false, TRIGGER_TYPE_BEFORE, TRIGGER_TYPE_TRUNCATE, NULL, NULL},
	{"unlearn_capture_apply", "capture_row", true, TRIGGER_TYPE_AFTER, TRIGGER_TYPE_DELETE | TRIGGER_TYPE_UPDATE,
	NULL, NULL},
};

/* True if name is one of our trigger names. */
static bool
is_our_trigger(const char *name)
{
	for (int i = 0; name != NULL && i < (int) lengthof(our_triggers); i++)
		if (strcmp(name, our_triggers[i].name) == 0)
			return true;
	return false;
}

/* True if the extension's catalog is there (not while DROP EXTENSION runs). */
static bool
catalog_present(void)
{
	Oid			nsp = get_namespace_oid("unlearn", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("models", nsp));
}

/*
 * True for a superuser in replica mode (session_replication_role = replica):
 * let through, as when our event triggers did not fire there (pg_restore
 * --clean's workaround).  They are ENABLE ALWAYS, so a role merely granted
 * SET on that setting is still guarded.
 */
static bool
guard_waived(void)
{
	return SessionReplicationRole == SESSION_REPLICATION_ROLE_REPLICA && superuser();
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
	SPI_connect();
	names = unlearn_models_above(relid, true);
	if (names != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot truncate \"%s\": it is the training table of model %s",
						get_rel_name(relid), names),
				 errdetail("TRUNCATE fires no row deletes, so the model would silently remember every row."),
				 errhint("DELETE the rows to have them unlearned, drop the model with unlearn_drop_model(),"
						 " or turn automatic unlearning off with unlearn_auto(model, false).")));
	SPI_finish();
	return PointerGetDatum(NULL);
}

/* Refuses a change of relid that would take rows away from models with automatic unlearning on. */
static void
refuse_if_trained(Oid relid, const char *what, const char *hint)
{
	char	   *names = unlearn_models_above(relid, true);

	if (names != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s \"%s\": it holds training rows of model %s", what, get_rel_name(relid), names),
				 errdetail("Its rows would leave the model's table without being unlearned."),
				 errhint("%s", hint)));
}

/*
 * Refuses to put a table whose deletes a model captures below another table:
 * a DELETE addressed to the new parent would fire only the parent's triggers.
 */
static void
refuse_below_another(Oid relid)
{
	char	   *names = unlearn_models_above(relid, true);

	if (names != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot put \"%s\" below another table: it is the training table of model %s",
						get_rel_name(relid), names),
				 errdetail("Rows deleted through the table above it would not be captured."),
				 errhint("Turn automatic unlearning off with unlearn_auto(model, false) first, or drop the model.")));
}

/* True if the column is one a model of relid's tree reads (id, features or label), as committed now. */
static bool
is_model_column(Oid relid, const char *column)
{
	Oid			argtypes[2] = {OIDOID, TEXTOID};
	Datum		args[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(column)};
	UnlearnCatalogUser saved;
	bool		found;

	unlearn_become_catalog_owner(&saved);
	/* the table, the tables above it and below it: a rename on a parent reaches its partitions */
	if (unlearn_catalog_execute_latest(psprintf(UNLEARN_ANCESTORS_CTE
												", down(r) AS (SELECT $1::oid UNION"
												"  SELECT i.inhrelid FROM pg_catalog.pg_inherits i JOIN down ON i.inhparent = down.r)"
												" SELECT 1 FROM unlearn.models WHERE (relation::oid IN (SELECT r FROM up)"
												"   OR relation::oid IN (SELECT r FROM down))"
												"  AND ($2 IN (id_column::text, features_column::text, label_column::text)%s)",
												unlearn_catalog_has_column_models() ?
												" OR $2 OPERATOR(pg_catalog.=) ANY (feature_columns::text[])" : ""),
									   2, argtypes, args, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	found = SPI_processed > 0;
	unlearn_restore_user(&saved);
	return found;
}

/* Refuses a rename, retype or drop of a model's column. */
static void
guard_column(Oid relid, const char *column, const char *what)
{
	if (column != NULL && is_model_column(relid, column))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot %s column \"%s\" of \"%s\": a model reads it", what, column, get_rel_name(relid)),
				 errdetail("The model's captured deletes and its retraining read this column by name and type."),
				 errhint("Drop the model with unlearn_drop_model() first, or keep the column as it is.")));
}

/* Refuses a change of our triggers' state (disable, or enable in another mode). */
static void
guard_trigger_state(Oid relid, const char *trigger)
{
	if (trigger == NULL || is_our_trigger(trigger))
		if (unlearn_models_above(relid, true) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("cannot change the unlearn triggers of \"%s\"", get_rel_name(relid)),
					 errdetail("Without them deleted rows would not reach the model."),
					 errhint("Turn automatic unlearning off with unlearn_auto(model, false) instead.")));
}

/*
 * The table an ATTACH or DETACH PARTITION names, found and locked as
 * PostgreSQL will (found again under the lock: a table renamed onto the
 * name while waiting, or a training committing meanwhile, is what is
 * checked); InvalidOid if there is none (PostgreSQL then refuses).
 */
static Oid
lock_partition(AlterTableCmd *cmd)
{
	PartitionCmd *pc = (PartitionCmd *) cmd->def;

	return RangeVarGetRelidExtended(pc->name, pc->concurrent ? ShareUpdateExclusiveLock : AccessExclusiveLock,
									RVR_MISSING_OK, NULL, NULL);
}

/* Checks one ALTER TABLE subcommand of relid. */
static void
guard_alter_cmd(Oid relid, AlterTableCmd *cmd)
{
	switch (cmd->subtype)
	{
		case AT_AlterColumnType:
			guard_column(relid, cmd->name, "change the type of");
			break;
		case AT_DropColumn:
			guard_column(relid, cmd->name, "drop");
			break;
		case AT_DetachPartition:
		case AT_DetachPartitionFinalize:
			{
				Oid			part = lock_partition(cmd);

				/* a table that is no partition of this one: PostgreSQL refuses it with its own message */
				if (OidIsValid(part) && get_rel_relispartition(part) && get_partition_parent(part, true) == relid)
					refuse_if_trained(part, "detach", "DELETE its rows first (they are unlearned), or drop the"
									  " model with unlearn_drop_model().");
			}
			break;
		case AT_DropInherit:
			refuse_if_trained(relid, "remove the inheritance of",
							  "DELETE its rows first (they are unlearned), or drop the model with"
							  " unlearn_drop_model().");
			break;
		case AT_AddInherit:
			refuse_below_another(relid);
			break;
		case AT_SetUnLogged:
			/* a crash empties an unlogged table without firing a trigger */
			refuse_if_trained(relid, "make unlogged",
							  "Turn automatic unlearning off with unlearn_auto(model, false) first.");
			break;
		case AT_AttachPartition:
			if (get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE)
			{
				Oid			part = lock_partition(cmd);

				if (OidIsValid(part))
					refuse_below_another(part);
			}
			break;
		case AT_EnableReplicaTrig:
			/* the row capture of replication apply is ENABLE REPLICA already (pg_restore sets it so) */
			if (cmd->name != NULL && strcmp(cmd->name, "unlearn_capture_apply") == 0)
				break;
			guard_trigger_state(relid, cmd->name);
			break;
		case AT_EnableTrig:
		case AT_DisableTrig:
			guard_trigger_state(relid, cmd->name);
			break;
		case AT_EnableTrigAll:
		case AT_EnableTrigUser:
		case AT_DisableTrigAll:
		case AT_DisableTrigUser:
			guard_trigger_state(relid, NULL);
			break;
		default:
			break;
	}
}

/* True if the statement's transition tables are exactly the ones given (NULL: none). */
static bool
same_transitions(const CreateTrigStmt *stmt, const char *old_table, const char *new_table)
{
	ListCell   *lc;
	int			n = 0;

	foreach(lc, stmt->transitionRels)
	{
		TriggerTransition *t = lfirst_node(TriggerTransition, lc);
		const char *want = t->isNew ? new_table : old_table;

		if (!t->isTable || want == NULL || strcmp(t->name, want) != 0)
			return false;
		n++;
	}
	return n == (old_table != NULL) + (new_table != NULL);
}

/*
 * True if a plain CREATE TRIGGER defines one of our triggers exactly as we
 * install it (pg_restore re-creating it): same function, timing, events,
 * level and transition tables, and no WHEN, columns, arguments or
 * constraint.
 */
static bool
is_our_definition(const CreateTrigStmt *stmt)
{
	for (int i = 0; i < (int) lengthof(our_triggers); i++)
	{
		const OurTrigger *t = &our_triggers[i];
		Oid			func;

		if (strcmp(stmt->trigname, t->name) != 0)
			continue;
		func = LookupFuncName(list_make2(makeString("unlearn"), makeString((char *) t->func)), 0, NULL, true);
		return !stmt->replace && !stmt->isconstraint && stmt->whenClause == NULL &&
			stmt->columns == NIL && stmt->args == NIL && stmt->row == t->row &&
			stmt->timing == t->timing && stmt->events == t->events &&
			same_transitions(stmt, t->old_table, t->new_table) && OidIsValid(func) &&
			LookupFuncName(stmt->funcname, 0, NULL, true) == func;
	}
	return false;
}

/*
 * Refuses CREATE [OR REPLACE] TRIGGER with one of our names, on a table
 * whose deletes are captured, unless it is exactly our definition (a plain
 * CREATE, as pg_restore re-creates them; our own install runs with the
 * guard off): anything else, even our function with a WHEN or another
 * event, would replace the capture.
 */
static void
guard_create_trigger(CreateTrigStmt *stmt, Oid relid)
{
	if (!is_our_trigger(stmt->trigname) || is_our_definition(stmt))
		return;
	if (OidIsValid(relid))
		guard_trigger_state(relid, stmt->trigname);
}

static List *typed_tables(Oid typrelid);

/*
 * Checks a RENAME (relid: its relation, locked): of a model's column (of a
 * table, or of the tables typed by a composite type), or of our trigger.
 */
static void
guard_rename(RenameStmt *stmt, Oid relid)
{
	if (!OidIsValid(relid) ||
		(stmt->renameType != OBJECT_COLUMN && stmt->renameType != OBJECT_TRIGGER &&
		 stmt->renameType != OBJECT_ATTRIBUTE))
		return;
	if (stmt->renameType == OBJECT_ATTRIBUTE)
	{
		/* ALTER TYPE ... RENAME ATTRIBUTE ... CASCADE renames the typed tables' columns */
		ListCell   *t;

		foreach(t, typed_tables(relid))
		{
			guard_column(lfirst_oid(t), stmt->subname, "rename");
			guard_column(lfirst_oid(t), stmt->newname, "rename a column to");
		}
	}
	else if (stmt->renameType == OBJECT_COLUMN)
	{
		/* a model's column, or another column onto a name a model reads */
		guard_column(relid, stmt->subname, "rename");
		guard_column(relid, stmt->newname, "rename a column to");
	}
	else if (is_our_trigger(stmt->subname))
		guard_trigger_state(relid, stmt->subname);
}

/*
 * The typed tables (CREATE TABLE ... OF) of a composite type's relation,
 * each locked as ALTER TYPE ... CASCADE will lock it (it changes their
 * columns without naming them, and a training on one may be committing:
 * the checks after this read the models as committed by then).
 */
static List *
typed_tables(Oid typrelid)
{
	Oid			type = get_rel_type_id(typrelid);
	List	   *out = NIL;
	ListCell   *t;
	UnlearnCatalogUser saved;

	if (!OidIsValid(type))
		return NIL;
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute_with_args("SELECT oid FROM pg_catalog.pg_class WHERE reloftype = $1",
							  1, (Oid[]) {OIDOID}, (Datum[]) {ObjectIdGetDatum(type)}, NULL, true, 0)
		!= SPI_OK_SELECT)
		elog(ERROR, "could not read pg_class");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		out = lappend_oid(out, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
															   SPI_tuptable->tupdesc, 1, &isnull)));
	}
	unlearn_restore_user(&saved);
	foreach(t, out)
		LockRelationOid(lfirst_oid(t), AccessExclusiveLock);
	return out;
}

/* Checks an ALTER of relid's columns, and of every table typed by it when relid is a composite type. */
static void
guard_alter_cmds(Oid relid, List *cmds)
{
	ListCell   *lc;
	ListCell   *t;

	foreach(lc, cmds)
		guard_alter_cmd(relid, (AlterTableCmd *) lfirst(lc));
	if (get_rel_relkind(relid) != RELKIND_COMPOSITE_TYPE)
		return;
	foreach(t, typed_tables(relid))
		foreach(lc, cmds)
			guard_alter_cmd(lfirst_oid(t), (AlterTableCmd *) lfirst(lc));
}

/*
 * Refuses ALTER TYPE ... RENAME VALUE of an enum a column model reads (or a
 * domain over it): the model learned its categories by their labels, so a
 * renamed label would queue deleted rows as another category.
 */
static void
guard_enum_rename(AlterEnumStmt *stmt)
{
	Oid			enum_type;
	UnlearnCatalogUser saved;
	char	   *model = NULL;

	if (stmt->oldVal == NULL || !unlearn_catalog_has_column_models())
		return;					/* ADD VALUE: a new category is an unseen one, harmless */
	enum_type = typenameTypeId(NULL, makeTypeNameFromNameList(stmt->typeName));
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute("SELECT m.name, t.t FROM unlearn.models m,"
					" pg_catalog.unnest(m.feature_types::pg_catalog.oid[]) t(t) ORDER BY 1", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	for (uint64 i = 0; i < SPI_processed && model == NULL; i++)
	{
		bool		isnull;

		if (getBaseType(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)))
			== enum_type)
			model = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
	}
	unlearn_restore_user(&saved);
	if (model)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot rename value \"%s\" of enum %s: model \"%s\" reads it as a category",
						stmt->oldVal, format_type_be(enum_type), model),
				 errdetail("The model learned the categories by their labels; deleted rows would be queued as another category."),
				 errhint("Add a new value instead, or drop the model with unlearn_drop_model() first.")));
}

/*
 * Set at ddl_command_start of a command that may put a table below another
 * (CREATE TABLE ... PARTITION OF / INHERITS, ATTACH PARTITION, INHERIT), so
 * that ddl_command_end installs capture triggers then and only then (not, for
 * example, while pg_restore re-creates our triggers one by one).
 */
static bool may_add_child = false;

/* True if the statement may put a table below another (also inside CREATE SCHEMA). */
static bool
adds_child(Node *parsetree)
{
	ListCell   *lc;

	if (IsA(parsetree, CreateSchemaStmt))
	{
		foreach(lc, ((CreateSchemaStmt *) parsetree)->schemaElts)
			if (adds_child(lfirst(lc)))
				return true;
		return false;
	}
	if (IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt))
	{
		CreateStmt *stmt = (CreateStmt *) parsetree;

		return stmt->inhRelations != NIL || stmt->partbound != NULL;
	}
	if (!IsA(parsetree, AlterTableStmt))
		return false;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableType t = ((AlterTableCmd *) lfirst(lc))->subtype;

		if (t == AT_AttachPartition || t == AT_AddInherit)
			return true;
	}
	return false;
}

/* RangeVarGetRelidExtended's callback: refuses (42501) anyone but the relation's owner before the lock. */
static void
owner_before_lock(const RangeVar *rv, Oid relid, Oid oldrelid, void *arg)
{
	if (OidIsValid(relid) && !pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)), rv->relname);
}

/*
 * Takes the lock the command will take on the table it changes, the level
 * PostgreSQL computes for it, before the guard looks: a training with
 * automatic unlearning holds the table from its read until it commits its
 * model and triggers, and a check made before that wait would not see them.
 * Only for the commands the guard checks on a relation; returns it, locked
 * (InvalidOid if missing), found again under the lock as PostgreSQL does (a
 * table renamed onto the name while waiting is the one locked and checked).
 * ALTER and RENAME wait only for their owner: PostgreSQL refuses anyone else
 * before its lock, and so does this, or a mere login role could queue for a
 * lock on any table (pg_authid: every new connection) until refused.
 */
static Oid
lock_target(Node *parsetree)
{
	RangeVar   *rv = NULL;
	LOCKMODE	mode = AccessExclusiveLock;
	bool		owner_only = true;

	if (IsA(parsetree, AlterTableStmt))
	{
		rv = ((AlterTableStmt *) parsetree)->relation;
		mode = AlterTableGetLockLevel(((AlterTableStmt *) parsetree)->cmds);
	}
	else if (IsA(parsetree, RenameStmt))
	{
		RenameStmt *stmt = (RenameStmt *) parsetree;

		if (stmt->renameType == OBJECT_COLUMN || stmt->renameType == OBJECT_TRIGGER ||
			stmt->renameType == OBJECT_ATTRIBUTE)
			rv = stmt->relation;
	}
	else if (IsA(parsetree, CreateTrigStmt))
	{
		/* PostgreSQL itself locks before it checks the TRIGGER privilege */
		rv = ((CreateTrigStmt *) parsetree)->relation;
		mode = ShareRowExclusiveLock;
		owner_only = false;
	}
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelidExtended(rv, mode, RVR_MISSING_OK, owner_only ? owner_before_lock : NULL, NULL);
}

PG_FUNCTION_INFO_V1(unlearn_guard_ddl);
/*
 * Event trigger on ddl_command_start (ALTER TABLE and its kin, ALTER TRIGGER,
 * CREATE TABLE): refuses what loses rows, notes what may add a partition.
 */
Datum
unlearn_guard_ddl(PG_FUNCTION_ARGS)
{
	Node	   *parsetree;
	Oid			relid;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.guard_ddl() must be called as an event trigger")));
	parsetree = ((EventTriggerData *) fcinfo->context)->parsetree;
	if (unlearn_installing_capture || unlearn_dropping_own_triggers || guard_waived() || !catalog_present())
		PG_RETURN_VOID();
	may_add_child = adds_child(parsetree);
	/* step 1: the command's lock, then the catalog as committed by then (and as this transaction left it) */
	relid = lock_target(parsetree);
	PushActiveSnapshot(GetLatestSnapshot());
	/* step 2: the checks, on the relation locked */
	SPI_connect();
	if (IsA(parsetree, CreateTrigStmt))
		guard_create_trigger((CreateTrigStmt *) parsetree, relid);
	else if (IsA(parsetree, RenameStmt))
		guard_rename((RenameStmt *) parsetree, relid);
	else if (IsA(parsetree, AlterTableStmt))
	{
		/* any ALTER ... form: PostgreSQL lets e.g. ALTER VIEW act on a table; ALTER TYPE on typed tables */
		if (OidIsValid(relid))
			guard_alter_cmds(relid, ((AlterTableStmt *) parsetree)->cmds);
	}
	else if (IsA(parsetree, AlterEnumStmt))
		guard_enum_rename((AlterEnumStmt *) parsetree);
	SPI_finish();
	PopActiveSnapshot();
	PG_RETURN_VOID();
}

/* True for an ALTER TABLE that enables triggers (ALL, USER or by name): ours may be left in ORIGIN mode. */
static bool
enables_triggers(Node *parsetree)
{
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return false;
	foreach(lc, ((AlterTableStmt *) parsetree)->cmds)
	{
		AlterTableType t = ((AlterTableCmd *) lfirst(lc))->subtype;

		if (t == AT_EnableTrigAll || t == AT_EnableTrigUser || t == AT_EnableTrig)
			return true;
	}
	return false;
}

/*
 * Our triggers back in their modes on the tables the command altered, as
 * PostgreSQL reports them (not looked up by name again: user code run by the
 * command may have changed what a name means).
 */
static void
reassert_altered_tables(void)
{
	UnlearnCatalogUser saved;
	SPITupleTable *rels;
	uint64		n;

	SPI_connect();
	unlearn_become_catalog_owner(&saved);
	if (SPI_execute("SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands()"
					" WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_event_trigger_ddl_commands()");
	unlearn_restore_user(&saved);
	rels = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		unlearn_reassert_trigger_modes(DatumGetObjectId(SPI_getbinval(rels->vals[i], rels->tupdesc, 1, &isnull)));
	}
	SPI_finish();
}

PG_FUNCTION_INFO_V1(unlearn_guard_ddl_end);
/*
 * Event trigger on ddl_command_end (CREATE TABLE, ALTER TABLE): a new or
 * attached partition (or inheritance child) of a training table gets the
 * capture triggers at once.
 */
Datum
unlearn_guard_ddl_end(PG_FUNCTION_ARGS)
{
	Node	   *parsetree;
	UnlearnCatalogUser saved;
	SPITupleTable *roots;
	uint64		n;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.guard_ddl_end() must be called as an event trigger")));
	parsetree = ((EventTriggerData *) fcinfo->context)->parsetree;
	/* step 1: ENABLE TRIGGER leaves no trigger of ours in ORIGIN mode (a superuser in replica mode too) */
	if (!unlearn_installing_capture && enables_triggers(parsetree) && catalog_present())
		reassert_altered_tables();
	/* step 2: a new child of a training table gets the triggers */
	if (unlearn_installing_capture || !may_add_child || guard_waived() || !catalog_present())
		PG_RETURN_VOID();
	may_add_child = false;
	SPI_connect();
	unlearn_become_catalog_owner(&saved);
	/*
	 * the training tables above (or at) each table the command touched; not
	 * read-only, so the query takes a new snapshot: the statement's own one
	 * does not see the pg_inherits row of the partition it just created
	 */
	if (SPI_execute("WITH RECURSIVE up(r) AS ("
					"  SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands()"
					"   WHERE classid = 'pg_catalog.pg_class'::pg_catalog.regclass UNION"
					"  SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN up ON i.inhrelid = up.r)"
					" SELECT DISTINCT relation::oid FROM unlearn.models"
					" WHERE auto_unlearn AND relation::oid IN (SELECT r FROM up)", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.models");
	roots = SPI_tuptable;
	n = SPI_processed;
	unlearn_restore_user(&saved);
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		unlearn_install_capture_as_owner(DatumGetObjectId(SPI_getbinval(roots->vals[i], roots->tupdesc, 1, &isnull)));
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Runs a query over the catalog as its owner (SPI connected) and copies the
 * first n text values of its first row into out; false if it returns no row.
 */
static bool
first_row_elevated(const char *sql, int n, char **out)
{
	UnlearnCatalogUser saved;
	bool		found;

	unlearn_become_catalog_owner(&saved);
	if (SPI_execute(sql, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not run: %s", sql);
	found = SPI_processed == 1;
	for (int i = 0; found && i < n; i++)
		out[i] = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1));
	unlearn_restore_user(&saved);
	return found;
}

PG_FUNCTION_INFO_V1(unlearn_guard_drop);
/*
 * Event trigger on sql_drop: refuses to drop a training table, or a table
 * below one (a partition), or one of our triggers (unless we drop it).
 */
Datum
unlearn_guard_drop(PG_FUNCTION_ARGS)
{
	char	   *found[2];

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("unlearn.guard_drop() must be called as an event trigger")));
	/*
	 * when the catalog itself is being dropped (DROP EXTENSION) there is
	 * nothing to guard, and our own scripts drop only our own objects (an
	 * upgrade runs before the catalog has the columns the checks read)
	 */
	if (guard_waived() || !catalog_present() ||
		(creating_extension && CurrentExtensionObject == get_extension_oid("unlearn", true)))
		PG_RETURN_VOID();
	/* the catalog as committed by now: a training the DROP's lock waited for has committed */
	PushActiveSnapshot(GetLatestSnapshot());
	SPI_connect();
	/* step 1: a dropped table that a model trains on */
	if (first_row_elevated("SELECT d.object_identity, string_agg(quote_literal(m.name), ', ' ORDER BY m.name)"
						   " FROM pg_catalog.pg_event_trigger_dropped_objects() d"
						   " JOIN unlearn.models m ON m.relation::oid = d.objid"
						   " WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid = 0"
						   " GROUP BY d.object_identity ORDER BY 1 LIMIT 1", 2, found))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop table %s: it is the training table of model %s", found[0], found[1]),
				 errdetail("The model would remember every row with no table left to delete them from."),
				 errhint("Drop the model first with unlearn_drop_model().")));
	/* step 2: a column a model reads, dropped with a type or collation it used (CASCADE) */
	if (first_row_elevated(psprintf("SELECT d.object_identity FROM pg_catalog.pg_event_trigger_dropped_objects() d"
									" JOIN unlearn.models m ON m.relation::oid = d.objid"
									" WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objsubid > 0"
									"   AND (d.address_names[3] IN (m.id_column::text, m.features_column::text,"
									"                               m.label_column::text)%s)"
									" ORDER BY 1 LIMIT 1",
									unlearn_catalog_has_column_models() ?
									" OR d.address_names[3] OPERATOR(pg_catalog.=) ANY (m.feature_columns::text[])" : ""),
						   1, found))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop column %s: a model reads it", found[0]),
				 errdetail("The model's captured deletes and its retraining read this column by name and type."),
				 errhint("Drop the model first with unlearn_drop_model().")));
	/* step 3: our triggers, gone with a partition (not named by the DROP) or alone (DROP TRIGGER) */
	if (!unlearn_dropping_own_triggers &&
		first_row_elevated("SELECT d.object_identity FROM pg_catalog.pg_event_trigger_dropped_objects() d"
						   " WHERE d.object_type = 'trigger' AND d.address_names[3] IN " UNLEARN_TRIGGER_NAMES_SQL
						   " ORDER BY 1 LIMIT 1", 1, found))
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg("cannot drop trigger %s: a model's deletes are captured by it", found[0]),
				 errdetail("Dropping it (or the partition that carries it) would let rows leave without being unlearned."),
				 errhint("Drop the model first with unlearn_drop_model(), or DELETE the partition's rows first"
						 " and then turn automatic unlearning off with unlearn_auto(model, false).")));
	SPI_finish();
	PopActiveSnapshot();
	PG_RETURN_VOID();
}
