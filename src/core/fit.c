/*
 * fit.c: nn_train, mini-batch training of a model with an optimiser from
 * optim.c (named fit.c so it does not share a basename with src/pg/train.c).
 */
#include <math.h>
#include <string.h>

#include "nn_internal.h"

/* Mixed into the training seed so shuffling does not replay the init stream. */
#define NN_SHUFFLE_STREAM	UINT64_C(0x53485546464c4531)

/*
 * The documented defaults: Adam, lr 1e-3, momentum 0.9, no decay, batch 128,
 * 10 epochs, seed 42, no standardisation (the extension turns it on for new
 * models).
 */
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
	o->standardize = 0;
	o->validation = 0.0f;
	o->patience = 10;
}

/* What one training run allocates: scratch, optimiser state and the batch buffers. */
typedef struct fit_state
{
	nn_workspace *ws;
	nn_optimizer *opt;
	float	   *grad;			/* n_params */
	float	   *Xb;				/* batch x features: the gathered batch */
	int		   *yb;				/* batch */
	int		   *order;			/* n: this epoch's row order */
	int			batch;
} fit_state;

/* Release what fit_alloc allocated (any of it may be NULL). */
static void
fit_free(fit_state *s)
{
	nn_workspace_free(s->ws);
	nn_optimizer_free(s->opt);
	nn_free_mem(s->grad);
	nn_free_mem(s->Xb);
	nn_free_mem(s->yb);
	nn_free_mem(s->order);
}

/* Allocate everything a run needs; 0 on success, -1 (after freeing) when memory runs out. */
static int
fit_alloc(fit_state *s, const nn_model *m, int n, const nn_train_options *o)
{
	int			batch = o->batch_size < 1 ? 1 : (o->batch_size > n ? n : o->batch_size);

	s->batch = batch;
	s->ws = nn_workspace_create(m, batch);
	s->opt = nn_optimizer_create(o->optimizer, m->n_params, o->lr, o->momentum, o->weight_decay);
	s->grad = nn_alloc_floats(m->n_params);
	s->Xb = nn_alloc_floats((size_t) batch * (size_t) NN_FEATURES(m));
	s->yb = nn_alloc((size_t) batch * sizeof(int));
	s->order = nn_alloc((size_t) n * sizeof(int));
	/* the standardised input's buffer, for the standardisation about to be learned */
	if (s->ws != NULL && o->standardize && s->ws->act[0] == NULL)
	{
		s->ws->act[0] = nn_alloc_floats((size_t) batch * (size_t) NN_FEATURES(m));
		if (s->ws->act[0] == NULL)
		{
			fit_free(s);
			return -1;
		}
	}
	if (s->ws == NULL || s->opt == NULL || s->grad == NULL || s->Xb == NULL ||
		s->yb == NULL || s->order == NULL)
	{
		fit_free(s);
		return -1;
	}
	return 0;
}

/*
 * One optimiser step on the rows order[start .. start+rows) of (X, y),
 * gathered into one contiguous buffer so sgemm sees dense input; returns the
 * batch's summed CE.
 */
static double
fit_batch(nn_model *m, fit_state *s, const float *X, const int *y, int start, int rows)
{
	int			F = NN_FEATURES(m);
	float	   *logits;
	double		loss;

	NN_ASSERT(rows >= 1 && rows <= s->batch);
	for (int i = 0; i < rows; i++)
	{
		int			r = s->order[start + i];

		memcpy(s->Xb + (size_t) i * F, X + (size_t) r * F, (size_t) F * sizeof(float));
		s->yb[i] = y[r];
	}
	nn_forward(m, s->ws, s->Xb, rows);
	logits = s->ws->act[m->n_layers];
	/* dlogits overwrite the logits: backward never reads them */
	loss = nn_softmax_ce(logits, s->yb, rows, NN_CLASSES(m), 1.0f / (float) rows, logits, NULL);
	memset(s->grad, 0, m->n_params * sizeof(float));
	nn_backward(m, s->ws, s->Xb, rows, logits, s->grad, NULL);
	nn_optimizer_step(s->opt, m->params, s->grad);
	return loss;
}

/*
 * Mini-batch training with the mean CE of each batch as its loss (so
 * dlogits are scaled by 1/rows; the last partial batch is kept), rows in a
 * per-epoch Fisher-Yates order.  The callback receives the 1-based epoch
 * just finished.  With o->validation, held-out rows stop it early and the
 * best epoch's parameters are kept (early_stop.c).  Returns NaN (model untouched) on labels outside 0..C-1 or
 * allocation failure, or on an ensemble (its members are trained one by one); 0 when there is nothing to train.
 */
