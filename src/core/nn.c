/*
 * nn.c: dense ReLU classifiers in float32 on top of CBLAS (see nn.h).
 *
 * Every matrix product goes through cblas_sgemm; the only per-element loops
 * outside BLAS are bias adds, ReLU and its mask, bias-gradient column sums,
 * softmax, row gathers and the optimiser updates.  Declarations sit at the
 * top of blocks because PostgreSQL builds with -Wdeclaration-after-statement.
 */
#include "nn.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

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

#define NN_FORMAT_VERSION	1
#define NN_MAGIC			"UNLN"
/* Mixed into the training seed so shuffling does not replay the init stream. */
#define NN_SHUFFLE_STREAM	UINT64_C(0x53485546464c4531)
/* Rows per forward pass when nn_accuracy makes its own workspace. */
#define NN_EVAL_BATCH		512

/* ======================================================================
 * allocator hooks
 * ====================================================================== */

static nn_alloc_fn alloc_hook = malloc;
static nn_free_fn free_hook = free;

/* Route all core memory through alloc_fn/free_fn; NULLs restore malloc/free. */
void
nn_set_allocator(nn_alloc_fn alloc_fn, nn_free_fn free_fn)
{
	alloc_hook = alloc_fn ? alloc_fn : malloc;
	free_hook = free_fn ? free_fn : free;
}

/* Allocate through the hook; size 0 is bumped to 1 so NULL always means failure. */
void *
nn_alloc(size_t size)
{
	return alloc_hook(size ? size : 1);
}

/* nn_alloc followed by zero fill (the hook need not zero). */
void *
nn_alloc_zero(size_t size)
{
	void	   *p = nn_alloc(size);

	if (p)
		memset(p, 0, size);
	return p;
}

/* Free through the hook; NULL is ignored because pfree(NULL) is not allowed. */
void
nn_free_mem(void *ptr)
{
	if (ptr)
		free_hook(ptr);
}

/* Bytes for count elements of elem_size, or 0 when the product overflows size_t. */
static size_t
array_bytes(size_t count, size_t elem_size)
{
	if (elem_size != 0 && count > SIZE_MAX / elem_size)
		return 0;
	return count * elem_size;
}

