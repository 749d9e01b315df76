/*
 * warm.h: the background worker's warm samples (warm.c).
 *
 * Between requests the worker keeps, per model, the held-out and replay
 * samples of remaining rows an unlearning run reads, valid only for the
 * version the worker itself stored.  Each run checks the cached rows against
 * the table under its snapshot (a row deleted, or changed in any way, leaves
 * the cache), removes the rows it forgets and reads only what is missing.
 * Sessions (unlearn_rows, unlearn_relabel) never use it.
 */
#ifndef UNLEARN_WARM_H
#define UNLEARN_WARM_H

#include "postgres.h"
#include "catalog.h"
#include "data.h"
#include "run.h"

/* ---------- settings (defined in warm.c, registered in unlearn.c) ---------- */
extern int	unlearn_worker_cache_size;	/* unlearn.worker_cache_size, MB; 0: no warm samples */

/* One model's cached samples (opaque). */
typedef struct UnlearnWarm UnlearnWarm;

/* What a run's samples came from, for its metrics. */
typedef struct UnlearnWarmReport
{
	bool		cached;			/* the samples were the worker's cached ones, checked and patched */
	int64		dropped;		/* cached rows found deleted or changed in the table, left out */
	bool		checked_directly;	/* cached: checked by heap fetches (else by a scan) */
	int64		read;			/* sample rows read from the table by this run */
} UnlearnWarmReport;

/*
 * The worker, after locking the model and re-reading it: its entry, empty
 * unless it holds the samples of exactly this version (stored by the worker
 * and committed), table, owner and auto_options; NULL when the cache is off.
 */
UnlearnWarm *unlearn_warm_open(const UnlearnModel *model, const char *auto_options);

/*
 * A run's held-out and replay samples (want_* rows each, at most): the
 * cached ones checked against the table, without the forget rows, trimmed or
 * topped up from the manifest; or, from an empty entry, read as a cold run
 * reads them and kept.  The rows stay owned by the entry.  Times the phases
 * "read_held_out" and "read_replay".  Caller: connected to SPI, as the
 * model's owner, under the run's snapshot.
 */
void		unlearn_warm_samples(UnlearnWarm *w, const UnlearnModel *model, const int64 *manifest,
								 int64 n_manifest, const UnlearnData *forget, int want_held_out,
								 int want_replay, uint64 seed, UnlearnPhases *phases,
								 UnlearnData *held_out, UnlearnData *replay, UnlearnWarmReport *report);

/*
 * theta0's logits on the run's samples as unlearn_warm_samples gave them
 * (held-out, replay; n x classes each), for the core's set-up and the
 * held-out predictions before the run: the entry's, computed after the
 * previous run's commit, with the rows read since computed now from net
 * (the current version's weights).  Both NULL when the entry has none (a
 * cold run's samples, a version retrained): then they are computed as
 * usual.
 */
void		unlearn_warm_logits(UnlearnWarm *w, const nn_model *net, const float **held_logits,
								const float **replay_logits);

/* A run stored a version made of these weights (not a retrain): the entry keeps a copy for their logits. */
void		unlearn_warm_keep_net(UnlearnWarm *w, const nn_model *net);

/* A pass stored a version (model re-read after it): the entry will hold for it once committed. */
void		unlearn_warm_stored(UnlearnWarm *w, const UnlearnModel *model);

/*
 * The run's transaction committed (the entry becomes valid, its refresh
 * due) or failed (it is emptied).
 */
void		unlearn_warm_commit(void);
void		unlearn_warm_abort(void);

/*
 * After a commit, off the next request's path: an eighth of each sample of
 * the entry just committed renewed from the new version's manifest, and the
 * stored version's logits on every row.  Caller: in a transaction of its
 * own, connected to SPI, under a snapshot; an error leaves the entry to
 * unlearn_warm_abort.  Nothing to do when no run committed since.
 */
void		unlearn_warm_refresh(void);

/* Frees the entries of models that are gone or have a version the worker did not make (SPI connected). */
void		unlearn_warm_prune(void);

/* Bytes the cached samples hold in all. */
Size		unlearn_warm_bytes(void);

#endif							/* UNLEARN_WARM_H */
