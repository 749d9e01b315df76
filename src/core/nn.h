/*
 * nn.h: the numeric core of unlearn: ReLU classifiers in float32, dense
 * (MLP) or convolutional (conv / max-pool stages, then dense layers).
 *
 * Plain C99 + CBLAS, no PostgreSQL headers, so it can be unit-tested on its own
 * (test/unit) and linked into the extension.  All memory goes through the
 * allocator hooks below so the extension can route it into a memory context.
 *
 * Layout: a model of L dense layers has dims[0] = features ... dims[L] = classes.
 * All parameters live in one flat float vector `params` (so optimisers, MAS
 * importance and penalties work on one array); layer l has its weight matrix
 * W_l (dims[l+1] x dims[l], row-major) at params + w_off[l] and its bias
 * (dims[l+1]) at params + b_off[l].  Hidden layers use ReLU; the last layer
 * produces logits.  L = 1 is softmax regression.
 *
 * A convolutional model has n_stages > 0 stages before the dense layers:
 * convolutions (C filters, K x K, stride 1, same padding, ReLU) and max-pools
 * (P x P, stride P).  Its input rows are images of in_shape = C x H x W,
 * channel-major (CHW, as PyTorch flattens them); every stage's output is
 * stored per row in HWC order, and the last one, flattened, is the dense
 * layers' input (dims[0]).  A conv stage's weights (c_out x K*K*c_in, in
 * (ky, kx, ci) order) and bias sit in the same flat params vector, before the
 * dense layers'.
 */
#ifndef UNLEARN_NN_H
#define UNLEARN_NN_H

#include <stddef.h>
#include <stdint.h>

#define NN_MAX_LAYERS 8          /* dense layers, so at most 7 hidden */
#define NN_MAX_DIM    (1 << 20)  /* width of any layer, features included */
#define NN_MAX_STAGES 8          /* convolution and pooling stages */
#define NN_MAX_KERNEL 15         /* largest (odd) convolution kernel */
#define NN_MAX_CHANNELS 4096     /* input channels and filters per convolution */

/* ---------- allocator hooks (default: malloc/free) ---------- */
typedef void *(*nn_alloc_fn) (size_t size);
typedef void (*nn_free_fn) (void *ptr);
void		nn_set_allocator(nn_alloc_fn alloc_fn, nn_free_fn free_fn);	/* NULLs restore malloc/free */
void	   *nn_alloc(size_t size);			/* never returns NULL with the PG allocator; may with malloc */
void	   *nn_alloc_zero(size_t size);
void		nn_free_mem(void *ptr);

/*
 * Interrupt hook, called at the start of every forward pass (default: none).
 * The extension installs one that checks for query cancel, so every long
 * computation (training, PGD, MAS, the unlearning loop) can be cancelled; it
 * may longjmp away, which is safe because all memory is the allocator's.
 */
typedef void (*nn_interrupt_fn) (void);
void		nn_set_interrupt_hook(nn_interrupt_fn hook);

/*
 * Cancel hook, called at cancel points inside long passes (between the parts
 * of a large product, between rounds of a convolution's chunks), on the
 * calling thread, possibly while OpenBLAS is held at one thread (default:
 * none).  It may longjmp away; it must leave OpenBLAS's thread count as it
 * found it when it returns.
 */
void		nn_set_cancel_hook(nn_interrupt_fn hook);
void		nn_cancel_point(void);

/* ---------- seeded RNG (xoshiro256**, seeded by splitmix64) ---------- */
typedef struct nn_rng
{
	uint64_t	s[4];
} nn_rng;

void		nn_rng_seed(nn_rng *rng, uint64_t seed);
uint64_t	nn_rng_next(nn_rng *rng);
double		nn_rng_uniform(nn_rng *rng);	/* [0,1) */
uint32_t	nn_rng_below(nn_rng *rng, uint32_t n);	/* uniform in [0,n), unbiased */
float		nn_rng_normal(nn_rng *rng);	/* standard normal */
void		nn_rng_shuffle(nn_rng *rng, int *idx, int n);	/* Fisher-Yates */

/* ---------- model ---------- */

/* What a stage computes. */
typedef enum nn_stage_kind
{
	NN_STAGE_CONV = 1,			/* convolution, stride 1, same padding, then ReLU */
	NN_STAGE_POOL = 2			/* max-pooling, P x P windows, stride P */
} nn_stage_kind;

/* One stage of a convolutional model: its kind, size and geometry (see nn.h's header). */
typedef struct nn_stage
{
	nn_stage_kind kind;
	int			size;			/* conv: kernel K (odd); pool: window P */
	int			c_in, h_in, w_in;	/* input channels and spatial size */
	int			c_out, h_out, w_out;	/* output (pool: c_out = c_in) */
	size_t		w_off, b_off;	/* conv: weights c_out x (K*K*c_in) and bias c_out in params */
} nn_stage;

