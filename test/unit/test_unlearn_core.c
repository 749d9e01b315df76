/*
 * test_unlearn_core.c: unit tests of the unlearning core (PGD, MAS, the loop).
 */
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "unit.h"
#include "unlearn_internal.h"

/* A toy classification problem: C gaussian blobs in D dims, clipped to [0,1]. */
typedef struct toy
{
	int			n,
				D,
				C;
	float	   *X;
	int		   *y;
} toy;

/* Makes n rows of a blob problem; the same seed gives the same centres. */
static toy
toy_make(int n, int D, int C, float sd, uint64_t centre_seed, uint64_t seed)
{
	toy			t;
	nn_rng		rc,
				r;
	float		centres[16 * 16];

	t.n = n;
	t.D = D;
	t.C = C;
	t.X = malloc(sizeof(float) * n * D);
	t.y = malloc(sizeof(int) * n);
	nn_rng_seed(&rc, centre_seed);
	for (int i = 0; i < C * D; i++)
		centres[i] = 0.2f + 0.6f * (float) nn_rng_uniform(&rc);
	nn_rng_seed(&r, seed);
	for (int i = 0; i < n; i++)
	{
		t.y[i] = i % C;
		for (int d = 0; d < D; d++)
		{
			float		v = centres[t.y[i] * D + d] + sd * nn_rng_normal(&r);

			t.X[i * D + d] = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
		}
	}
	return t;
}

/* Frees a toy problem. */
static void
toy_free(toy *t)
{
	free(t->X);
	free(t->y);
}

/* Trains an MLP D-hidden-C (hidden 0: softmax regression) on a toy problem. */
static nn_model *
toy_model(const toy *t, int hidden, int epochs)
{
	char		err[128];
	nn_model   *m = nn_create(t->D, hidden > 0 ? 1 : 0, hidden > 0 ? &hidden : NULL, t->C, 7, err, sizeof(err));
	nn_train_options o;

	nn_train_options_default(&o);
	o.epochs = epochs;
	o.batch_size = 32;
	o.lr = 1e-2f;
	nn_train(m, t->X, t->y, t->n, &o, NULL, NULL);
	return m;
}

/* Predicted class of one row. */
static int
predict1(const nn_model *m, const float *x)
{
	nn_workspace *ws = nn_workspace_create(m, 1);
	int			p;

	nn_predict(m, ws, x, 1, &p);
	nn_workspace_free(ws);
	return p;
}

/* Picks k rows the model classifies correctly (every `stride`-th), copies them out. */
static int
pick_correct(const nn_model *m, const toy *t, int k, int start, int stride, float *Xf, int *yf, int *idx)
{
	int			got = 0;

	for (int i = start; i < t->n && got < k; i += stride)
		if (predict1(m, t->X + i * t->D) == t->y[i])
		{
			memcpy(Xf + got * t->D, t->X + i * t->D, sizeof(float) * t->D);
			yf[got] = t->y[i];
			if (idx)
				idx[got] = i;
			got++;
		}
	return got;
}

/* Rows of t not listed in idx[0..k) into (Xr, yr); returns their count. */
static int
remaining_rows(const toy *t, const int *idx, int k, float *Xr, int *yr)
{
	int			n = 0;

	for (int i = 0; i < t->n; i++)
	{
		int			skip = 0;

		for (int j = 0; j < k; j++)
			skip |= idx[j] == i;
		if (skip)
			continue;
		memcpy(Xr + n * t->D, t->X + i * t->D, sizeof(float) * t->D);
		yr[n++] = t->y[i];
	}
	return n;
}

/* ---------------------------------------------------------------- PGD */

UNIT_TEST(pgd_reaches_target_inside_ball_and_box)
{
	toy			t = toy_make(300, 6, 3, 0.08f, 11, 12);
	nn_model   *m = toy_model(&t, 16, 30);
	int			n = 10,
				per = 4,
				reached = 0;
	float	   *Xa = malloc(sizeof(float) * n * per * t.D);
	int		   *ta = malloc(sizeof(int) * n * per);
	nn_rng		rng;
	float		eps = 1.5f;

	CHECK(nn_accuracy(m, t.X, t.y, t.n) > 0.95);
	nn_rng_seed(&rng, 5);
	ul_pgd_targeted(m, t.X, t.y, n, per, eps, 0.05f, 100, &rng, Xa, ta);
	for (int r = 0; r < n * per; r++)
	{
		const float *x = t.X + (r / per) * t.D;
		double		ss = 0.0;

		CHECK(ta[r] != t.y[r / per] && ta[r] >= 0 && ta[r] < t.C);
		for (int d = 0; d < t.D; d++)
		{
			ss += (double) (Xa[r * t.D + d] - x[d]) * (Xa[r * t.D + d] - x[d]);
			CHECK(Xa[r * t.D + d] >= m->feat_lo[d] && Xa[r * t.D + d] <= m->feat_hi[d]);
		}
		CHECK(sqrt(ss) <= eps * 1.0001);
		reached += predict1(m, Xa + r * t.D) == ta[r];
	}
	CHECK(reached == n * per);

	/* a small ball binds: examples sit on its surface and mostly miss */
	nn_rng_seed(&rng, 5);
	ul_pgd_targeted(m, t.X, t.y, n, per, 0.05f, 0.01f, 50, &rng, Xa, ta);
	reached = 0;
	for (int r = 0; r < n * per; r++)
	{
		const float *x = t.X + (r / per) * t.D;
		double		ss = 0.0;

		for (int d = 0; d < t.D; d++)
		{
			ss += (double) (Xa[r * t.D + d] - x[d]) * (Xa[r * t.D + d] - x[d]);
			CHECK(Xa[r * t.D + d] >= m->feat_lo[d] && Xa[r * t.D + d] <= m->feat_hi[d]);
		}
		CHECK(sqrt(ss) <= 0.05 * 1.0001);
		CHECK(sqrt(ss) >= 0.05 * 0.99);
		reached += predict1(m, Xa + r * t.D) == ta[r];
	}
	CHECK(reached < n * per / 2);

	free(Xa);
	free(ta);
	nn_free(m);
	toy_free(&t);
}

UNIT_TEST(pgd_is_seeded)
{
	toy			t = toy_make(60, 5, 4, 0.1f, 3, 4);
	nn_model   *m = toy_model(&t, 8, 5);
	float	   *a = malloc(sizeof(float) * 60 * 3 * 5),
			   *b = malloc(sizeof(float) * 60 * 3 * 5);
	int			ta[180],
				tb[180];
	nn_rng		r1,
				r2;

	/* 180 rows: crosses a chunk boundary of the batched attack */
	nn_rng_seed(&r1, 9);
	nn_rng_seed(&r2, 9);
	ul_pgd_targeted(m, t.X, t.y, 60, 3, 0.5f, 0.1f, 10, &r1, a, ta);
	ul_pgd_targeted(m, t.X, t.y, 60, 3, 0.5f, 0.1f, 10, &r2, b, tb);
	CHECK(memcmp(a, b, sizeof(float) * 60 * 3 * 5) == 0);
	CHECK(memcmp(ta, tb, sizeof(ta)) == 0);
	free(a);
	free(b);
	nn_free(m);
	toy_free(&t);
}

/* ---------------------------------------------------------------- MAS */

/* mean_i ||logits_i||_2 of the model on X. */
static double
mean_logit_norm(const nn_model *m, const float *X, int n)
{
	nn_workspace *ws = nn_workspace_create(m, n);
	const float *z = nn_forward(m, ws, X, n);
	int			C = NN_CLASSES(m);
	double		s = 0.0;

	for (int i = 0; i < n; i++)
	{
		double		ss = 0.0;

		for (int c = 0; c < C; c++)
			ss += (double) z[i * C + c] * z[i * C + c];
		s += sqrt(ss);
	}
	nn_workspace_free(ws);
	return s / n;
}