/* Allocate count floats, or NULL on overflow or allocation failure. */
static float *
alloc_floats(size_t count)
{
	size_t		bytes = array_bytes(count, sizeof(float));

	return (bytes || count == 0) ? nn_alloc(bytes) : NULL;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
/* printf into the caller's error buffer, tolerating a NULL or empty buffer. */
static void
set_error(char *err, size_t errlen, const char *fmt,...)
{
	va_list		ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ======================================================================
 * RNG: xoshiro256** seeded by splitmix64
 * ====================================================================== */

/* One splitmix64 step: spreads a single seed word into well-mixed state words. */
static uint64_t
splitmix64_next(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Rotate left; used by xoshiro's scrambler and state update. */
static inline uint64_t
rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Seed the four state words from splitmix64(seed) (never all zero in practice). */
void
nn_rng_seed(nn_rng *rng, uint64_t seed)
{
	uint64_t	x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64_next(&x);
}

/* Next 64 random bits (xoshiro256**). */
uint64_t
nn_rng_next(nn_rng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl64(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform double in [0,1) from the top 53 bits. */
double
nn_rng_uniform(nn_rng *rng)
{
	return (double) (nn_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * Uniform integer in [0,n) by Lemire's multiply-and-reject, which has no
 * modulo bias; n == 0 returns 0.
 */
uint32_t
nn_rng_below(nn_rng *rng, uint32_t n)
{
	uint64_t	product;
	uint32_t	low;

	if (n == 0)
		return 0;
	product = (nn_rng_next(rng) >> 32) * (uint64_t) n;
	low = (uint32_t) product;
	if (low < n)
	{
		uint32_t	threshold = (uint32_t) (-n) % n;	/* 2^32 mod n */

		while (low < threshold)
		{
			product = (nn_rng_next(rng) >> 32) * (uint64_t) n;
			low = (uint32_t) product;
		}
	}
	return (uint32_t) (product >> 32);
}

/*
 * Standard normal by Box-Muller (cosine branch only: the state struct has no
 * room to cache the sine partner).  1-u keeps the log argument in (0,1].
 */
float
nn_rng_normal(nn_rng *rng)
{
	double		u1 = 1.0 - nn_rng_uniform(rng);
	double		u2 = nn_rng_uniform(rng);

	return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Fisher-Yates shuffle of idx[0..n) driven by rng (deterministic per seed). */
void
nn_rng_shuffle(nn_rng *rng, int *idx, int n)
{
	for (int i = n - 1; i > 0; i--)
	{
		int			j = (int) nn_rng_below(rng, (uint32_t) i + 1);
		int			tmp = idx[i];

		idx[i] = idx[j];
		idx[j] = tmp;
	}
}

/* ======================================================================
 * model
 * ====================================================================== */

/* Check a layer-width list against nn.h's limits; 0 if fine, else -1 + err. */
static int
validate_dims(int n_layers, const int *dims, char *err, size_t errlen)
{
	if (n_layers < 1 || n_layers > NN_MAX_LAYERS)
	{
		set_error(err, errlen, "number of hidden layers must be between 0 and %d",
				  NN_MAX_LAYERS - 1);
		return -1;
	}
	if (dims[0] < 1 || dims[0] > NN_MAX_DIM)
	{
		set_error(err, errlen, "number of features must be between 1 and %d, got %d",
				  NN_MAX_DIM, dims[0]);
		return -1;
	}
	for (int l = 1; l < n_layers; l++)
		if (dims[l] < 1 || dims[l] > NN_MAX_DIM)
		{
			set_error(err, errlen, "hidden layer %d width must be between 1 and %d, got %d",
					  l, NN_MAX_DIM, dims[l]);
			return -1;
		}
	if (dims[n_layers] < 2 || dims[n_layers] > NN_MAX_DIM)
	{
		set_error(err, errlen, "number of classes must be between 2 and %d, got %d",
				  NN_MAX_DIM, dims[n_layers]);
		return -1;
	}
	return 0;
}

/*
 * Total parameter count of validated dims (in 64 bits: each width is at most
 * 2^20, so this cannot overflow), for both allocation and deserialisation.
 */
static uint64_t
count_params(int n_layers, const int *dims)
{
	uint64_t	total = 0;

	for (int l = 0; l < n_layers; l++)
		total += (uint64_t) dims[l + 1] * (uint64_t) dims[l] + (uint64_t) dims[l + 1];
	return total;
}

/*
 * Allocate a model of validated shape with uninitialised params and a 0/1
 * feature range: the shared shell of create, clone and deserialise.
 */
static nn_model *
model_alloc(int n_layers, const int *dims, char *err, size_t errlen)
{
	uint64_t	n_params = count_params(n_layers, dims);
	nn_model   *m;
	size_t		off = 0;
	int			F = dims[0];

	if (n_params > SIZE_MAX / sizeof(float))
	{
		set_error(err, errlen, "model too large");
		return NULL;
	}
	m = nn_alloc_zero(sizeof(nn_model));
	if (m == NULL)
	{
		set_error(err, errlen, "out of memory");
		return NULL;
	}
	m->n_layers = n_layers;
	for (int l = 0; l <= n_layers; l++)
		m->dims[l] = dims[l];
	for (int l = 0; l < n_layers; l++)
	{
		m->w_off[l] = off;
		off += (size_t) dims[l + 1] * (size_t) dims[l];
		m->b_off[l] = off;
		off += (size_t) dims[l + 1];
	}
	m->n_params = off;
	m->params = alloc_floats(m->n_params);
	m->feat_lo = alloc_floats((size_t) F);
	m->feat_hi = alloc_floats((size_t) F);
	if (m->params == NULL || m->feat_lo == NULL || m->feat_hi == NULL)
	{
		nn_free(m);
		set_error(err, errlen, "out of memory allocating a model of %zu parameters",
				  (size_t) n_params);
		return NULL;
	}
	for (int j = 0; j < F; j++)
	{
		m->feat_lo[j] = 0.0f;
		m->feat_hi[j] = 1.0f;
	}
	return m;
}

/* Validate the shape, then He-initialise weights (normal, std sqrt(2/fan_in)) and zero biases. */
nn_model *
nn_create(int n_features, int n_hidden, const int *hidden,
		  int n_classes, uint64_t seed, char *err, size_t errlen)
{
	int			dims[NN_MAX_LAYERS + 1];
	int			n_layers;
	nn_model   *m;
	nn_rng		rng;

	if (err && errlen)
		err[0] = '\0';
	if (n_hidden < 0 || n_hidden > NN_MAX_LAYERS - 1)
	{
		set_error(err, errlen, "number of hidden layers must be between 0 and %d, got %d",
				  NN_MAX_LAYERS - 1, n_hidden);
		return NULL;
	}
	if (n_hidden > 0 && hidden == NULL)
	{
		set_error(err, errlen, "hidden layer widths missing");
		return NULL;
	}
	n_layers = n_hidden + 1;
	dims[0] = n_features;
	for (int l = 0; l < n_hidden; l++)
		dims[l + 1] = hidden[l];
	dims[n_layers] = n_classes;
	if (validate_dims(n_layers, dims, err, errlen) != 0)
		return NULL;

	m = model_alloc(n_layers, dims, err, errlen);
	if (m == NULL)
		return NULL;

	nn_rng_seed(&rng, seed);
	for (int l = 0; l < n_layers; l++)
	{
		float	   *W = m->params + m->w_off[l];
		float	   *b = m->params + m->b_off[l];
		size_t		n_weights = (size_t) dims[l + 1] * (size_t) dims[l];
		float		std = (float) sqrt(2.0 / (double) dims[l]);

		for (size_t i = 0; i < n_weights; i++)
			W[i] = nn_rng_normal(&rng) * std;
		memset(b, 0, (size_t) dims[l + 1] * sizeof(float));
	}
	return m;
}

/* Deep copy (params and feature range); NULL on allocation failure. */
nn_model *
nn_clone(const nn_model *m)
{
	nn_model   *c = model_alloc(m->n_layers, m->dims, NULL, 0);

	if (c == NULL)
		return NULL;
	memcpy(c->params, m->params, m->n_params * sizeof(float));
	memcpy(c->feat_lo, m->feat_lo, (size_t) NN_FEATURES(m) * sizeof(float));
	memcpy(c->feat_hi, m->feat_hi, (size_t) NN_FEATURES(m) * sizeof(float));
	return c;
}

/* Overwrite dst's parameters with src's (same shape; the feature range is left alone). */
void
nn_copy_params(nn_model *dst, const nn_model *src)
{
	if (dst != src)
		memcpy(dst->params, src->params, src->n_params * sizeof(float));
}

/* Release a model and its arrays; NULL is ignored. */
void
nn_free(nn_model *m)
{
	if (m == NULL)
		return;
	nn_free_mem(m->params);
	nn_free_mem(m->feat_lo);
	nn_free_mem(m->feat_hi);
	nn_free_mem(m);
}

/* Record per-feature min/max of X as the input box PGD stays inside; n <= 0 leaves it unchanged. */
void
nn_set_feature_range(nn_model *m, const float *X, int n)
{
	int			F = NN_FEATURES(m);
	float	   *lo = m->feat_lo;
	float	   *hi = m->feat_hi;

	if (n <= 0)
		return;
	memcpy(lo, X, (size_t) F * sizeof(float));
	memcpy(hi, X, (size_t) F * sizeof(float));
	for (int i = 1; i < n; i++)
	{
		const float *row = X + (size_t) i * F;

		for (int j = 0; j < F; j++)
		{
			float		v = row[j];

			lo[j] = v < lo[j] ? v : lo[j];
			hi[j] = v > hi[j] ? v : hi[j];
		}
	}
}

/* ======================================================================
 * workspace, forward, loss, backward
 * ====================================================================== */

/*
 * Scratch for batches of up to max_batch rows: activations of every layer,
 * deltas of the hidden layers (the output delta is the caller's dlogits) and
 * a probability buffer.  NULL on bad size or allocation failure.
 */
nn_workspace *
nn_workspace_create(const nn_model *m, int max_batch)
{
	nn_workspace *ws;
	int			L = m->n_layers;

	if (max_batch < 1)
		return NULL;
	ws = nn_alloc_zero(sizeof(nn_workspace));
	if (ws == NULL)
		return NULL;
	ws->max_batch = max_batch;
	for (int l = 1; l <= L; l++)
	{
		size_t		count = (size_t) max_batch * (size_t) m->dims[l];

		ws->act[l] = alloc_floats(count);
		if (ws->act[l] == NULL)
			goto fail;
		if (l < L)
		{
			ws->delta[l] = alloc_floats(count);
			if (ws->delta[l] == NULL)
				goto fail;
		}
	}
	ws->probs = alloc_floats((size_t) max_batch * (size_t) NN_CLASSES(m));
	if (ws->probs == NULL)
		goto fail;
	return ws;

fail:
	nn_workspace_free(ws);
	return NULL;
}

/* Release a workspace; NULL is ignored. */
void
nn_workspace_free(nn_workspace *ws)
{
	if (ws == NULL)
		return;
	for (int l = 0; l <= NN_MAX_LAYERS; l++)
	{
		nn_free_mem(ws->act[l]);
		nn_free_mem(ws->delta[l]);
	}
	nn_free_mem(ws->probs);
	nn_free_mem(ws);
}

/* Add the bias row to every row of out (n x width) and apply ReLU, in one pass. */
static void
add_bias_relu(float *out, const float *bias, int n, int width)
{
	for (int i = 0; i < n; i++)
	{
		float	   *row = out + (size_t) i * width;

		for (int j = 0; j < width; j++)
		{
			float		v = row[j] + bias[j];

			row[j] = v > 0.0f ? v : 0.0f;
		}
	}
}

/* Add the bias row to every row of out (n x width): the logits layer. */
static void
add_bias(float *out, const float *bias, int n, int width)
{
	for (int i = 0; i < n; i++)
	{
		float	   *row = out + (size_t) i * width;

		for (int j = 0; j < width; j++)
			row[j] += bias[j];
	}
}

/*
 * Forward pass: act[l+1] = act[l] W_l^T + b_l (ReLU on hidden layers), with
 * act[0] = X.  Returns the logits in ws, or NULL if n exceeds ws->max_batch.
 */
static nn_interrupt_fn interrupt_hook = NULL;

/* Installs the hook nn_forward calls first (NULL: none). */
void
nn_set_interrupt_hook(nn_interrupt_fn hook)
{
	interrupt_hook = hook;
}

const float *
nn_forward(const nn_model *m, nn_workspace *ws, const float *X, int n)
{
	const float *in = X;
	int			L = m->n_layers;

	if (interrupt_hook)
		interrupt_hook();

	if (n < 0 || n > ws->max_batch)
		return NULL;
	for (int l = 0; l < L; l++)
	{
		int			fan_in = m->dims[l];
		int			fan_out = m->dims[l + 1];
		float	   *out = ws->act[l + 1];

		if (n > 0)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, fan_out, fan_in,
						1.0f, in, fan_in, m->params + m->w_off[l], fan_in,
						0.0f, out, fan_out);
		if (l < L - 1)
			add_bias_relu(out, m->params + m->b_off[l], n, fan_out);
		else
			add_bias(out, m->params + m->b_off[l], n, fan_out);
		in = out;
	}
	return ws->act[L];
}

/* Log-sum-exp of one logit row, shifted by the row maximum so exp cannot overflow. */
static double
row_logsumexp(const float *row, int C)
{
	float		mx = row[0];
	double		sum = 0.0;

	for (int j = 1; j < C; j++)
		mx = row[j] > mx ? row[j] : mx;
	for (int j = 0; j < C; j++)
		sum += exp((double) row[j] - (double) mx);
	return (double) mx + log(sum);
}

/*
 * Softmax cross-entropy summed over rows, via log-sum-exp so large logits do
 * not overflow.  Each element is read before it is written, so dlogits and
 * probs may alias the logits.  An out-of-range label makes the loss NaN.
 */
double
nn_softmax_ce(const float *logits, const int *y, int n, int C,
			  float scale, float *dlogits, float *probs)
{
	double		total = 0.0;

	for (int i = 0; i < n; i++)
	{
		const float *row = logits + (size_t) i * C;
		double		lse = row_logsumexp(row, C);
		int			label = y[i];

		if (label >= 0 && label < C)
			total += lse - (double) row[label];
		else
			total = NAN;

		if (dlogits || probs)
		{
			float	   *drow = dlogits ? dlogits + (size_t) i * C : NULL;
			float	   *prow = probs ? probs + (size_t) i * C : NULL;

			for (int j = 0; j < C; j++)
			{
				double		p = exp((double) row[j] - lse);

				if (prow)
					prow[j] = (float) p;
				if (drow)
					drow[j] = (float) ((double) scale * (p - (j == label ? 1.0 : 0.0)));
			}
		}
	}
	return total;
}

/* Softmax of n logit rows into out (may alias logits). */
static void
softmax_rows(const float *logits, int n, int C, float *out)
{
	for (int i = 0; i < n; i++)
	{
		const float *row = logits + (size_t) i * C;
		float	   *orow = out + (size_t) i * C;
		double		lse = row_logsumexp(row, C);

		for (int j = 0; j < C; j++)
			orow[j] = (float) exp((double) row[j] - lse);
	}
}

/* Add the column sums of g (n x width) to grad_bias: the bias gradient. */
static void
add_column_sums(const float *g, int n, int width, float *grad_bias)
{
	for (int i = 0; i < n; i++)
	{
		const float *row = g + (size_t) i * width;

		for (int j = 0; j < width; j++)
			grad_bias[j] += row[j];
	}
}

/* Zero delta wherever the ReLU output was 0: turns d/d(act) into d/d(pre-activation). */
static void
relu_mask(float *delta, const float *act, size_t count)
{
	for (size_t i = 0; i < count; i++)
		delta[i] = act[i] > 0.0f ? delta[i] : 0.0f;
}

/*
 * Backward pass: for each layer from the top, g is the gradient wrt its
 * pre-activation output; dW += g^T in, db += colsum(g), and the gradient wrt
 * the layer input is g W (masked by ReLU for hidden inputs).  The first
 * layer's input gradient (the costly n x features product) is skipped unless
 * grad_input is given.
 */
void
nn_backward(const nn_model *m, nn_workspace *ws, const float *X, int n,
			const float *dlogits, float *grad_params, float *grad_input)
{
	int			L = m->n_layers;

	if (n <= 0 || n > ws->max_batch || (grad_params == NULL && grad_input == NULL))
		return;
	for (int l = L - 1; l >= 0; l--)
	{
		int			fan_in = m->dims[l];
		int			fan_out = m->dims[l + 1];
		const float *g = (l == L - 1) ? dlogits : ws->delta[l + 1];
		const float *in = (l == 0) ? X : ws->act[l];
		const float *W = m->params + m->w_off[l];

		if (grad_params)
		{
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, fan_out, fan_in, n,
						1.0f, g, fan_out, in, fan_in,
						1.0f, grad_params + m->w_off[l], fan_in);
			add_column_sums(g, n, fan_out, grad_params + m->b_off[l]);
		}
		if (l > 0)
		{
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, fan_in, fan_out,
						1.0f, g, fan_out, W, fan_in, 0.0f, ws->delta[l], fan_in);
			relu_mask(ws->delta[l], ws->act[l], (size_t) n * (size_t) fan_in);
		}
		else if (grad_input)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, fan_in, fan_out,
						1.0f, g, fan_out, W, fan_in, 0.0f, grad_input, fan_in);
	}
}

/* Index of the largest of C values (first one on ties). */
static int
argmax(const float *v, int C)
{
	int			best = 0;

	for (int j = 1; j < C; j++)
		if (v[j] > v[best])
			best = j;
	return best;
}

/* Argmax class of each row, in chunks of ws->max_batch rows. */
void
nn_predict(const nn_model *m, nn_workspace *ws, const float *X, int n, int *out)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);

	for (int start = 0; start < n; start += ws->max_batch)
	{
		int			rows = n - start < ws->max_batch ? n - start : ws->max_batch;
		const float *logits = nn_forward(m, ws, X + (size_t) start * F, rows);

		for (int i = 0; i < rows; i++)
			out[start + i] = argmax(logits + (size_t) i * C, C);
	}
}

/* Softmax probabilities of each row into out (n x C), in chunks of ws->max_batch rows. */
void
nn_predict_proba(const nn_model *m, nn_workspace *ws, const float *X, int n, float *out)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);

	for (int start = 0; start < n; start += ws->max_batch)
	{
		int			rows = n - start < ws->max_batch ? n - start : ws->max_batch;
		const float *logits = nn_forward(m, ws, X + (size_t) start * F, rows);

		softmax_rows(logits, rows, C, out + (size_t) start * C);
	}
}