/* A layer as the caller lists it (nn_create_layers). */
typedef enum nn_layer_kind
{
	NN_LAYER_CONV = 1,			/* units filters of size x size */
	NN_LAYER_POOL = 2,			/* max-pool of size x size */
	NN_LAYER_DENSE = 3			/* units outputs, ReLU */
} nn_layer_kind;

typedef struct nn_layer_spec
{
	nn_layer_kind kind;
	int			units;			/* conv: filters; dense: width; pool: unused */
	int			size;			/* conv: kernel; pool: window; dense: unused */
} nn_layer_spec;

typedef struct nn_model
{
	int			n_features;		/* input width: dims[0], or C*H*W of a convolutional model */
	int			n_stages;		/* 0: an MLP */
	int			in_shape[3];	/* C, H, W of the input when n_stages > 0 */
	nn_stage	stage[NN_MAX_STAGES];
	int			n_layers;		/* dense layers, >= 1 */
	int			dims[NN_MAX_LAYERS + 1];
	size_t		n_params;
	size_t		w_off[NN_MAX_LAYERS];
	size_t		b_off[NN_MAX_LAYERS];
	float	   *params;			/* n_params */
	float	   *feat_lo;		/* n_features: per-feature min seen in training (PGD box) */
	float	   *feat_hi;		/* n_features: per-feature max seen in training */
	int			standardized;	/* 1: every forward pass first maps x to (x - mean) / scale */
	float	   *mean;			/* n_features: per-feature mean (0 when not standardized) */
	float	   *scale;			/* n_features: per-feature scale (1 when not standardized) */
	/* a sharded model (ensemble.c): no params of its own, its members' mean probabilities */
	int			n_members;		/* 0: an ordinary network */
	struct nn_model **members;	/* n_members networks of one shape */
} nn_model;

#define NN_FEATURES(m) ((m)->n_features)
#define NN_CLASSES(m)  ((m)->dims[(m)->n_layers])

/*
 * Create a model with He-initialised weights (normal, std sqrt(2/fan_in)) and
 * zero biases, drawn from `seed`.  hidden may be NULL when n_hidden == 0.
 * feat_lo/feat_hi start at 0/1; no standardisation (mean 0, scale 1).
 * Returns NULL and fills err on bad shape.
 */
nn_model   *nn_create(int n_features, int n_hidden, const int *hidden,
					  int n_classes, uint64_t seed, char *err, size_t errlen);

/*
 * Create a model from a layer list on inputs of in_shape (C x H x W): conv
 * and maxpool layers first, then dense layers, then the classes' logits.
 * Conv kernels are odd (same padding); a pool needs at least one output
 * pixel.  Conv weights are He-initialised (std sqrt(2/(K*K*c_in))) before the
 * dense ones, biases zero.  A list of dense layers only gives exactly
 * nn_create's MLP on C*H*W features.  NULL + err when the list does not fit.
 */
nn_model   *nn_create_layers(const int in_shape[3], int n_specs, const nn_layer_spec *specs,
							 int n_classes, uint64_t seed, char *err, size_t errlen);

/*
 * Check a layer list against in_shape and n_classes without allocating the
 * model: 0, its parameter count and the floats a workspace of max_batch rows
 * holds (activations and deltas of every stage and layer, pool indices, the
 * standardised input and the im2col buffers), or -1 + err.
 */
int			nn_plan_layers(const int in_shape[3], int n_specs, const nn_layer_spec *specs,
						   int n_classes, int max_batch, uint64_t *n_params, uint64_t *ws_floats,
						   char *err, size_t errlen);

/* Parameter tensors (each weight matrix and bias vector) as [start, end) ranges; returns the count. */
int			nn_param_tensors(const nn_model *m, size_t *start, size_t *end, int max);
#define NN_MAX_TENSORS (2 * (NN_MAX_STAGES + NN_MAX_LAYERS))

nn_model   *nn_clone(const nn_model *m);
void		nn_copy_params(nn_model *dst, const nn_model *src);	/* same shape; params only */
void		nn_free(nn_model *m);

/* Set feat_lo/feat_hi to the per-feature min/max of X (n rows x dims[0]). */
void		nn_set_feature_range(nn_model *m, const float *X, int n);

