/*
 * layers.c: the dense layers: the batch workspace, the forward pass and the
 * backward pass.  Every matrix product of the core goes through cblas_sgemm
 * (see blas_seam.h); the only per-element loops here are bias adds, ReLU and
 * its mask, and the bias-gradient column sums.
 */
#include <math.h>
#include <string.h>

#include "blas_seam.h"
#include "nn_internal.h"

/*
 * Scratch for batches of up to max_batch rows: activations of every layer
 * (act[0], the standardised input, only for a standardized model: nn_forward
 * allocates it if the workspace meets one later), deltas of the hidden
 * layers (the output delta is the caller's dlogits) and a probability
 * buffer.  NULL on bad size or allocation failure.
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
	if (m->standardized)
	{
		ws->act[0] = nn_alloc_floats((size_t) max_batch * (size_t) NN_FEATURES(m));
		if (ws->act[0] == NULL)
			goto fail;
	}
	for (int l = 1; l <= L; l++)
	{
		size_t		count = (size_t) max_batch * (size_t) m->dims[l];

		ws->act[l] = nn_alloc_floats(count);
		if (ws->act[l] == NULL)
			goto fail;
		if (l < L)
		{
			ws->delta[l] = nn_alloc_floats(count);
			if (ws->delta[l] == NULL)
				goto fail;
		}
	}
	ws->probs = nn_alloc_floats((size_t) max_batch * (size_t) NN_CLASSES(m));
	if (m->n_members > 0)		/* an ensemble: its members share the rest, being of its shape */
		ws->ens = nn_alloc_floats((size_t) max_batch * (size_t) NN_CLASSES(m));
	if (ws->probs == NULL || (m->n_members > 0 && ws->ens == NULL) || (m->n_stages > 0 && nn_stages_workspace(m, ws, max_batch) != 0))
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
	for (int s = 0; s < NN_MAX_STAGES; s++)
	{
		nn_free_mem(ws->sact[s]);
		nn_free_mem(ws->sdelta[s]);
		nn_free_mem(ws->pidx[s]);
	}
	nn_free_mem(ws->col);
	nn_free_mem(ws->dcol);
	nn_free_mem(ws->wpart);
	nn_free_mem(ws->bpart);
	nn_free_mem(ws->wino);
	nn_free_mem(ws->probs);
	nn_free_mem(ws->ens);
	nn_free_mem(ws);
}

/* What the split element-wise loops below read: a matrix and a row or a second matrix. */
typedef struct ew_job
{
	float	   *out;
	const float *in;
	int			width;
} ew_job;

/* One row: row += bias, then ReLU (restrict parameters: the loop vectorises). */
static inline void
bias_relu_row(float *restrict row, const float *restrict bias, int width)
{
	for (int c = 0; c < width; c++)
	{
		float		v = row[c] + bias[c];

		row[c] = v > 0.0f ? v : 0.0f;
	}
}

/* Rows lo .. hi of out += bias, then ReLU. */
static void
bias_relu_range(void *arg, size_t lo, size_t hi)
{
	const ew_job *j = arg;

	for (size_t i = lo; i < hi; i++)
		bias_relu_row(j->out + i * j->width, j->in, j->width);
}

/* Add the bias row to every row of out (n x width) and apply ReLU, in one pass (rows split over threads). */
void
nn_add_bias_relu(float *out, const float *bias, size_t n, int width)
{
	ew_job		j = {out, bias, width};

	nn_par_for(n, NN_PAR_GRAIN_FLOATS / (size_t) (width > 0 ? width : 1) + 1, bias_relu_range, &j);
}

