/*
 * privilege.c: the only code that changes the user unlearn runs as.
 *
 * Our SQL functions check the caller's rights themselves, then read and
 * write the unlearn.* catalog as its owner; the background worker acts for
 * a model's owner.  Both moves go through here, and both pin search_path and
 * set SECURITY_RESTRICTED_OPERATION for their duration, the way PostgreSQL
 * runs SECURITY DEFINER functions and maintenance commands, and switching
 * back undoes every setting changed meanwhile.  An error while switched is
 * safe: transaction (or subtransaction) abort restores the user and the GUC
 * nest level.
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "privilege.h"

/* Owner of unlearn.models, i.e. of the extension's catalog. */
Oid
unlearn_catalog_owner(void)
{
	Oid			nsp = get_namespace_oid("unlearn", false);
	Oid			relid = get_relname_relid("models", nsp);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("unlearn catalog table unlearn.models is missing"),
				 errhint("Re-create the extension: DROP EXTENSION unlearn; CREATE EXTENSION unlearn.")));
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/* Switches to `role` with a pinned search_path, inside a security-restricted operation. */
void
unlearn_become_role(Oid role, UnlearnCatalogUser *saved)
{
	Assert(OidIsValid(role));
	GetUserIdAndSecContext(&saved->saved_userid, &saved->saved_sec_context);
	/* step 1: a GUC nest level of our own, popped by unlearn_restore_user */
	saved->guc_level = NewGUCNestLevel();
	(void) set_config_option("search_path", UNLEARN_SAFE_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * step 2: no row-level security policy runs: a table's owner could
	 * otherwise run code as the role we act for (reading a table a policy
	 * applies to fails instead)
	 */
	(void) set_config_option("row_security", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * step 2b: no constraint exclusion: the planner would fold the CHECK
	 * constraints of the tables below a table (a function of their owner's,
	 * marked immutable, run as the role we act for)
	 */
	(void) set_config_option("constraint_exclusion", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* step 3: the new identity; restricted, so no session state can be changed under it */
	SetUserIdAndSecContext(role, saved->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
}

/* Switches to the catalog owner so SPI can read and write unlearn.* tables. */
void
unlearn_become_catalog_owner(UnlearnCatalogUser *saved)
{
	unlearn_become_role(unlearn_catalog_owner(), saved);
}

/*
 * Switches back to the caller's identity, security context and settings.
 * Every setting changed while switched is undone, a plain SET or
 * set_config(..., false) too (as PostgreSQL's maintenance commands pop
 * their nest level): code of the role we acted for (the worker reads a
 * model owner's table as the owner, and a view there runs its owner's
 * functions) must leave nothing behind, neither a search_path naming its
 * schema for the worker's own queries as the bootstrap superuser, nor an
 * unlearn.* setting for the runs of other owners' models.
 */
void
unlearn_restore_user(const UnlearnCatalogUser *saved)
{
	Assert(saved->guc_level > 0);
	SetUserIdAndSecContext(saved->saved_userid, saved->saved_sec_context);
	AtEOXact_GUC(false, saved->guc_level);
}

/*
 * Pins the settings of a background worker's session, over what ALTER
 * DATABASE ... SET (a database's owner, not a superuser) gives every
 * session of its database: search_path, since the worker runs as the
 * bootstrap superuser and even its own housekeeping queries must not
 * resolve objects a database owner could create in public; and the
 * settings that would stop the worker for every other owner's models
 * (read-only transactions made it exit at its first write and restart in
 * a loop; a statement timeout fails every run).
 */
void
unlearn_pin_worker_session(void)
{
	static const char *const pins[][2] = {
		{"search_path", UNLEARN_SAFE_SEARCH_PATH},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"statement_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
	};

	for (int i = 0; i < (int) lengthof(pins); i++)
		SetConfigOption(pins[i][0], pins[i][1], PGC_SUSET, PGC_S_OVERRIDE);
}
