/*
 * run.h: changing a model: opening it (change.c), training and storing (trainer.c), unlearning runs (rows.c, execute.c, ledger.c).
 */
#ifndef UNLEARN_RUN_H
#define UNLEARN_RUN_H

#include "postgres.h"
#include "catalog.h"
#include "data.h"
#include "options.h"
#include "access/tupdesc.h"
#include "nodes/parsenodes.h"
#include "portability/instr_time.h"

/* ---------- changing a model (change.c) ---------- */

/* Locks a model's catalog row FOR NO KEY UPDATE (errors if the model is gone). */
void		unlearn_lock_model(const char *name);

/*
 * Looks up and checks ownership of a model (and the table privilege a change
 * needs, or 0), locks its catalog row and returns the row as it is after the
 * lock, checked again, under a snapshot that unlearn_close_model_change pops.
 * _for_drop locks FOR UPDATE.
 */
UnlearnModel *unlearn_open_model_for_change(const char *name, const char *action, AclMode table_privilege);
UnlearnModel *unlearn_open_model_for_drop(const char *name);
void		unlearn_close_model_change(void);

/* The sorted manifest of a version. */
int64	   *unlearn_load_manifest(const UnlearnModel *model, int version, int64 *n_out);

/* Next free version number of a model (caller holds the model lock). */
int			unlearn_next_version(const char *name);

/* ---------- training (trainer.c, for train.c and retrain.c) ---------- */

/*
 * Which shard holds an id: ids NULL, nn_shard_of(id, shards) (the hash of
 * the id); else (sharded by partition) of[i] for the sorted ids[i], the
 * shard each row was given at training (partition_shards.c).
 */
typedef struct UnlearnShardMap
{
	int			shards;
	const int64 *ids;
	const int16 *of;
	int64		n;
} UnlearnShardMap;

/*
 * The optimiser steps a default training aims at (train.c derives its epochs
 * from it) and that choosing the weight decay on held-out rows may spend at
 * most (trainer.c, select.c).
 */
#define UNLEARN_STEP_BUDGET 20000

/* One training run: what it trains on and how, where it stores, and what it measured. */
typedef struct UnlearnTrainRun
{
	const char *model;			/* the model's name */
	bool		retrain;		/* unlearn_retrain: the next version of an existing model */
	int			parent;			/* retrain: the version it replaces */
	const char *reason;			/* "train", "retrain" or "reference" */
	const int  *hidden;
	int			n_hidden;
	const UnlearnArch *arch;	/* the layer list, or NULL (a retrain reads the model's) */
	int			n_classes;
	const nn_train_options *topts;
	const UnlearnData *data;	/* the rows, ids sorted and unique: the manifest (streamed: no X, y) */
	UnlearnStream *stream;		/* set: the rows are read in chunks (stream.c), data has their ids */
	double		load_seconds;	/* reading them, for the metrics */
	const int64 *forgotten;		/* retrain: sorted ids the version forgets (exact unlearning), or NULL */
	int			n_forgotten;
	int			shards;			/* 1: one network; 2..64: a sharded model (shards.c) */
	UnlearnShardMap shard_map;	/* sharded: which shard holds a row (shard_map.shards == shards) */
	const char *partitions_json;	/* sharded by partition: the metrics' "shard_partitions" array, or NULL */
	/* an exact delete on a sharded model: the shards not retrained are the parent's, copied */
	const nn_model *parent_net;	/* the parent version's ensemble, or NULL: train every shard */
	const bool *retrain_shard;	/* with parent_net: per shard, retrain it (on its rows of data) */
	const int64 *manifest;		/* the version's manifest when it is not data's ids (sorted), or NULL */
	int64		n_manifest;
	int			shard_workers;	/* set: parallel workers that trained shards beside the backend */
	/* runs after training, before the version is stored, with the options to record */
	void		(*before_store) (void *arg, Jsonb *options);
	void	   *before_store_arg;
	/* set by unlearn_train_and_store */
	int			version;
	double		accuracy;
	double		train_seconds;	/* the selection's included */
	float		weight_decay;	/* the one trained with (options "auto": chosen or 0) */
	bool		selected;		/* the weight decay was chosen on held-out rows */
	double		select_loss[NN_SELECT_CANDIDATES];	/* held-out cross-entropy summed, per candidate */
	long		select_correct[NN_SELECT_CANDIDATES];	/* held-out rows right, per candidate */
	double		select_seconds;
} UnlearnTrainRun;

void		unlearn_train_and_store(UnlearnTrainRun *run);
/* True when a training with these options chooses its weight decay on held-out rows. */
bool		unlearn_selects_weight_decay(const nn_train_options *topts, int shards, int64 n, int n_classes);

/* ---------- sharded models (shards.c) ---------- */

/* The shard of an id (XX001 if a map of ids lacks it); the shards of sorted ids. */
int			unlearn_shard_of(const UnlearnShardMap *map, int64 id);
int16	   *unlearn_shards_of_ids(const UnlearnShardMap *map, const int64 *ids, int64 n);
/* The rows of one shard (training: at least 10, else 22023; else at least one, else 22000). */
void		unlearn_rows_in_shard(const UnlearnData *all, int shard, const UnlearnShardMap *map,
								  bool skip_unmapped, UnlearnData *out);
void		unlearn_shard_rows(const char *model, const UnlearnData *all, int shard, const UnlearnShardMap *map,
							   bool training, UnlearnData *out);
void		unlearn_free_shard_rows(UnlearnData *rows);
/* One shard's network, trained on its rows (trainer.c; also in parallel workers). */
nn_model   *unlearn_fit_shard(const UnlearnTrainRun *run, const UnlearnArch *arch, int shard,
							  const UnlearnData *part, double *seconds);
