/*
 * select.c: choosing the weight decay of a training run on held-out rows.
 *
 * A small table lets a network fit its noise (pima: 86 % on the training
 * rows, 75 % on the test rows).  The cure is L2 weight decay, but its right
 * strength depends on the table, so it is chosen per table, by k-fold cross-
 * validation over a decade grid: each candidate trains NN_SELECT_FOLDS times
 * on the other folds (the same initial weights and options as the run) and
 * is scored by the cross-entropy of the rows it did not train on (a proper
 * score: far less noisy than counting rows right on a small table).  The
 * lowest summed loss wins; a tie goes to the weaker decay.  Only when the
 * whole selection costs no more optimiser steps than the caller's budget
 * (nn_select_affordable).
 */
#include <math.h>
#include <string.h>

#include "nn_internal.h"

/* Mixed into the training seed for the folds, so they replay neither init, shuffling nor validation. */
#define NN_SELECT_STREAM	UINT64_C(0x53454c4543542d57)

const float nn_select_candidates[NN_SELECT_CANDIDATES] = {0.0f, 1e-3f, 1e-2f, 1e-1f};

/* Rows trained on in fold k of n rows (every NN_SELECT_FOLDS-th row held out). */
static int
fold_train_rows(int n, int k)
{
	int			held = (n - k + NN_SELECT_FOLDS - 1) / NN_SELECT_FOLDS;

	return n - held;
}

/*
 * The selection's optimiser steps: every candidate, every fold, o->epochs
 * passes over a fold's training rows in batches of o->batch_size; -1 when
 * the folds would hold out fewer rows than there are classes.
 */
long
nn_select_steps(int n, int n_classes, const nn_train_options *o)
{
	long		steps = 0;

	if (n < NN_SELECT_FOLDS * n_classes || o->batch_size < 1 || o->epochs < 1)
		return -1;
	for (int k = 0; k < NN_SELECT_FOLDS; k++)
	{
		long		rows = fold_train_rows(n, k);

		steps += (long) o->epochs * ((rows + o->batch_size - 1) / o->batch_size);
	}
	return steps * NN_SELECT_CANDIDATES;
}

/* True when the selection runs at all and its steps fit in budget_steps. */
int
nn_select_affordable(int n, int n_classes, const nn_train_options *o, long budget_steps)
{
	long		steps = nn_select_steps(n, n_classes, o);

	return steps >= 0 && steps <= budget_steps;
}

/* Splits X, y by the permutation order into fold k's training rows and held-out rows. */
static void
split_fold(const float *X, const int *y, int n, int F, const int *order, int k,
		   float *Xa, int *ya, float *Xv, int *yv)
{
	int			na = 0,
				nv = 0;

	for (int i = 0; i < n; i++)
	{
		int			r = order[i];

		if (i % NN_SELECT_FOLDS == k)
		{
			memcpy(Xv + (size_t) nv * F, X + (size_t) r * F, sizeof(float) * F);
			yv[nv++] = y[r];
		}
		else
		{
			memcpy(Xa + (size_t) na * F, X + (size_t) r * F, sizeof(float) * F);
			ya[na++] = y[r];
		}
	}
	NN_ASSERT(na == fold_train_rows(n, k) && na + nv == n);
}

/*
 * One fold of one candidate: a copy of init trained with weight decay wd on
 * the fold's training rows, then its held-out rows' summed cross-entropy
 * (*loss) and the count it classifies right (*right).  0, or -1 on failure.
 */
