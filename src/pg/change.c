/*
 * change.c: what every change of a model shares: opening it (ownership,
 * the table privilege the change needs, the lock on its catalog row, a
 * snapshot taken after the lock), its manifest and its next version number.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "unlearn_pg.h"

/*
 * Locks the model's catalog row (as the catalog owner) with a row-lock
 * clause; errors (42704) if the model is gone.
 */
static void
lock_model_row(const char *name, const char *clause)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args(psprintf("SELECT 1 FROM unlearn.models WHERE name = $1 %s", clause),
								1, argtypes, args, NULL, false, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not lock model \"%s\"", name)));
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
}

/*
 * Locks the model's catalog row so that changes of one model (unlearning
 * calls, the worker's runs) happen one at a time.  NO KEY UPDATE: it does not
 * block the key-share locks of the capture.
 */
void
unlearn_lock_model(const char *name)
{
	lock_model_row(name, "FOR NO KEY UPDATE");
}

/* Ends what unlearn_open_model_for_change or _for_drop began (its snapshot). */
void
unlearn_close_model_change(void)
{
	PopActiveSnapshot();
}

/* Errors unless the current user owns the model and has the table privilege the change needs (or 0). */
static void
check_change(const UnlearnModel *model, const char *action, AclMode table_privilege)
{
	unlearn_check_owner(model, action);
	if (table_privilege != 0 &&
		pg_class_aclcheck(model->relid, GetUserId(), table_privilege) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(model->relid)),
				 errdetail("%s rows of model \"%s\" changes its training table and needs %s on it.",
						   table_privilege == ACL_DELETE ? "Unlearning" : "Relabelling", model->name,
						   table_privilege == ACL_DELETE ? "DELETE" : "UPDATE")));
}

/*
 * Checks, locks and looks a model up again under a snapshot taken after the
 * lock (READ COMMITTED; under a transaction snapshot the lock itself already
 * failed on an update), and checks it again: while we waited, another call
 * may have made a new version, or dropped the model and another role made
 * one of the same name, and what is changed is the row now locked.
 * unlearn_close_model_change() pops the snapshot.
 */
static UnlearnModel *
open_model(const char *name, const char *action, AclMode table_privilege, const char *lock_clause)
{
	UnlearnModel *model = unlearn_model_lookup(name, false);

	/* step 1: the checks before the wait: a role without the rights never waits for the lock */
	check_change(model, action, table_privilege);
	/* step 2: the lock */
	lock_model_row(name, lock_clause);
	/* step 3: the row as it is now, checked again */
	PushActiveSnapshot(GetTransactionSnapshot());
	model = unlearn_model_lookup(name, false);
	check_change(model, action, table_privilege);
	return model;
}

/*
 * Opens a model for a change (ACL_DELETE, ACL_UPDATE or 0: the table
 * privilege it needs); returns its catalog row as locked.
 */
UnlearnModel *
unlearn_open_model_for_change(const char *name, const char *action, AclMode table_privilege)
{
	return open_model(name, action, table_privilege, "FOR NO KEY UPDATE");
}

/*
 * Opens a model to drop it: FOR UPDATE, which also waits for the
 * transactions whose capture key-share locked the row (still queueing
 * requests for the model).
 */
UnlearnModel *
unlearn_open_model_for_drop(const char *name)
{
	return open_model(name, "drop", 0, "FOR UPDATE");
}

/* The sorted manifest of a version. */
int64 *
unlearn_load_manifest(const UnlearnModel *model, int version, int64 *n_out)
{
	Oid			argtypes[2] = {TEXTOID, INT4OID};
	Datum		args[2] = {CStringGetTextDatum(model->name), Int32GetDatum(version)};
	UnlearnCatalogUser saved;
	bool		isnull;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	ret = SPI_execute_with_args("SELECT ids FROM unlearn.manifests WHERE model = $1 AND version = $2",
								2, argtypes, args, NULL, true, 1);
	unlearn_restore_user(&saved);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("manifest of version %d of model \"%s\" is missing", version, model->name)));
	return unlearn_catalog_ids(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							   "manifest", model->name, version, n_out);
}

/* Next free version number of a model (caller holds the model lock). */
int
unlearn_next_version(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args("SELECT max(version) FROM unlearn.versions WHERE model = $1",
								1, argtypes, args, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read unlearn.versions");
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) + 1;
}
