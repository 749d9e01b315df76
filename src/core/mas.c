/*
 * mas.c: MAS importance (Aljundi et al.) of every parameter on a set of rows,
 * turned into the weights of the L2 anchor of adv+imp (see unlearn_core.h).
 */
#include <math.h>
#include <string.h>

#include "unlearn_internal.h"

/* Min-max normalises omega over [a, b) into w = 1 - omega_hat. */
static void
ul_norm_tensor(const float *omega, float *w, size_t a, size_t b)
{
	float		lo = omega[a],
				hi = omega[a];

	for (size_t j = a; j < b; j++)
	{
		if (omega[j] < lo)
			lo = omega[j];
		if (omega[j] > hi)
			hi = omega[j];
	}
	for (size_t j = a; j < b; j++)
		w[j] = hi > lo ? 1.0f - (omega[j] - lo) / (hi - lo) : 1.0f;
}

/* MAS importance: |grad of mean ||logits||_2|, per-tensor min-max (conv tensors too), w = 1 - hat. */
void
ul_mas_weights(const nn_model *m, const float *X, int n,
			   float *raw_omega, float *w)
{
	int			F = NN_FEATURES(m);
	int			C = NN_CLASSES(m);
	float	   *omega = raw_omega ? raw_omega : nn_alloc(sizeof(float) * m->n_params);
	nn_workspace *ws = nn_workspace_create(m, UL_CHUNK);
	float	   *dl = nn_alloc(sizeof(float) * UL_CHUNK * C);
	size_t		start[NN_MAX_TENSORS],
				end[NN_MAX_TENSORS];
	int			nt;

	memset(omega, 0, sizeof(float) * m->n_params);
	for (int s0 = 0; s0 < n; s0 += UL_CHUNK)
	{
		int			nb = n - s0 < UL_CHUNK ? n - s0 : UL_CHUNK;
		const float *xb = X + (size_t) s0 * F;
		const float *z = nn_forward(m, ws, xb, nb);

		for (int r = 0; r < nb; r++)
		{
			double		ss = 0.0;

			for (int c = 0; c < C; c++)
				ss += (double) z[r * C + c] * z[r * C + c];
			for (int c = 0; c < C; c++)
				dl[r * C + c] = ss > 0.0 ? (float) (z[r * C + c] / (sqrt(ss) * n)) : 0.0f;
		}
		nn_backward(m, ws, xb, nb, dl, omega, NULL);
	}
	for (size_t j = 0; j < m->n_params; j++)
		omega[j] = fabsf(omega[j]);
	nt = nn_param_tensors(m, start, end, NN_MAX_TENSORS);
	for (int t = 0; t < nt; t++)
		ul_norm_tensor(omega, w, start[t], end[t]);
	nn_free_mem(dl);
	nn_workspace_free(ws);
	if (!raw_omega)
		nn_free_mem(omega);
}