static int
fold_score(const nn_model *init, const float *Xa, const int *ya, int na, const float *Xv,
		   const int *yv, int nv, const nn_train_options *o, float wd, nn_epoch_callback cb, void *cb_arg,
		   double *loss, long *right)
{
	nn_train_options fo = *o;
	nn_model   *m = nn_clone(init);
	nn_workspace *ws = NULL;
	float	   *logits = NULL;
	int		   *pred = NULL;
	int			rc = -1;

	fo.weight_decay = wd;
	fo.validation = 0;
	/* step 1: train the copy (nn_train returns NaN when it fails) */
	if (m != NULL && !isnan(nn_train(m, Xa, ya, na, &fo, cb, cb_arg)))
	{
		ws = nn_workspace_create(m, 256);
		logits = nn_alloc_floats((size_t) nv * NN_CLASSES(m));
		pred = nn_alloc(sizeof(int) * (size_t) nv);
	}
	/* step 2: its held-out rows' loss and the rows it gets right */
	if (ws && logits && pred)
	{
		nn_predict_logits(m, ws, Xv, nv, logits);
		*loss = nn_softmax_ce(logits, yv, nv, NN_CLASSES(m), 0.0f, NULL, NULL);
		nn_logits_classes(logits, nv, NN_CLASSES(m), pred);
		*right = 0;
		for (int i = 0; i < nv; i++)
			*right += pred[i] == yv[i];
		rc = *loss == *loss ? 0 : -1;
	}
	nn_free_mem(pred);
	nn_free_mem(logits);
	if (ws)
		nn_workspace_free(ws);
	if (m)
		nn_free(m);
	return rc;
}

/*
 * The weight decay of nn_select_candidates whose copies of init, trained
 * with o on the other folds, give the held-out rows the lowest summed
 * cross-entropy (ties: the smaller decay).  loss[c] and correct[c] receive
 * candidate c's sum and count of rows right over all folds (n rows in all).
 * Returns -1 when memory runs out or a training fails.  cb, if not NULL, is
 * nn_train's per-epoch hook for every fold's training.
 */
float
nn_select_weight_decay(const nn_model *init, const float *X, const int *y, int n,
					   const nn_train_options *o, double loss[NN_SELECT_CANDIDATES],
					   long correct[NN_SELECT_CANDIDATES], nn_epoch_callback cb, void *cb_arg)
{
	int			F = NN_FEATURES(init);
	int		   *order = nn_alloc(sizeof(int) * (size_t) n);
	float	   *Xa = nn_alloc_floats((size_t) n * F);
	float	   *Xv = nn_alloc_floats((size_t) n * F);
	int		   *ya = nn_alloc(sizeof(int) * (size_t) n);
	int		   *yv = nn_alloc(sizeof(int) * (size_t) n);
	int			best = -1;
	nn_rng		rng;

	NN_ASSERT(n >= NN_SELECT_FOLDS);
	memset(correct, 0, sizeof(long) * NN_SELECT_CANDIDATES);
	memset(loss, 0, sizeof(double) * NN_SELECT_CANDIDATES);
	if (order && Xa && Xv && ya && yv)
	{
		/* step 1: the folds, from a seeded permutation of the rows */
		for (int i = 0; i < n; i++)
			order[i] = i;
		nn_rng_seed(&rng, o->seed ^ NN_SELECT_STREAM);
		nn_rng_shuffle(&rng, order, n);
		/* step 2: every fold trains every candidate; held-out losses and rows right are summed */
		best = 0;
		for (int k = 0; k < NN_SELECT_FOLDS && best >= 0; k++)
		{
			int			na = fold_train_rows(n, k);

			split_fold(X, y, n, F, order, k, Xa, ya, Xv, yv);
			for (int c = 0; c < NN_SELECT_CANDIDATES && best >= 0; c++)
			{
				double		fold_loss;
				long		fold_right;

				if (fold_score(init, Xa, ya, na, Xv, yv, n - na, o, nn_select_candidates[c], cb, cb_arg,
							   &fold_loss, &fold_right) < 0)
					best = -1;
				else
				{
					loss[c] += fold_loss;
					correct[c] += fold_right;
				}
			}
		}
		/* step 3: the lowest held-out loss; strictly lower to prefer a stronger decay */
		for (int c = 1; c < NN_SELECT_CANDIDATES && best >= 0; c++)
			if (loss[c] < loss[best])
				best = c;
	}
	nn_free_mem(order);
	nn_free_mem(Xa);
	nn_free_mem(Xv);
	nn_free_mem(ya);
	nn_free_mem(yv);
	return best < 0 ? -1.0f : nn_select_candidates[best];
}
