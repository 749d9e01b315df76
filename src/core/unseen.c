/*
 * unseen.c: the target "unseen" (docs/method.md): instead of pushing a
 * forgotten row until it is misclassified, push it until its loss looks like
 * the loss of rows the model never saw.  Here: per-row losses, the quantile
 * summary of a reference of such rows, and each forget row's target loss.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unlearn_internal.h"

#define UL_LOSS_CHUNK 256		/* rows per forward pass */

/* Cross-entropy of each row on its label, in chunks of UL_LOSS_CHUNK rows. */
void
ul_row_losses(const nn_model *m, const float *X, const int *y, int n, float *loss)
{
	int			F = NN_FEATURES(m),
				C = NN_CLASSES(m);
	nn_workspace *ws = nn_workspace_create(m, UL_LOSS_CHUNK);

	for (int s0 = 0; s0 < n; s0 += UL_LOSS_CHUNK)
	{
		int			nb = n - s0 < UL_LOSS_CHUNK ? n - s0 : UL_LOSS_CHUNK;
		const float *z = nn_forward(m, ws, X + (size_t) s0 * F, nb);

		for (int r = 0; r < nb; r++)
			loss[s0 + r] = ul_row_ce(z + (size_t) r * C, C, y[s0 + r]);
	}
	nn_workspace_free(ws);
}

/* Ascending order of floats, for qsort. */
static int
ul_cmp_float(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return (x > y) - (x < y);
}

/* The value at fraction p in [0, 1] of n sorted values, linear between order statistics. */
static float
ul_sorted_at(const float *v, int n, double p)
{
	double		pos = p * (double) (n - 1);
	int			lo = (int) floor(pos);

	if (lo >= n - 1)
		return v[n - 1];
	return (float) ((double) v[lo] + (pos - lo) * ((double) v[lo + 1] - (double) v[lo]));
}

/* The nq quantiles of n losses (sorted in place). */
void
ul_loss_quantiles(float *loss, int n, int nq, float *q)
{
	NN_ASSERT(n >= 1 && nq >= 2);
	qsort(loss, (size_t) n, sizeof(float), ul_cmp_float);
	for (int j = 0; j < nq; j++)
		q[j] = ul_sorted_at(loss, n, (double) j / (nq - 1));
}

/* A row's loss and index, ranked by loss then index (a total order, so qsort's result is fixed). */
typedef struct ul_ranked
{
	float		loss;
	int			i;
} ul_ranked;

/* Ascending loss, ties by index. */
static int
ul_cmp_ranked(const void *a, const void *b)
{
	const ul_ranked *x = a,
			   *y = b;

	if (x->loss != y->loss)
		return (x->loss > y->loss) - (x->loss < y->loss);
	return (x->i > y->i) - (x->i < y->i);
}

/*
 * Each forget row's target: the reference quantile at its rank's midpoint,
 * raised to the floor (ul_unseen_floor) where that is not above the row's
 * loss now; returns how many were raised.
 */
int
ul_unseen_targets(const nn_model *m, const float *X, const int *y, int n,
				  const float *ref, int nq, float *target)
{
	float	   *loss = nn_alloc_floats((size_t) (n > 0 ? n : 1));
	ul_ranked  *rk = nn_alloc(sizeof(ul_ranked) * (size_t) (n > 0 ? n : 1));
	int			floored = 0;

	NN_ASSERT(nq >= 2);
	if (loss == NULL || rk == NULL)
	{
		nn_free_mem(loss);
		nn_free_mem(rk);
		return -1;
	}
	/* step 1: the rows' losses now, and their order */
	ul_row_losses(m, X, y, n, loss);
	for (int i = 0; i < n; i++)
	{
		rk[i].loss = loss[i];
		rk[i].i = i;
	}
	qsort(rk, (size_t) n, sizeof(ul_ranked), ul_cmp_ranked);
	/* step 2: rank r takes the reference at (r + 0.5) / n */
	for (int r = 0; r < n; r++)
		target[rk[r].i] = ul_sorted_at(ref, nq, ((double) r + 0.5) / n);
	/* step 3: no target at or below the row's loss now: the floor, counted */
	for (int i = 0; i < n; i++)
	{
		float		floor_i = ul_unseen_floor(loss[i]);

		NN_ASSERT(floor_i > loss[i]);
		if (target[i] < floor_i)
		{
			target[i] = floor_i;
			floored++;
		}
	}
	nn_free_mem(loss);
	nn_free_mem(rk);
	return floored;
}

/*
 * The least target of a row of loss l: the loss with UL_UNSEEN_FLOOR_ODDS
 * times its odds against the label (e^l - 1, the two-class bound's), i.e.
 * its logit gap lowered by ln UL_UNSEEN_FLOOR_ODDS; about twice l for small
 * losses, l + ln 2 for large ones; at least UL_UNSEEN_MIN_TARGET.
 */
float
ul_unseen_floor(float l)
{
	double		f = l > 30.0f ? (double) l + log(UL_UNSEEN_FLOOR_ODDS)
		: log1p(UL_UNSEEN_FLOOR_ODDS * expm1((double) l));

	return f > UL_UNSEEN_MIN_TARGET ? (float) f : UL_UNSEEN_MIN_TARGET;
}