/* ======================================================================
 * optimisers
 * ====================================================================== */

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
	opt->m1 = alloc_floats(n);
	opt->m2 = kind == NN_OPT_ADAM ? alloc_floats(n) : NULL;
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
sgd_step(nn_optimizer *opt, float *params, float *grad)
{
	const float lr = opt->lr;
	const float wd = opt->weight_decay;
	const float mom = opt->momentum;
	float	   *v = opt->m1;
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

/*
 * torch.optim.Adam step: bias corrections in double as torch computes them on
 * the host, then p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps).  The widest
 * available kernel takes the bulk; the scalar loop does the rest, all with
 * identical per-element arithmetic.
 */
static void
adam_step(nn_optimizer *opt, float *params, float *grad)
{
	adam_consts k;
	double		bc1 = 1.0 - pow((double) opt->beta1, (double) opt->t);
	double		bc2 = 1.0 - pow((double) opt->beta2, (double) opt->t);
	size_t		n = opt->n;
	size_t		i = 0;

	k.wd = opt->weight_decay;
	k.b1 = opt->beta1;
	k.b2 = opt->beta2;
	k.one_minus_b1 = 1.0f - opt->beta1;
	k.one_minus_b2 = 1.0f - opt->beta2;
	k.eps = opt->eps;
	k.step_size = (float) ((double) opt->lr / bc1);
	k.bc2_sqrt = (float) sqrt(bc2);

#if NN_HAVE_AVX_KERNEL
	if (cpu_has_avx())
		i = adam_update_avx(&k, params, grad, opt->m1, opt->m2, n);
#endif
#if defined(__SSE2__)
	i += adam_update_sse2(&k, params + i, grad + i, opt->m1 + i, opt->m2 + i, n - i);
#endif
	for (; i < n; i++)
		adam_update_one(&k, params + i, grad + i, opt->m1 + i, opt->m2 + i);
}

/* One optimiser step on params with gradient grad (grad may be overwritten by weight decay). */
void
nn_optimizer_step(nn_optimizer *opt, float *params, float *grad)
{
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

/* ======================================================================
 * training and evaluation
 * ====================================================================== */

/* The documented defaults: Adam, lr 1e-3, momentum 0.9, no decay, batch 128, 10 epochs, seed 42. */
void
nn_train_options_default(nn_train_options *o)
{
	memset(o, 0, sizeof(*o));
	o->optimizer = NN_OPT_ADAM;
	o->lr = 1e-3f;
	o->momentum = 0.9f;
	o->weight_decay = 0.0f;
	o->batch_size = 128;
	o->epochs = 10;
	o->seed = 42;
}

/*
 * Mini-batch training with the mean CE of each batch as its loss (so
 * dlogits are scaled by 1/rows; the last partial batch is kept).  Rows are
 * gathered in a per-epoch Fisher-Yates order into one contiguous buffer so
 * sgemm sees dense input.  The callback receives the 1-based epoch just
 * finished.  Returns NaN (model untouched) on labels outside 0..C-1 or
 * allocation failure; 0 when there is nothing to train.
 */
double
nn_train(nn_model *m, const float *X, const int *y, int n,
		 const nn_train_options *o, nn_epoch_callback cb, void *cb_arg)
{
	nn_train_options defaults;
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);
	int			L = m->n_layers;
	int			batch;
	nn_workspace *ws = NULL;
	nn_optimizer *opt = NULL;
	float	   *grad = NULL;
	float	   *Xb = NULL;
	int		   *yb = NULL;
	int		   *order = NULL;
	nn_rng		rng;
	double		last_loss = 0.0;

	if (o == NULL)
	{
		nn_train_options_default(&defaults);
		o = &defaults;
	}
	if (n <= 0)
		return 0.0;
	for (int i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= C)
			return NAN;

	batch = o->batch_size < 1 ? 1 : (o->batch_size > n ? n : o->batch_size);
	ws = nn_workspace_create(m, batch);
	opt = nn_optimizer_create(o->optimizer, m->n_params, o->lr, o->momentum, o->weight_decay);
	grad = alloc_floats(m->n_params);
	Xb = alloc_floats((size_t) batch * (size_t) F);
	yb = nn_alloc((size_t) batch * sizeof(int));
	order = nn_alloc((size_t) n * sizeof(int));
	if (ws == NULL || opt == NULL || grad == NULL || Xb == NULL || yb == NULL || order == NULL)
	{
		last_loss = NAN;
		goto done;
	}

	nn_set_feature_range(m, X, n);
	nn_rng_seed(&rng, o->seed ^ NN_SHUFFLE_STREAM);
	for (int i = 0; i < n; i++)
		order[i] = i;

	for (int epoch = 0; epoch < o->epochs; epoch++)
	{
		double		epoch_loss = 0.0;

		nn_rng_shuffle(&rng, order, n);
		for (int start = 0; start < n; start += batch)
		{
			int			rows = n - start < batch ? n - start : batch;
			float	   *logits;

			for (int i = 0; i < rows; i++)
			{
				int			r = order[start + i];

				memcpy(Xb + (size_t) i * F, X + (size_t) r * F, (size_t) F * sizeof(float));
				yb[i] = y[r];
			}
			nn_forward(m, ws, Xb, rows);
			logits = ws->act[L];
			/* dlogits overwrite the logits: backward never reads them */
			epoch_loss += nn_softmax_ce(logits, yb, rows, C, 1.0f / (float) rows, logits, NULL);
			memset(grad, 0, m->n_params * sizeof(float));
			nn_backward(m, ws, Xb, rows, logits, grad, NULL);
			nn_optimizer_step(opt, m->params, grad);
		}
		last_loss = epoch_loss / (double) n;
		if (cb && cb(cb_arg, epoch + 1, o->epochs, last_loss) != 0)
			break;
	}

done:
	nn_workspace_free(ws);
	nn_optimizer_free(opt);
	nn_free_mem(grad);
	nn_free_mem(Xb);
	nn_free_mem(yb);
	nn_free_mem(order);
	return last_loss;
}

/* Share of rows predicted correctly, using a private workspace; NaN on allocation failure, 0 for n <= 0. */
double
nn_accuracy(const nn_model *m, const float *X, const int *y, int n)
{
	int			chunk;
	nn_workspace *ws;
	int		   *pred;
	long		correct = 0;

	if (n <= 0)
		return 0.0;
	chunk = n < NN_EVAL_BATCH ? n : NN_EVAL_BATCH;
	ws = nn_workspace_create(m, chunk);
	pred = nn_alloc((size_t) chunk * sizeof(int));
	if (ws == NULL || pred == NULL)
	{
		nn_workspace_free(ws);
		nn_free_mem(pred);
		return NAN;
	}
	for (int start = 0; start < n; start += chunk)
	{
		int			rows = n - start < chunk ? n - start : chunk;

		nn_predict(m, ws, X + (size_t) start * NN_FEATURES(m), rows, pred);
		for (int i = 0; i < rows; i++)
			correct += pred[i] == y[start + i];
	}
	nn_workspace_free(ws);
	nn_free_mem(pred);
	return (double) correct / (double) n;
}

/* ======================================================================
 * serialisation
 * ====================================================================== */

/* 64-bit FNV-1a over len bytes, continuing from h (start with NN_FNV_OFFSET). */
uint64_t
nn_fnv1a64(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* Store v little-endian at p, independent of host byte order. */
static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char) v;
	p[1] = (unsigned char) (v >> 8);
	p[2] = (unsigned char) (v >> 16);
	p[3] = (unsigned char) (v >> 24);
}

