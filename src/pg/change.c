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
 * Locks the model's catalog row (as the catalog owner) so that changes of one
 * model (unlearning calls, the worker's runs) happen one at a time.
 */
void
unlearn_lock_model(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1] = {CStringGetTextDatum(name)};
	UnlearnCatalogUser saved;
	int			ret;

	unlearn_become_catalog_owner(&saved);
	/* NO KEY UPDATE: serialises changes of the model without blocking key-share locks */
	ret = SPI_execute_with_args("SELECT 1 FROM unlearn.models WHERE name = $1 FOR NO KEY UPDATE",
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

/* Ends what unlearn_open_model_for_change began (its snapshot). */
void
unlearn_close_model_change(void)
{
	PopActiveSnapshot();
}

/*
 * Looks up, checks ownership of (and the table privilege the change needs:
 * ACL_DELETE, ACL_UPDATE or 0), and locks a model; returns its fresh catalog row.
 */
UnlearnModel *
unlearn_open_model_for_change(const char *name, const char *action, AclMode table_privilege)
{
	UnlearnModel *model = unlearn_model_lookup(name, false);

	unlearn_check_owner(model, action);
	if (table_privilege != 0 &&
		pg_class_aclcheck(model->relid, GetUserId(), table_privilege) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(model->relid)),
				 errdetail("%s rows of model \"%s\" changes its training table and needs %s on it.",
						   table_privilege == ACL_DELETE ? "Unlearning" : "Relabelling", name,
						   table_privilege == ACL_DELETE ? "DELETE" : "UPDATE")));
	unlearn_lock_model(name);

	/*
	 * A concurrent call may have made a new version while we waited for the
	 * lock.  Everything read from here on (model, manifest, weights, ledger)
	 * uses a snapshot taken after the lock (READ COMMITTED; under a
	 * transaction snapshot the lock itself already failed on the update):
	 * unlearn_close_model_change() pops it.
	 */
	PushActiveSnapshot(GetTransactionSnapshot());
	return unlearn_model_lookup(name, false);
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
