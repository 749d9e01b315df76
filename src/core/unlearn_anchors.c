/*
 * unlearn_anchors.c: PGD and MAS in the default method (each behind an
 * option, off by default; see the ablation in docs/method.md): eps of the
 * targeted PGD derived from the data, theta0's soft targets on rows (the
 * adversarial boundary anchors, the distilled replay rows) and the gradient
 * toward them, MAS importance of the replay rows as an anchor, and the
 * SalUn-style saliency mask from the forget rows' MAS importance.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unlearn_internal.h"

/* ---------------------------------------------------------------- PGD's eps from the data */

/* qsort order of floats, ascending. */
static int
ul_float_cmp(const void *a, const void *b)
{
	float		x = *(const float *) a,
				y = *(const float *) b;

	return (x > y) - (x < y);
}

/*
 * eps = scale * the median over the forget rows of the L2 distance, in the
 * model's standardised space (where PGD measures eps), to the nearest of the
 * first UL_SELECT_ROWS replay rows trained on with another label; alpha =
 * 2.5 eps / steps (the usual PGD step).  Without such rows eps is left as given.
 */
void
ul_data_eps(ul_ctx *c, float scale, int steps, float *eps, float *alpha)
{
	int			nref = c->nr < UL_SELECT_ROWS ? c->nr : UL_SELECT_ROWS;
	const int  *yr = c->req->replay.y;
	float	   *R = nn_alloc(sizeof(float) * (size_t) (nref > 0 ? nref : 1) * c->F);
	float	   *x = nn_alloc(sizeof(float) * c->F);
	float	   *dmin = nn_alloc(sizeof(float) * c->k);
	int			nd = 0;

	nn_standardize_rows(c->m, c->req->replay.X, nref, R);
	/* each forget row's distance to its nearest other-label replay row */
	for (int i = 0; i < c->k; i++)
	{
		float		best = INFINITY;

		nn_standardize_rows(c->m, c->req->forget.X + (size_t) i * c->F, 1, x);
		for (int r = 0; r < nref; r++)
		{
			const float *xr = R + (size_t) r * c->F;
			float		d = 0.0f;

			if (yr[r] == c->req->forget.y[i])
				continue;
			for (int j = 0; j < c->F; j++)
				d += (x[j] - xr[j]) * (x[j] - xr[j]);
			if (d < best)
				best = d;
		}
		if (isfinite(best))
			dmin[nd++] = sqrtf(best);
	}
	/* the median, scaled */
	if (nd > 0)
	{
		qsort(dmin, nd, sizeof(float), ul_float_cmp);
		*eps = scale * (nd % 2 ? dmin[nd / 2] : 0.5f * (dmin[nd / 2 - 1] + dmin[nd / 2]));
		*alpha = steps > 0 ? 2.5f * *eps / (float) steps : *eps;
	}
	NN_ASSERT(*eps >= 0.0f && *alpha >= 0.0f);
	nn_free_mem(dmin);
	nn_free_mem(x);
	nn_free_mem(R);
}

/* ---------------------------------------------------------------- soft targets */

/* theta0's softmax on n rows of X (n x C, nn_alloc'd), from their logits when given: call before the first step. */
float *
ul_softmax_rows(ul_ctx *c, const float *X, const int *y, int n, const float *logits)
{
	float	   *out = nn_alloc(sizeof(float) * (size_t) (n > 0 ? n : 1) * c->C);

	for (int s0 = 0; s0 < n; s0 += c->wsb)
	{
		int			nb = n - s0 < c->wsb ? n - s0 : c->wsb;
		const float *z = logits ? logits + (size_t) s0 * c->C : nn_forward(c->m, c->ws, X + (size_t) s0 * c->F, nb);

		nn_softmax_ce(z, y + s0, nb, c->C, 1.0f, NULL, out + (size_t) s0 * c->C);
	}
	return out;
}

/*
 * Adds the gradient of scale * sum_r CE(softmax(f(x_r)), T_r) over the rows
 * idx[0..nb) of X (targets: the same rows of T, C per row) to c->grad:
 * d CE / d z = softmax(z) - T_r.
 */