/*
 * Standardisation inside the model: set mean to the per-feature mean of X
 * (n rows) and scale to its population standard deviation (1 where that is 0
 * or not finite), and turn it on; from then on every forward pass sees
 * (x - mean) / scale and input gradients are still with respect to raw x.
 * n <= 0 leaves the model unchanged.  Returns 0, or -1 on memory exhaustion
 * (model unchanged).
 */
int			nn_set_standardization(nn_model *m, const float *X, int n);

/* Map n rows of raw X into the model's standardised space, (x - mean) * (1 / scale) (out may alias X). */
void		nn_standardize_rows(const nn_model *m, const float *X, int n, float *out);

/* ---------- threads ---------- */

/*
 * Threads for the core's own work, beside cblas_sgemm's: the element-wise
 * loops (pooling, ReLU, bias sums, Adam) and the convolutions' chunks (each
 * thread its chunks' im2col or Winograd transforms and their sgemm on one
 * OpenBLAS thread); default 1.  Process-wide; results are the same bytes for
 * every value (par.c, conv.c).  The extension sets it to unlearn.threads.
 */
void		nn_set_threads(int n);
int			nn_get_threads(void);

/*
 * Winograd F(2x2, 3x3) for the 3 x 3 convolutions with more than one input
 * channel: on (1, the default) or off (0: im2col, as before), for the
 * comparisons of the unit tests and benchmarks.  Process-wide; set between
 * calls only (winograd.c).
 */
void		nn_wino_set_enabled(int on);

/* ---------- forward / backward on a batch ---------- */

/* Scratch space for batches of up to max_batch rows; reusable across calls. */
typedef struct nn_workspace
{
	int			max_batch;
	float	   *act[NN_MAX_LAYERS + 1];		/* act[0]: the standardised input (standardized
											 * models only, else unused: the input is X);
											 * act[l]: batch x dims[l] */
	float	   *delta[NN_MAX_LAYERS + 1];	/* hidden l only: gradient wrt act[l], ReLU-masked
											 * in place (= wrt the pre-activation) */
	float	   *probs;						/* batch x classes */
	/* convolutional models only */
	float	   *sact[NN_MAX_STAGES];		/* stage outputs: batch x (h_out*w_out*c_out), HWC */
	float	   *sdelta[NN_MAX_STAGES];		/* gradient wrt each stage's output */
	int		   *pidx[NN_MAX_STAGES];		/* pools: the input index each output took its max from */
	float	   *col;						/* im2col rows of a chunk of images, per thread slot */
	float	   *dcol;						/* their gradient, per thread slot */
	float	   *wpart;						/* a conv weight gradient per chunk of a batch */
	float	   *bpart;						/* a conv bias gradient per chunk of a batch */
	float	   *wino;						/* Winograd: U, the summed dU, a patch per slot */
	int			col_rows;					/* images per im2col chunk */
	int			col_slots;					/* threads with their own col and dcol */
	float	   *ens;						/* ensembles only: batch x classes, the members' summed probabilities */
} nn_workspace;

nn_workspace *nn_workspace_create(const nn_model *m, int max_batch);
void		nn_workspace_free(nn_workspace *ws);

/*
 * Forward pass of n <= ws->max_batch rows of X (row-major n x features).
 * On a standardized model the rows are first mapped to (x - mean) / scale.
 * Leaves activations in ws; returns a pointer to the logits (n x classes),
 * owned by ws and valid until the next call (NULL if n > ws->max_batch).
 */
const float *nn_forward(const nn_model *m, nn_workspace *ws, const float *X, int n);

/*
 * Softmax cross-entropy of logits (n x C) against labels y (0..C-1).
 * Returns the SUM over rows of -log p[y].  If dlogits is not NULL it receives
 * scale * d(sum CE)/d logits, i.e. scale * (softmax - onehot).  If probs is not
 * NULL it receives the softmax.  dlogits may alias the logits.
 */
double		nn_softmax_ce(const float *logits, const int *y, int n, int C,
						  float scale, float *dlogits, float *probs);

/*
 * Backward pass after nn_forward on the same X and n.  dlogits (n x C) is the
 * gradient of the loss wrt the logits.  If grad_params is not NULL the
 * parameter gradient is ADDED to it (n_params floats).  If grad_input is not
 * NULL it receives (overwritten) the gradient wrt the raw X (n x features,
 * through the standardisation: divided by scale); when it is NULL the first
 * layer's input gradient is not computed.
 */
void		nn_backward(const nn_model *m, nn_workspace *ws, const float *X, int n,
						const float *dlogits, float *grad_params, float *grad_input);

/* Predicted class (argmax of logits) for n rows of X; out has n ints. */
void		nn_predict(const nn_model *m, nn_workspace *ws, const float *X, int n, int *out);

