/*
 * conv.c: the convolution and max-pool stages of a convolutional model,
 * forward and backward.  A convolution is im2col + one cblas_sgemm per chunk
 * of images: the rows of the im2col matrix are output pixels (image, y, x),
 * its columns the (ky, kx, ci) taps, so the product with W^T is the output
 * in HWC order; 3 x 3 convolutions with more than one input channel use
 * Winograd's F(2x2, 3x3) instead (winograd.c's transforms, 16 sgemm per
 * chunk).  The first stage reads the model's CHW input rows; later stages
 * read the HWC outputs before them.
 */
#include <string.h>

#include "blas_seam.h"
#include "nn_internal.h"

/*
 * Cap on the floats of one im2col chunk (1 MB): images are processed that
 * many at a time, each of the core's threads with its own buffer.
 */
#define NN_IM2COL_FLOATS ((size_t) 1 << 18)

/* The layout of stage s's input: CHW for the model's input, HWC after a stage. */
static nn_layout
input_layout(const nn_stage *st, int s)
{
	nn_layout	l;

	l.sc = s == 0 ? (size_t) st->h_in * st->w_in : 1;
	l.sy = s == 0 ? (size_t) st->w_in : (size_t) st->w_in * st->c_in;
	l.sx = s == 0 ? 1 : (size_t) st->c_in;
	return l;
}

/* Floats of one image's input and output of a stage. */
static size_t
in_size(const nn_stage *st)
{
	return (size_t) st->c_in * st->h_in * st->w_in;
}

static size_t
out_size(const nn_stage *st)
{
	return (size_t) st->c_out * st->h_out * st->w_out;
}

/* Floats of one image's scratch in a conv stage: its im2col rows, or its Winograd tiles if larger. */
static size_t
stage_scratch(const nn_stage *st)
{
	size_t		cols = (size_t) st->h_out * st->w_out * st->size * st->size * st->c_in,
				tiles = 16 * nn_wino_tiles(st) * (size_t) (st->c_in > st->c_out ? st->c_in : st->c_out);

	return nn_wino_fits(st) && tiles > cols ? tiles : cols;
}

/* Floats of one image's scratch in the widest conv stage (0 without a conv). */
size_t
nn_im2col_per_row(int n_stages, const nn_stage *stages)
{
	size_t		best = 0;

	for (int s = 0; s < n_stages; s++)
		if (stages[s].kind == NN_STAGE_CONV && stage_scratch(&stages[s]) > best)
			best = stage_scratch(&stages[s]);
	return best;
}

/* Images per im2col chunk: as many as fit NN_IM2COL_FLOATS, at least 1, at most max_batch. */
int
nn_im2col_rows(int n_stages, const nn_stage *stages, int max_batch)
{
	size_t		per = nn_im2col_per_row(n_stages, stages);
	size_t		rows;

	if (per == 0 || max_batch < 1)
		return 0;
	rows = NN_IM2COL_FLOATS / per;
	rows = rows < 1 ? 1 : rows;
	return rows < (size_t) max_batch ? (int) rows : max_batch;
}

/* Floats of a chunk's weight-gradient partial in a conv stage: its weights, or their Winograd transform. */
static size_t
stage_wpart(const nn_stage *st)
{
	return (size_t) st->c_out * st->c_in * (nn_wino_applies(st) ? 16 : st->size * st->size);
}

/*
 * The largest partial a conv stage may need (Winograd's where it fits), or
 * (wino) 16 x c_out x c_in over the stages Winograd fits only.
 */
static size_t
max_conv_weights(int n_stages, const nn_stage *stages, int wino)
{
	size_t		best = 0;

	for (int s = 0; s < n_stages; s++)
		if (stages[s].kind == NN_STAGE_CONV && (!wino || nn_wino_fits(&stages[s])))
		{
			const nn_stage *st = &stages[s];
			size_t		w = (size_t) st->c_out * st->c_in * (nn_wino_fits(st) ? 16 : st->size * st->size);

			best = w > best ? w : best;
		}
	return best;
}

/* The largest c_out of a conv stage (0: none). */
static size_t
max_conv_cout(int n_stages, const nn_stage *stages)
{
	size_t		best = 0;

	for (int s = 0; s < n_stages; s++)
		if (stages[s].kind == NN_STAGE_CONV && (size_t) stages[s].c_out > best)
			best = stages[s].c_out;
	return best;
}

