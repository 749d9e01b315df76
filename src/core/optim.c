/*
 * optim.c: the optimisers on the flat parameter vector, with torch's
 * semantics (see nn.h): SGD with momentum, and Adam with SSE2 and run-time
 * AVX kernels that give the same bytes as the scalar loop.
 */
#include <math.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
/* An AVX Adam kernel picked at run time needs GCC/Clang target attributes on x86. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define NN_HAVE_AVX_KERNEL 1
#else
#define NN_HAVE_AVX_KERNEL 0
#endif

#include "nn_internal.h"

/*
 * Optimiser state for n parameters: velocity for SGD, both moments for Adam
 * (betas 0.9/0.999, eps 1e-8 as torch; change the fields to override).
 */
nn_optimizer *
nn_optimizer_create(nn_optimizer_kind kind, size_t n, float lr,
					float momentum, float weight_decay)
{
	nn_optimizer *opt = nn_alloc_zero(sizeof(nn_optimizer));

	if (opt == NULL)
		return NULL;
	opt->kind = kind;
	opt->lr = lr;
	opt->momentum = momentum;
	opt->weight_decay = weight_decay;
	opt->beta1 = 0.9f;
	opt->beta2 = 0.999f;
	opt->eps = 1e-8f;
	opt->n = n;
	opt->t = 0;
	opt->m1 = nn_alloc_floats(n);
	opt->m2 = kind == NN_OPT_ADAM ? nn_alloc_floats(n) : NULL;
	if (opt->m1 == NULL || (kind == NN_OPT_ADAM && opt->m2 == NULL))
	{
		nn_optimizer_free(opt);
		return NULL;
	}
	memset(opt->m1, 0, n * sizeof(float));
	if (opt->m2)
		memset(opt->m2, 0, n * sizeof(float));
	return opt;
}

/* torch.optim.SGD step (no dampening, no Nesterov); the velocity starts as the first gradient. */
static void
sgd_step(nn_optimizer *opt, float *restrict params, float *restrict grad)
{
	const float lr = opt->lr;
	const float wd = opt->weight_decay;
	const float mom = opt->momentum;
	float	   *restrict v = opt->m1;	/* restrict: the loops vectorise (same operations) */
	size_t		n = opt->n;

	if (wd != 0.0f)
		for (size_t i = 0; i < n; i++)
			grad[i] += wd * params[i];
	if (mom != 0.0f)
	{
		if (opt->t == 0)
			memcpy(v, grad, n * sizeof(float));
		else
			for (size_t i = 0; i < n; i++)
				v[i] = mom * v[i] + grad[i];
		for (size_t i = 0; i < n; i++)
			params[i] -= lr * v[i];
	}
	else
		for (size_t i = 0; i < n; i++)
			params[i] -= lr * grad[i];
}

/* Per-step Adam constants shared by the scalar and SIMD kernels. */
typedef struct adam_consts
{
	float		wd,
				b1,
				b2,
				one_minus_b1,
				one_minus_b2,
				eps,
				step_size,
				bc2_sqrt;
} adam_consts;

/*
 * The Adam update of one element, in the exact operation order the SIMD
 * kernels use (no fused multiply-add), so every path gives the same bytes.
 */
static inline void
adam_update_one(const adam_consts *k, float *p, float *g, float *m1, float *m2)
{
	float		grad = *g;
	float		m,
				v,
				denom;

	if (k->wd != 0.0f)
		grad = grad + k->wd * *p;
	m = k->b1 * *m1 + k->one_minus_b1 * grad;
	v = k->b2 * *m2 + k->one_minus_b2 * (grad * grad);
	denom = sqrtf(v) / k->bc2_sqrt + k->eps;
	*p = *p - k->step_size * (m / denom);
	*m1 = m;
	*m2 = v;
}

#if defined(__SSE2__)
/* Adam update four floats at a time (SSE2 is baseline on x86-64); returns how many were done. */
static size_t
adam_update_sse2(const adam_consts *k, float *p, const float *g, float *m1, float *m2, size_t n)
{
	const __m128 wd = _mm_set1_ps(k->wd);
	const __m128 b1 = _mm_set1_ps(k->b1);
	const __m128 b2 = _mm_set1_ps(k->b2);
	const __m128 omb1 = _mm_set1_ps(k->one_minus_b1);
	const __m128 omb2 = _mm_set1_ps(k->one_minus_b2);
	const __m128 eps = _mm_set1_ps(k->eps);
	const __m128 step = _mm_set1_ps(k->step_size);
	const __m128 bc2s = _mm_set1_ps(k->bc2_sqrt);
	size_t		i;

	for (i = 0; i + 4 <= n; i += 4)
	{
		__m128		pv = _mm_loadu_ps(p + i);
		__m128		gv = _mm_loadu_ps(g + i);
		__m128		m = _mm_loadu_ps(m1 + i);
		__m128		v = _mm_loadu_ps(m2 + i);
		__m128		denom;

		if (k->wd != 0.0f)
			gv = _mm_add_ps(gv, _mm_mul_ps(wd, pv));
		m = _mm_add_ps(_mm_mul_ps(b1, m), _mm_mul_ps(omb1, gv));
		v = _mm_add_ps(_mm_mul_ps(b2, v), _mm_mul_ps(omb2, _mm_mul_ps(gv, gv)));
		denom = _mm_add_ps(_mm_div_ps(_mm_sqrt_ps(v), bc2s), eps);
		pv = _mm_sub_ps(pv, _mm_mul_ps(step, _mm_div_ps(m, denom)));
		_mm_storeu_ps(m1 + i, m);
		_mm_storeu_ps(m2 + i, v);
		_mm_storeu_ps(p + i, pv);
	}
	return i;
}
#endif