/* Class probabilities for n rows of X into out (n x C). */
void		nn_predict_proba(const nn_model *m, nn_workspace *ws, const float *X, int n, float *out);
/* Logits of each row into out (n x C), in chunks of ws->max_batch rows. */
void		nn_predict_logits(const nn_model *m, nn_workspace *ws, const float *X, int n, float *out);
/* The class nn_predict picks for each of n rows of logits (n x C). */
void		nn_logits_classes(const float *logits, int n, int C, int *out);

/* ---------- optimisers on the flat parameter vector ---------- */
typedef enum nn_optimizer_kind
{
	NN_OPT_SGD = 0,				/* SGD with momentum and (L2, coupled) weight decay */
	NN_OPT_ADAM = 1				/* Adam (weight decay added to the gradient, as torch.optim.Adam) */
} nn_optimizer_kind;

typedef struct nn_optimizer
{
	nn_optimizer_kind kind;
	float		lr;
	float		momentum;		/* SGD */
	float		weight_decay;
	float		beta1, beta2, eps;	/* Adam */
	size_t		n;
	long		t;				/* steps taken */
	float	   *m1;				/* SGD: velocity; Adam: first moment */
	float	   *m2;				/* Adam: second moment */
} nn_optimizer;

/*
 * SGD (torch semantics): g += wd*p; v = momentum*v + g (v = g at the first
 * step); p -= lr*v.
 * Adam (torch semantics): g += wd*p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).
 */
nn_optimizer *nn_optimizer_create(nn_optimizer_kind kind, size_t n, float lr,
								  float momentum, float weight_decay);
void		nn_optimizer_step(nn_optimizer *opt, float *params, float *grad);	/* grad may be modified */
void		nn_optimizer_free(nn_optimizer *opt);

/* ---------- training ---------- */
typedef struct nn_train_options
{
	nn_optimizer_kind optimizer;	/* default ADAM */
	float		lr;				/* default 1e-3 */
	float		momentum;		/* default 0.9 (SGD only) */
	float		weight_decay;	/* default 0 */
	int			batch_size;		/* default 128 */
	int			epochs;			/* default 10 */
	uint64_t	seed;			/* default 42: init and shuffling */
	int			standardize;	/* default 0: 1 learns the standardisation from X first */
	float		validation;		/* default 0: share of rows held out to stop early (early_stop.c) */
	int			patience;		/* default 10: epochs without improvement before stopping */
} nn_train_options;

void		nn_train_options_default(nn_train_options *o);

/*
 * Called after every epoch (epoch counts from 1) with the mean training loss
 * of that epoch; the extension uses it to check for interrupts and report
 * progress.  A nonzero return stops training early.
 */
typedef int (*nn_epoch_callback) (void *arg, int epoch, int epochs, double mean_loss);

/*
 * Train m in place with mini-batches of X (n x features), labels y, shuffled
 * each epoch by an RNG seeded from o->seed: the same seed, data and options
 * give the same bytes.  Also sets the model's feature range from X and, with
 * o->standardize, its standardisation (nn_set_standardization) before the
 * first step.
 * Returns the mean loss of the last epoch (0 if n <= 0); NaN, model
 * untouched, if a label is outside 0..classes-1 or memory runs out.
 */
double		nn_train(nn_model *m, const float *X, const int *y, int n,
					 const nn_train_options *o, nn_epoch_callback cb, void *cb_arg);

/*
 * The rows nn_train holds out for early stopping (o->validation): order
 * holds the n row indices 0..n-1 on entry; on return its last n_val entries
 * are the held-out rows.  Returns n_val (0: none held out, order untouched).
 */
int			nn_validation_split(int n, const nn_train_options *o, int *order);

/*
 * Choosing the weight decay on held-out rows (select.c): NN_SELECT_FOLDS-fold
 * cross-validation over nn_select_candidates.  nn_select_steps counts its
 * optimiser steps (-1: too few rows for the folds); nn_select_affordable
 * tells whether they fit in budget_steps; nn_select_weight_decay returns the
 * candidate whose copies of init give the held-out rows the lowest summed
 * cross-entropy (loss[c], with correct[c] the rows right, over all folds),
 * or -1 on failure.
 */
#define NN_SELECT_CANDIDATES 4
#define NN_SELECT_FOLDS 3
extern const float nn_select_candidates[NN_SELECT_CANDIDATES];
long		nn_select_steps(int n, int n_classes, const nn_train_options *o);
int			nn_select_affordable(int n, int n_classes, const nn_train_options *o, long budget_steps);
float		nn_select_weight_decay(const nn_model *init, const float *X, const int *y, int n,
								   const nn_train_options *o, double loss[NN_SELECT_CANDIDATES],
								   long correct[NN_SELECT_CANDIDATES], nn_epoch_callback cb, void *cb_arg);

