/*
 * privilege.h: the one place unlearn changes the user it runs as.
 *
 * Every switch pins search_path to "pg_catalog, pg_temp" (pg_temp is never
 * searched for functions or operators) and marks the operation security-
 * restricted, so nothing a caller created in its own schemas resolves while
 * rights are raised.  Code that holds raised rights must not evaluate
 * expressions of user-defined types either (see capture.c's type checks).
 */
#ifndef UNLEARN_PRIVILEGE_H
#define UNLEARN_PRIVILEGE_H

#include "postgres.h"

/* search_path for everything run with rights the caller lacks */
#define UNLEARN_SAFE_SEARCH_PATH "pg_catalog, pg_temp"

/* What a switch saved, to be undone by unlearn_restore_user. */
typedef struct UnlearnCatalogUser
{
	Oid			saved_userid;
	int			saved_sec_context;
	int			guc_level;		/* GUC nest level holding the pinned search_path */
} UnlearnCatalogUser;

/* Becomes the owner of the unlearn.* catalog (to read or write it after our own checks). */
void		unlearn_become_catalog_owner(UnlearnCatalogUser *saved);

/* Becomes `role` (the worker acting for a model's owner), restricted and pinned as above. */
void		unlearn_become_role(Oid role, UnlearnCatalogUser *saved);

/* Undoes the switch: the caller's user and security context; every setting changed since is undone. */
void		unlearn_restore_user(const UnlearnCatalogUser *saved);

/*
 * Pins search_path, and the settings a database's owner could use to stop
 * the worker, for the rest of this session (the background workers).
 */
void		unlearn_pin_worker_session(void);

/* Owner of unlearn.models, i.e. of the extension's catalog. */
Oid			unlearn_catalog_owner(void);

#endif							/* UNLEARN_PRIVILEGE_H */
