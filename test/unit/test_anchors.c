/*
 * test_anchors.c: unit tests of PGD and MAS inside the default method
 * (src/core/unlearn_anchors.c): the soft-target cross-entropy gradient
 * against finite differences, eps from the data, the MAS anchor on the
 * replay rows, the saliency mask, and whole runs with each form.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "unlearn_internal.h"

#define AN_D 3					/* features */
#define AN_C 4					/* classes */
#define AN_N 240				/* rows */

/* Blob rows: row i has class i % AN_C around a fixed centre, with noise. */
static void
an_rows(float *X, int *y, int n, uint64_t seed)
{
	nn_rng		r;

	nn_rng_seed(&r, seed);
	for (int i = 0; i < n; i++)
	{
		y[i] = i % AN_C;
		for (int d = 0; d < AN_D; d++)
			X[i * AN_D + d] = (float) ((y[i] >> (d % 2)) & 1) + (float) d * 0.1f * y[i] +
				0.35f * nn_rng_normal(&r);
	}
}

/* A trained MLP 3-8-4 (standardised) on the blob rows. */
static nn_model *
an_model(const float *X, const int *y, int n)
{
	int			hidden = 8;
	nn_model   *m = nn_create(AN_D, 1, &hidden, AN_C, 5, NULL, 0);
	nn_train_options o;

	nn_train_options_default(&o);
	o.epochs = 40;
	o.batch_size = 32;
	o.lr = 1e-2f;
	o.standardize = 1;
	nn_train(m, X, y, n, &o, NULL, NULL);
	return m;
}

/* scale * sum_r CE(softmax(f(x_idx[r])), T_idx[r]) of the model. */
static double
soft_ce(const nn_model *m, const float *X, const float *T, const int *idx, int nb, float scale)
{
	nn_workspace *ws = nn_workspace_create(m, nb);
	float	   *Xb = malloc(sizeof(float) * nb * AN_D);
	const float *z;
	double		s = 0.0;

	for (int r = 0; r < nb; r++)
		memcpy(Xb + r * AN_D, X + idx[r] * AN_D, sizeof(float) * AN_D);
	z = nn_forward(m, ws, Xb, nb);
	for (int r = 0; r < nb; r++)
	{
		double		mx = z[r * AN_C],
					se = 0.0;

		for (int j = 1; j < AN_C; j++)
			mx = fmax(mx, z[r * AN_C + j]);
		for (int j = 0; j < AN_C; j++)
			se += exp(z[r * AN_C + j] - mx);
		for (int j = 0; j < AN_C; j++)
			s -= T[idx[r] * AN_C + j] * (z[r * AN_C + j] - mx - log(se));
	}
	free(Xb);
	nn_workspace_free(ws);
	return scale * s;
}

/* A request of 4 forget rows (the first rows) and the rest as replay rows. */
static ul_request
an_request(const float *X, const int *y, int n)
{
	ul_request	q;

	memset(&q, 0, sizeof(q));
	q.forget.X = X;
	q.forget.y = y;
	q.forget.n = 4;
	q.replay.X = X + 4 * AN_D;
	q.replay.y = y + 4;
	q.replay.n = n - 4;
	return q;
}

UNIT_TEST(soft_ce_grad_matches_finite_differences)
{
	float		X[AN_N * AN_D],
				T[AN_N * AN_C];
	int			y[AN_N],
				idx[5] = {7, 3, 11, 3, 20};
	nn_model   *m;
	ul_request	q;
	ul_options	o;
	ul_ctx		c;
	nn_rng		r;
	int			compared = 0;

	an_rows(X, y, AN_N, 11);
	m = an_model(X, y, AN_N);
	/* soft targets: random distributions */
	nn_rng_seed(&r, 4);
	for (int i = 0; i < AN_N; i++)
	{
		double		s = 0.0;

		for (int j = 0; j < AN_C; j++)
			s += T[i * AN_C + j] = 0.05f + (float) nn_rng_uniform(&r);
		for (int j = 0; j < AN_C; j++)
			T[i * AN_C + j] /= (float) s;
	}
	q = an_request(X, y, AN_N);
	ul_options_default(&o, UL_METHOD_DEFAULT);
	ul_ctx_init(&c, m, &q, &o);
	memset(c.grad, 0, sizeof(float) * m->n_params);
	ul_soft_ce_grad(&c, X, y, T, idx, 5, 0.7f);
	for (size_t j = 0; j < m->n_params; j++)
	{
		float		p0 = m->params[j];
		double		h = 1e-3,
					fp,
					fm;

		m->params[j] = p0 + (float) h;
		fp = soft_ce(m, X, T, idx, 5, 0.7f);
		m->params[j] = p0 - (float) h;
		fm = soft_ce(m, X, T, idx, 5, 0.7f);
		m->params[j] = p0;
		CHECK_CLOSE(c.grad[j], (fp - fm) / (2 * h), 2e-3 + 2e-2 * fabs((fp - fm) / (2 * h)));
		compared++;
	}
	CHECK(compared == (int) m->n_params);
	ul_ctx_free(&c);
	nn_free(m);
}