/* The shards todo[] trained in parallel workers and this backend (shard_parallel.c). */
double		unlearn_fit_shards_parallel(UnlearnTrainRun *run, const UnlearnArch *arch, const int *todo,
										int n_todo, Size net_size, nn_model **members);
/* Marks the shards holding one of the ids; returns how many. */
int			unlearn_shards_holding(const int64 *ids, int k, const UnlearnShardMap *map, bool *retrain);
/* The ids that lie in a marked shard, in their order. */
int64	   *unlearn_ids_in_shards(const int64 *ids, int64 n, const UnlearnShardMap *map, const bool *which,
								  int64 *n_out);
/*
 * Sharding by partition (partition_shards.c): errors (22023) unless relid is
 * a partitioned table; a training run's shard map: its rows (read with their
 * tableoids) to the leaf partitions that hold rows, in order of schema and
 * name, checked (2 to 64 shards, 10 rows each; `expected`: a shard count the
 * options gave too, or 0), run->shards and the metrics' partition names.
 */
void		unlearn_check_partitioned(Oid relid);
void		unlearn_shard_run_by_partition(UnlearnTrainRun *run, Oid relid, int expected);
/* The shard map of a version's manifest (its shards column; ids NULL: by hash). */
void		unlearn_load_shard_map(const UnlearnModel *model, int version, int shards, const int64 *manifest,
								   int64 n_manifest, UnlearnShardMap *map);
/* Errors (54000) when training a layer list would exceed unlearn.max_model_size (model_size.c). */
void		unlearn_check_layers_size(const char *model, const UnlearnArch *arch, int n_classes,
									  const nn_train_options *o, int64 n_rows);
/* A model's hidden widths and recorded training options, without "hidden" (retrain.c). */
void		unlearn_read_model_training(const char *name, int **hidden, int *n_hidden, Jsonb **stored);
Datum		unlearn_train_result(TupleDesc desc, const UnlearnTrainRun *run, double total_seconds);

/* ---------- unlearning (rows.c, execute.c, ledger.c) ---------- */

/*
 * Where a run's time goes: seconds per named phase, in the order first
 * timed, for the version's metrics ("phases", "total_seconds").  The caller
 * starts it and may time its own steps first (unlearn_phase_end); the run
 * adds its own.
 */
#define UNLEARN_MAX_PHASES 24
typedef struct UnlearnPhases
{
	int			n;
	const char *name[UNLEARN_MAX_PHASES];
	double		seconds[UNLEARN_MAX_PHASES];
	instr_time	start;			/* the run's start: total_seconds counts from here */
	instr_time	mark;			/* the end of the phase timed last */
	double		paused0;		/* unlearn_throttle_paused() at the start */
} UnlearnPhases;

void		unlearn_phases_start(UnlearnPhases *p);
void		unlearn_phase_end(UnlearnPhases *p, const char *name);
void		unlearn_phase_add(UnlearnPhases *p, const char *name, double seconds);
char	   *unlearn_phases_json(UnlearnPhases *p, double *total);

/* What one unlearning run did; phases is started by the caller. */
typedef struct UnlearnOutcome
{
	UnlearnPhases phases;
	int			version;		/* the version it stored */
	int			rows;
	int			forgotten;
	int			prior;
	int			prior_kept;
	int			steps;
	double		seconds;
	const char *method;
} UnlearnOutcome;

/* The rows with these sorted, distinct ids, checked against the table and the current manifest. */
void		unlearn_read_forget_rows(const UnlearnModel *model, const int64 *ids, int k, UnlearnData *out);
void		unlearn_read_sample(const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
								const int64 *forget, int k, int want, uint64 seed, UnlearnData *out);
/* The seed of the guard's held-out sample is the run's, mixed with this ("guard"). */
#define UNLEARN_HELD_OUT_SEED UINT64CONST(0x6775617264)
/*
 * A run's samples of remaining rows, read from the table: up to want_held_out
 * held-out rows (the guard's), then up to want_replay replay rows outside
 * them (none when 0), both outside the forget rows; times "read_held_out"
 * and "read_replay".
 */
void		unlearn_read_run_samples(const UnlearnModel *model, const int64 *manifest, int64 n_manifest,
									 const UnlearnData *forget, int want_held_out, int want_replay,
									 uint64 seed, UnlearnPhases *phases, UnlearnData *held_out,
									 UnlearnData *replay);
void		unlearn_read_rows_by_id(const UnlearnModel *model, const int64 *ids, int64 n, UnlearnData *out);
struct UnlearnWarm;
void		unlearn_execute(UnlearnModel *model, UnlearnData *forget, const int *new_labels,
							const UnlearnRunOptions *opts, const char *reason, bool change_table,
							struct UnlearnWarm *warm, UnlearnOutcome *out);
bool		unlearn_consolidate(UnlearnModel *model, UnlearnOutcome *out);

/* The ledger: rows a version forgot; the earlier ones whose features it keeps. */
void		unlearn_record_forgotten(const UnlearnModel *model, const UnlearnData *rows, int version);
void		unlearn_read_prior_rows(const UnlearnModel *model, UnlearnData *out);

/* The target "unseen" (unseen.c): the reference of rows the model never saw, each row's target. */
char	   *unlearn_unseen_reference_json(const float *ref);
bool		unlearn_unseen_reference_of_training(const nn_model *net, const UnlearnData *data,
												 const nn_train_options *o, float *ref);
bool		unlearn_read_unseen_reference(const UnlearnModel *model, float *ref);
float	   *unlearn_unseen_targets(const nn_model *net, const UnlearnData *forget, const float *ref,
									   const char *model, int *floored);

#endif							/* UNLEARN_RUN_H */