UNIT_TEST(mas_matches_finite_differences)
{
	char		err[64];
	int			hidden = 5;
	nn_model   *m = nn_create(3, 1, &hidden, 4, 21, err, sizeof(err));
	float		X[6 * 3];
	nn_rng		r;
	float	   *omega = malloc(sizeof(float) * m->n_params);
	float	   *w = malloc(sizeof(float) * m->n_params);
	double		maxerr = 0.0;

	nn_rng_seed(&r, 3);
	for (int i = 0; i < 18; i++)
		X[i] = (float) nn_rng_uniform(&r);
	for (size_t j = 0; j < m->n_params; j++)
		m->params[j] += 0.1f * nn_rng_normal(&r);	/* nonzero biases too */
	ul_mas_weights(m, X, 6, omega, w);
	for (size_t j = 0; j < m->n_params; j++)
	{
		float		p0 = m->params[j];
		double		h = 1e-2,
					fp,
					fm,
					fd;

		m->params[j] = p0 + (float) h;
		fp = mean_logit_norm(m, X, 6);
		m->params[j] = p0 - (float) h;
		fm = mean_logit_norm(m, X, 6);
		m->params[j] = p0;
		fd = fabs((fp - fm) / (2 * h));
		if (fabs(fd - omega[j]) > maxerr)
			maxerr = fabs(fd - omega[j]);
		CHECK_CLOSE(omega[j], fd, 2e-3 + 1e-2 * fd);
	}
	CHECK(maxerr < 5e-3);

	/* per-tensor normalisation: w in [0,1], min w = 0, max w = 1, affine in omega */
	for (int l = 0; l < m->n_layers; l++)
	{
		size_t		a[2] = {m->w_off[l], m->b_off[l]};
		size_t		len[2] = {(size_t) m->dims[l] * m->dims[l + 1], (size_t) m->dims[l + 1]};

		for (int t = 0; t < 2; t++)
		{
			float		lo = 1e30f,
						hi = -1e30f,
						wlo = 2,
						whi = -1;

			for (size_t j = a[t]; j < a[t] + len[t]; j++)
			{
				lo = fminf(lo, omega[j]);
				hi = fmaxf(hi, omega[j]);
				wlo = fminf(wlo, w[j]);
				whi = fmaxf(whi, w[j]);
				CHECK(w[j] >= 0.0f && w[j] <= 1.0f);
				CHECK(omega[j] >= 0.0f);
			}
			CHECK(hi > lo);
			CHECK_CLOSE(wlo, 0.0, 1e-6);
			CHECK_CLOSE(whi, 1.0, 1e-6);
			for (size_t j = a[t]; j < a[t] + len[t]; j++)
				CHECK_CLOSE(w[j], 1.0 - (omega[j] - lo) / (hi - lo), 1e-5);
		}
	}

	/* max == min guard: with W2 = 0 the first layer gets no gradient at all */
	memset(m->params + m->w_off[1], 0, sizeof(float) * 5 * 4);
	ul_mas_weights(m, X, 6, omega, w);
	for (size_t j = 0; j < m->n_params; j++)
		CHECK(!isnan(w[j]));
	for (size_t j = m->w_off[0]; j < m->b_off[0] + 5; j++)
	{
		CHECK(omega[j] == 0.0f);
		CHECK(w[j] == 1.0f);
	}
	free(omega);
	free(w);
	nn_free(m);
}

/* ---------------------------------------------------------------- the loop */

UNIT_TEST(method_names_and_bad_arguments)
{
	ul_method	mm;
	ul_options	o;
	ul_result	res;
	char		err[128] = "";
	toy			t = toy_make(30, 4, 3, 0.1f, 1, 2);
	nn_model   *m = toy_model(&t, 0, 2);
	int			bad[1] = {7};

	for (int i = 0; i <= UL_METHOD_DEFAULT; i++)
	{
		CHECK(ul_method_from_name(ul_method_name((ul_method) i), &mm) == 0);
		CHECK((int) mm == i);
	}
	CHECK(strcmp(ul_method_name(UL_METHOD_ADV_IMP), "adv+imp") == 0);
	CHECK(ul_method_from_name("nonsense", &mm) != 0);

	ul_options_default(&o, UL_METHOD_ADV_IMP);
	CHECK_CLOSE(o.lr, 1e-3, 1e-9);
	CHECK_CLOSE(o.momentum, 0.9, 1e-7);
	CHECK_CLOSE(o.weight_decay, 1e-4, 1e-9);
	CHECK(o.forget_batch == 32 && o.adv_batch == 256 && o.adv_per_row == 20 && o.pgd_steps == 100);
	CHECK_CLOSE(o.pgd_eps, 4.0, 0);
	CHECK_CLOSE(o.pgd_alpha, 0.1, 1e-7);
	CHECK_CLOSE(o.imp_lambda, 1.0, 0);

	CHECK(ul_unlearn(m, t.X, t.y, 0, NULL, NULL, NULL, 0, NULL, NULL, 0, &o, NULL, NULL, &res, err, sizeof(err)) == -1);
	CHECK(err[0] != '\0');
	CHECK(ul_unlearn(m, t.X, bad, 1, NULL, NULL, NULL, 0, NULL, NULL, 0, &o, NULL, NULL, &res, err, sizeof(err)) == -1);
	o.lr = -1.0f;
	CHECK(ul_unlearn(m, t.X, t.y, 1, NULL, NULL, NULL, 0, NULL, NULL, 0, &o, NULL, NULL, &res, err, sizeof(err)) == -1);
	nn_free(m);
	toy_free(&t);
}

#ifndef FX_D
#define FX_D 20
#define FX_H 64
#define FX_SD 0.15f
#endif

/* Common fixture: a trained toy model and 6 correctly classified forget rows. */
typedef struct fixture
{
	toy			t,
				test;
	nn_model   *m;
	float		Xf[6 * FX_D];
	int			yf[6];
	int			idx[6];
	int			k;
	float	   *Xr;
	int		   *yr;
	int			nr;
} fixture;

/* Builds the fixture (FX_D dims, 4 classes, MLP FX_D-FX_H-4). */
static void
fixture_make(fixture *f)
{
	f->t = toy_make(400, FX_D, 4, FX_SD, 31, 32);
	f->test = toy_make(400, FX_D, 4, FX_SD, 31, 33);
	f->m = toy_model(&f->t, FX_H, 30);
	f->k = pick_correct(f->m, &f->t, 6, 3, 37, f->Xf, f->yf, f->idx);
	f->Xr = malloc(sizeof(float) * f->t.n * FX_D);
	f->yr = malloc(sizeof(int) * f->t.n);
	f->nr = remaining_rows(&f->t, f->idx, f->k, f->Xr, f->yr);
}

/* Frees the fixture. */
static void
fixture_free(fixture *f)
{
	nn_free(f->m);
	free(f->Xr);
	free(f->yr);
	toy_free(&f->t);
	toy_free(&f->test);
}

UNIT_TEST(loop_stops_at_first_satisfied_step)
{
	fixture		f;

	fixture_make(&f);
	CHECK(f.k == 6);
	/* one row: the paper's methods reliably succeed on it (several rows can
	 * make neggrad collapse onto one class, the known weakness) */
	for (int meth = 0; meth <= UL_METHOD_DEFAULT; meth++)
	{
		nn_model   *a = nn_clone(f.m),
				   *b = nn_clone(f.m);
		ul_options	o;
		ul_result	ra,
					rb;
		char		err[128];

		ul_options_default(&o, (ul_method) meth);
		o.pgd_eps = 0.5f;
		o.pgd_steps = 20;
		o.adv_per_row = 5;
		o.lr = 1e-2f;
		o.repair_steps = 0;
		CHECK(ul_unlearn(a, f.Xf, f.yf, 1, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &ra, err, sizeof(err)) == 0);
		CHECK(ra.success == 1 && ra.forgotten == 1);
		CHECK(ra.steps >= 2);
		CHECK(ra.forget_steps == ra.steps);
		CHECK(predict1(a, f.Xf) != f.yf[0]);

		/* one step fewer must not be enough (the stop is the first such step) */
		o.max_steps = ra.steps - 1;
		CHECK(ul_unlearn(b, f.Xf, f.yf, 1, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &rb, err, sizeof(err)) == 0);
		CHECK(rb.success == 0);
		CHECK(rb.steps == ra.steps - 1);
		CHECK(rb.forgotten == 0);
		CHECK(predict1(b, f.Xf) == f.yf[0]);
		nn_free(a);
		nn_free(b);
	}

	/* with a repair phase the default runs on but hands back a satisfying state */
	{
		nn_model   *a = nn_clone(f.m);
		ul_options	o;
		ul_result	r;
		char		err[128];
		int			ok = 1;

		ul_options_default(&o, UL_METHOD_DEFAULT);
		o.repair_steps = 30;
		CHECK(ul_unlearn(a, f.Xf, f.yf, f.k, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &r, err, sizeof(err)) == 0);
		CHECK(r.success == 1 && r.forget_steps >= 1);
		/* the repair phase's cap: repair_steps, or as many steps as the forget
		 * phase took; the loop's cap is max_passes passes of one batch */
		{
			int			repair = r.forget_steps > 30 ? r.forget_steps : 30,
						cap = o.max_passes;

			CHECK(r.steps == (r.forget_steps + repair < cap ? r.forget_steps + repair : cap));
			CHECK(r.steps > r.forget_steps + 30);
		}
		for (int i = 0; i < f.k; i++)
			ok &= predict1(a, f.Xf + i * FX_D) != f.yf[i];
		CHECK(ok);
		nn_free(a);
	}
	fixture_free(&f);
}

