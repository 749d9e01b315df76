/*
 * pgd.c: targeted L2 PGD (see unlearn_core.h): the adversarial examples of
 * the ADV term, made once on theta0 before the unlearning loop.  On a
 * standardized model it runs in the standardised space (see unlearn_core.h).
 */
#include <math.h>

#include "unlearn_internal.h"

/* Clips row x (F floats) into the model's input box. */
static void
ul_clip_box(const nn_model *m, float *x)
{
	int			F = NN_FEATURES(m);

	for (int f = 0; f < F; f++)
	{
		if (x[f] < m->feat_lo[f])
			x[f] = m->feat_lo[f];
		else if (x[f] > m->feat_hi[f])
			x[f] = m->feat_hi[f];
	}
}

/* Rescales xa so that ||xa - x||_2 <= eps. */
static void
ul_project_ball(float *xa, const float *x, int F, float eps)
{
	double		ss = 0.0;

	for (int f = 0; f < F; f++)
	{
		double		d = (double) xa[f] - x[f];

		ss += d * d;
	}
	if (ss > (double) eps * eps)
	{
		float		s = (float) (eps / sqrt(ss));

		for (int f = 0; f < F; f++)
			xa[f] = x[f] + (xa[f] - x[f]) * s;
	}
}

/* Targeted L2 PGD in the model's input space, batched over UL_CHUNK adversarial rows at a time. */
static void
pgd_run(const nn_model *m, const float *X, const int *y, int n,
		int per_row, float eps, float alpha, int steps,
		nn_rng *rng, float *X_adv, int *t_adv)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);
	int			total = n * per_row;
	nn_workspace *ws;
	float	   *dl,
			   *g;

	if (total <= 0)
		return;

	/* targets and random starts, drawn row by row (independent of chunking) */
	for (int r = 0; r < total; r++)
	{
		int			i = r / per_row;
		const float *x = X + (size_t) i * F;
		float	   *xa = X_adv + (size_t) r * F;

		t_adv[r] = C > 1 ? (y[i] + 1 + (int) nn_rng_below(rng, (uint32_t) (C - 1))) % C : y[i];
		for (int f = 0; f < F; f++)
			xa[f] = m->feat_lo[f] + (float) nn_rng_uniform(rng) * (m->feat_hi[f] - m->feat_lo[f]);
		ul_project_ball(xa, x, F, eps);
		ul_clip_box(m, xa);
	}
	if (steps <= 0)
		return;

	ws = nn_workspace_create(m, UL_CHUNK);
	dl = nn_alloc(sizeof(float) * UL_CHUNK * C);
	g = nn_alloc(sizeof(float) * UL_CHUNK * F);

	for (int s0 = 0; s0 < total; s0 += UL_CHUNK)
	{
		int			nb = total - s0 < UL_CHUNK ? total - s0 : UL_CHUNK;
		float	   *xb = X_adv + (size_t) s0 * F;

		for (int it = 0; it < steps; it++)
		{
			const float *logits = nn_forward(m, ws, xb, nb);

			/* gradient of CE toward t; we descend it (= ascend -CE) */
			nn_softmax_ce(logits, t_adv + s0, nb, C, 1.0f, dl, NULL);
			nn_backward(m, ws, xb, nb, dl, NULL, g);
			for (int r = 0; r < nb; r++)
			{
				const float *x = X + (size_t) ((s0 + r) / per_row) * F;
				float	   *xa = xb + (size_t) r * F;
				float	   *gr = g + (size_t) r * F;
				double		ss = 0.0;
				float		step;

				for (int f = 0; f < F; f++)
					ss += (double) gr[f] * gr[f];
				step = alpha / (float) fmax(sqrt(ss), 1e-6);
				for (int f = 0; f < F; f++)
					xa[f] -= step * gr[f];
				ul_clip_box(m, xa);
				ul_project_ball(xa, x, F, eps);
			}
		}
	}
	nn_free_mem(g);
	nn_free_mem(dl);
	nn_workspace_free(ws);
}

/*
 * Targeted L2 PGD.  A standardized model is attacked through a view of it
 * without the standardisation, on the standardised rows and box, so that eps,
 * alpha and the box are in the standardised space; the examples are mapped
 * back to raw features (exactly, where mean is 0 and scale 1).
 */
void
ul_pgd_targeted(const nn_model *m, const float *X, const int *y, int n,
				int per_row, float eps, float alpha, int steps,
				nn_rng *rng, float *X_adv, int *t_adv)
{
	int			F = NN_FEATURES(m);
	int			total = n * per_row;
	nn_model	view;
	float	   *Xs;

	if (!m->standardized)
	{
		pgd_run(m, X, y, n, per_row, eps, alpha, steps, rng, X_adv, t_adv);
		return;
	}
	if (total <= 0)
		return;
	view = *m;
	view.standardized = 0;
	view.feat_lo = nn_alloc_floats((size_t) F);
	view.feat_hi = nn_alloc_floats((size_t) F);
	Xs = nn_alloc_floats((size_t) n * (size_t) F);
	if (view.feat_lo != NULL && view.feat_hi != NULL && Xs != NULL)
	{
		nn_standardize_rows(m, m->feat_lo, 1, view.feat_lo);
		nn_standardize_rows(m, m->feat_hi, 1, view.feat_hi);
		nn_standardize_rows(m, X, n, Xs);
		pgd_run(&view, Xs, y, n, per_row, eps, alpha, steps, rng, X_adv, t_adv);
		for (int r = 0; r < total; r++)
		{
			float	   *xa = X_adv + (size_t) r * F;

			for (int f = 0; f < F; f++)
				if (m->mean[f] != 0.0f || m->scale[f] != 1.0f)
					xa[f] = xa[f] * m->scale[f] + m->mean[f];
		}
	}
	nn_free_mem(Xs);
	nn_free_mem(view.feat_hi);
	nn_free_mem(view.feat_lo);
}