/* The largest c_in of a stage Winograd fits (0: none). */
static size_t
max_wino_cin(int n_stages, const nn_stage *stages)
{
	size_t		best = 0;

	for (int s = 0; s < n_stages; s++)
		if (nn_wino_fits(&stages[s]) && (size_t) stages[s].c_in > best)
			best = stages[s].c_in;
	return best;
}

/* Chunks of max_batch images and the threads' buffer slots for them. */
static void
conv_chunking(int n_stages, const nn_stage *stages, int max_batch, int *chunks, int *slots)
{
	int			rows = nn_im2col_rows(n_stages, stages, max_batch);

	*chunks = rows > 0 ? (max_batch + rows - 1) / rows : 0;
	*slots = nn_get_threads() < *chunks ? nn_get_threads() : *chunks;
}

/* Floats of the Winograd buffer: U and the summed dU of a stage, and a 16-position patch per slot. */
static size_t
wino_floats(int n_stages, const nn_stage *stages, int slots)
{
	return 2 * max_conv_weights(n_stages, stages, 1) + 16 * (size_t) slots * max_wino_cin(n_stages, stages);
}

/*
 * Floats of the convolutions' scratch for batches of max_batch rows: an
 * im2col (or Winograd) buffer and its gradient per thread slot, one
 * weight-gradient partial per chunk and the Winograd buffer.
 */
size_t
nn_conv_scratch_floats(int n_stages, const nn_stage *stages, int max_batch)
{
	int			chunks,
				slots;

	conv_chunking(n_stages, stages, max_batch, &chunks, &slots);
	return 2 * (size_t) slots * nn_im2col_rows(n_stages, stages, max_batch) * nn_im2col_per_row(n_stages, stages) +
		(size_t) chunks * (max_conv_weights(n_stages, stages, 0) + max_conv_cout(n_stages, stages)) +
		wino_floats(n_stages, stages, slots);
}

/* Floats (ints counted as floats) of what nn_stages_workspace allocates for a batch of max_batch rows. */
double
nn_stages_floats(const nn_model *m, int max_batch)
{
	double		floats = (double) nn_conv_scratch_floats(m->n_stages, m->stage, max_batch);

	for (int s = 0; s < m->n_stages; s++)
		floats += (double) max_batch * out_size(&m->stage[s]) * (m->stage[s].kind == NN_STAGE_POOL ? 3.0 : 2.0);
	return floats;
}

/* Allocate the stage outputs, their gradients, pool indices and the convolutions' scratch. */
int
nn_stages_workspace(const nn_model *m, nn_workspace *ws, int max_batch)
{
	int			chunks;
	size_t		cols;

	for (int s = 0; s < m->n_stages; s++)
	{
		size_t		count = (size_t) max_batch * out_size(&m->stage[s]);

		ws->sact[s] = nn_alloc_floats(count);
		ws->sdelta[s] = nn_alloc_floats(count);
		if (ws->sact[s] == NULL || ws->sdelta[s] == NULL)
			return -1;
		if (m->stage[s].kind == NN_STAGE_POOL &&
			(ws->pidx[s] = nn_alloc(count * sizeof(int))) == NULL)
			return -1;
	}
	ws->col_rows = nn_im2col_rows(m->n_stages, m->stage, max_batch);
	conv_chunking(m->n_stages, m->stage, max_batch, &chunks, &ws->col_slots);
	cols = (size_t) ws->col_slots * ws->col_rows * nn_im2col_per_row(m->n_stages, m->stage);
	if (cols > 0)
	{
		ws->col = nn_alloc_floats(cols);
		ws->dcol = nn_alloc_floats(cols);
		ws->wpart = nn_alloc_floats((size_t) chunks * max_conv_weights(m->n_stages, m->stage, 0));
		ws->bpart = nn_alloc_floats((size_t) chunks * max_conv_cout(m->n_stages, m->stage));
		if (ws->col == NULL || ws->dcol == NULL || ws->wpart == NULL || ws->bpart == NULL)
			return -1;
	}
	if (max_wino_cin(m->n_stages, m->stage) > 0 &&
		(ws->wino = nn_alloc_floats(wino_floats(m->n_stages, m->stage, ws->col_slots))) == NULL)
		return -1;
	return 0;
}

/*
 * Gather (add = 0) the K x K taps of every output pixel of `rows` images
 * into col, zeros outside the image; or scatter-add (add = 1) col back onto
 * img, the transpose used for the input gradient.
 */