/* Load a little-endian u32 from p. */
static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* Store v little-endian at p. */
static void
put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t) v);
	put_u32(p + 4, (uint32_t) (v >> 32));
}

/* Load a little-endian u64 from p. */
static uint64_t
get_u64(const unsigned char *p)
{
	return (uint64_t) get_u32(p) | ((uint64_t) get_u32(p + 4) << 32);
}

/* Write count floats little-endian (bit patterns preserved); returns the end. */
static unsigned char *
put_floats(unsigned char *p, const float *src, size_t count)
{
	for (size_t i = 0; i < count; i++, p += 4)
	{
		uint32_t	bits;

		memcpy(&bits, &src[i], 4);
		put_u32(p, bits);
	}
	return p;
}

/* Read count little-endian floats; returns the position after them. */
static const unsigned char *
get_floats(const unsigned char *p, float *dst, size_t count)
{
	for (size_t i = 0; i < count; i++, p += 4)
	{
		uint32_t	bits = get_u32(p);

		memcpy(&dst[i], &bits, 4);
	}
	return p;
}

/* Byte length of the header: magic, version, n_layers and the dims. */
static size_t
header_size(int n_layers)
{
	return 12 + 4 * (size_t) (n_layers + 1);
}

/* Exact size of nn_serialize's output for m. */
size_t
nn_serialized_size(const nn_model *m)
{
	return header_size(m->n_layers) + 2 * 4 * (size_t) NN_FEATURES(m) +
		4 * m->n_params + 8;
}