UNIT_TEST(data_eps_is_scaled_median_distance)
{
	/* forget rows on the x axis; per row one other-label replay row at 2, 4, 6; a closer same-label row */
	float		Xf[3 * AN_D] = {0, 0, 0, 10, 0, 0, 20, 0, 0};
	int			yf[3] = {0, 0, 0};
	float		Xr[4 * AN_D] = {0, 2, 0, 10, 0, 4, 20, 6, 0, 0, 0.1f, 0};
	int			yr[4] = {1, 2, 3, 0};
	int			hidden = 4;
	nn_model   *m = nn_create(AN_D, 1, &hidden, AN_C, 5, NULL, 0);
	ul_request	q;
	ul_options	o;
	ul_ctx		c;
	float		eps = 9.0f,
				alpha = 9.0f;

	memset(&q, 0, sizeof(q));
	q.forget.X = Xf;
	q.forget.y = yf;
	q.forget.n = 3;
	q.replay.X = Xr;
	q.replay.y = yr;
	q.replay.n = 4;
	ul_options_default(&o, UL_METHOD_DEFAULT);
	ul_ctx_init(&c, m, &q, &o);
	ul_data_eps(&c, 0.5f, 20, &eps, &alpha);
	CHECK_CLOSE(eps, 2.0, 1e-5);	/* 0.5 * median(2, 4, 6) */
	CHECK_CLOSE(alpha, 2.5 * 2.0 / 20, 1e-6);
	ul_ctx_free(&c);

	/* no other-label replay row: eps and alpha stay as given */
	q.replay.n = 0;
	ul_ctx_init(&c, m, &q, &o);
	eps = 3.0f;
	alpha = 0.1f;
	ul_data_eps(&c, 0.5f, 20, &eps, &alpha);
	CHECK(eps == 3.0f && alpha == 0.1f);
	ul_ctx_free(&c);
	nn_free(m);
}

UNIT_TEST(mas_anchor_on_replay_rows_and_saliency_mask)
{
	float		X[AN_N * AN_D];
	int			y[AN_N];
	nn_model   *m;
	ul_request	q;
	ul_options	o;
	ul_ctx		c;
	float	   *w;
	size_t		start[NN_MAX_TENSORS],
				end[NN_MAX_TENSORS];
	int			nt;

	an_rows(X, y, AN_N, 12);
	m = an_model(X, y, AN_N);
	q = an_request(X, y, AN_N);
	w = malloc(sizeof(float) * m->n_params);

	/* imp_source 1: w = normalised omega of the replay rows = 1 - the paper's weights on them */
	ul_options_default(&o, UL_METHOD_DEFAULT);
	o.imp_lambda = 1.0f;
	o.imp_source = 1;
	ul_ctx_init(&c, m, &q, &o);
	ul_mas_weights(m, q.replay.X, q.replay.n, NULL, w);
	for (size_t j = 0; j < m->n_params; j++)
		CHECK_CLOSE(c.wimp[j], 1.0f - w[j], 1e-6);
	ul_ctx_free(&c);

	/* saliency: in each tensor ceil(share * size) parameters or more (ties) are free, the largest omega */
	o.imp_lambda = 0.0f;
	o.saliency_share = 0.3f;
	ul_ctx_init(&c, m, &q, &o);
	CHECK(c.wimp == NULL && c.smask != NULL);
	ul_mas_weights(m, q.forget.X, q.forget.n, w, c.grad);
	nt = nn_param_tensors(m, start, end, NN_MAX_TENSORS);
	for (int t = 0; t < nt; t++)
	{
		size_t		on = 0,
					len = end[t] - start[t];
		float		min_on = INFINITY,
					max_off = -INFINITY;

		for (size_t j = start[t]; j < end[t]; j++)
		{
			CHECK(c.smask[j] == 0.0f || c.smask[j] == 1.0f);
			on += c.smask[j] == 1.0f;
			if (c.smask[j] == 1.0f)
				min_on = fminf(min_on, w[j]);
			else
				max_off = fmaxf(max_off, w[j]);
		}
		CHECK(on >= (size_t) ceil(0.3 * len) && on <= len);
		CHECK(min_on > max_off || on == len);
	}
	ul_ctx_free(&c);
	free(w);
	nn_free(m);
}

