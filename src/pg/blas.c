/*
 * blas.c: OpenBLAS loaded lazily, and core allocations routed to palloc.
 *
 * unlearn.so is preloaded into the postmaster.  OpenBLAS starts its thread
 * pool when it is loaded, and a thread pool in a process that fork()s is a
 * known source of deadlocks, so the library is not linked: the entry points
 * the core uses, cblas_sgemm and OpenBLAS's thread count (see
 * src/core/blas_seam.h), are defined here and forward to OpenBLAS, which is
 * dlopen()ed the first time a backend or worker computes anything.  The
 * core's own threads (src/core/par.c) call cblas_sgemm only after the
 * backend's thread has loaded the library (conv.c reads the thread count
 * first), so on them unlearn_blas_ensure_loaded finds it loaded and the
 * count applied, and neither reports an error nor changes anything.
 */
#include "postgres.h"

#include <dlfcn.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "cblas.h"
#include "nn.h"
#include "unlearn_pg.h"

typedef void (*sgemm_fn) (const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE,
						  const enum CBLAS_TRANSPOSE, const blasint, const blasint,
						  const blasint, const float, const float *, const blasint,
						  const float *, const blasint, const float, float *,
						  const blasint);
typedef void (*set_threads_fn) (int);
typedef int (*get_threads_fn) (void);

static void *blas_handle = NULL;
static sgemm_fn p_sgemm;
static set_threads_fn p_set_threads;
static get_threads_fn p_get_threads;
static int	threads_applied = -1;

/* Looks up one symbol of the loaded OpenBLAS or errors. */
static void *
blas_symbol(const char *name)
{
	void	   *p = dlsym(blas_handle, name);

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not find symbol \"%s\" in OpenBLAS", name)));
	return p;
}

/*
 * Loads OpenBLAS on first use and applies unlearn.threads, to OpenBLAS and to
 * the core's element-wise loops (src/core/par.c: same bytes for any count).
 */
void
unlearn_blas_ensure_loaded(void)
{
	if (blas_handle == NULL)
	{
		if (!IsUnderPostmaster)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("unlearn does not compute in the postmaster")));
		blas_handle = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
		if (blas_handle == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not load OpenBLAS: %s", dlerror()),
					 errhint("Install libopenblas0 (Debian: apt-get install libopenblas-dev).")));
		p_sgemm = (sgemm_fn) blas_symbol("cblas_sgemm");
		p_set_threads = (set_threads_fn) blas_symbol("openblas_set_num_threads");
		p_get_threads = (get_threads_fn) blas_symbol("openblas_get_num_threads");
	}
	if (threads_applied != unlearn_threads)
	{
		p_set_threads(unlearn_threads);
		nn_set_threads(unlearn_threads);
		threads_applied = unlearn_threads;
	}
}

/*
 * The worker's throttle (throttle.c): OpenBLAS on one thread while sessions
 * write (limit), else on unlearn.threads again.  The core's own threads are
 * left as they are: a convolutional workspace sizes its buffers from their
 * count when it is made (conv.c), and unlearn.max_model_size's check with
 * it, neither of which may depend on what other sessions do.
 */
void
unlearn_blas_limit_threads(bool limit)
{
	int			n = limit ? 1 : unlearn_threads;

	if (blas_handle == NULL)
		return;					/* nothing computed yet: loading applies unlearn.threads */
	if (n != p_get_threads())
		p_set_threads(n);
}

/* The core's only BLAS call (src/core/blas_seam.h): load on first use, then forward. */
void
cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta,
			const enum CBLAS_TRANSPOSE tb, const blasint m, const blasint n,
			const blasint k, const float alpha, const float *a, const blasint lda,
			const float *b, const blasint ldb, const float beta, float *c,
			const blasint ldc)
{
	unlearn_blas_ensure_loaded();
	p_sgemm(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* OpenBLAS's thread count, for the core (src/core/blas_seam.h). */
int
openblas_get_num_threads(void)
{
	unlearn_blas_ensure_loaded();
	return p_get_threads();
}

/*
 * Sets OpenBLAS's thread count for the core, which sets 1 around the sgemm
 * calls it makes on its own threads and then restores what it read.
 */
void
openblas_set_num_threads(int n)
{
	unlearn_blas_ensure_loaded();
	p_set_threads(n);
}

/* Core allocation in the current memory context; large blocks allowed. */
static void *
core_palloc(size_t size)
{
	return MemoryContextAllocHuge(CurrentMemoryContext, size == 0 ? 1 : size);
}

/* Core free: pfree (palloc'd chunks only). */
static void
core_pfree(void *ptr)
{
	if (ptr != NULL)
		pfree(ptr);
}

/* The core's interrupt hook: lets a cancel or a shutdown in; the worker's throttle (throttle.c). */
static void
core_check_for_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
	unlearn_throttle_point();
}

/*
 * The core's cancel points inside its passes: a pending cancel or shutdown
 * gets in.  A convolution's pass holds OpenBLAS at one thread, so the count
 * is set back to unlearn.threads before the error can be raised, and left as
 * the pass had it when none is.
 */
static void
core_cancel_point(void)
{
	int			held;

	if (!INTERRUPTS_PENDING_CONDITION() || blas_handle == NULL)
		return;
	held = p_get_threads();
	if (held != unlearn_threads)
		p_set_threads(unlearn_threads);
	CHECK_FOR_INTERRUPTS();
	if (held != unlearn_threads)
		p_set_threads(held);
}

/* Makes the core allocate with palloc, so an error frees everything, and check for interrupts. */
void
unlearn_core_use_palloc(void)
{
	nn_set_allocator(core_palloc, core_pfree);
	nn_set_interrupt_hook(core_check_for_interrupts);
	nn_set_cancel_hook(core_cancel_point);
}