UNIT_TEST(run_is_reproducible_from_seed)
{
	fixture		f;
	ul_method	ms[2] = {UL_METHOD_ADV_IMP, UL_METHOD_DEFAULT};

	fixture_make(&f);
	for (int i = 0; i < 2; i++)
	{
		nn_model   *a = nn_clone(f.m),
				   *b = nn_clone(f.m),
				   *c = nn_clone(f.m);
		ul_options	o;
		ul_result	ra,
					rb,
					rc;
		char		err[128];
		int			kk;

		ul_options_default(&o, ms[i]);
		o.pgd_eps = 0.5f;
		o.pgd_steps = 20;
		o.adv_per_row = 5;
		o.lr = ms[i] == UL_METHOD_DEFAULT ? o.lr : 1e-2f;
		o.seed = 1234;
		kk = ms[i] == UL_METHOD_DEFAULT ? f.k : 1;
		ul_unlearn(a, f.Xf, f.yf, kk, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &ra, err, sizeof(err));
		ul_unlearn(b, f.Xf, f.yf, kk, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &rb, err, sizeof(err));
		o.seed = 99;
		ul_unlearn(c, f.Xf, f.yf, kk, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &rc, err, sizeof(err));
		CHECK(ra.success && rb.success && rc.success);
		CHECK(ra.steps == rb.steps);
		CHECK(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0);
		CHECK(memcmp(a->params, c->params, sizeof(float) * a->n_params) != 0);
		nn_free(a);
		nn_free(b);
		nn_free(c);
	}
	fixture_free(&f);
}

UNIT_TEST(default_forgets_and_keeps_accuracy)
{
	fixture		f;
	nn_model   *a;
	ul_options	o;
	ul_result	r;
	char		err[128];
	double		acc0,
				acc1;
	int			ok = 1;

	fixture_make(&f);
	a = nn_clone(f.m);
	acc0 = nn_accuracy(f.m, f.test.X, f.test.y, f.test.n);
	ul_options_default(&o, UL_METHOD_DEFAULT);
	CHECK(ul_unlearn(a, f.Xf, f.yf, f.k, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &r, err, sizeof(err)) == 0);
	acc1 = nn_accuracy(a, f.test.X, f.test.y, f.test.n);
	CHECK(r.success == 1);
	CHECK(r.forgotten == f.k);
	for (int i = 0; i < f.k; i++)
		ok &= predict1(a, f.Xf + i * FX_D) != f.yf[i];
	CHECK(ok);
	CHECK(acc0 > 0.9);
	CHECK(acc1 >= acc0 - 0.05);
	if (unit_failures)
		fprintf(stderr, "  acc %.3f -> %.3f, steps %d\n", acc0, acc1, r.steps);
	nn_free(a);
	fixture_free(&f);
}

/* The smallest logit margin of the forget rows: best other class minus the true class. */
static float
min_forget_margin(const nn_model *m, const float *Xf, const int *yf, int k, int C)
{
	nn_workspace *ws = nn_workspace_create(m, k);
	const float *z = nn_forward(m, ws, Xf, k);
	float		worst = 1e30f;

	for (int i = 0; i < k; i++)
	{
		float		other = -1e30f;

		for (int j = 0; j < C; j++)
			if (j != yf[i] && z[i * C + j] > other)
				other = z[i * C + j];
		if (other - z[i * C + yf[i]] < worst)
			worst = other - z[i * C + yf[i]];
	}
	nn_workspace_free(ws);
	return worst;
}

/* 1600 rows of 4 blobs, a model trained on them, 2 rows to forget and the 1598 others. */
typedef struct replay_case
{
	toy			t;
	nn_model   *m;
	float		Xf[4 * FX_D];
	int			yf[4];
	int			k;
	float	   *Xr;
	int		   *yr;
	int			nr;
} replay_case;

/* Makes the case (the same bytes every time). */
static void
replay_case_make(replay_case *c)
{
	int			idx[4];

	c->t = toy_make(1600, FX_D, 4, 0.3f, 31, 41);
	c->m = toy_model(&c->t, FX_H, 30);
	c->k = pick_correct(c->m, &c->t, 2, 5, 101, c->Xf, c->yf, idx);
	c->Xr = malloc(sizeof(float) * c->t.n * FX_D);
	c->yr = malloc(sizeof(int) * c->t.n);
	c->nr = remaining_rows(&c->t, idx, c->k, c->Xr, c->yr);
}

/* Frees the case. */
static void
replay_case_free(replay_case *c)
{
	nn_free(c->m);
	free(c->Xr);
	free(c->yr);
	toy_free(&c->t);
}

/*
 * repair_stop (the default method's rule): with a replay sample large enough
 * for a held-out slice (>= 800 rows), the repair phase ends at a selection
 * check once the slice is back to theta0's cross-entropy and accuracy, with
 * every forget row beyond the margin; the result is deterministic, keeps
 * every promise and accuracy, and takes fewer steps than the 300-step cap.
 * With too few replay rows for a slice, the rule changes nothing, bit for
 * bit.  An out-of-range value is refused.
 */
UNIT_TEST(repair_stops_when_holdout_repaired)
{
	replay_case rc;
	toy			test = toy_make(800, FX_D, 4, 0.3f, 31, 42);
	nn_model   *m;
	float	   *Xf,
			   *Xr;
	int		   *yf,
			   *yr;
	int			k,
				nr;
	double		acc0;
	ul_result	r[4];
	nn_model   *a[4];
	ul_options	o;
	char		err[128];

	replay_case_make(&rc);
	m = rc.m;
	Xf = rc.Xf;
	yf = rc.yf;
	k = rc.k;
	Xr = rc.Xr;
	yr = rc.yr;
	nr = rc.nr;
	acc0 = nn_accuracy(m, test.X, test.y, test.n);
	CHECK(k == 2 && nr == 1598);
	for (int i = 0; i < 4; i++)
	{
		a[i] = nn_clone(m);
		ul_options_default(&o, UL_METHOD_DEFAULT);
		CHECK(o.repair_stop == 1);
		o.repair_stop = i == 1 || i == 3 ? 0 : 1;
		/* runs 0, 1: the full sample; 2, 3: 700 rows, too few for a held-out slice */
		CHECK(ul_unlearn(a[i], Xf, yf, k, NULL, NULL, NULL, 0, Xr, yr, i < 2 ? nr : 700,
						 &o, NULL, NULL, &r[i], err, sizeof(err)) == 0);
		CHECK(r[i].success == 1 && r[i].forgotten == k);
		CHECK(r[i].steps <= r[i].forget_steps + o.repair_steps);
	}
	/* the rule ended the repair phase, at a selection check, beyond the margin */
	CHECK(r[0].repaired_stop == 1 && r[1].repaired_stop == 0);
	CHECK(r[0].steps < r[1].steps && r[1].steps == r[1].forget_steps + 300);
	CHECK((r[0].steps - r[0].forget_steps) % 20 == 0);
	CHECK(min_forget_margin(a[0], Xf, yf, k, 4) >= o.margin);
	CHECK(nn_accuracy(a[0], test.X, test.y, test.n) >= acc0 - 0.02);
	/* too few replay rows: no slice, the same bytes as without the rule */
	CHECK(r[2].repaired_stop == 0 && r[2].steps == r[3].steps);
	CHECK(memcmp(a[2]->params, a[3]->params, sizeof(float) * m->n_params) == 0);
	/* deterministic */
	{
		nn_model   *b = nn_clone(m);
		ul_result	rb;

		ul_options_default(&o, UL_METHOD_DEFAULT);
		CHECK(ul_unlearn(b, Xf, yf, k, NULL, NULL, NULL, 0, Xr, yr, nr, &o, NULL, NULL, &rb, err, sizeof(err)) == 0);
		CHECK(rb.steps == r[0].steps);
		CHECK(memcmp(b->params, a[0]->params, sizeof(float) * m->n_params) == 0);
		o.repair_stop = 2;
		CHECK(ul_unlearn(b, Xf, yf, k, NULL, NULL, NULL, 0, Xr, yr, nr, &o, NULL, NULL, &rb, err, sizeof(err)) == -1);
		nn_free(b);
	}
	if (unit_failures)
		fprintf(stderr, "  steps %d (forget %d) vs %d; acc %.3f -> %.3f\n", r[0].steps, r[0].forget_steps,
				r[1].steps, acc0, nn_accuracy(a[0], test.X, test.y, test.n));
	for (int i = 0; i < 4; i++)
		nn_free(a[i]);
	replay_case_free(&rc);
	toy_free(&test);
}