double
nn_train(nn_model *m, const float *X, const int *y, int n,
		 const nn_train_options *o, nn_epoch_callback cb, void *cb_arg)
{
	nn_train_options defaults;
	fit_state	s;
	nn_rng		rng;
	nn_early_stop es;
	int			n_train;
	double		last_loss = 0.0;

	/* options, the empty case and the labels */
	if (o == NULL)
	{
		nn_train_options_default(&defaults);
		o = &defaults;
	}
	if (m->n_members > 0)
		return NAN;				/* an ensemble's members are trained one by one */
	if (n <= 0)
		return 0.0;
	for (int i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= NN_CLASSES(m))
			return NAN;

	/* scratch; the model is not touched before this succeeds */
	memset(&s, 0, sizeof(s));
	if (fit_alloc(&s, m, n, o) != 0)
		return NAN;

	/* standardisation (with o->standardize), feature range, shuffling stream, identity order */
	if (o->standardize && nn_set_standardization(m, X, n) != 0)
	{
		fit_free(&s);
		return NAN;
	}
	nn_set_feature_range(m, X, n);
	nn_rng_seed(&rng, o->seed ^ NN_SHUFFLE_STREAM);
	for (int i = 0; i < n; i++)
		s.order[i] = i;
	/* the held-out rows of early stopping, if any: the rows order[n_train ..) */
	n_train = nn_early_stop_start(&es, m, X, y, n, o, s.order);
	if (n_train < 0)
	{
		fit_free(&s);
		return NAN;
	}

	/* epochs of shuffled mini-batches */
	for (int epoch = 0; epoch < o->epochs; epoch++)
	{
		double		epoch_loss = 0.0;

		nn_rng_shuffle(&rng, s.order, n_train);
		for (int start = 0; start < n_train; start += s.batch)
			epoch_loss += fit_batch(m, &s, X, y, start, n_train - start < s.batch ? n_train - start : s.batch);
		last_loss = epoch_loss / (double) n_train;
		if (cb && cb(cb_arg, epoch + 1, o->epochs, last_loss) != 0)
			break;
		if (nn_early_stop_epoch(&es, m, epoch + 1))
			break;
	}
	nn_early_stop_finish(&es, m);
	fit_free(&s);
	return last_loss;
}

/* Training a chunk at a time (tables larger than memory): nn_train's loop, fed by the caller. */
struct nn_stream
{
	nn_model   *m;
	fit_state	s;
	nn_rng		rng;
	int			max_rows;
};

/*
 * Starts training m on chunks of at most max_rows rows with o's optimiser,
 * batch size and seed (o->validation and o->epochs are the caller's: it
 * decides the passes).  The caller fixes the feature range and
 * standardisation first (nn_stats_apply).  NULL when memory runs out or m
 * is an ensemble.
 */
nn_stream *
nn_stream_begin(nn_model *m, const nn_train_options *o, int max_rows)
{
	nn_stream  *st;

	if (m->n_members > 0 || max_rows <= 0)
		return NULL;
	st = nn_alloc_zero(sizeof(nn_stream));
	if (st == NULL)
		return NULL;
	if (fit_alloc(&st->s, m, max_rows, o) != 0)
	{
		nn_free_mem(st);
		return NULL;
	}
	st->m = m;
	st->max_rows = max_rows;
	nn_rng_seed(&st->rng, o->seed ^ NN_SHUFFLE_STREAM);
	return st;
}

/* Shuffles idx[0..n) with the training's stream (the caller's order of chunks in an epoch). */
void
nn_stream_shuffle(nn_stream *st, int *idx, int n)
{
	nn_rng_shuffle(&st->rng, idx, n);
}

/*
 * One pass of mini-batches over a chunk (n <= max_rows rows of X, labels y)
 * in a shuffled order, the last partial batch kept; returns the summed CE of
 * its rows, or NaN (model untouched) if a label is outside 0..classes-1.
 */
double
nn_stream_chunk(nn_stream *st, const float *X, const int *y, int n)
{
	double		loss = 0.0;

	NN_ASSERT(n >= 0 && n <= st->max_rows);
	for (int i = 0; i < n; i++)
		if (y[i] < 0 || y[i] >= NN_CLASSES(st->m))
			return NAN;
	for (int i = 0; i < n; i++)
		st->s.order[i] = i;
	nn_rng_shuffle(&st->rng, st->s.order, n);
	for (int start = 0; start < n; start += st->s.batch)
		loss += fit_batch(st->m, &st->s, X, y, start, n - start < st->s.batch ? n - start : st->s.batch);
	return loss;
}

/* Frees the training's scratch (the model stays). */
void
nn_stream_end(nn_stream *st)
{
	if (st == NULL)
		return;
	fit_free(&st->s);
	nn_free_mem(st);
}
