/*
 * nn_internal.h: helpers shared by the files of the numeric core (not part of
 * the public API in nn.h; nothing outside src/core includes this).
 *
 * The core is plain C99 without PostgreSQL headers, but it is compiled into
 * the extension with PostgreSQL's flags: declarations sit at the top of
 * blocks (-Wdeclaration-after-statement) and every non-static function has a
 * prototype in a header (-Wmissing-prototypes).
 *
 * Files of the core, one concern each:
 *   alloc.c       allocator hooks, overflow-checked float arrays, error text
 *   rng.c         xoshiro256** seeded by splitmix64
 *   model.c       model shape, create/clone/free, feature range, standardisation, finiteness
 *   layers.c      workspace, forward and backward passes (the sgemm calls)
 *   arch.c        layer lists: checking them against an input shape, convolutional models
 *   conv.c        convolution and max-pool stages: im2col + sgemm, forward and backward
 *   gemm_split.c  a CNN's products on the core's threads, OpenBLAS on one
 *   winograd.c    Winograd F(2x2, 3x3) transforms for conv.c's 3 x 3 convolutions
 *   classify.c    softmax cross-entropy, predictions, accuracy
 *   optim.c       SGD and Adam (scalar, SSE2 and run-time AVX kernels)
 *   fit.c         nn_train: the mini-batch training loop; nn_stream_*: the same, a chunk at a time
 *   stats.c       nn_stats_*: feature range and standardisation accumulated over chunks
 *   par.c         nn_par_for: the element-wise loops split over short-lived threads
 *   serialize.c   the model byte format and FNV-1a
 *   ensemble.c    sharded models: the ensemble's forward pass, the shard of an id
 *   pgd.c, mas.c, unlearn_*.c, mia.c: the unlearning side (unlearn_core.h, mia.h)
 */
#ifndef UNLEARN_NN_INTERNAL_H
#define UNLEARN_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/*
 * NN_ASSERT(cond): an invariant of the core.  PGXS does not define NDEBUG,
 * so plain assert() would stay on in production builds of the extension (and
 * abort the backend); NN_ASSERT is a no-op unless UNLEARN_CORE_ASSERTS is
 * defined, which `make unit` does.  Conditions must have no side effects.
 */
#ifdef UNLEARN_CORE_ASSERTS
#include <assert.h>
#define NN_ASSERT(cond) assert(cond)
#else
#define NN_ASSERT(cond) ((void) 0)
#endif

/* Allocate count floats, or NULL on size_t overflow or allocation failure (alloc.c). */
float	   *nn_alloc_floats(size_t count);

/* printf into the caller's error buffer, tolerating a NULL or empty buffer (alloc.c). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void		nn_set_error(char *err, size_t errlen, const char *fmt,...);

/* Check a layer-width list against nn.h's limits; 0 if fine, else -1 + err (model.c). */
int			nn_validate_dims(int n_layers, const int *dims, char *err, size_t errlen);

/* The standardisation from per-feature means and summed squared deviations over n rows (model.c). */
void		nn_finish_standardization(nn_model *m, const double *mean, const double *ss, double n);

/* Total parameter count of validated dims, in 64 bits (model.c). */
uint64_t	nn_count_params(int n_layers, const int *dims);

/*
 * A model of validated shape with uninitialised params and a 0/1 feature
 * range: the shared shell of create, clone and deserialise (model.c).
 */
nn_model   *nn_model_alloc(int n_layers, const int *dims, char *err, size_t errlen);

/*
 * The same with n_stages convolution / pool stages (geometry filled in, as
 * nn_plan_stages makes it) before the dense layers; their parameters come
 * first in params (model.c).
 */
nn_model   *nn_model_alloc_staged(int n_stages, const nn_stage *stages, const int in_shape[3],
								  int n_layers, const int *dims, char *err, size_t errlen);

/* He-initialise the weights from seed, conv stages first, biases zero (model.c). */
void		nn_init_params(nn_model *m, uint64_t seed);

/* Parameter count of the conv stages (model.c). */
uint64_t	nn_count_stage_params(int n_stages, const nn_stage *stages);

/*
 * Turn stage kinds, sizes and filter counts (stages[i].kind, .size, .c_out)
 * into checked geometry on in_shape; *flat gets the last stage's output
 * width.  0, or -1 + err when the stages do not fit (arch.c).
 */
int			nn_plan_stages(const int in_shape[3], int n_stages, nn_stage *stages, int *flat,
						   char *err, size_t errlen);

/* Floats of one image's im2col rows in the widest conv stage (0: no conv) (conv.c). */
size_t		nn_im2col_per_row(int n_stages, const nn_stage *stages);

/* Images per im2col chunk for batches of max_batch rows (0: no conv) (conv.c). */
int			nn_im2col_rows(int n_stages, const nn_stage *stages, int max_batch);

/* Add the bias row to each of n rows (width wide), then ReLU (layers.c). */
void		nn_add_bias_relu(float *out, const float *bias, size_t n, int width);

/* nn_add_bias_relu on the calling thread only (layers.c). */
void		nn_bias_relu_rows(float *out, const float *bias, size_t n, int width);

/* Size of the parts large dense products are computed in, a cancel point between (layers.c). */
void		nn_set_gemm_part_macs(double macs);