/*
 * What sel_hook records: each state of the parameters a run's forward passes
 * see (the hook runs at the start of every forward pass; a step's update
 * changes the parameters, so the s-th distinct state is the state at step s).
 */
#define SEL_MAX 4096
static struct
{
	const nn_model *m;			/* the model the run updates (NULL: off) */
	const float *Xf,			/* the forget rows */
			   *Xh,				/* held-out rows (the sample's tail) */
			   *Xr;				/* the replay rows trained on (the first ones) */
	const int  *yf,
			   *yh,
			   *yr;
	int			k,
				nh,
				nr;
	int			busy;			/* the hook's own forward passes */
	int			n;
	uint64_t	hash[SEL_MAX];
	double		hloss[SEL_MAX],
				rloss[SEL_MAX];
	int			sat[SEL_MAX];	/* every forget row misclassified */
} sel;

/* Summed cross-entropy of rows (X, y) under m; *wrong counts the misclassified ones. */
static double
sum_ce(const nn_model *m, const float *X, const int *y, int n, int *wrong)
{
	int			C = NN_CLASSES(m);
	nn_workspace *ws = nn_workspace_create(m, n);
	const float *z = nn_forward(m, ws, X, n);
	double		s = 0.0;

	*wrong = 0;
	for (int i = 0; i < n; i++)
	{
		const float *zi = z + (size_t) i * C;
		int			best = 0;

		for (int j = 1; j < C; j++)
			if (zi[j] > zi[best])
				best = j;
		*wrong += best != y[i];
		s += nn_row_logsumexp(zi, C) - zi[y[i]];
	}
	nn_workspace_free(ws);
	return s;
}

/* Interrupt hook: records each new state's losses, hash and whether it is satisfying. */
static void
sel_hook(void)
{
	uint64_t	h;
	int			wrong;

	if (!sel.m || sel.busy || sel.n >= SEL_MAX)
		return;
	h = nn_fnv1a64(sel.m->params, sizeof(float) * sel.m->n_params, NN_FNV_OFFSET);
	if (sel.n > 0 && sel.hash[sel.n - 1] == h)
		return;
	sel.busy = 1;
	sel.hash[sel.n] = h;
	sel.hloss[sel.n] = sum_ce(sel.m, sel.Xh, sel.yh, sel.nh, &wrong);
	sel.rloss[sel.n] = sum_ce(sel.m, sel.Xr, sel.yr, sel.nr, &wrong);
	sum_ce(sel.m, sel.Xf, sel.yf, sel.k, &wrong);
	sel.sat[sel.n] = wrong == sel.k;
	sel.n++;
	sel.busy = 0;
}

/*
 * The repair phase selects on the held-out rows when it has them (issue 12):
 * in a run where the stop rule does not fire (a margin wider than the
 * default's; this seed), the state handed back is, among the selection
 * checks (every 20 repair steps where every forget row is satisfied, and the
 * last step), the one with the lowest cross-entropy on the held-out rows (the
 * sample's last 1598 / 8 = 199, made noisier than the rest), not the one
 * that fits the replay rows trained on best: the two differ in this run, so
 * a selection on the trained rows fails.
 */
UNIT_TEST(selection_uses_holdout_rows)
{
	replay_case rc;
	nn_model   *a;
	ul_options	o;
	ul_result	r;
	char		err[128];
	int			best_h = -1,
				best_r = -1,
				checks = 0;
	uint64_t	got;
	toy			noisy;

	replay_case_make(&rc);
	a = nn_clone(rc.m);
	memset(&sel, 0, sizeof(sel));
	sel.nh = rc.nr / 8;
	noisy = toy_make(sel.nh, FX_D, 4, 0.6f, 31, 43);
	sel.nr = rc.nr - sel.nh;
	sel.Xr = rc.Xr;
	sel.yr = rc.yr;
	sel.Xh = rc.Xr + (size_t) sel.nr * FX_D;
	sel.yh = rc.yr + sel.nr;
	/* the held-out tail: noisier rows of the same blobs (the trained rows' fit overshoots them) */
	memcpy(rc.Xr + (size_t) sel.nr * FX_D, noisy.X, sizeof(float) * sel.nh * FX_D);
	memcpy(rc.yr + sel.nr, noisy.y, sizeof(int) * sel.nh);
	sel.Xf = rc.Xf;
	sel.yf = rc.yf;
	sel.k = rc.k;
	sel.m = a;
	ul_options_default(&o, UL_METHOD_DEFAULT);
	o.margin = 1.0f;
	o.seed = 5;
	nn_set_interrupt_hook(sel_hook);
	CHECK(ul_unlearn(a, rc.Xf, rc.yf, rc.k, NULL, NULL, NULL, 0, rc.Xr, rc.yr, rc.nr,
					 &o, NULL, NULL, &r, err, sizeof(err)) == 0);
	nn_set_interrupt_hook(NULL);
	sel.m = NULL;
	got = nn_fnv1a64(a->params, sizeof(float) * a->n_params, NN_FNV_OFFSET);
	CHECK(r.success == 1 && r.repaired_stop == 0);
	CHECK(r.steps == r.forget_steps + o.repair_steps);
	/* states 0..steps, then the one handed back (ul_account's pass) unless it is the last */
	CHECK(sel.n == r.steps + 1 || sel.n == r.steps + 2);
	for (int s = r.forget_steps; s <= r.steps && s < sel.n; s++)
		if (sel.sat[s] && ((s - r.forget_steps) % 20 == 0 || s == r.steps))
		{
			checks++;
			if (best_h < 0 || sel.hloss[s] < sel.hloss[best_h])
				best_h = s;
			if (best_r < 0 || sel.rloss[s] < sel.rloss[best_r])
				best_r = s;
		}
	CHECK(checks >= 3 && best_h >= 0 && best_r != best_h);
	CHECK(best_h >= 0 && got == sel.hash[best_h]);
	if (unit_failures)
		fprintf(stderr, "  seed %d margin %g: stop %d, steps %d (forget %d), %d states, %d checks, "
				"best held-out at step %d, best replay at %d\n", (int) o.seed, o.margin, r.repaired_stop,
				r.steps, r.forget_steps, sel.n, checks, best_h, best_r);
	nn_free(a);
	toy_free(&noisy);
	replay_case_free(&rc);
}

/*
 * replay_logits (the worker's warm samples): theta0's logits on the replay
 * rows handed in, computed in the chunks the set-up uses (256 rows; the
 * held-out slice of repair_stop, its last 1598 / 8 = 199 rows, on its own),
 * give the same bytes and steps as the set-up's own forward pass, with and
 * without a held-out slice; other logits give other bytes.
 */