/* Write m in the documented little-endian format followed by its FNV-1a hash. */
void
nn_serialize(const nn_model *m, void *buf)
{
	unsigned char *start = buf;
	unsigned char *p = start;
	int			F = NN_FEATURES(m);

	memcpy(p, NN_MAGIC, 4);
	put_u32(p + 4, NN_FORMAT_VERSION);
	put_u32(p + 8, (uint32_t) m->n_layers);
	p += 12;
	for (int l = 0; l <= m->n_layers; l++, p += 4)
		put_u32(p, (uint32_t) m->dims[l]);
	p = put_floats(p, m->feat_lo, (size_t) F);
	p = put_floats(p, m->feat_hi, (size_t) F);
	p = put_floats(p, m->params, m->n_params);
	put_u64(p, nn_fnv1a64(start, (size_t) (p - start), NN_FNV_OFFSET));
}

/*
 * Parse a serialised model, checking length, magic, version, shape limits,
 * exact total length and the hash before allocating anything large.
 */
nn_model *
nn_deserialize(const void *buf, size_t len, char *err, size_t errlen)
{
	const unsigned char *p = buf;
	uint32_t	version,
				n_layers;
	int			dims[NN_MAX_LAYERS + 1];
	uint64_t	expected;
	size_t		hdr;
	nn_model   *m;

	if (err && errlen)
		err[0] = '\0';
	if (buf == NULL || len < 12)
	{
		set_error(err, errlen, "model data truncated (%zu bytes)", len);
		return NULL;
	}
	if (memcmp(p, NN_MAGIC, 4) != 0)
	{
		set_error(err, errlen, "not a model (bad magic)");
		return NULL;
	}
	version = get_u32(p + 4);
	if (version != NN_FORMAT_VERSION)
	{
		set_error(err, errlen, "unsupported model format version %u (expected %d)",
				  (unsigned) version, NN_FORMAT_VERSION);
		return NULL;
	}
	n_layers = get_u32(p + 8);
	if (n_layers < 1 || n_layers > NN_MAX_LAYERS)
	{
		set_error(err, errlen, "bad layer count %u", (unsigned) n_layers);
		return NULL;
	}
	hdr = header_size((int) n_layers);
	if (len < hdr)
	{
		set_error(err, errlen, "model data truncated (%zu bytes)", len);
		return NULL;
	}
	for (uint32_t l = 0; l <= n_layers; l++)
	{
		uint32_t	d = get_u32(p + 12 + 4 * l);

		if (d > NN_MAX_DIM)
		{
			set_error(err, errlen, "bad layer width %u", (unsigned) d);
			return NULL;
		}
		dims[l] = (int) d;
	}
	if (validate_dims((int) n_layers, dims, err, errlen) != 0)
		return NULL;

	expected = (uint64_t) hdr + 8 * (uint64_t) dims[0] +
		4 * count_params((int) n_layers, dims) + 8;
	if (expected > SIZE_MAX || len < expected)
	{
		set_error(err, errlen, "model data truncated (%zu bytes, expected %llu)",
				  len, (unsigned long long) expected);
		return NULL;
	}
	if (len > expected)
	{
		set_error(err, errlen, "model data has %zu trailing bytes",
				  len - (size_t) expected);
		return NULL;
	}
	if (nn_fnv1a64(p, (size_t) expected - 8, NN_FNV_OFFSET) != get_u64(p + expected - 8))
	{
		set_error(err, errlen, "model data corrupt (hash mismatch)");
		return NULL;
	}

	m = model_alloc((int) n_layers, dims, err, errlen);
	if (m == NULL)
		return NULL;
	p += hdr;
	p = get_floats(p, m->feat_lo, (size_t) dims[0]);
	p = get_floats(p, m->feat_hi, (size_t) dims[0]);
	get_floats(p, m->params, m->n_params);
	return m;
}

/* True when every parameter is finite (a diverged run is never stored). */
int
nn_params_finite(const nn_model *m)
{
	for (size_t i = 0; i < m->n_params; i++)
		if (!isfinite(m->params[i]))
			return 0;
	return 1;
}