static void
im2col_xfer(const nn_stage *st, nn_layout lay, float *img, int rows, float *col, int add)
{
	int			K = st->size,
				pad = st->size / 2,
				C = st->c_in,
				H = st->h_in,
				W = st->w_in;
	size_t		isz = in_size(st);
	float	   *dst = col;

	for (int i = 0; i < rows; i++)
		for (int oy = 0; oy < H; oy++)
			for (int ox = 0; ox < W; ox++)
				for (int ky = 0; ky < K; ky++)
					for (int kx = 0; kx < K; kx++, dst += C)
					{
						int			iy = oy + ky - pad,
									ix = ox + kx - pad;
						float	   *p = img + (size_t) i * isz + (size_t) iy * lay.sy + (size_t) ix * lay.sx;

						if (iy < 0 || iy >= H || ix < 0 || ix >= W)
						{
							if (add)
								continue;
							else if (C == 1)
								*dst = 0.0f;
							else
								memset(dst, 0, sizeof(float) * (size_t) C);
						}
						else if (add)
							for (int c = 0; c < C; c++)
								p[c * lay.sc] += dst[c];
						else if (C == 1)
							*dst = *p;
						else if (lay.sc == 1)
							memcpy(dst, p, sizeof(float) * (size_t) C);
						else
							for (int c = 0; c < C; c++)
								dst[c] = p[c * lay.sc];
					}
}

/*
 * One convolution stage's pass over a batch in chunks of ws->col_rows
 * images, the chunks split over the core's threads: part t takes a
 * contiguous run of chunks and the im2col buffers of slot t.
 */
typedef struct conv_job
{
	const nn_model *m;
	nn_workspace *ws;
	int			s;
	const float *in;			/* the stage's input */
	int			n;
	int			backward;
	int			want_w;			/* backward: weight gradients into ws->wpart, one per chunk */
	float	   *gin;			/* backward: NULL or the input's gradient (overwritten) */
	int			parts;
	int			c0,
				c1;				/* the round's chunks (conv_run) */
} conv_job;

/* One thread slot's buffers: im2col rows (or V, dV), their gradient (or M, dM), a Winograd patch. */
typedef struct slot_bufs
{
	float	   *col;
	float	   *dcol;
	float	   *patch;
} slot_bufs;

/* The 16 products of a Winograd chunk of T tiles: M[xi] = V[xi] U[xi]^T. */
static void
wino_products(const nn_stage *st, int T, const float *U, const float *V, float *M)
{
	for (int xi = 0; xi < 16; xi++)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, st->c_out, st->c_in,
					1.0f, V + (size_t) xi * T * st->c_in, st->c_in, U + (size_t) xi * st->c_out * st->c_in, st->c_in,
					0.0f, M + (size_t) xi * T * st->c_out, st->c_out);
}

/* Forward of images i0 .. i0 + rows into out: im2col(in) W^T, or Winograd's A^T (V U^T) A. */
static void
conv_forward_chunk(const conv_job *j, int i0, int rows, const slot_bufs *b)
{
	const nn_stage *st = &j->m->stage[j->s];
	size_t		kkc = (size_t) st->size * st->size * st->c_in;
	size_t		pix = (size_t) st->h_out * st->w_out;
	const float *in = j->in + (size_t) i0 * in_size(st);
	float	   *out = j->ws->sact[j->s] + (size_t) i0 * out_size(st);
	nn_layout	lay = input_layout(st, j->s);

	if (nn_wino_applies(st))
	{
		nn_wino_input(st, &lay, in, in_size(st), rows, b->col, b->patch);
		wino_products(st, (int) (rows * nn_wino_tiles(st)), j->ws->wino, b->col, b->dcol);
		nn_wino_output(st, b->dcol, rows, out);
	}
	else
	{
		/* im2col only reads img when add is 0 */
		im2col_xfer(st, lay, (float *) in, rows, b->col, 0);
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int) (rows * pix), st->c_out, (int) kkc,
					1.0f, b->col, (int) kkc, j->m->params + st->w_off, (int) kkc, 0.0f, out, st->c_out);
	}
	nn_bias_relu_rows(out, j->m->params + st->b_off, rows * pix, st->c_out);
}

/*
 * Winograd backward of chunk c (images i0 .. i0 + rows) from its masked g:
 * dM = A g A^T; the input gradient B (dM U) B^T onto gin's images (zeroed
 * first); the partial dU[xi] = dM[xi]^T V[xi].
 */