UNIT_TEST(replay_logits_stand_for_the_forward_pass)
{
	replay_case rc;
	nn_model   *m;
	float	   *L;
	nn_workspace *ws;
	ul_options	o;
	char		err[128];

	replay_case_make(&rc);
	m = rc.m;
	L = malloc(sizeof(float) * rc.t.n * 4);
	ws = nn_workspace_create(m, 256);
	CHECK(rc.k == 2 && rc.nr == 1598);
	ul_options_default(&o, UL_METHOD_DEFAULT);
	for (int pass = 0; pass < 2; pass++)
	{
		int			n = pass == 0 ? rc.nr : 700;	/* 700: too few rows for a held-out slice */
		int			trained = pass == 0 ? n - n / 8 : n;
		nn_model   *a = nn_clone(m),
				   *b = nn_clone(m);
		ul_request	q;
		ul_result	ra,
					rb;

		nn_predict_logits(m, ws, rc.Xr, trained, L);
		nn_predict_logits(m, ws, rc.Xr + (size_t) trained * FX_D, n - trained, L + (size_t) trained * 4);
		memset(&q, 0, sizeof(q));
		q.forget.X = rc.Xf;
		q.forget.y = rc.yf;
		q.forget.n = rc.k;
		q.replay.X = rc.Xr;
		q.replay.y = rc.yr;
		q.replay.n = n;
		CHECK(ul_unlearn_request(a, &q, &o, NULL, NULL, &ra, err, sizeof(err)) == 0);
		q.replay_logits = L;
		CHECK(ul_unlearn_request(b, &q, &o, NULL, NULL, &rb, err, sizeof(err)) == 0);
		CHECK(ra.success == 1 && rb.success == 1 && ra.steps == rb.steps);
		CHECK(ra.repaired_stop == (pass == 0) && rb.repaired_stop == ra.repaired_stop);
		CHECK(memcmp(a->params, b->params, sizeof(float) * m->n_params) == 0);
		/* and they are what the set-up used: other logits (all 0) give other bytes */
		memset(L, 0, sizeof(float) * n * 4);
		nn_free(b);
		b = nn_clone(m);
		CHECK(ul_unlearn_request(b, &q, &o, NULL, NULL, &rb, err, sizeof(err)) == 0);
		CHECK(memcmp(a->params, b->params, sizeof(float) * m->n_params) != 0);
		nn_free(a);
		nn_free(b);
	}
	nn_workspace_free(ws);
	free(L);
	replay_case_free(&rc);
}

UNIT_TEST(relabel_predicts_new_labels)
{
	fixture		f;
	int			newl[6];
	ul_method	ms[2] = {UL_METHOD_ADV, UL_METHOD_DEFAULT};

	fixture_make(&f);
	for (int i = 0; i < f.k; i++)
		newl[i] = (f.yf[i] + 1 + i % 3) % 4;
	for (int mi = 0; mi < 2; mi++)
	{
		nn_model   *a = nn_clone(f.m);
		ul_options	o;
		ul_result	r;
		char		err[128];
		int			ok = 1;

		ul_options_default(&o, ms[mi]);
		if (ms[mi] != UL_METHOD_DEFAULT)
		{
			o.lr = 1e-2f;
			o.pgd_eps = 0.5f;
			o.pgd_steps = 20;
			o.adv_per_row = 5;
		}
		CHECK(ul_unlearn(a, f.Xf, f.yf, f.k, newl, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &r, err, sizeof(err)) == 0);
		CHECK(r.success == 1 && r.forgotten == f.k);
		for (int i = 0; i < f.k; i++)
			ok &= predict1(a, f.Xf + i * FX_D) == newl[i];
		CHECK(ok);
		nn_free(a);
	}
	fixture_free(&f);
}

UNIT_TEST(prior_rows_stay_misclassified)
{
	fixture		f;
	nn_model   *a;
	ul_options	o;
	ul_result	r;
	char		err[128];
	float		Xb[6 * FX_D];
	int			yb[6],
				idxb[6],
				kb,
				ok = 1,
				newl[6];

	fixture_make(&f);
	a = nn_clone(f.m);
	ul_options_default(&o, UL_METHOD_DEFAULT);
	ul_unlearn(a, f.Xf, f.yf, f.k, NULL, NULL, NULL, 0, f.Xr, f.yr, f.nr, &o, NULL, NULL, &r, err, sizeof(err));
	CHECK(r.success);

	/* second request: rows of the same classes; the first rows are priors */
	kb = pick_correct(a, &f.t, 6, 5, 41, Xb, yb, idxb);
	CHECK(kb == 6);
	o.seed = 2;
	CHECK(ul_unlearn(a, Xb, yb, kb, NULL, f.Xf, f.yf, f.k, f.Xr, f.yr, f.nr, &o, NULL, NULL, &r, err, sizeof(err)) == 0);
	CHECK(r.success == 1 && r.forgotten == kb && r.prior_kept == f.k);
	for (int i = 0; i < f.k; i++)
		ok &= predict1(a, f.Xf + i * FX_D) != f.yf[i];
	for (int i = 0; i < kb; i++)
		ok &= predict1(a, Xb + i * FX_D) != yb[i];
	CHECK(ok);

	/* a relabel request keeps the priors misclassified too: relabel a prior
	 * row's neighbours back to the prior's true class */
	for (int i = 0; i < kb; i++)
		newl[i] = f.yf[i % f.k];
	o.seed = 3;
	CHECK(ul_unlearn(a, Xb, yb, kb, newl, f.Xf, f.yf, f.k, f.Xr, f.yr, f.nr, &o, NULL, NULL, &r, err, sizeof(err)) == 0);
	CHECK(r.success == 1 && r.prior_kept == f.k);
	ok = 1;
	for (int i = 0; i < f.k; i++)
		ok &= predict1(a, f.Xf + i * FX_D) != f.yf[i];
	for (int i = 0; i < kb; i++)
		ok &= predict1(a, Xb + i * FX_D) == newl[i];
	CHECK(ok);

	/* a faithful method honours the priors as well */
	{
		nn_model   *b = nn_clone(f.m);

		ul_options_default(&o, UL_METHOD_NEGGRAD);
		o.lr = 1e-2f;
		ul_unlearn(b, f.Xf, f.yf, 1, NULL, NULL, NULL, 0, NULL, NULL, 0, &o, NULL, NULL, &r, err, sizeof(err));
		CHECK(r.success);
		ul_unlearn(b, Xb, yb, 1, NULL, f.Xf, f.yf, 1, NULL, NULL, 0, &o, NULL, NULL, &r, err, sizeof(err));
		CHECK(r.success && r.prior_kept == 1);
		CHECK(predict1(b, f.Xf) != f.yf[0] && predict1(b, Xb) != yb[0]);
		nn_free(b);
	}
	nn_free(a);
	fixture_free(&f);
}

/* Progress callback that aborts at its first call. */
static int
abort_cb(void *arg, int step, int satisfied, int total)
{
	int		   *calls = arg;

	(void) step;
	(void) satisfied;
	(void) total;
	(*calls)++;
	return 1;
}

/* Progress callback that counts calls. */
static int
count_cb(void *arg, int step, int satisfied, int total)
{
	int		   *calls = arg;

	(void) satisfied;
	CHECK(step % 10 == 0 && total == 6);
	(*calls)++;
	return 0;
}

UNIT_TEST(progress_callback_and_abort)
{
	fixture		f;
	nn_model   *a;
	ul_options	o;
	ul_result	r;
	char		err[128];
	int			calls = 0;

	fixture_make(&f);
	a = nn_clone(f.m);
	ul_options_default(&o, UL_METHOD_NEGGRAD);
	o.lr = 1e-4f;
	o.max_steps = 35;
	ul_unlearn(a, f.Xf, f.yf, f.k, NULL, NULL, NULL, 0, NULL, NULL, 0, &o, count_cb, &calls, &r, err, sizeof(err));
	if (r.steps >= 30)
		CHECK(calls >= 3);

	calls = 0;
	nn_copy_params(a, f.m);
	o.max_steps = 0;
	ul_unlearn(a, f.Xf, f.yf, f.k, NULL, NULL, NULL, 0, NULL, NULL, 0, &o, abort_cb, &calls, &r, err, sizeof(err));
	CHECK(calls == 1);
	CHECK(r.aborted == 1 && r.success == 0);
	CHECK(memcmp(a->params, f.m->params, sizeof(float) * a->n_params) == 0);
	nn_free(a);
	fixture_free(&f);
}