void
ul_soft_ce_grad(ul_ctx *c, const float *X, const int *y, const float *T, const int *idx,
				int nb, float scale)
{
	const float *z;

	NN_ASSERT(nb >= 0 && nb <= c->wsb);
	for (int r = 0; r < nb; r++)
	{
		memcpy(c->Xb + (size_t) r * c->F, X + (size_t) idx[r] * c->F, sizeof(float) * c->F);
		c->yb[r] = y[idx[r]];
	}
	z = nn_forward(c->m, c->ws, c->Xb, nb);
	nn_softmax_ce(z, c->yb, nb, c->C, 1.0f, NULL, c->dl);
	for (int r = 0; r < nb; r++)
	{
		const float *tg = T + (size_t) idx[r] * c->C;

		for (int j = 0; j < c->C; j++)
			c->dl[r * c->C + j] = scale * (c->dl[r * c->C + j] - tg[j]);
	}
	nn_backward(c->m, c->ws, c->Xb, nb, c->dl, c->grad, NULL);
}

/* Adds the boundary anchors' term: adv_weight * mean soft CE over the next adversarial batch. */
void
ul_anchor_grad(ul_ctx *c)
{
	int			na = c->o->adv_batch < c->nadv ? c->o->adv_batch : c->nadv;

	if (na > c->wsb)
		na = c->wsb;
	for (int r = 0; r < na; r++)
	{
		c->rbi[r] = c->adv_pos;
		c->adv_pos = (c->adv_pos + 1) % c->nadv;
	}
	ul_soft_ce_grad(c, c->Xadv, c->tadv, c->advsoft, c->rbi, na, c->o->adv_weight / (float) na);
}

/* ---------------------------------------------------------------- MAS */

/*
 * MAS weights of the anchor: the paper's w = 1 - normalised omega of the
 * forget rows (imp_source 0), or w = normalised omega of the first
 * UL_SELECT_ROWS replay rows (imp_source 1: the weights the remaining rows
 * rely on are held, the others are free).
 */
void
ul_make_imp_weights(ul_ctx *c)
{
	size_t		P = c->m->n_params;
	int			n = c->nr < UL_SELECT_ROWS ? c->nr : UL_SELECT_ROWS;

	c->wimp = nn_alloc(sizeof(float) * P);
	if (c->o->imp_source == 0 || n == 0)
	{
		ul_mas_weights(c->m, c->req->forget.X, c->k, NULL, c->wimp);
		return;
	}
	ul_mas_weights(c->m, c->req->replay.X, n, NULL, c->wimp);
	for (size_t j = 0; j < P; j++)
		c->wimp[j] = 1.0f - c->wimp[j];
}

/*
 * The saliency mask: in each parameter tensor, 1 for the ceil(share * size)
 * parameters with the largest MAS importance on the forget rows (ties
 * included), 0 elsewhere.
 */
void
ul_make_saliency_mask(ul_ctx *c, float share)
{
	size_t		P = c->m->n_params,
				start[NN_MAX_TENSORS],
				end[NN_MAX_TENSORS];
	float	   *omega = nn_alloc(sizeof(float) * P);
	float	   *w = nn_alloc(sizeof(float) * P);
	float	   *sorted = nn_alloc(sizeof(float) * P);
	int			nt = nn_param_tensors(c->m, start, end, NN_MAX_TENSORS);

	ul_mas_weights(c->m, c->req->forget.X, c->k, omega, w);
	c->smask = nn_alloc(sizeof(float) * P);
	for (int t = 0; t < nt; t++)
	{
		size_t		len = end[t] - start[t],
					keep = (size_t) ceil((double) share * (double) len);
		float		thr;

		NN_ASSERT(keep >= 1 && keep <= len);
		memcpy(sorted, omega + start[t], sizeof(float) * len);
		qsort(sorted, len, sizeof(float), ul_float_cmp);
		thr = sorted[len - keep];
		for (size_t j = start[t]; j < end[t]; j++)
			c->smask[j] = omega[j] >= thr ? 1.0f : 0.0f;
	}
	nn_free_mem(sorted);
	nn_free_mem(w);
	nn_free_mem(omega);
}

/* Applies the saliency mask to c->grad (only the salient parameters move). */
void
ul_mask_grad(ul_ctx *c)
{
	for (size_t j = 0; j < c->m->n_params; j++)
		c->grad[j] *= c->smask[j];
}
