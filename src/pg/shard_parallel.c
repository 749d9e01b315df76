/*
 * shard_parallel.c: training the shards of a sharded model in parallel
 * workers (a PostgreSQL parallel context), with unlearn.shard_workers > 0.
 * The calling backend copies each shard's rows into dynamic shared memory,
 * launches up to unlearn.shard_workers workers, and trains shards itself
 * too; each process claims the next shard from a shared counter, trains it
 * exactly as trainer.c does one after the other (unlearn_fit_shard: the
 * same options, seed + shard number, rows), and writes the network's bytes
 * (nn_serialize) into its slot.  The caller deserialises them: the model is
 * the same, byte for byte, however many workers ran.  Workers only compute:
 * no catalog access, no SPI.  See docs/how-it-works.md#sharded-models.
 */
#include "postgres.h"

#include "access/parallel.h"
#include "port/atomics.h"
#include "storage/shm_toc.h"
#include "utils/memutils.h"

#include "unlearn_pg.h"

#define KEY_JOBS	UINT64CONST(0x554E4C4E00000001)	/* the ShardJobs header */
#define KEY_ROWS	UINT64CONST(0x554E4C4E00000002)	/* every job's X, then y */
#define KEY_NETS	UINT64CONST(0x554E4C4E00000003)	/* every job's serialised network */

/* What the workers read: the run's shape and options, and one job per shard to train. */
typedef struct ShardJobs
{
	char		model[NAMEDATALEN * 4];	/* for messages */
	bool		retrain;
	int			n_classes;
	int			n_hidden;
	int			hidden[NN_MAX_LAYERS];
	bool		has_arch;
	UnlearnArch arch;
	nn_train_options topts;		/* the run's: each job adds its shard number to the seed */
	int			n_features;
	int			n_jobs;
	int			shard[NN_MAX_SHARDS];	/* job j trains this shard */
	int64		rows[NN_MAX_SHARDS];
	Size		rows_off[NN_MAX_SHARDS];	/* its X in the rows chunk, y after it */
	Size		net_size;		/* bytes of one serialised network (every shard's shape is the same) */
	double		seconds[NN_MAX_SHARDS];	/* its training time */
	pg_atomic_uint32 next;		/* the next job to claim */
} ShardJobs;

PGDLLEXPORT void unlearn_shard_worker_main(dsm_segment *seg, shm_toc *toc);

/* Bytes of a job's rows: X, then y, MAXALIGNed. */
static Size
job_bytes(int64 rows, int n_features)
{
	return MAXALIGN(sizeof(float) * rows * n_features) + MAXALIGN(sizeof(int) * rows);
}

/*
 * Trains job j (in a context of its own, freed after) and writes its
 * network into its slot of nets.
 */