/* ---------------------------------------------------------------- pinned outputs */

/*
 * Pins what ul_unlearn returns for fixed seeds on the fixture, one scenario
 * per path through the loop (faithful methods with PGD and MAS; the default
 * method with prior rows, replay, guard rows, distillation, ADV and MAS terms
 * and a repair lr; relabel mode; an aborted run).  Recorded from the code
 * before the numeric core was split into files, so any change of behaviour
 * shows here.  Integers are pinned exactly and floats to 1e-6 relative: the
 * sums of the parameters catch any changed bit that matters.  Run with
 * UL_PIN_PRINT=1 to print the current values (to re-record after an intended
 * change, or when OpenBLAS's kernels on another CPU round differently).
 */
typedef struct pin_expect
{
	int			ret,
				steps,
				forget_steps,
				forgotten,
				prior_kept,
				success,
				aborted;
	double		final_forget_loss,
				param_sum,
				param_sumsq;
} pin_expect;

/* Aborts at the second callback (step 20). */
static int
pin_abort_cb(void *arg, int step, int satisfied, int total)
{
	(void) arg;
	(void) satisfied;
	(void) total;
	return step >= 20;
}

/* Runs scenario s on a clone of the fixture's model and checks it against e. */
static void
pin_run(const fixture *f, int s, const pin_expect *e)
{
	nn_model   *m = nn_clone(f->m);
	ul_options	o;
	ul_result	r;
	char		err[128] = "";
	int			newl[6];
	const float *Xp = NULL;
	const int  *yp = NULL;
	int			np = 0,
				k = f->k,
				ret;
	double		sum = 0.0,
				sumsq = 0.0;

	for (int i = 0; i < 6; i++)
		newl[i] = (f->yf[i] + 1) % 4;
	ul_options_default(&o, s < 3 ? (ul_method) s : UL_METHOD_DEFAULT);
	o.seed = 1000 + s;
	o.pgd_eps = 0.5f;
	o.pgd_steps = 10;
	o.adv_per_row = 4;
	o.lr = s < 3 ? 1e-2f : o.lr;
	o.max_steps = s < 3 ? 400 : 3000;
	if (s >= 3)
	{
		/* prior rows: two held-out rows (not among the replay rows) */
		Xp = f->test.X + 7 * FX_D;
		yp = f->test.y + 7;
		np = 2;
		k = 3;
		o.guard_per_row = 3;
		o.guard_weight = 0.5f;
		o.adv_weight = s == 3 ? 0.5f : 0.0f;
		o.imp_lambda = s == 3 ? 0.1f : 0.0f;
		o.repair_lr = s == 3 ? 5e-3f : 0.0f;
		o.repair_steps = 60;
		o.optimizer = s == 4 ? NN_OPT_ADAM : NN_OPT_SGD;
		if (s == 4)
			o.lr = 1e-3f;
	}
	if (s < 3)
		k = 1;					/* the faithful methods on one row (see above) */
	ret = ul_unlearn(m, f->Xf, f->yf, k, s == 4 ? newl : NULL, Xp, yp, np,
					 f->Xr, f->yr, f->nr, &o, s == 5 ? pin_abort_cb : NULL, NULL,
					 &r, err, sizeof(err));
	for (size_t j = 0; j < m->n_params; j++)
	{
		sum += m->params[j];
		sumsq += (double) m->params[j] * m->params[j];
	}
	if (getenv("UL_PIN_PRINT"))
		fprintf(stderr, "\t\t{%d, %d, %d, %d, %d, %d, %d, %.17g, %.17g, %.17g},\t/* params hash %016llx */\n",
				ret, r.steps, r.forget_steps, r.forgotten, r.prior_kept, r.success,
				r.aborted, r.final_forget_loss, sum, sumsq,
				(unsigned long long) nn_fnv1a64(m->params, sizeof(float) * m->n_params, NN_FNV_OFFSET));
	CHECK(ret == e->ret);
	CHECK(r.steps == e->steps);
	CHECK(r.forget_steps == e->forget_steps);
	CHECK(r.forgotten == e->forgotten);
	CHECK(r.prior_kept == e->prior_kept);
	CHECK(r.success == e->success);
	CHECK(r.aborted == e->aborted);
	CHECK_CLOSE(r.final_forget_loss, e->final_forget_loss, 1e-6 * fabs(e->final_forget_loss) + 1e-12);
	CHECK_CLOSE(sum, e->param_sum, 1e-6 * fabs(e->param_sum) + 1e-9);
	CHECK_CLOSE(sumsq, e->param_sumsq, 1e-6 * fabs(e->param_sumsq));
	nn_free(m);
}

UNIT_TEST(unlearn_outputs_are_pinned)
{
	/* neggrad, adv, adv+imp, default (all terms), default relabel with Adam, aborted default */
	static const pin_expect expect[] = {
		{0, 400, 400, 1, 0, 1, 0, 2.6481834606976742, 30.158866543424665, 237.66051666455843},	/* params hash aea5a6a0548e0065 */
		{0, 8, 8, 1, 0, 1, 0, 1.209664027108456, 30.382633086192072, 240.09404613907088},	/* params hash ccce133b9730f20c */
		{0, 9, 9, 1, 0, 1, 0, 1.8326656243437531, 30.125617438054178, 239.97002959830147},	/* params hash 0df6e27e0e5be3ba */
		{0, 2430, 1215, 3, 2, 1, 0, 0.80791851467522091, 21.255713430393371, 248.73632314184056},	/* params hash 8d40272bf6576215 */
		{0, 988, 494, 3, 2, 1, 0, 0.53337744863841063, 21.342219266705797, 277.13607609497541},	/* params hash 42ca4430780515ef */
		{0, 20, -1, 0, 0, 0, 1, 0.00087351451021818371, 30.26771616582846, 240.38793717111926},	/* params hash 2efc2c7ca5b7bdb0 */
	};
	fixture		f;

	fixture_make(&f);
	CHECK(f.k == 6);
	for (int s = 0; s < (int) (sizeof(expect) / sizeof(expect[0])); s++)
		pin_run(&f, s, &expect[s]);
	fixture_free(&f);
}


/* ---------------------------------------------------------------- target "unseen" */

UNIT_TEST(unseen_quantiles_and_targets)
{
	float		loss[5] = {4, 1, 3, 2, 0},
				q5[5],
				q3[3],
				ref[2] = {0.0f, 1.0f},
				tg[6];
	fixture		f;
	float		l[6];
	int			floored;

	/* quantiles of 0..4: every order statistic, then 0, 2, 4 */
	ul_loss_quantiles(loss, 5, 5, q5);
	for (int j = 0; j < 5; j++)
		CHECK_CLOSE(q5[j], j, 1e-7);
	ul_loss_quantiles(loss, 5, 3, q3);
	CHECK_CLOSE(q3[0], 0, 1e-7);
	CHECK_CLOSE(q3[1], 2, 1e-7);
	CHECK_CLOSE(q3[2], 4, 1e-7);

	/* targets follow the rows' rank: rank r of 6 takes ref at (r + 0.5) / 6, or the floor */
	fixture_make(&f);
	floored = ul_unseen_targets(f.m, f.Xf, f.yf, 6, ref, 2, tg);
	CHECK(floored >= 0);
	ul_row_losses(f.m, f.Xf, f.yf, 6, l);
	for (int i = 0; i < 6; i++)
	{
		int			rank = 0;
		double		q = 0;

		for (int j = 0; j < 6; j++)
			rank += l[j] < l[i] || (l[j] == l[i] && j < i);
		q = (rank + 0.5) / 6.0;
		CHECK_CLOSE(tg[i], q > ul_unseen_floor(l[i]) ? q : ul_unseen_floor(l[i]), 1e-6);
		CHECK(tg[i] > l[i]);
		floored -= q < ul_unseen_floor(l[i]);
	}
	CHECK(floored == 0);
	fixture_free(&f);

	/* the floor: twice the odds against the label, at least UL_UNSEEN_MIN_TARGET, above the loss */
	CHECK_CLOSE(ul_unseen_floor(0.25f), log(1 + 2 * (exp(0.25) - 1)), 1e-6);
	CHECK_CLOSE(ul_unseen_floor(1e-4f), 2e-4, 1e-7);
	CHECK_CLOSE(ul_unseen_floor(50.0f), 50 + log(2.0), 1e-5);
	CHECK(ul_unseen_floor(29.9f) > 29.9f && ul_unseen_floor(30.1f) > 30.1f);
	CHECK(ul_unseen_floor(0.0f) == UL_UNSEEN_MIN_TARGET);
	CHECK(ul_unseen_floor(1e-9f) == UL_UNSEEN_MIN_TARGET);
	CHECK(ul_unseen_floor(3e-6f) > 3e-6f);
}

