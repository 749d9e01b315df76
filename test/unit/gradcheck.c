/*
 * gradcheck.c: the finite-difference check of nn_backward's parameter and
 * input gradients that the test files share (MLPs and convolutional models).
 */
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "unit.h"

/*
 * Summed CE of the model on (X,y), plus the ReLU on/off pattern of every
 * hidden unit and conv output, and each pool's choice, into mask.
 */
static double
loss_and_mask(const nn_model *m, nn_workspace *ws, const float *X, const int *y, int n,
			  unsigned char *mask)
{
	const float *logits = nn_forward(m, ws, X, n);
	size_t		k = 0;

	for (int s = 0; s < m->n_stages; s++)
	{
		const nn_stage *st = &m->stage[s];
		size_t		count = (size_t) n * st->c_out * st->h_out * st->w_out;

		for (size_t i = 0; i < count; i++)
			mask[k++] = st->kind == NN_STAGE_CONV ? ws->sact[s][i] > 0.0f :
				(unsigned char) (ws->pidx[s][i] % 251);
	}
	for (int l = 1; l < m->n_layers; l++)
		for (size_t i = 0; i < (size_t) n * m->dims[l]; i++)
			mask[k++] = ws->act[l][i] > 0.0f;
	return nn_softmax_ce(logits, y, n, NN_CLASSES(m), 1.0f, NULL, NULL);
}

/* Number of hidden and stage activations in a batch of n rows (size of the mask). */
static size_t
mask_size(const nn_model *m, int n)
{
	size_t		total = 0;

	for (int s = 0; s < m->n_stages; s++)
		total += (size_t) n * m->stage[s].c_out * m->stage[s].h_out * m->stage[s].w_out;
	for (int l = 1; l < m->n_layers; l++)
		total += (size_t) n * m->dims[l];
	return total;
}

/* Whether an analytic and a central-difference derivative agree to ~1% (plus a small absolute slack). */
int
grad_agrees(double analytic, double numeric)
{
	double		scale = fabs(analytic) > fabs(numeric) ? fabs(analytic) : fabs(numeric);

	return fabs(analytic - numeric) <= 1e-2 * scale + 2e-3;
}

/*
 * Compare nn_backward's parameter and input gradients with central
 * differences of the summed CE.  Coordinates whose +-h perturbation flips any
 * ReLU (a kink, where differences are meaningless) are skipped, but at most a
 * few may be.  Returns the number of mismatches.
 */
int
check_gradients(nn_model *m, const float *X_in, const int *y, int n)
{
	const double h = 2e-3;
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);
	nn_workspace *ws = nn_workspace_create(m, n);
	float	   *X = malloc(sizeof(float) * n * F);
	float	   *dlogits = malloc(sizeof(float) * n * C);
	float	   *grad = calloc(m->n_params, sizeof(float));
	float	   *grad_in = malloc(sizeof(float) * n * F);
	size_t		msize = mask_size(m, n);
	unsigned char *mask0 = malloc(msize + 1),
			   *mask_plus = malloc(msize + 1),
			   *mask_minus = malloc(msize + 1);
	int			bad = 0,
				skipped = 0,
				checked = 0;

	memcpy(X, X_in, sizeof(float) * n * F);
	loss_and_mask(m, ws, X, y, n, mask0);
	nn_softmax_ce(ws->act[m->n_layers], y, n, C, 1.0f, dlogits, NULL);
	nn_backward(m, ws, X, n, dlogits, grad, grad_in);

	/* parameters, then inputs, through the same perturb-and-compare loop */
	for (int pass = 0; pass < 2; pass++)
	{
		float	   *v = pass == 0 ? m->params : X;
		const float *analytic = pass == 0 ? grad : grad_in;
		size_t		count = pass == 0 ? m->n_params : (size_t) n * F;

		for (size_t i = 0; i < count; i++)
		{
			float		saved = v[i];
			double		lp,
						lm,
						numeric;

			v[i] = (float) (saved + h);
			lp = loss_and_mask(m, ws, X, y, n, mask_plus);
			v[i] = (float) (saved - h);
			lm = loss_and_mask(m, ws, X, y, n, mask_minus);
			v[i] = saved;
			if (memcmp(mask0, mask_plus, msize) != 0 || memcmp(mask0, mask_minus, msize) != 0)
			{
				skipped++;
				continue;
			}
			numeric = (lp - lm) / (2 * h);
			checked++;
			if (!grad_agrees(analytic[i], numeric))
			{
				bad++;
				fprintf(stderr, "    %s[%zu]: analytic %.6g numeric %.6g\n",
						pass == 0 ? "param" : "input", i, analytic[i], numeric);
			}
		}
	}
	CHECK(checked > 0);
	CHECK(skipped * 10 <= checked);	/* kinks are rare with random biases */

	nn_workspace_free(ws);
	free(X);
	free(dlogits);
	free(grad);
	free(grad_in);
	free(mask0);
	free(mask_plus);
	free(mask_minus);
	return bad;
}