#if NN_HAVE_AVX_KERNEL
/*
 * The same update eight floats at a time with AVX, chosen at run time: the
 * core is built without -mavx, and sqrt/div throughput dominates Adam.
 */
__attribute__((target("avx")))
static size_t
adam_update_avx(const adam_consts *k, float *p, const float *g, float *m1, float *m2, size_t n)
{
	const __m256 wd = _mm256_set1_ps(k->wd);
	const __m256 b1 = _mm256_set1_ps(k->b1);
	const __m256 b2 = _mm256_set1_ps(k->b2);
	const __m256 omb1 = _mm256_set1_ps(k->one_minus_b1);
	const __m256 omb2 = _mm256_set1_ps(k->one_minus_b2);
	const __m256 eps = _mm256_set1_ps(k->eps);
	const __m256 step = _mm256_set1_ps(k->step_size);
	const __m256 bc2s = _mm256_set1_ps(k->bc2_sqrt);
	size_t		i;

	for (i = 0; i + 8 <= n; i += 8)
	{
		__m256		pv = _mm256_loadu_ps(p + i);
		__m256		gv = _mm256_loadu_ps(g + i);
		__m256		m = _mm256_loadu_ps(m1 + i);
		__m256		v = _mm256_loadu_ps(m2 + i);
		__m256		denom;

		if (k->wd != 0.0f)
			gv = _mm256_add_ps(gv, _mm256_mul_ps(wd, pv));
		m = _mm256_add_ps(_mm256_mul_ps(b1, m), _mm256_mul_ps(omb1, gv));
		v = _mm256_add_ps(_mm256_mul_ps(b2, v), _mm256_mul_ps(omb2, _mm256_mul_ps(gv, gv)));
		denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bc2s), eps);
		pv = _mm256_sub_ps(pv, _mm256_mul_ps(step, _mm256_div_ps(m, denom)));
		_mm256_storeu_ps(m1 + i, m);
		_mm256_storeu_ps(m2 + i, v);
		_mm256_storeu_ps(p + i, pv);
	}
	return i;
}

/* Whether this CPU (and OS) can run the AVX kernel; probed once. */
static int
cpu_has_avx(void)
{
	static int	cached = -1;

	if (cached < 0)
	{
		__builtin_cpu_init();
		cached = __builtin_cpu_supports("avx") ? 1 : 0;
	}
	return cached;
}
#endif

/* What the split Adam update reads: the step's constants and the four arrays. */
typedef struct adam_job
{
	const adam_consts *k;
	float	   *p,
			   *g,
			   *m1,
			   *m2;
} adam_job;

/*
 * Elements lo .. hi of the Adam update: the widest available kernel takes
 * the bulk, the scalar loop the rest, all with identical per-element
 * arithmetic (so any split gives the same bytes).
 */
static void
adam_range(void *arg, size_t lo, size_t hi)
{
	const adam_job *j = arg;
	float	   *p = j->p + lo,
			   *g = j->g + lo,
			   *m1 = j->m1 + lo,
			   *m2 = j->m2 + lo;
	size_t		n = hi - lo;
	size_t		i = 0;

#if NN_HAVE_AVX_KERNEL
	if (cpu_has_avx())
		i = adam_update_avx(j->k, p, g, m1, m2, n);
#endif
#if defined(__SSE2__)
	i += adam_update_sse2(j->k, p + i, g + i, m1 + i, m2 + i, n - i);
#endif
	NN_ASSERT(i <= n);
	for (; i < n; i++)
		adam_update_one(j->k, p + i, g + i, m1 + i, m2 + i);
}

/*
 * torch.optim.Adam step: bias corrections in double as torch computes them on
 * the host, then p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps), the
 * elements split over the core's threads (par.c).
 */
static void
adam_step(nn_optimizer *opt, float *params, float *grad)
{
	adam_consts k;
	adam_job	j = {&k, params, grad, opt->m1, opt->m2};
	double		bc1 = 1.0 - pow((double) opt->beta1, (double) opt->t);
	double		bc2 = 1.0 - pow((double) opt->beta2, (double) opt->t);

	k.wd = opt->weight_decay;
	k.b1 = opt->beta1;
	k.b2 = opt->beta2;
	k.one_minus_b1 = 1.0f - opt->beta1;
	k.one_minus_b2 = 1.0f - opt->beta2;
	k.eps = opt->eps;
	k.step_size = (float) ((double) opt->lr / bc1);
	k.bc2_sqrt = (float) sqrt(bc2);
	/* cpu_has_avx caches its answer on this thread before any other runs */
#if NN_HAVE_AVX_KERNEL
	(void) cpu_has_avx();
#endif
	nn_par_for(opt->n, NN_PAR_GRAIN_FLOATS, adam_range, &j);
}

/* One optimiser step on params with gradient grad (grad may be overwritten by weight decay). */
void
nn_optimizer_step(nn_optimizer *opt, float *params, float *grad)
{
	NN_ASSERT(opt->m1 != NULL && (opt->kind != NN_OPT_ADAM || opt->m2 != NULL));
	if (opt->kind == NN_OPT_ADAM)
	{
		opt->t++;				/* Adam's bias correction uses the 1-based step */
		adam_step(opt, params, grad);
	}
	else
	{
		sgd_step(opt, params, grad);
		opt->t++;
	}
}

/* Release optimiser state; NULL is ignored. */
void
nn_optimizer_free(nn_optimizer *opt)
{
	if (opt == NULL)
		return;
	nn_free_mem(opt->m1);
	nn_free_mem(opt->m2);
	nn_free_mem(opt);
}