/*
 * Row i's gap in the logits z (C classes) for a target loss t: below ln 2,
 * z_y - ln sum_{j != y} e^{z_j} (CE = ln(1 + e^-g) exactly); else (or with
 * no target) z_y - max_{j != y} z_j.  Computed here without the code's helper.
 */
static double
test_gap(const float *z, int C, int y, double t)
{
	double		best = -INFINITY,
				s = 0.0;

	for (int j = 0; j < C; j++)
		if (j != y && z[j] > best)
			best = z[j];
	if (!(t < log(2.0)))
		return z[y] - best;
	for (int j = 0; j < C; j++)
		if (j != y)
			s += exp((double) z[j]);
	return z[y] - log(s);
}

/*
 * Sum over the rows of their gap (test_gap, for the target losses tl, or
 * none); with hi given, of (hi_i - g_i)^2 / (2 margin) instead (the pulls'
 * objective in their proportional range).
 */
static double
sum_logit_gap(const nn_model *m, const float *X, const int *y, int n, const float *tl, const double *hi,
			  double margin)
{
	int			C = NN_CLASSES(m);
	nn_workspace *ws = nn_workspace_create(m, n);
	const float *z = nn_forward(m, ws, X, n);
	double		s = 0;

	for (int i = 0; i < n; i++)
	{
		double		g = test_gap(z + i * C, C, y[i], tl ? tl[i] : NAN);

		s += hi ? (hi[i] - g) * (hi[i] - g) / (2 * margin) : g;
	}
	nn_workspace_free(ws);
	return s;
}

/*
 * Compares grad with sign * the central difference of sum_logit_gap (hi,
 * margin) over the fixture's 6 forget rows on 60 or more parameters; counts
 * the mismatches (and the parameters where `zero`, if given, is not 0).
 */
static int
gap_gradient_mismatches(fixture *f, const float *grad, double sign, const float *zero, const float *tl,
						const double *hi, double margin)
{
	int			bad = 0,
				compared = 0;

	for (size_t j = 0; j < f->m->n_params; j += f->m->n_params / 60)
	{
		float		p0 = f->m->params[j];
		double		up,
					dn,
					h = 1e-3;

		f->m->params[j] = p0 + (float) h;
		up = sum_logit_gap(f->m, f->Xf, f->yf, 6, tl, hi, margin);
		f->m->params[j] = p0 - (float) h;
		dn = sum_logit_gap(f->m, f->Xf, f->yf, 6, tl, hi, margin);
		f->m->params[j] = p0;
		compared++;
		bad += !grad_agrees(grad[j], sign * (up - dn) / (2 * h)) || (zero && zero[j] != 0.0f);
	}
	CHECK(compared >= 60);
	return bad;
}

/*
 * The unseen hinge: a target loss maps to a logit-gap target; with targets
 * above every row's loss all rows are active and the gradient is that of the
 * summed gap z_y - z_o (finite differences); rows far past their target are
 * pulled back with the opposite gradient, kept apart in c->gpull; a target of
 * 0 is always met.
 */
UNIT_TEST(unseen_hinge_matches_finite_differences)
{
	fixture		f;
	ul_request	q;
	ul_options	o;
	ul_ctx		c;
	float		target[6];
	int			act = 0;

	fixture_make(&f);
	memset(&q, 0, sizeof(q));
	q.forget.X = f.Xf;
	q.forget.y = f.yf;
	q.forget.n = 6;
	q.forget_target = target;
	for (int i = 0; i < 6; i++)
		target[i] = 5.0f;
	ul_options_default(&o, UL_METHOD_DEFAULT);
	ul_ctx_init(&c, f.m, &q, &o);
	memset(c.grad, 0, sizeof(float) * f.m->n_params);
	CHECK(ul_check(&c, 0.1f, 1.0f, &act) == 0);
	CHECK(act == 6);
	CHECK(gap_gradient_mismatches(&f, c.grad, 1.0, NULL, c.tl, NULL, 0) <= 2);	/* a ReLU kink inside +-h can fool the difference */

	/*
	 * far past a tiny target and (as if theta0 had them far higher) below their
	 * start: every row is pulled back, the opposite gradient, and none is active
	 */
	for (int i = 0; i < 6; i++)
	{
		c.tl[i] = 1e-9f;
		c.tg0[i] = 100.0f;
	}
	c.pull_rows = 6;
	memset(c.grad, 0, sizeof(float) * f.m->n_params);
	memset(c.gpull, 0, sizeof(float) * f.m->n_params);
	CHECK(ul_check(&c, 0.1f, 1.0f, &act) == 6);
	CHECK(act == 0 && c.n_pulled == 6);
	CHECK(gap_gradient_mismatches(&f, c.gpull, -1.0, c.grad, c.tl, NULL, 0) <= 2);

	/*
	 * half a margin past the push (g = g* - 1.5 margin): inside the band (not
	 * counted as pulled), pulled in proportion, the gradient of
	 * (hi - g)^2 / (2 margin) with hi = g* - margin; none when the rows are
	 * not among the first pull_rows
	 */
	{
		double		hi[6];
		float		z[6 * 4];
		nn_workspace *ws = nn_workspace_create(f.m, 6);

		memcpy(z, nn_forward(f.m, ws, f.Xf, 6), sizeof(z));
		nn_workspace_free(ws);
		for (int i = 0; i < 6; i++)
		{
			double		g = test_gap(z + i * 4, 4, f.yf[i], 0.0);	/* the loss-target gap */

			CHECK(g + 0.15 > 0.0);	/* so the target below is under ln 2 */
			c.tl[i] = (float) log1p(exp(-(g + 0.15)));
			hi[i] = -log(expm1((double) c.tl[i])) - 0.1;
			CHECK(hi[i] - g > 0.04 && hi[i] - g < 0.06);
		}
		memset(c.grad, 0, sizeof(float) * f.m->n_params);
		memset(c.gpull, 0, sizeof(float) * f.m->n_params);
		CHECK(ul_check(&c, 0.1f, 1.0f, &act) == 6);
		CHECK(act == 0 && c.n_pulled == 0);
		CHECK(gap_gradient_mismatches(&f, c.gpull, 1.0, c.grad, c.tl, hi, 0.1) <= 2);
		c.pull_rows = 0;
		memset(c.gpull, 0, sizeof(float) * f.m->n_params);
		CHECK(ul_check(&c, 0.1f, 1.0f, &act) == 6);
		for (size_t j = 0; j < f.m->n_params; j++)
			CHECK(c.gpull[j] == 0.0f);
	}
	/*
	 * without a margin the push ends at the target loss itself, whatever the
	 * other classes do: a target just under a row's loss pushes nothing, one
	 * just over it pushes the row (rows with a loss of ln 2 or more: no target)
	 */
	{
		float		ce[6];
		int			want = 0;

		ul_row_losses(f.m, f.Xf, f.yf, 6, ce);
		for (int side = -1; side <= 1; side += 2)
		{
			for (int i = 0; i < 6; i++)
				c.tl[i] = ce[i] < 0.6f ? ce[i] * (1.0f + 0.01f * side) : 0.0f;
			want = 0;
			for (int i = 0; i < 6; i++)
				want += side > 0 && ce[i] < 0.6f;
			memset(c.grad, 0, sizeof(float) * f.m->n_params);
			ul_check(&c, 0.0f, 1.0f, &act);
			CHECK(act == want);
		}
		CHECK(want >= 2);		/* the fixture has rows to test it on */
	}
	/* a target of 0 is met by any loss: satisfied, nothing pushed (the context holds a copy) */
	for (int i = 0; i < 6; i++)
		c.tl[i] = 0.0f;
	memset(c.grad, 0, sizeof(float) * f.m->n_params);
	CHECK(ul_check(&c, 0.1f, 1.0f, &act) == 6);
	CHECK(act == 0);
	ul_ctx_free(&c);
	fixture_free(&f);
}

