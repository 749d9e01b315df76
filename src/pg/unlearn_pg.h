/*
 * unlearn_pg.h: shared declarations of the PostgreSQL glue of unlearn
 * (SQL functions, catalog access, data loading).  The numeric core
 * (src/core) knows nothing of PostgreSQL; everything here adapts it.
 */
#ifndef UNLEARN_PG_H
#define UNLEARN_PG_H

#include "postgres.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/parsenodes.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

#include "nn.h"
#include "privilege.h"

/* ---------- settings (unlearn.c) ---------- */
extern int	unlearn_threads;			/* unlearn.threads: BLAS threads per backend */
extern int	unlearn_shard_workers;		/* unlearn.shard_workers: parallel workers training shards */
extern int	unlearn_max_rows;			/* unlearn.max_training_rows */
extern bool unlearn_progress;			/* unlearn.progress: NOTICEs from long runs */
extern int	unlearn_feature_retention;	/* unlearn.feature_retention, s: -1 keep, 0 erase at once */
/* Rows unlearning is deleting from a model's table itself: not queued again for that model. */
typedef struct UnlearnSuppress
{
	const char *model;			/* NULL: nothing suppressed */
	Datum		ids;			/* int8[] of the ids being unlearned */
} UnlearnSuppress;
extern UnlearnSuppress unlearn_suppress_capture;
extern int	unlearn_max_model_size;		/* unlearn.max_model_size, kB one training run may allocate */
extern int	unlearn_max_training_memory;	/* unlearn.max_training_memory, kB of rows training holds; -1 none */
extern double unlearn_max_accuracy_drop;	/* unlearn.max_accuracy_drop, points on held-out rows */
extern int	unlearn_retrain_budget;		/* unlearn.retrain_budget, s an exact retrain may take; 0 off */
extern bool unlearn_exact_when_cheaper;	/* unlearn.exact_when_cheaper: retrain directly on small tables */
extern double unlearn_consolidate_after;	/* unlearn.consolidate_after: share of rows before an exact retrain */
extern double unlearn_consolidate_drop;	/* unlearn.consolidate_drop: held-out points lost before an exact retrain */
extern int	unlearn_consolidate_idle;	/* unlearn.consolidate_idle: s of quiet before the worker retrains exactly */
/* unlearn.target: what forgetting means when a run's options do not say (options.c "target") */
typedef enum UnlearnTarget
{
	UNLEARN_TARGET_MISCLASSIFY = 0,
	UNLEARN_TARGET_UNSEEN = 1
} UnlearnTarget;
extern int	unlearn_target;
extern int	unlearn_max_categories;		/* unlearn.max_categories: categories per feature column */
extern bool unlearn_in_worker;			/* this process is an unlearn worker: it ignores per-database settings */

/* ---------- BLAS and core set-up (blas.c) ---------- */

/* Loads OpenBLAS on first use in this process (never in the postmaster). */
void		unlearn_blas_ensure_loaded(void);

/* Route core allocations into CurrentMemoryContext (palloc, huge allowed). */
void		unlearn_core_use_palloc(void);

/* OpenBLAS on one thread (limit) or on unlearn.threads again: the worker's throttle. */
void		unlearn_blas_limit_threads(bool limit);

/* ---------- the worker's share of the CPU while sessions write (throttle.c) ---------- */
extern int	unlearn_worker_cpu_share;	/* unlearn.worker_cpu_share, percent */
void		unlearn_throttle_reset(void);
void		unlearn_throttle_point(void);
double		unlearn_throttle_paused(void);

/* ---------- the modules (one header each) ---------- */
#include "label.h"
#include "catalog.h"
#include "encode.h"
#include "data.h"
#include "options.h"
#include "stream.h"
#include "run.h"
#include "capture.h"

#endif							/* UNLEARN_PG_H */