static void
wino_backward_chunk(const conv_job *j, int c, int i0, int rows, const float *g, const slot_bufs *b)
{
	const nn_stage *st = &j->m->stage[j->s];
	int			T = (int) (rows * nn_wino_tiles(st)),
				CI = st->c_in,
				CO = st->c_out;
	nn_layout	lay = input_layout(st, j->s);

	nn_wino_output_grad(st, g, rows, b->dcol);
	if (j->gin)
	{
		float	   *gin = j->gin + (size_t) i0 * in_size(st);

		for (int xi = 0; xi < 16; xi++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, CI, CO,
						1.0f, b->dcol + (size_t) xi * T * CO, CO, j->ws->wino + (size_t) xi * CO * CI, CI,
						0.0f, b->col + (size_t) xi * T * CI, CI);
		memset(gin, 0, sizeof(float) * (size_t) rows * in_size(st));
		nn_wino_input_grad(st, &lay, b->col, rows, gin, in_size(st), b->patch);
	}
	if (j->want_w)
	{
		nn_wino_input(st, &lay, j->in + (size_t) i0 * in_size(st), in_size(st), rows, b->col, b->patch);
		for (int xi = 0; xi < 16; xi++)
			cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, CO, CI, T,
						1.0f, b->dcol + (size_t) xi * T * CO, CO, b->col + (size_t) xi * T * CI, CI,
						0.0f, j->ws->wpart + (size_t) c * stage_wpart(st) + (size_t) xi * CO * CI, CI);
	}
}

/*
 * Backward of chunk c (images i0 .. i0 + rows) from g = sdelta[s], masked
 * here by the ReLU: its bias gradient (the column sums) and weight gradient g^T im2col(in) into the chunk's
 * partial, and the input gradient col2im(g W) over the chunk's images (or
 * the same by Winograd).
 */
static void
conv_backward_chunk(const conv_job *j, int c, int i0, int rows, const slot_bufs *b)
{
	const nn_stage *st = &j->m->stage[j->s];
	size_t		kkc = (size_t) st->size * st->size * st->c_in;
	size_t		pix = (size_t) st->h_out * st->w_out;
	size_t		osz = out_size(st);
	float	   *g = j->ws->sdelta[j->s] + (size_t) i0 * osz;
	nn_layout	lay = input_layout(st, j->s);

	nn_relu_mask_serial(g, j->ws->sact[j->s] + (size_t) i0 * osz, (size_t) rows * osz);
	if (j->want_w)				/* the chunk's bias gradient: the column sums of g */
	{
		memset(j->ws->bpart + (size_t) c * st->c_out, 0, sizeof(float) * st->c_out);
		nn_column_sums_serial(g, rows * pix, st->c_out, j->ws->bpart + (size_t) c * st->c_out);
	}
	if (nn_wino_applies(st))
	{
		wino_backward_chunk(j, c, i0, rows, g, b);
		return;
	}
	if (j->want_w)
	{
		im2col_xfer(st, lay, (float *) (j->in + (size_t) i0 * in_size(st)), rows, b->col, 0);
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, st->c_out, (int) kkc, (int) (rows * pix),
					1.0f, g, st->c_out, b->col, (int) kkc,
					0.0f, j->ws->wpart + (size_t) c * stage_wpart(st), (int) kkc);
	}
	if (j->gin)
	{
		float	   *gin = j->gin + (size_t) i0 * in_size(st);

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) (rows * pix), (int) kkc, st->c_out,
					1.0f, g, st->c_out, j->m->params + st->w_off, (int) kkc, 0.0f, b->dcol, (int) kkc);
		memset(gin, 0, sizeof(float) * (size_t) rows * in_size(st));
		im2col_xfer(st, lay, gin, rows, b->dcol, 1);
	}
}

/* Parts lo .. hi: each its run of the round's chunks, on its slot's buffers. */
static void
conv_parts(void *arg, size_t lo, size_t hi)
{
	const conv_job *j = arg;
	int			R = j->ws->col_rows,
				chunks = j->c1 - j->c0;
	size_t		slot = (size_t) R * nn_im2col_per_row(j->m->n_stages, j->m->stage),
				wino_u = max_conv_weights(j->m->n_stages, j->m->stage, 1);

	for (size_t t = lo; t < hi; t++)
	{
		slot_bufs	b = {j->ws->col + t * slot, j->ws->dcol + t * slot,
		j->ws->wino ? j->ws->wino + 2 * wino_u + t * 16 * max_wino_cin(j->m->n_stages, j->m->stage) : NULL};

		for (int c = j->c0 + (int) (chunks * t / j->parts); c < j->c0 + (int) (chunks * (t + 1) / j->parts); c++)
		{
			int			rows = j->n - c * R < R ? j->n - c * R : R;

			if (j->backward)
				conv_backward_chunk(j, c, c * R, rows, &b);
			else
				conv_forward_chunk(j, c * R, rows, &b);
		}
	}
}