/* Add the column sums of g (n x width) to grad_bias, split by columns; or on the calling thread (layers.c). */
void		nn_add_column_sums(const float *g, size_t n, int width, float *grad_bias);
void		nn_column_sums_serial(const float *g, size_t n, int width, float *grad_bias);

/* Zero delta wherever act is not positive: the ReLU's backward (layers.c). */
void		nn_relu_mask(float *delta, const float *act, size_t count);

/* nn_relu_mask on the calling thread only (layers.c). */
void		nn_relu_mask_serial(float *delta, const float *act, size_t count);

/* Where element (c, y, x) of one image sits: c * sc + y * sy + x * sx. */
typedef struct nn_layout
{
	size_t		sc,
				sy,
				sx;
} nn_layout;

/*
 * Winograd F(2x2, 3x3) for 3 x 3 convolutions with more than one input
 * channel: whether it applies, tiles per image, and the transforms of the
 * filters, inputs and outputs and their transposes (winograd.c; conv.c
 * runs the products).
 */
int			nn_wino_fits(const nn_stage *st);
int			nn_wino_applies(const nn_stage *st);
size_t		nn_wino_tiles(const nn_stage *st);
void		nn_wino_filters(const nn_stage *st, const float *w, float *U);
void		nn_wino_filters_grad(const nn_stage *st, const float *dU, float *grad);
void		nn_wino_input(const nn_stage *st, const nn_layout *lay, const float *img, size_t img_size,
						  int rows, float *V, float *patch);
void		nn_wino_input_grad(const nn_stage *st, const nn_layout *lay, const float *dV, int rows,
							   float *gin, size_t img_size, float *patch);
void		nn_wino_output(const nn_stage *st, const float *M, int rows, float *out);
void		nn_wino_output_grad(const nn_stage *st, const float *g, int rows, float *dM);

/*
 * A convolutional model's passes: OpenBLAS on one thread (begin returns the
 * count end restores) and products split by columns over the core's threads,
 * cblas_sgemm's arguments with 0/1 for NoTrans/Trans (gemm_split.c).
 */
int			nn_blas_single_begin(void);
void		nn_blas_single_end(int saved);
void		nn_sgemm_split(int trans_a, int trans_b, int m, int n, int k,
						   float alpha, const float *a, int lda, const float *b, int ldb,
						   float beta, float *c, int ldc);

/* Floats of the convolutions' scratch (im2col buffers, weight-gradient partials) (conv.c). */
size_t		nn_conv_scratch_floats(int n_stages, const nn_stage *stages, int max_batch);

/* Allocate a workspace's stage buffers for max_batch rows; 0 or -1 (conv.c). */
int			nn_stages_workspace(const nn_model *m, nn_workspace *ws, int max_batch);
/* Floats of what nn_stages_workspace allocates for max_batch rows (the size check's estimate). */
double		nn_stages_floats(const nn_model *m, int max_batch);

/* Run the stages on n rows of in (CHW); returns the last stage's output (conv.c). */
const float *nn_stages_forward(const nn_model *m, nn_workspace *ws, const float *in, int n);

/*
 * Backward through the stages, from ws->sdelta[last] (the gradient wrt the
 * last stage's output); adds parameter gradients to grad_params (if not
 * NULL) and writes the gradient wrt in to grad_input (if not NULL) (conv.c).
 */
void		nn_stages_backward(const nn_model *m, nn_workspace *ws, const float *in, int n,
							   float *grad_params, float *grad_input);

/*
 * Run fn(arg, lo, hi) over [0, n) split into up to nn_get_threads() ranges
 * of at least grain items, joined before return; ranges must not write
 * memory another range touches (par.c).
 */
#define NN_PAR_GRAIN_FLOATS ((size_t) 1 << 15)	/* less element-wise work stays on one thread */
typedef void (*nn_par_fn) (void *arg, size_t lo, size_t hi);
void		nn_par_for(size_t n, size_t grain, nn_par_fn fn, void *arg);

/* Log-sum-exp of one logit row, shifted by its maximum (classify.c). */
double		nn_row_logsumexp(const float *row, int C);

/* An ensemble's forward pass: log of its members' mean probabilities (ensemble.c). */
const float *nn_ensemble_forward(const nn_model *e, nn_workspace *ws, const float *X, int n);

/* A deep copy of an ensemble, every member cloned; NULL on allocation failure (ensemble.c). */
nn_model   *nn_ensemble_clone(const nn_model *e);

/* ---------- early stopping (early_stop.c), used by nn_train ---------- */
typedef struct nn_early_stop
{
	int			n_val;			/* held-out rows; 0: no early stopping */
	float	   *Xv;				/* n_val x features */
	int		   *yv;
	float	   *best;			/* parameters of the best epoch */
	double		best_accuracy;
	int			best_epoch;		/* 1-based; 0 before the first */
	int			patience;
} nn_early_stop;

int			nn_early_stop_start(nn_early_stop *es, const nn_model *m, const float *X, const int *y, int n,
								const nn_train_options *o, int *order);
int			nn_early_stop_epoch(nn_early_stop *es, const nn_model *m, int epoch);
void		nn_early_stop_finish(nn_early_stop *es, nn_model *m);
void		nn_early_stop_free(nn_early_stop *es);

#endif							/* UNLEARN_NN_INTERNAL_H */
