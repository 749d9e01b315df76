/*
 * worker.h: the background workers that unlearn queued requests.
 *
 * launcher.c holds the shared memory (one slot per database, the catalog
 * generation), the commit callback that wakes a database's worker, and the
 * launcher that starts them; worker.c is the per-database worker.
 */
#ifndef UNLEARN_WORKER_H
#define UNLEARN_WORKER_H

#include "postgres.h"
#include "fmgr.h"

/* ---------- settings (defined in launcher.c, registered in unlearn.c) ---------- */
extern int	unlearn_naptime;			/* unlearn.naptime, ms */

/* ---------- launcher.c ---------- */

/* Registers the commit callback and, when preloaded, the shared memory and the launcher. */
void		unlearn_worker_init(void);

/*
 * Catalog generation: moves (in shared memory) when a transaction that
 * changed unlearn.models commits; 0 when the library is not preloaded.
 */
uint64		unlearn_catalog_generation(void);
void		unlearn_note_catalog_changed(void);

/*
 * Commits of transactions that wrote, by sessions other than unlearn
 * workers, since the server started (0 when the library is not preloaded):
 * the worker's throttle reads it (throttle.c).
 */
uint64		unlearn_session_commits(void);

/*
 * This database's slot, for its worker (shared memory must exist): publish
 * the worker's latch and pid; hide the latch (a commit then asks the launcher
 * instead); release the slot at exit, asking the launcher for a successor at
 * once unless the worker leaves because nothing is queued.
 */
void		unlearn_slot_publish(void);
void		unlearn_slot_hide_latch(void);
void		unlearn_slot_release(bool want_successor);

/* ---------- entry points (named in the BackgroundWorker registrations) ---------- */
PGDLLEXPORT void unlearn_launcher_main(Datum arg);
PGDLLEXPORT void unlearn_worker_main(Datum arg);

extern int	unlearn_worker_lock_timeout;	/* unlearn.worker_lock_timeout, ms; 0 waits for ever */

/* ---------- run_limit.c: unlearn.max_run_time on a run of the worker ---------- */
extern int	unlearn_max_run_time;		/* ms; 0 = no limit */
void		unlearn_run_limit_init(void);
void		unlearn_run_limit_arm(void);
void		unlearn_run_limit_disarm(void);
bool		unlearn_run_limit_explain(ErrorData *edata);

#endif							/* UNLEARN_WORKER_H */