#define CONV_ROUND_CHUNKS 4		/* chunks a thread takes between two cancel points */

/*
 * Run the job's chunks split over the core's threads, each chunk's sgemm on
 * one OpenBLAS thread (its count restored after): a chunk's work is then the
 * same on any number of threads, and so are the bytes (OpenBLAS on several
 * threads may round a product differently than on one).
 */
static void
conv_run(conv_job *j)
{
	int			R = j->ws->col_rows,
				chunks = (j->n + R - 1) / R,
				saved;

	if (nn_wino_applies(&j->m->stage[j->s]))	/* the transformed filters, for every chunk */
		nn_wino_filters(&j->m->stage[j->s], j->m->params + j->m->stage[j->s].w_off, j->ws->wino);
	j->parts = nn_get_threads() < j->ws->col_slots ? nn_get_threads() : j->ws->col_slots;
	j->parts = j->parts < chunks ? j->parts : chunks;
	j->parts = j->parts < 1 ? 1 : j->parts;
	saved = nn_blas_single_begin();	/* nn_forward / nn_backward have done so already */
	/* in rounds of CONV_ROUND_CHUNKS chunks a thread, a cancel point between them */
	for (j->c0 = 0; j->c0 < chunks; j->c0 = j->c1)
	{
		if (j->c0 > 0)
			nn_cancel_point();
		j->c1 = chunks - j->c0 < j->parts * CONV_ROUND_CHUNKS ? chunks : j->c0 + j->parts * CONV_ROUND_CHUNKS;
		nn_par_for((size_t) j->parts, 1, conv_parts, j);
	}
	nn_blas_single_end(saved);
}

/* Convolution forward: out = ReLU(im2col(in) W^T + b), chunk by chunk. */
static void
conv_forward(const nn_model *m, nn_workspace *ws, int s, const float *in, int n)
{
	conv_job	j = {m, ws, s, in, n, 0, 0, NULL, 0, 0, 0};

	conv_run(&j);
}

/*
 * Fold the window element at offset `at` of one image into the running
 * maxima of C channels (channel stride sc; the contiguous case separately,
 * so the compiler vectorises it with blends).
 */
static inline void
pool_fold(const float *restrict img, size_t at, size_t sc, int C, float *restrict out, int *restrict idx, int first)
{
	const float *restrict p = img + at;

	if (first)
		for (int c = 0; c < C; c++)
		{
			out[c] = p[c * sc];
			idx[c] = (int) (at + c * sc);
		}
	else if (sc == 1)
		for (int c = 0; c < C; c++)
		{
			float		v = p[c],
						o = out[c];
			int			k = idx[c],
						better = v > o;	/* strict: the first maximum wins ties */

			out[c] = better ? v : o;
			idx[c] = k + better * ((int) at + c - k);
		}
	else
		for (int c = 0; c < C; c++)
			if (p[c * sc] > out[c])
			{
				out[c] = p[c * sc];
				idx[c] = (int) (at + c * sc);
			}
}

/* A pool's forward or backward on a batch, split over threads by images. */
typedef struct pool_job
{
	const nn_stage *st;
	nn_layout	lay;
	const float *in;			/* forward: the input; backward: the output's gradient */
	float	   *out;			/* forward: the output; backward: the input's gradient */
	int		   *idx;
} pool_job;

/* Max-pool forward of images lo .. hi: each output is the largest of its P x P window (the first on ties). */
static void
pool_forward_range(void *arg, size_t lo, size_t hi)
{
	const pool_job *j = arg;
	const nn_stage *st = j->st;
	int			P = st->size,
				C = st->c_in;
	float	   *out = j->out + lo * out_size(st);
	int		   *idx = j->idx + lo * out_size(st);

	for (size_t i = lo; i < hi; i++)
		for (int oy = 0; oy < st->h_out; oy++)
			for (int ox = 0; ox < st->w_out; ox++, out += C, idx += C)
				for (int py = 0; py < P; py++)
					for (int px = 0; px < P; px++)
						pool_fold(j->in + i * in_size(st),
								  (size_t) (oy * P + py) * j->lay.sy + (size_t) (ox * P + px) * j->lay.sx,
								  j->lay.sc, C, out, idx, py == 0 && px == 0);
}