/* The same on this thread only (a convolution's chunk, already on one of the core's threads). */
void
nn_bias_relu_rows(float *out, const float *bias, size_t n, int width)
{
	ew_job		j = {out, bias, width};

	bias_relu_range(&j, 0, n);
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

static nn_interrupt_fn interrupt_hook = NULL;
static nn_interrupt_fn cancel_hook = NULL;

/* Installs the hook of the cancel points inside long passes (NULL: none). */
void
nn_set_cancel_hook(nn_interrupt_fn hook)
{
	cancel_hook = hook;
}

/* A cancel point inside a pass (between parts of a product, rounds of a convolution): the main thread only. */
void
nn_cancel_point(void)
{
	if (cancel_hook)
		cancel_hook();
}

/*
 * Products of more multiply-adds than this (about 0.1 s on two cores) are
 * computed in parts, with a cancel point between them, so that a batch of
 * any size can be cancelled within a part's time.
 */
static double gemm_part_macs = 2147483648.0;

/* Sets the size of a product's parts (multiply-adds; the unit tests make it small). */
void
nn_set_gemm_part_macs(double macs)
{
	NN_ASSERT(macs >= 1.0);
	gemm_part_macs = macs;
}

/*
 * One product: cblas_sgemm, or on a convolutional model (whose passes run
 * OpenBLAS on one thread) the same split over the core's threads.
 */
static void
gemm_once(const nn_model *m, int trans_a, int trans_b, int rows, int cols, int k,
		  const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	if (m->n_stages > 0)
		nn_sgemm_split(trans_a, trans_b, rows, cols, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
	else
		cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
					rows, cols, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

/*
 * A dense layer's product C = beta C + op(A) op(B), in parts when it is
 * large: by rows of C when A is not transposed (each part its own rows),
 * else (the weight gradient, summed over the batch) by the shared dimension
 * k, each part after the first adding to C.
 */
static void
dense_gemm(const nn_model *m, int trans_a, int trans_b, int rows, int cols, int k,
		   const float *a, int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
	double		macs = (double) rows * cols * k;
	int			span = trans_a ? k : rows;	/* the dimension cut into parts */
	int			parts = macs > gemm_part_macs ? (int) ceil(macs / gemm_part_macs) : 1;
	int			step;

	if (parts <= 1 || span <= 1)
	{
		gemm_once(m, trans_a, trans_b, rows, cols, k, a, lda, b, ldb, beta, c, ldc);
		return;
	}
	if (parts > span)
		parts = span;
	step = (span + parts - 1) / parts;
	for (int p = 0; p < span; p += step)
	{
		int			len = step < span - p ? step : span - p;

		if (p > 0)
			nn_cancel_point();
		if (!trans_a)
			gemm_once(m, 0, trans_b, len, cols, k, a + (size_t) p * lda, lda, b, ldb, beta,
					  c + (size_t) p * ldc, ldc);
		else
			gemm_once(m, 1, trans_b, rows, cols, len, a + (size_t) p * lda, lda,
					  trans_b ? b + p : b + (size_t) p * ldb, ldb, p == 0 ? beta : 1.0f, c, ldc);
	}
}

/* Installs the hook nn_forward calls first (NULL: none). */
void
nn_set_interrupt_hook(nn_interrupt_fn hook)
{
	interrupt_hook = hook;
}

/*
 * Forward pass: act[l+1] = act[l] W_l^T + b_l (ReLU on hidden layers), with
 * act[0] = X, or (X - mean) / scale on a standardized model; a
 * convolutional model's dense input is its last stage's output (conv.c),
 * and its products run on the core's threads (gemm_split.c).
 * Returns the logits in ws, or NULL if n exceeds ws->max_batch (or the standardised
 * input's buffer cannot be allocated).
 */
const float *
nn_forward(const nn_model *m, nn_workspace *ws, const float *X, int n)
{
	const float *in = X;
	int			L = m->n_layers,
				blas;

	NN_ASSERT(m != NULL && ws != NULL && m->n_layers >= 1 && m->n_layers <= NN_MAX_LAYERS);
	if (m->n_members > 0)
		return nn_ensemble_forward(m, ws, X, n);
	if (interrupt_hook)
		interrupt_hook();

	if (n < 0 || n > ws->max_batch)
		return NULL;
	if (m->standardized)
	{
		if (ws->act[0] == NULL)
			ws->act[0] = nn_alloc_floats((size_t) ws->max_batch * (size_t) NN_FEATURES(m));
		if (ws->act[0] == NULL)
			return NULL;
		nn_standardize_rows(m, X, n, ws->act[0]);
		in = ws->act[0];
	}
	blas = m->n_stages > 0 ? nn_blas_single_begin() : 1;
	if (m->n_stages > 0)
		in = nn_stages_forward(m, ws, in, n);
	for (int l = 0; l < L; l++)
	{
		int			fan_in = m->dims[l];
		int			fan_out = m->dims[l + 1];
		float	   *out = ws->act[l + 1];

		if (n > 0)
			dense_gemm(m, 0, 1, n, fan_out, fan_in, in, fan_in, m->params + m->w_off[l], fan_in, 0.0f, out, fan_out);
		if (l < L - 1)
			nn_add_bias_relu(out, m->params + m->b_off[l], (size_t) n, fan_out);
		else
			add_bias(out, m->params + m->b_off[l], n, fan_out);
		in = out;
	}
	nn_blas_single_end(blas);
	return ws->act[L];
}

/* What a split column sum reads: g (rows x width) and the sums it adds to. */
typedef struct colsum_job
{
	const float *g;
	size_t		rows;
	int			width;
	float	   *sums;
} colsum_job;

/* Columns lo .. hi of the sums, each over every row in row order. */
static void
column_sums_range(void *arg, size_t lo, size_t hi)
{
	const colsum_job *j = arg;

	for (size_t i = 0; i < j->rows; i++)
	{
		const float *row = j->g + i * j->width;

		for (size_t c = lo; c < hi; c++)
			j->sums[c] += row[c];
	}
}

/*
 * Column sums of g (n x width) added to grad_bias: the bias gradient.  Split
 * by columns, so each sum adds its rows in the same order on any thread count.
 */
void
nn_add_column_sums(const float *g, size_t n, int width, float *grad_bias)
{
	colsum_job	j = {g, n, width, grad_bias};

	nn_par_for((size_t) width, n * (size_t) width >= 2 * NN_PAR_GRAIN_FLOATS ? 8 : (size_t) width + 1,
			   column_sums_range, &j);
}

/* The same on the calling thread only. */
void
nn_column_sums_serial(const float *g, size_t n, int width, float *grad_bias)
{
	colsum_job	j = {g, n, width, grad_bias};

	column_sums_range(&j, 0, (size_t) width);
}

/* d/dx = d/dx' / scale for x' = (x - mean) / scale, row by row. */
static void
unscale_gradient(float *g, const float *scale, int n, int width)
{
	for (int i = 0; i < n; i++)
	{
		float	   *row = g + (size_t) i * width;

		for (int j = 0; j < width; j++)
			row[j] /= scale[j];
	}
}

/* Elements lo .. hi of the ReLU mask. */
static void
relu_mask_range(void *arg, size_t lo, size_t hi)
{
	const ew_job *j = arg;
	float	   *restrict delta = j->out;
	const float *restrict act = j->in;

	for (size_t i = lo; i < hi; i++)
		delta[i] = act[i] > 0.0f ? delta[i] : 0.0f;
}

/* Zero delta wherever the ReLU output was 0: turns d/d(act) into d/d(pre-activation). */
void
nn_relu_mask(float *delta, const float *act, size_t count)
{
	ew_job		j = {delta, act, 0};

	nn_par_for(count, NN_PAR_GRAIN_FLOATS, relu_mask_range, &j);
}

/* The same on this thread only. */
void
nn_relu_mask_serial(float *delta, const float *act, size_t count)
{
	ew_job		j = {delta, act, 0};

	relu_mask_range(&j, 0, count);
}

/*
 * Backward pass: for each layer from the top, g is the gradient wrt its
 * pre-activation output; dW += g^T in, db += colsum(g), and the gradient wrt
 * the layer input is g W (masked by ReLU for hidden inputs).  The first
 * layer's input gradient (the costly n x features product) is skipped unless
 * grad_input is given.  On a standardized model the first layer's input is
 * the standardised act[0], and the input gradient is taken back to raw X
 * (chain rule: divided by scale).  On a convolutional model the first
 * dense layer's input gradient goes to the last stage, and the stages
 * (conv.c) carry it on to their parameters and the input.
 */
void
nn_backward(const nn_model *m, nn_workspace *ws, const float *X, int n,
			const float *dlogits, float *grad_params, float *grad_input)
{
	int			L = m->n_layers;
	const float *x0 = m->standardized ? ws->act[0] : X;	/* what the first layer or stage read */
	float	   *gstage = m->n_stages > 0 ? ws->sdelta[m->n_stages - 1] : NULL;
	int			blas;

	NN_ASSERT(m != NULL && ws != NULL && dlogits != NULL);
	NN_ASSERT(m->n_members == 0);	/* an ensemble is not differentiated */
	if (n <= 0 || n > ws->max_batch || (grad_params == NULL && grad_input == NULL))
		return;
	blas = gstage ? nn_blas_single_begin() : 1;
	for (int l = L - 1; l >= 0; l--)
	{
		int			fan_in = m->dims[l];
		int			fan_out = m->dims[l + 1];
		const float *g = (l == L - 1) ? dlogits : ws->delta[l + 1];
		const float *in = l > 0 ? ws->act[l] : gstage ? ws->sact[m->n_stages - 1] : x0;
		const float *W = m->params + m->w_off[l];

		if (grad_params)
		{
			dense_gemm(m, 1, 0, fan_out, fan_in, n, g, fan_out, in, fan_in, 1.0f, grad_params + m->w_off[l], fan_in);
			nn_add_column_sums(g, (size_t) n, fan_out, grad_params + m->b_off[l]);
		}
		if (l > 0)
		{
			dense_gemm(m, 0, 0, n, fan_in, fan_out, g, fan_out, W, fan_in, 0.0f, ws->delta[l], fan_in);
			nn_relu_mask(ws->delta[l], ws->act[l], (size_t) n * (size_t) fan_in);
		}
		else if (grad_input || gstage)
			dense_gemm(m, 0, 0, n, fan_in, fan_out, g, fan_out, W, fan_in, 0.0f, gstage ? gstage : grad_input, fan_in);
	}
	if (gstage)
		nn_stages_backward(m, ws, x0, n, grad_params, grad_input);
	nn_blas_single_end(blas);
	if (grad_input && m->standardized)
		unscale_gradient(grad_input, m->scale, n, NN_FEATURES(m));
}

/* Index of the largest of C values (first one on ties). */