UNIT_TEST(default_forgets_with_each_form)
{
	static const char *const forms[] = {"anchors", "hard adv", "mas replay", "saliency", "all"};
	float		X[AN_N * AN_D];
	int			y[AN_N];
	nn_model   *m,
			   *plain;
	ul_request	q;
	ul_options	po;
	ul_result	pr;
	double		plain_acc;

	an_rows(X, y, AN_N, 13);
	m = an_model(X, y, AN_N);
	q = an_request(X, y, AN_N);
	/* the plain default's accuracy on the remaining rows: each form keeps within 5 points of it */
	plain = nn_clone(m);
	ul_options_default(&po, UL_METHOD_DEFAULT);
	CHECK(ul_unlearn_request(plain, &q, &po, NULL, NULL, &pr, NULL, 0) == 0 && pr.success == 1);
	plain_acc = nn_accuracy(plain, X + 4 * AN_D, y + 4, AN_N - 4);
	nn_free(plain);
	for (int f = 0; f < 5; f++)
	{
		nn_model   *a = nn_clone(m),
				   *b = nn_clone(m);
		ul_options	o;
		ul_result	ra,
					rb;
		char		err[128];
		ul_ctx		c;

		ul_options_default(&o, UL_METHOD_DEFAULT);
		o.adv_per_row = 3;
		o.pgd_steps = 10;
		o.pgd_eps_scale = 0.5f;
		o.adv_weight = f == 2 || f == 3 ? 0.0f : 1.0f;
		o.pgd_anchor = f != 1;
		o.imp_lambda = f == 2 || f == 4 ? 1.0f : 0.0f;
		o.imp_source = 1;
		o.saliency_share = f >= 3 ? 0.5f : 0.0f;
		CHECK(ul_unlearn_request(a, &q, &o, NULL, NULL, &ra, err, sizeof(err)) == 0);
		CHECK(ul_unlearn_request(b, &q, &o, NULL, NULL, &rb, err, sizeof(err)) == 0);
		CHECK(ra.success == 1 && ra.forgotten == 4);
		CHECK(ra.steps == rb.steps);
		CHECK(memcmp(a->params, b->params, sizeof(float) * m->n_params) == 0);
		CHECK(nn_accuracy(a, X + 4 * AN_D, y + 4, AN_N - 4) >= plain_acc - 0.05);
		/* the saliency mask: parameters outside it never move */
		if (o.saliency_share > 0.0f)
		{
			ul_ctx_init(&c, m, &q, &o);
			for (size_t j = 0; j < m->n_params; j++)
				if (c.smask[j] == 0.0f)
					CHECK(a->params[j] == m->params[j]);
			ul_ctx_free(&c);
		}
		if (unit_failures || getenv("AN_DEBUG"))
			fprintf(stderr, "  form %s: success %d, steps %d, plain default %.3f, this form %.3f\n", forms[f], ra.success,
					ra.steps, plain_acc, nn_accuracy(a, X + 4 * AN_D, y + 4, AN_N - 4));
		nn_free(a);
		nn_free(b);
	}
	/* out-of-range values are refused */
	{
		ul_options	o;
		ul_result	r;
		char		err[128];

		ul_options_default(&o, UL_METHOD_DEFAULT);
		o.saliency_share = 1.5f;
		CHECK(ul_unlearn_request(m, &q, &o, NULL, NULL, &r, err, sizeof(err)) == -1);
		ul_options_default(&o, UL_METHOD_DEFAULT);
		o.imp_source = 2;
		CHECK(ul_unlearn_request(m, &q, &o, NULL, NULL, &r, err, sizeof(err)) == -1);
		ul_options_default(&o, UL_METHOD_DEFAULT);
		o.pgd_eps_scale = -1.0f;
		CHECK(ul_unlearn_request(m, &q, &o, NULL, NULL, &r, err, sizeof(err)) == -1);
	}
	nn_free(m);
}

const unit_case anchors_tests[] = {
	UNIT_ENTRY(soft_ce_grad_matches_finite_differences),
	UNIT_ENTRY(data_eps_is_scaled_median_distance),
	UNIT_ENTRY(mas_anchor_on_replay_rows_and_saliency_mask),
	UNIT_ENTRY(default_forgets_with_each_form),
	{NULL, NULL}
};