/* True when every parameter is finite (a diverged run is never stored). */
int			nn_params_finite(const nn_model *m);

/* Share of rows of X whose argmax prediction equals y. */
double		nn_accuracy(const nn_model *m, const float *X, const int *y, int n);

/* ---------- training a chunk at a time (stats.c, fit.c): tables larger than memory ---------- */
/*
 * nn_stats accumulates, over chunks of rows, what training fixes before its
 * first step: the feature range and the standardisation (one chunk gives
 * nn_set_feature_range's and nn_set_standardization's bytes; more chunks
 * are merged pairwise in double).
 */
typedef struct nn_stats nn_stats;

nn_stats   *nn_stats_create(int n_features);	/* NULL when memory runs out */
void		nn_stats_add(nn_stats *s, const float *X, int n);
double		nn_stats_rows(const nn_stats *s);
void		nn_stats_apply(nn_model *m, const nn_stats *s, int standardize);
void		nn_stats_free(nn_stats *s);

/*
 * nn_stream trains on chunks the caller reads: begin, then per epoch the
 * chunks in an order shuffled with nn_stream_shuffle, each one pass of
 * shuffled mini-batches (nn_stream_chunk returns the chunk's summed CE, NaN
 * on a bad label), then end.  Deterministic for a seed and the same chunks.
 */
typedef struct nn_stream nn_stream;

nn_stream  *nn_stream_begin(nn_model *m, const nn_train_options *o, int max_rows);
void		nn_stream_shuffle(nn_stream *st, int *idx, int n);
double		nn_stream_chunk(nn_stream *st, const float *X, const int *y, int n);
void		nn_stream_end(nn_stream *st);

/* ---------- sharded models (ensemble.c) ---------- */
/*
 * An ensemble of S networks of one shape, each trained on its own shard of
 * the rows (SISA, Bourtoule et al. 2021).  It is an nn_model with
 * n_members = S and no parameters of its own; nn_forward on it returns, as
 * its "logits", log of the mean of the members' softmax probabilities
 * (floored at 1e-30), so nn_predict, nn_predict_proba, nn_accuracy and
 * nn_softmax_ce answer for the averaged model.  It cannot be trained or
 * differentiated (nn_train, nn_backward); nn_clone and nn_free take the
 * members along.  Its workspace is nn_workspace_create(ensemble, ...).
 */
#define NN_MAX_SHARDS 64
/*
 * The ensemble of members[0 .. n-1] (1 <= n <= NN_MAX_SHARDS, same shape,
 * none an ensemble itself); it owns them on success.  NULL + err otherwise
 * (members untouched).
 */
nn_model   *nn_ensemble_create(nn_model **members, int n, char *err, size_t errlen);
/*
 * The shard of a row among `shards`: splitmix64's finaliser of the id's
 * 64 bits (two's complement), modulo shards.  Stable across versions,
 * hosts and PostgreSQL builds: nothing but this arithmetic.
 */
int			nn_shard_of(int64_t id, int shards);

/* ---------- serialisation ---------- */

/*
 * Format (little-endian): "UNLN" magic, u32 format version, u32 n_layers,
 * u32 dims[n_layers+1], f32 feat_lo[F], f32 feat_hi[F], then in version 2
 * only u32 standardized (0 or 1), f32 mean[F], f32 scale[F]; then
 * f32 params[n_params], u64 FNV-1a hash of everything before it.  Version 3
 * (convolutional models) adds after the dims: u32 n_stages, u32 in_shape[3],
 * and per stage u32 kind, u32 size, u32 c_out; its feature arrays have
 * C*H*W entries.  MLPs are written as version 2, byte for byte as before;
 * version 1 (no standardisation: mean 0, scale 1) still loads.
 * Version 4 is a sharded model (an ensemble): "UNLN", u32 4, u32 S, then per
 * member u64 length and the member's own bytes (version 2 or 3, its hash
 * included), then u64 FNV-1a of everything before it.
 */
size_t		nn_serialized_size(const nn_model *m);
void		nn_serialize(const nn_model *m, void *buf);	/* buf has nn_serialized_size bytes */
nn_model   *nn_deserialize(const void *buf, size_t len, char *err, size_t errlen);	/* NULL + err on bad input */

/* 64-bit FNV-1a, exposed for the ledger hash chain. */
uint64_t	nn_fnv1a64(const void *data, size_t len, uint64_t h);
#define NN_FNV_OFFSET 14695981039346656037ULL

#endif							/* UNLEARN_NN_H */