static void
pool_forward(const nn_model *m, nn_workspace *ws, int s, const float *in, int n)
{
	const nn_stage *st = &m->stage[s];
	pool_job	j = {st, input_layout(st, s), in, ws->sact[s], ws->pidx[s]};

	nn_par_for((size_t) n, NN_PAR_GRAIN_FLOATS / in_size(st) + 1, pool_forward_range, &j);
}

/* Run every stage on n rows of in (CHW); returns the last stage's output. */
const float *
nn_stages_forward(const nn_model *m, nn_workspace *ws, const float *in, int n)
{
	NN_ASSERT(m->n_stages > 0 && n <= ws->max_batch);
	for (int s = 0; s < m->n_stages && n > 0; s++)
	{
		if (m->stage[s].kind == NN_STAGE_CONV)
			conv_forward(m, ws, s, in, n);
		else
			pool_forward(m, ws, s, in, n);
		in = ws->sact[s];
	}
	return ws->sact[m->n_stages - 1];
}

/*
 * Convolution backward from g = sdelta[s] (wrt the ReLU output, masked per
 * chunk): the chunks' weight gradients and, if gin, the input gradient; then
 * dW += the chunks' partials in chunk order (Winograd: dW += G^T (sum of
 * the partial dU) G) and db += the chunks' column sums of g, in chunk order.
 */
static void
conv_backward(const nn_model *m, nn_workspace *ws, int s, const float *in, int n,
			  float *grad_params, float *gin)
{
	const nn_stage *st = &m->stage[s];
	conv_job	j = {m, ws, s, in, n, 1, grad_params != NULL, gin, 0, 0, 0};
	int			wino = nn_wino_applies(st),
				chunks = (n + ws->col_rows - 1) / ws->col_rows;
	float	   *dw;

	conv_run(&j);
	if (grad_params == NULL)
		return;
	/* the chunks' partials (rows of wpart) summed in chunk order; Winograd: into dU, then G^T dU G added */
	dw = wino ? ws->wino + stage_wpart(st) : grad_params + st->w_off;
	if (wino)
		memset(dw, 0, sizeof(float) * stage_wpart(st));
	nn_add_column_sums(ws->wpart, (size_t) chunks, (int) stage_wpart(st), dw);
	if (wino)
		nn_wino_filters_grad(st, dw, grad_params + st->w_off);
	/* the bias: its chunks' sums, in chunk order */
	nn_column_sums_serial(ws->bpart, (size_t) chunks, st->c_out, grad_params + st->b_off);
}

/* Max-pool backward of images lo .. hi: each output's gradient goes to the input its max came from. */
static void
pool_backward_range(void *arg, size_t lo, size_t hi)
{
	const pool_job *j = arg;
	size_t		per = out_size(j->st),
				isz = in_size(j->st);

	memset(j->out + lo * isz, 0, sizeof(float) * (hi - lo) * isz);
	for (size_t i = lo; i < hi; i++)
	{
		const float *g = j->in + i * per;
		const int  *idx = j->idx + i * per;
		float	   *dst = j->out + i * isz;

		for (size_t k = 0; k < per; k++)
			dst[idx[k]] += g[k];
	}
}

static void
pool_backward(const nn_model *m, nn_workspace *ws, int s, int n, float *gin)
{
	const nn_stage *st = &m->stage[s];
	pool_job	j = {st, input_layout(st, s), ws->sdelta[s], gin, ws->pidx[s]};

	nn_par_for((size_t) n, NN_PAR_GRAIN_FLOATS / in_size(st) + 1, pool_backward_range, &j);
}

/* Backward through the stages, last first; stage 0's input gradient only into grad_input. */
void
nn_stages_backward(const nn_model *m, nn_workspace *ws, const float *in, int n,
				   float *grad_params, float *grad_input)
{
	NN_ASSERT(m->n_stages > 0 && n <= ws->max_batch);
	for (int s = m->n_stages - 1; s >= 0 && n > 0; s--)
	{
		const float *sin = s == 0 ? in : ws->sact[s - 1];
		float	   *gin = s == 0 ? grad_input : ws->sdelta[s - 1];

		if (m->stage[s].kind == NN_STAGE_CONV)
			conv_backward(m, ws, s, sin, n, grad_params, gin);
		else if (gin)
			pool_backward(m, ws, s, n, gin);
		if (gin == NULL && grad_params == NULL)
			break;
	}
}