/* A request to forget the fixture's first n rows with these target losses, the fixture's replay rows. */
static void
unseen_request(ul_request *q, const fixture *f, int n, const float *target)
{
	memset(q, 0, sizeof(*q));
	q->forget.X = f->Xf;
	q->forget.y = f->yf;
	q->forget.n = n;
	q->replay.X = f->Xr;
	q->replay.y = f->yr;
	q->replay.n = f->nr;
	q->forget_target = target;
}

/*
 * With targets from rows the model never saw (the test rows), the default
 * method raises each forget row's loss to its target (or misclassifies it,
 * whichever comes first), stops pushing there (some rows stay correctly
 * classified), and a later request keeps the earlier rows at their targets
 * as prior rows.
 */
UNIT_TEST(unseen_run_reaches_targets)
{
	fixture		f;
	ul_request	q;
	ul_options	o;
	ul_result	res;
	char		err[128];
	float	   *tl = malloc(sizeof(float) * 400);
	float		ref[UL_UNSEEN_QUANTILES],
				target[6],
				l[6];
	int			pred[6],
				right = 0;
	nn_workspace *ws;

	fixture_make(&f);
	ul_row_losses(f.m, f.test.X, f.test.y, 400, tl);
	ul_loss_quantiles(tl, 400, UL_UNSEEN_QUANTILES, ref);
	for (int j = 1; j < UL_UNSEEN_QUANTILES; j++)
		CHECK(ref[j] >= ref[j - 1]);

	/* request 1: rows 0..2 */
	CHECK(ul_unseen_targets(f.m, f.Xf, f.yf, 3, ref, UL_UNSEEN_QUANTILES, target) >= 0);
	unseen_request(&q, &f, 3, target);
	ul_options_default(&o, UL_METHOD_DEFAULT);
	CHECK(ul_unlearn_request(f.m, &q, &o, NULL, NULL, &res, err, sizeof(err)) == 0);
	CHECK(res.success == 1 && res.forgotten == 3);
	ul_row_losses(f.m, f.Xf, f.yf, 3, l);
	ws = nn_workspace_create(f.m, 6);
	nn_predict(f.m, ws, f.Xf, 3, pred);
	for (int i = 0; i < 3; i++)
		CHECK(l[i] >= target[i] || pred[i] != f.yf[i]);

	/* request 2: rows 3..5, rows 0..2 as prior rows with their targets */
	q.prior = q.forget;
	q.prior_target = target;
	CHECK(ul_unseen_targets(f.m, f.Xf + 3 * FX_D, f.yf + 3, 3, ref, UL_UNSEEN_QUANTILES, target + 3) >= 0);
	q.forget.X = f.Xf + 3 * FX_D;
	q.forget.y = f.yf + 3;
	q.forget_target = target + 3;
	CHECK(ul_unlearn_request(f.m, &q, &o, NULL, NULL, &res, err, sizeof(err)) == 0);
	CHECK(res.success == 1 && res.forgotten == 3 && res.prior_kept == 3);
	ul_row_losses(f.m, f.Xf, f.yf, 6, l);
	nn_predict(f.m, ws, f.Xf, 6, pred);
	for (int i = 0; i < 6; i++)
		CHECK(l[i] >= target[i] || pred[i] != f.yf[i]);

	/* the targets are non-member losses of a model at ~100 % accuracy: most rows stay right */
	for (int i = 0; i < 6; i++)
		right += pred[i] == f.yf[i];
	CHECK(right >= 3);
	nn_workspace_free(ws);

	/* relabel mode takes no targets; a negative target is refused */
	q.new_labels = f.yf;
	CHECK(ul_unlearn_request(f.m, &q, &o, NULL, NULL, &res, err, sizeof(err)) == -1);
	q.new_labels = NULL;
	target[3] = -1.0f;
	CHECK(ul_unlearn_request(f.m, &q, &o, NULL, NULL, &res, err, sizeof(err)) == -1);
	free(tl);
	fixture_free(&f);
}

/*
 * The floor on a collapsed reference (docs/method.md#the-target-unseen): when
 * the held-out rows are twins of training rows their losses are the training
 * losses; with a reference of zeros every target is the floor, above each
 * row's loss, so the run must raise each row's loss (twice the odds against
 * its label) or misclassify it: "forgotten" is never true of an untouched row.
 */
UNIT_TEST(unseen_floor_on_collapsed_reference)
{
	fixture		f;
	ul_request	q;
	ul_options	o;
	ul_result	res;
	char		err[128];
	float		ref[UL_UNSEEN_QUANTILES],
				target[6],
				before[6],
				after[6];
	int			pred[6];
	nn_workspace *ws;

	fixture_make(&f);
	memset(ref, 0, sizeof(ref));
	ul_row_losses(f.m, f.Xf, f.yf, 6, before);
	/* every target is raised to the floor: twice the row's loss, or the minimum */
	CHECK(ul_unseen_targets(f.m, f.Xf, f.yf, 6, ref, UL_UNSEEN_QUANTILES, target) == 6);
	for (int i = 0; i < 6; i++)
	{
		CHECK(target[i] == ul_unseen_floor(before[i]));
		CHECK(target[i] > before[i]);
	}
	/* the run reaches them: each row's odds against its label at least doubled, or it is misclassified */
	unseen_request(&q, &f, 6, target);
	ul_options_default(&o, UL_METHOD_DEFAULT);
	CHECK(ul_unlearn_request(f.m, &q, &o, NULL, NULL, &res, err, sizeof(err)) == 0);
	CHECK(res.success == 1 && res.forgotten == 6);
	ul_row_losses(f.m, f.Xf, f.yf, 6, after);
	ws = nn_workspace_create(f.m, 6);
	nn_predict(f.m, ws, f.Xf, 6, pred);
	for (int i = 0; i < 6; i++)
		CHECK((after[i] >= target[i] && after[i] > before[i]) || pred[i] != f.yf[i]);
	nn_workspace_free(ws);
	fixture_free(&f);
}

const unit_case unlearn_core_tests[] = {
	UNIT_ENTRY(pgd_reaches_target_inside_ball_and_box),
	UNIT_ENTRY(pgd_is_seeded),
	UNIT_ENTRY(mas_matches_finite_differences),
	UNIT_ENTRY(method_names_and_bad_arguments),
	UNIT_ENTRY(loop_stops_at_first_satisfied_step),
	UNIT_ENTRY(run_is_reproducible_from_seed),
	UNIT_ENTRY(default_forgets_and_keeps_accuracy),
	UNIT_ENTRY(repair_stops_when_holdout_repaired),
	UNIT_ENTRY(selection_uses_holdout_rows),
	UNIT_ENTRY(replay_logits_stand_for_the_forward_pass),
	UNIT_ENTRY(relabel_predicts_new_labels),
	UNIT_ENTRY(prior_rows_stay_misclassified),
	UNIT_ENTRY(progress_callback_and_abort),
	UNIT_ENTRY(unlearn_outputs_are_pinned),
	UNIT_ENTRY(unseen_quantiles_and_targets),
	UNIT_ENTRY(unseen_hinge_matches_finite_differences),
	UNIT_ENTRY(unseen_run_reaches_targets),
	UNIT_ENTRY(unseen_floor_on_collapsed_reference),
	{NULL, NULL}
};
