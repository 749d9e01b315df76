/*
 * early_stop.c: early stopping of nn_train on held-out rows.
 *
 * With o->validation > 0, a seeded share of the rows is held out before the
 * first epoch (never trained on); after each epoch their accuracy is
 * measured, the parameters of the best epoch are kept, and training stops
 * once o->patience epochs in a row brought no improvement.  The model ends
 * with the best epoch's parameters.  The same rule as scikit-learn's
 * MLPClassifier(early_stopping=True): improvement means more than 1e-4.
 */
#include <string.h>

#include "nn_internal.h"

/* Mixed into the training seed for the split, so it replays neither init nor shuffling. */
#define NN_VALIDATION_STREAM	UINT64_C(0x56414c4944415445)
/* Fewer held-out rows than this measure nothing: no early stopping. */
#define NN_MIN_VALIDATION_ROWS	10
#define NN_IMPROVEMENT			1e-4

/* Frees what nn_early_stop_start allocated. */
void
nn_early_stop_free(nn_early_stop *es)
{
	nn_free_mem(es->Xv);
	nn_free_mem(es->yv);
	nn_free_mem(es->best);
	memset(es, 0, sizeof(*es));
}

/*
 * The held-out rows of early stopping: shuffles order (n row indices) with
 * the split's seeded stream; its last n_val entries are the held-out rows.
 * Returns n_val, 0 (order untouched) when there is no early stopping.
 */
int
nn_validation_split(int n, const nn_train_options *o, int *order)
{
	nn_rng		rng;
	int			n_val = o->validation > 0 ? (int) ((double) n * o->validation) : 0;

	if (n_val < NN_MIN_VALIDATION_ROWS || n - n_val < 1)
		return 0;
	nn_rng_seed(&rng, o->seed ^ NN_VALIDATION_STREAM);
	nn_rng_shuffle(&rng, order, n);
	return n_val;
}

/*
 * Holds out the validation rows (nn_validation_split over order), copied
 * out; returns the rows left to train on (n when there is no early
 * stopping), or -1 when memory runs out.
 */
int
nn_early_stop_start(nn_early_stop *es, const nn_model *m, const float *X, const int *y, int n,
					const nn_train_options *o, int *order)
{
	int			F = NN_FEATURES(m);
	int			n_val;

	memset(es, 0, sizeof(*es));
	/* step 1: which rows: the tail of a seeded shuffle */
	n_val = nn_validation_split(n, o, order);
	if (n_val == 0)
		return n;
	es->Xv = nn_alloc_floats((size_t) n_val * (size_t) F);
	es->yv = nn_alloc((size_t) n_val * sizeof(int));
	es->best = nn_alloc_floats(m->n_params);
	if (es->Xv == NULL || es->yv == NULL || es->best == NULL)
	{
		nn_early_stop_free(es);
		return -1;
	}
	/* step 2: copy them out */
	for (int i = 0; i < n_val; i++)
	{
		int			r = order[n - n_val + i];

		memcpy(es->Xv + (size_t) i * F, X + (size_t) r * F, (size_t) F * sizeof(float));
		es->yv[i] = y[r];
	}
	es->n_val = n_val;
	es->best_accuracy = -1.0;
	es->patience = o->patience > 0 ? o->patience : 10;
	return n - n_val;
}

/* After epoch `epoch` (1-based): keeps the parameters if they are the best; 1 to stop. */
int
nn_early_stop_epoch(nn_early_stop *es, const nn_model *m, int epoch)
{
	double		acc;

	if (es->n_val == 0)
		return 0;
	acc = nn_accuracy(m, es->Xv, es->yv, es->n_val);
	if (acc > es->best_accuracy + NN_IMPROVEMENT)
	{
		es->best_accuracy = acc;
		es->best_epoch = epoch;
		memcpy(es->best, m->params, m->n_params * sizeof(float));
		return 0;
	}
	return epoch - es->best_epoch >= es->patience;
}

/* Ends early stopping: the model takes the best epoch's parameters; frees the rest. */
void
nn_early_stop_finish(nn_early_stop *es, nn_model *m)
{
	if (es->n_val > 0 && es->best_epoch > 0)
		memcpy(m->params, es->best, m->n_params * sizeof(float));
	nn_early_stop_free(es);
}