static void
train_job(ShardJobs *jobs, int j, char *rows, char *nets)
{
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "unlearn shard", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	UnlearnTrainRun run;
	UnlearnData part;
	nn_model   *net;

	memset(&run, 0, sizeof(run));
	memset(&part, 0, sizeof(part));
	part.n = jobs->rows[j];
	part.n_features = jobs->n_features;
	part.X = (float *) (rows + jobs->rows_off[j]);
	part.y = (int *) (rows + jobs->rows_off[j] + MAXALIGN(sizeof(float) * part.n * part.n_features));
	run.model = jobs->model;
	run.retrain = jobs->retrain;
	run.hidden = jobs->hidden;
	run.n_hidden = jobs->n_hidden;
	run.n_classes = jobs->n_classes;
	run.topts = &jobs->topts;
	net = unlearn_fit_shard(&run, jobs->has_arch ? &jobs->arch : NULL, jobs->shard[j], &part,
							&jobs->seconds[j]);
	if (nn_serialized_size(net) != jobs->net_size)
		elog(ERROR, "shard %d of model \"%s\" has an unexpected size", jobs->shard[j], jobs->model);
	nn_serialize(net, nets + jobs->net_size * j);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/* Claims and trains jobs until none is left (the workers and the caller alike). */
static void
run_jobs(ShardJobs *jobs, char *rows, char *nets)
{
	for (;;)
	{
		uint32		j = pg_atomic_fetch_add_u32(&jobs->next, 1);

		if (j >= (uint32) jobs->n_jobs)
			break;
		train_job(jobs, (int) j, rows, nets);
	}
}

/* A parallel worker's entry point: the jobs in the segment. */
void
unlearn_shard_worker_main(dsm_segment *seg, shm_toc *toc)
{
	run_jobs(shm_toc_lookup(toc, KEY_JOBS, false), shm_toc_lookup(toc, KEY_ROWS, false),
			 shm_toc_lookup(toc, KEY_NETS, false));
}

/* The jobs' header: the run's shape and options, each shard's rows and place. */
static void
fill_jobs(ShardJobs *jobs, const UnlearnTrainRun *run, const UnlearnArch *arch, const int *todo,
		  int n_todo, const UnlearnData *parts, Size net_size)
{
	Size		off = 0;

	memset(jobs, 0, sizeof(*jobs));
	strlcpy(jobs->model, run->model, sizeof(jobs->model));
	jobs->retrain = run->retrain;
	jobs->n_classes = run->n_classes;
	jobs->n_hidden = run->n_hidden;
	if (run->n_hidden > 0)		/* softmax regression has none (and may pass NULL) */
		memcpy(jobs->hidden, run->hidden, sizeof(int) * run->n_hidden);
	jobs->has_arch = arch != NULL;
	if (arch)
		jobs->arch = *arch;
	jobs->topts = *run->topts;
	jobs->n_features = run->data->n_features;
	jobs->n_jobs = n_todo;
	jobs->net_size = net_size;
	for (int j = 0; j < n_todo; j++)
	{
		jobs->shard[j] = todo[j];
		jobs->rows[j] = parts[j].n;
		jobs->rows_off[j] = off;
		off += job_bytes(parts[j].n, jobs->n_features);
	}
	pg_atomic_init_u32(&jobs->next, 0);
}

/* Copies each job's rows into the rows chunk (and frees them). */
static void
copy_rows(const ShardJobs *jobs, UnlearnData *parts, char *rows)
{
	for (int j = 0; j < jobs->n_jobs; j++)
	{
		char	   *at = rows + jobs->rows_off[j];
		Size		x_bytes = sizeof(float) * parts[j].n * jobs->n_features;

		memcpy(at, parts[j].X, x_bytes);
		memcpy(at + MAXALIGN(x_bytes), parts[j].y, sizeof(int) * parts[j].n);
		unlearn_free_shard_rows(&parts[j]);
	}
}

/*
 * Trains the shards todo[0 .. n_todo-1] of the run in parallel workers and
 * this backend, into members[shard]; returns their summed training seconds
 * and sets run->shard_workers to the workers that ran.  Each shard's rows
 * are checked (unlearn_shard_rows) before any worker starts.
 */
double
unlearn_fit_shards_parallel(UnlearnTrainRun *run, const UnlearnArch *arch, const int *todo, int n_todo,
							Size net_size, nn_model **members)
{
	UnlearnData *parts = palloc0(sizeof(UnlearnData) * n_todo);
	Size		rows_bytes = 0;
	ParallelContext *pcxt;
	ShardJobs  *jobs;
	char	   *rows;
	char	   *nets;
	double		seconds = 0;

	/* step 1: every shard's rows, checked */
	for (int j = 0; j < n_todo; j++)
	{
		unlearn_shard_rows(run->model, run->data, todo[j], &run->shard_map, !run->retrain, &parts[j]);
		rows_bytes += job_bytes(parts[j].n, run->data->n_features);
	}
	/* step 2: the segment: the jobs, their rows, their networks */
	EnterParallelMode();
	pcxt = CreateParallelContext("unlearn", "unlearn_shard_worker_main", Min(unlearn_shard_workers, n_todo - 1));
	shm_toc_estimate_chunk(&pcxt->estimator, sizeof(ShardJobs));
	shm_toc_estimate_chunk(&pcxt->estimator, rows_bytes);
	shm_toc_estimate_chunk(&pcxt->estimator, net_size * n_todo);
	shm_toc_estimate_keys(&pcxt->estimator, 3);
	InitializeParallelDSM(pcxt);
	jobs = shm_toc_allocate(pcxt->toc, sizeof(ShardJobs));
	rows = shm_toc_allocate(pcxt->toc, rows_bytes);
	nets = shm_toc_allocate(pcxt->toc, net_size * n_todo);
	fill_jobs(jobs, run, arch, todo, n_todo, parts, net_size);
	copy_rows(jobs, parts, rows);
	shm_toc_insert(pcxt->toc, KEY_JOBS, jobs);
	shm_toc_insert(pcxt->toc, KEY_ROWS, rows);
	shm_toc_insert(pcxt->toc, KEY_NETS, nets);
	/* step 3: the workers and this backend train; a worker's error is raised here */
	LaunchParallelWorkers(pcxt);
	run->shard_workers = pcxt->nworkers_launched;
	run_jobs(jobs, rows, nets);
	WaitForParallelWorkersToFinish(pcxt);
	/* step 4: the networks, out of the segment */
	for (int j = 0; j < n_todo; j++)
	{
		char		err[256];

		members[todo[j]] = nn_deserialize(nets + net_size * j, net_size, err, sizeof(err));
		if (members[todo[j]] == NULL)
			elog(ERROR, "shard %d of model \"%s\" came back unreadable: %s", todo[j], run->model, err);
		seconds += jobs->seconds[j];
	}
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	return seconds;
}
