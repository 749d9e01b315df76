/*
 * par.c: the core's own threads for its element-wise work (im2col / col2im,
 * pooling, bias + ReLU and its mask, bias-gradient sums, Adam).  cblas_sgemm
 * has its own pool; these loops ran on one thread beside it.
 *
 * nn_par_for splits [0, n) into nn_get_threads() contiguous ranges, runs
 * the first on the calling thread and the others on helper threads, and
 * waits for them all before returning.  The helpers are started on first
 * use (in a PostgreSQL backend: on its first training step, never in the
 * postmaster, which does not compute), sleep on a condition variable between
 * calls (no spinning beside OpenBLAS's own threads) and are created with every
 * signal blocked, so the backend's signals (SIGINT, SIGTERM, latches) still
 * reach only its main thread.  A process forked after they started has none:
 * the pool notices the new pid and starts afresh.  The ranges' work touches
 * only memory the caller owns (no allocation, no error reporting) and the
 * caller is the only thread that calls nn_par_for.
 *
 * Every split in the core is deterministic and independent of the thread
 * count: ranges are of images, elements or bias columns, and no range adds
 * into memory another range touches, so the bytes of every result are the
 * same for any nn_set_threads() value.  If a helper cannot be created, the
 * ranges it would take run on the calling thread.
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "nn_internal.h"

#define NN_PAR_MAX_THREADS 16

static int	par_threads = 1;

/* Threads the element-wise loops may use (clamped to 1 .. 16); 1, the default, starts none. */
void
nn_set_threads(int n)
{
	par_threads = n < 1 ? 1 : n > NN_PAR_MAX_THREADS ? NN_PAR_MAX_THREADS : n;
}

int
nn_get_threads(void)
{
	return par_threads;
}

/* The helpers: helper t (1-based) runs range t of the current call, if there is one. */
typedef struct par_pool
{
	pthread_mutex_t mu;
	pthread_cond_t go;			/* a new call: gen changed */
	pthread_cond_t done;		/* pending reached 0 */
	pid_t		pid;			/* the process that started the helpers (0: none) */
	int			helpers;		/* helpers running */
	unsigned long gen;
	int			pending;		/* ranges of this call not finished by helpers */
	nn_par_fn	fn;
	void	   *arg;
	size_t		n,
				parts;
} par_pool;

static par_pool pool;			/* par_start initialises it in each process */

/* Range t of parts over [0, n): contiguous, in order. */
static void
par_range(size_t t, size_t *lo, size_t *hi)
{
	*lo = pool.n * t / pool.parts;
	*hi = pool.n * (t + 1) / pool.parts;
}

static void *
par_helper(void *p)
{
	size_t		t = (size_t) (uintptr_t) p;
	unsigned long seen = 0;		/* a helper started late sees the last call, whose
								 * ranges all belong to older helpers: t >= parts */

	pthread_mutex_lock(&pool.mu);
	for (;;)
	{
		size_t		lo,
					hi;

		while (pool.gen == seen)
			pthread_cond_wait(&pool.go, &pool.mu);
		seen = pool.gen;
		if (t >= pool.parts)
			continue;
		par_range(t, &lo, &hi);
		pthread_mutex_unlock(&pool.mu);
		pool.fn(pool.arg, lo, hi);
		pthread_mutex_lock(&pool.mu);
		if (--pool.pending == 0)
			pthread_cond_signal(&pool.done);
	}
	return NULL;
}

/* Start helpers up to `want` (fewer if creation fails); after a fork, forget the parent's. */
static void
par_start(int want)
{
	sigset_t	all,
				old;

	if (pool.pid != getpid())
	{
		pthread_mutex_init(&pool.mu, NULL);
		pthread_cond_init(&pool.go, NULL);
		pthread_cond_init(&pool.done, NULL);
		pool.pid = getpid();
		pool.helpers = 0;
		pool.gen = 0;
	}
	if (pool.helpers >= want)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (pool.helpers < want)
	{
		pthread_t	tid;

		if (pthread_create(&tid, NULL, par_helper, (void *) (uintptr_t) (pool.helpers + 1)) != 0)
			break;
		pthread_detach(tid);
		pool.helpers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/*
 * fn(arg, lo, hi) over [0, n) in up to nn_get_threads() ranges of at least
 * `grain` items each (one range, on this thread, when n < 2 * grain).
 */
void
nn_par_for(size_t n, size_t grain, nn_par_fn fn, void *arg)
{
	size_t		parts = (size_t) par_threads;
	size_t		lo,
				hi;

	grain = grain < 1 ? 1 : grain;
	if (parts > n / grain)
		parts = n / grain;
	if (parts > 1)
		par_start((int) parts - 1);
	if (parts > (size_t) pool.helpers + 1)
		parts = (size_t) pool.helpers + 1;
	if (parts <= 1)
	{
		if (n > 0)
			fn(arg, 0, n);
		return;
	}
	pthread_mutex_lock(&pool.mu);
	pool.fn = fn;
	pool.arg = arg;
	pool.n = n;
	pool.parts = parts;
	pool.pending = (int) parts - 1;
	pool.gen++;
	pthread_cond_broadcast(&pool.go);
	par_range(0, &lo, &hi);
	pthread_mutex_unlock(&pool.mu);
	fn(arg, lo, hi);
	pthread_mutex_lock(&pool.mu);
	while (pool.pending > 0)
		pthread_cond_wait(&pool.done, &pool.mu);
	pthread_mutex_unlock(&pool.mu);
}
