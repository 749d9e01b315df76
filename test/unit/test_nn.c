/*
 * test_nn.c: unit tests of the numeric core (nn.h): RNG, shapes, gradients
 * by finite differences, optimiser arithmetic, training, serialisation and
 * the allocator hooks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn.h"
#include "nn_internal.h"
#include "unit.h"
#include "unlearn_core.h"

/* ---------------------------------------------------------------- helpers */

/* Fill n floats with scale * N(0,1) from rng: random inputs for the checks. */
static void
fill_normal(nn_rng *rng, float *v, size_t n, float scale)
{
	for (size_t i = 0; i < n; i++)
		v[i] = scale * nn_rng_normal(rng);
}

/* Fill n labels uniformly in [0,C). */
static void
fill_labels(nn_rng *rng, int *y, int n, int C)
{
	for (int i = 0; i < n; i++)
		y[i] = (int) nn_rng_below(rng, (uint32_t) C);
}

/* Give every bias a small random value so bias gradients and ReLU patterns are generic. */
static void
randomise_biases(nn_model *m, nn_rng *rng)
{
	for (int l = 0; l < m->n_layers; l++)
		fill_normal(rng, m->params + m->b_off[l], (size_t) m->dims[l + 1], 0.3f);
}

/* Gaussian blobs, one per class, far apart: a linearly separable toy set. */
static void
make_blobs(nn_rng *rng, float *X, int *y, int n, int F, int C)
{
	for (int i = 0; i < n; i++)
	{
		y[i] = i % C;
		for (int j = 0; j < F; j++)
		{
			float		centre = (j % C == y[i]) ? 4.0f : 0.0f;

			X[(size_t) i * F + j] = centre + 0.5f * nn_rng_normal(rng);
		}
	}
}

/* Recompute the trailing hash of a serialised buffer after deliberate header edits. */
static void
rehash(unsigned char *buf, size_t len)
{
	uint64_t	h = nn_fnv1a64(buf, len - 8, NN_FNV_OFFSET);

	for (int i = 0; i < 8; i++)
		buf[len - 8 + i] = (unsigned char) (h >> (8 * i));
}

/* Write a little-endian u32 into a buffer (to forge headers). */
static void
poke_u32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

/* ---------------------------------------------------------------- RNG */

/* xoshiro256** and splitmix64 match their reference outputs; seeding is deterministic. */
UNIT_TEST(test_rng_reference_and_determinism)
{
	nn_rng		a,
				b,
				c;
	int			same = 1,
				differ = 0;

	/* reference sequence of xoshiro256** from state {1,2,3,4} */
	a.s[0] = 1;
	a.s[1] = 2;
	a.s[2] = 3;
	a.s[3] = 4;
	CHECK(nn_rng_next(&a) == UINT64_C(11520));
	CHECK(nn_rng_next(&a) == UINT64_C(0));
	CHECK(nn_rng_next(&a) == UINT64_C(1509978240));
	CHECK(nn_rng_next(&a) == UINT64_C(1215971899390074240));

	/* splitmix64(0) first output seeds s[0] */
	nn_rng_seed(&a, 0);
	CHECK(a.s[0] == UINT64_C(0xe220a8397b1dcdaf));

	nn_rng_seed(&a, 12345);
	nn_rng_seed(&b, 12345);
	nn_rng_seed(&c, 12346);
	for (int i = 0; i < 1000; i++)
	{
		uint64_t	va = nn_rng_next(&a);

		same &= va == nn_rng_next(&b);
		differ |= va != nn_rng_next(&c);
	}
	CHECK(same);
	CHECK(differ);
}

/* nn_rng_below stays in range for awkward n, is roughly uniform, and uniform()/normal() look right. */
UNIT_TEST(test_rng_below_uniform_normal)
{
	nn_rng		rng;
	const uint32_t ns[] = {1, 2, 3, 7, 1000, 2147483649u, UINT32_MAX};
	int			counts[3] = {0, 0, 0};
	int			in_range = 1;
	double		sum = 0,
				sumsq = 0,
				usum = 0;
	const int	N = 200000;

	nn_rng_seed(&rng, 7);
	for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
		for (int i = 0; i < 10000; i++)
			in_range &= nn_rng_below(&rng, ns[k]) < ns[k];
	CHECK(in_range);
	CHECK(nn_rng_below(&rng, 0) == 0);

	for (int i = 0; i < 30000; i++)
		counts[nn_rng_below(&rng, 3)]++;
	for (int k = 0; k < 3; k++)
		CHECK(abs(counts[k] - 10000) < 400);	/* ~4.9 sigma */

	for (int i = 0; i < N; i++)
	{
		double		u = nn_rng_uniform(&rng);
		double		z = nn_rng_normal(&rng);

		in_range &= u >= 0.0 && u < 1.0 && isfinite(z);
		usum += u;
		sum += z;
		sumsq += z * z;
	}
	CHECK(in_range);
	CHECK_CLOSE(usum / N, 0.5, 0.005);
	CHECK_CLOSE(sum / N, 0.0, 0.01);
	CHECK_CLOSE(sumsq / N, 1.0, 0.02);
}

/* Fisher-Yates gives a permutation, reproducible by seed, and actually moves things. */
UNIT_TEST(test_rng_shuffle_permutation)
{
	int			a[100],
				b[100],
				seen[100] = {0};
	nn_rng		r1,
				r2;
	int			moved = 0;

	for (int i = 0; i < 100; i++)
		a[i] = b[i] = i;
	nn_rng_seed(&r1, 3);
	nn_rng_seed(&r2, 3);
	nn_rng_shuffle(&r1, a, 100);
	nn_rng_shuffle(&r2, b, 100);
	CHECK(memcmp(a, b, sizeof(a)) == 0);
	for (int i = 0; i < 100; i++)
	{
		if (a[i] >= 0 && a[i] < 100)
			seen[a[i]]++;
		moved += a[i] != i;
	}
	for (int i = 0; i < 100; i++)
		CHECK(seen[i] == 1);
	CHECK(moved > 50);

	/* all 6 orders of 3 items are equally likely (biased variants miss some) */
	{
		int			perm_counts[3][3][3] = {{{0}}};

		for (int rep = 0; rep < 6000; rep++)
		{
			int			t[3] = {0, 1, 2};

			nn_rng_shuffle(&r1, t, 3);
			perm_counts[t[0]][t[1]][t[2]]++;
		}
		for (int i = 0; i < 3; i++)
			for (int j = 0; j < 3; j++)
				if (i != j)
					CHECK(abs(perm_counts[i][j][3 - i - j] - 1000) < 150);	/* ~5 sigma */
	}
}

/* ---------------------------------------------------------------- model shape */

/* nn_create rejects every out-of-contract shape with a message and accepts the edges. */
UNIT_TEST(test_create_rejects_bad_shapes)
{
	char		err[256];
	int			h1[] = {4};
	int			h_zero[] = {4, 0};
	int			h_neg[] = {-3};
	int			h_big[] = {NN_MAX_DIM + 1};
	int			h_many[NN_MAX_LAYERS] = {2, 2, 2, 2, 2, 2, 2, 2};
	nn_model   *m;

#define EXPECT_REJECT(call) do { \
	err[0] = '\0'; \
	m = (call); \
	CHECK(m == NULL); \
	CHECK(err[0] != '\0'); \
	nn_free(m); \
} while (0)

	EXPECT_REJECT(nn_create(0, 1, h1, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(-5, 1, h1, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(NN_MAX_DIM + 1, 0, NULL, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 1, h1, 1, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 1, h1, 0, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 0, NULL, NN_MAX_DIM + 1, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 2, h_zero, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 1, h_neg, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 1, h_big, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, NN_MAX_LAYERS, h_many, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, -1, h1, 3, 1, err, sizeof(err)));
	EXPECT_REJECT(nn_create(5, 2, NULL, 3, 1, err, sizeof(err)));
#undef EXPECT_REJECT

	/* the largest depth and a NULL err buffer are both fine */
	m = nn_create(5, NN_MAX_LAYERS - 1, h_many, 2, 1, NULL, 0);
	CHECK(m != NULL);
	if (m)
		CHECK(m->n_layers == NN_MAX_LAYERS);
	nn_free(m);
	CHECK(nn_create(5, 1, h_neg, 3, 1, NULL, 0) == NULL);
}

/* Layout offsets, parameter count, He-init statistics, zero biases, default box, determinism. */
UNIT_TEST(test_create_layout_and_init)
{
	int			hidden[] = {300, 7};
	nn_model   *m = nn_create(200, 2, hidden, 4, 99, NULL, 0);
	nn_model   *same = nn_create(200, 2, hidden, 4, 99, NULL, 0);
	nn_model   *other = nn_create(200, 2, hidden, 4, 100, NULL, 0);
	double		sum = 0,
				sumsq = 0;
	size_t		nw;
	int			biases_zero = 1;

	CHECK(m && same && other);
	if (!m || !same || !other)
		return;
	CHECK(m->n_layers == 3);
	CHECK(m->dims[0] == 200 && m->dims[1] == 300 && m->dims[2] == 7 && m->dims[3] == 4);
	CHECK(m->n_params == (size_t) (300 * 200 + 300 + 7 * 300 + 7 + 4 * 7 + 4));
	CHECK(m->w_off[0] == 0 && m->b_off[0] == 60000);
	CHECK(m->w_off[1] == 60300 && m->b_off[1] == 62400);
	CHECK(m->w_off[2] == 62407 && m->b_off[2] == 62435);
	CHECK(NN_FEATURES(m) == 200 && NN_CLASSES(m) == 4);

	nw = 300 * 200;
	for (size_t i = 0; i < nw; i++)
	{
		sum += m->params[i];
		sumsq += (double) m->params[i] * m->params[i];
	}
	CHECK_CLOSE(sum / nw, 0.0, 0.002);
	CHECK_CLOSE(sqrt(sumsq / nw), sqrt(2.0 / 200), 0.002);
	for (int l = 0; l < m->n_layers; l++)
		for (int j = 0; j < m->dims[l + 1]; j++)
			biases_zero &= m->params[m->b_off[l] + j] == 0.0f;
	CHECK(biases_zero);
	CHECK(m->feat_lo[0] == 0.0f && m->feat_hi[199] == 1.0f);
	CHECK(memcmp(m->params, same->params, m->n_params * sizeof(float)) == 0);
	CHECK(memcmp(m->params, other->params, m->n_params * sizeof(float)) != 0);
	nn_free(m);
	nn_free(same);
	nn_free(other);
}

/* Clone is deep; copy_params copies parameters only; the feature range is the data's min/max. */
UNIT_TEST(test_clone_copy_feature_range)
{
	int			hidden[] = {3};
	nn_model   *a = nn_create(2, 1, hidden, 2, 1, NULL, 0);
	nn_model   *b = nn_create(2, 1, hidden, 2, 2, NULL, 0);
	nn_model   *c;
	const float X[] = {1.0f, -2.0f, 3.0f, 5.0f, -1.0f, 0.5f};

	if (!a || !b)
	{
		CHECK(0);
		return;
	}
	nn_set_feature_range(a, X, 3);
	CHECK(a->feat_lo[0] == -1.0f && a->feat_hi[0] == 3.0f);
	CHECK(a->feat_lo[1] == -2.0f && a->feat_hi[1] == 5.0f);
	nn_set_feature_range(a, X, 0);	/* no rows: unchanged */
	CHECK(a->feat_lo[0] == -1.0f);

	c = nn_clone(a);
	CHECK(c != NULL);
	if (c)
	{
		CHECK(c->params != a->params);
		CHECK(memcmp(c->params, a->params, a->n_params * sizeof(float)) == 0);
		CHECK(c->feat_lo[1] == -2.0f && c->feat_hi[1] == 5.0f);
		c->params[0] += 1.0f;
		CHECK(c->params[0] != a->params[0]);
	}
	nn_copy_params(b, a);
	CHECK(memcmp(b->params, a->params, a->n_params * sizeof(float)) == 0);
	CHECK(b->feat_lo[0] == 0.0f && b->feat_hi[0] == 1.0f);
	nn_free(a);
	nn_free(b);
	nn_free(c);
}

/* ---------------------------------------------------------------- loss and gradients */

/* Softmax CE: hand values, stability for huge logits, finite-difference dlogits, scale and aliasing. */
UNIT_TEST(test_softmax_ce)
{
	float		uniform[3] = {0, 0, 0};
	float		d[3],
				p[3];
	int			y1 = 1;
	float		huge[3] = {1000.0f, 0.0f, -1000.0f};
	int			y0 = 0,
				y2 = 2;
	double		loss;
	nn_rng		rng;
	float		logits[4 * 5],
				dl[4 * 5],
				dl_scaled[4 * 5],
				alias[4 * 5];
	int			y[4];
	const double h = 1e-3;

	/* equal logits: loss ln 3, gradient p - onehot */
	loss = nn_softmax_ce(uniform, &y1, 1, 3, 1.0f, d, p);
	CHECK_CLOSE(loss, log(3.0), 1e-6);
	CHECK_CLOSE(d[0], 1.0 / 3, 1e-6);
	CHECK_CLOSE(d[1], -2.0 / 3, 1e-6);
	CHECK_CLOSE(d[2], 1.0 / 3, 1e-6);
	CHECK_CLOSE(p[0] + p[1] + p[2], 1.0, 1e-6);

	/* log-sum-exp keeps huge logits finite */
	CHECK_CLOSE(nn_softmax_ce(huge, &y0, 1, 3, 1.0f, d, p), 0.0, 1e-6);
	CHECK(isfinite(d[0]) && isfinite(p[2]));
	CHECK_CLOSE(nn_softmax_ce(huge, &y2, 1, 3, 1.0f, NULL, NULL), 2000.0, 1e-3);

	/* central differences on random logits (loss in double, logits in float) */
	nn_rng_seed(&rng, 5);
	fill_normal(&rng, logits, 20, 2.0f);
	fill_labels(&rng, y, 4, 5);
	loss = nn_softmax_ce(logits, y, 4, 5, 1.0f, dl, NULL);
	CHECK(loss > 0);
	for (int i = 0; i < 20; i++)
	{
		float		saved = logits[i];
		double		lp,
					lm;

		logits[i] = (float) (saved + h);
		lp = nn_softmax_ce(logits, y, 4, 5, 1.0f, NULL, NULL);
		logits[i] = (float) (saved - h);
		lm = nn_softmax_ce(logits, y, 4, 5, 1.0f, NULL, NULL);
		logits[i] = saved;
		CHECK(grad_agrees(dl[i], (lp - lm) / (2 * h)));
	}

	/* scale multiplies the gradient; dlogits may alias the logits */
	nn_softmax_ce(logits, y, 4, 5, 0.25f, dl_scaled, NULL);
	memcpy(alias, logits, sizeof(alias));
	CHECK_CLOSE(nn_softmax_ce(alias, y, 4, 5, 0.25f, alias, NULL), loss, 1e-9);
	for (int i = 0; i < 20; i++)
	{
		CHECK_CLOSE(dl_scaled[i], 0.25 * dl[i], 1e-7);
		CHECK(alias[i] == dl_scaled[i]);
	}
}

/* Softmax regression (one layer): W, b and input gradients against finite differences. */
UNIT_TEST(test_gradients_softmax_regression)
{
	nn_rng		rng;
	nn_model   *m = nn_create(5, 0, NULL, 3, 11, NULL, 0);
	float		X[6 * 5];
	int			y[6];

	if (!m)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 21);
	randomise_biases(m, &rng);
	fill_normal(&rng, X, 30, 1.0f);
	fill_labels(&rng, y, 6, 3);
	CHECK(check_gradients(m, X, y, 6) == 0);
	nn_free(m);
}

/* Two hidden ReLU layers (5 -> 4 -> 3 -> 3): every layer's W and b, and the inputs. */
UNIT_TEST(test_gradients_mlp_two_hidden)
{
	int			hidden[] = {4, 3};
	nn_rng		rng;
	float		X[6 * 5];
	int			y[6];

	nn_rng_seed(&rng, 31);
	for (uint64_t seed = 1; seed <= 3; seed++)
	{
		nn_model   *m = nn_create(5, 2, hidden, 3, seed, NULL, 0);

		if (!m)
		{
			CHECK(0);
			return;
		}
		randomise_biases(m, &rng);
		fill_normal(&rng, X, 30, 1.0f);
		fill_labels(&rng, y, 6, 3);
		CHECK(check_gradients(m, X, y, 6) == 0);
		nn_free(m);
	}
}

/* Parameter gradients are ADDED to grad_params; skipping grad_input does not change them. */
UNIT_TEST(test_backward_accumulates)
{
	int			hidden[] = {6};
	nn_model   *m = nn_create(4, 1, hidden, 3, 5, NULL, 0);
	nn_workspace *ws = m ? nn_workspace_create(m, 8) : NULL;
	nn_rng		rng;
	float		X[8 * 4],
				dl[8 * 3],
				gin[8 * 4];
	int			y[8];
	float	   *g_once,
			   *g_twice,
			   *g_noinput;
	const float *logits;
	int			nonzero = 0;

	if (!m || !ws)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 8);
	randomise_biases(m, &rng);
	fill_normal(&rng, X, 32, 1.0f);
	fill_labels(&rng, y, 8, 3);
	g_once = malloc(m->n_params * sizeof(float));
	g_twice = malloc(m->n_params * sizeof(float));
	g_noinput = malloc(m->n_params * sizeof(float));
	for (size_t i = 0; i < m->n_params; i++)
		g_once[i] = g_twice[i] = g_noinput[i] = 1.0f;

	logits = nn_forward(m, ws, X, 8);
	nn_softmax_ce(logits, y, 8, 3, 0.5f, dl, NULL);
	nn_backward(m, ws, X, 8, dl, g_once, gin);
	nn_backward(m, ws, X, 8, dl, g_twice, NULL);
	nn_backward(m, ws, X, 8, dl, g_twice, NULL);
	nn_backward(m, ws, X, 8, dl, g_noinput, NULL);

	CHECK(memcmp(g_once, g_noinput, m->n_params * sizeof(float)) == 0);
	for (size_t i = 0; i < m->n_params; i++)
	{
		double		single = g_once[i] - 1.0;

		nonzero += fabs(single) > 1e-4;
		CHECK_CLOSE(g_twice[i], 1.0 + 2.0 * single, 1e-5);
	}
	CHECK(nonzero > (int) m->n_params / 2);
	free(g_once);
	free(g_twice);
	free(g_noinput);
	nn_workspace_free(ws);
	nn_free(m);
}

/* Predictions agree across workspace chunk sizes; probabilities sum to 1 and match argmax. */
UNIT_TEST(test_predict_chunks_and_proba)
{
	int			hidden[] = {8};
	nn_model   *m = nn_create(3, 1, hidden, 4, 17, NULL, 0);
	nn_workspace *small = m ? nn_workspace_create(m, 3) : NULL;
	nn_workspace *big = m ? nn_workspace_create(m, 64) : NULL;
	nn_rng		rng;
	float		X[50 * 3],
				proba[50 * 4],
				proba_big[50 * 4];
	int			pred_small[50],
				pred_big[50];

	if (!m || !small || !big)
	{
		CHECK(0);
		return;
	}
	CHECK(nn_workspace_create(m, 0) == NULL);
	nn_rng_seed(&rng, 4);
	randomise_biases(m, &rng);
	fill_normal(&rng, X, 150, 2.0f);
	CHECK(nn_forward(m, small, X, 4) == NULL);	/* more rows than the workspace holds */
	nn_predict(m, small, X, 50, pred_small);
	nn_predict(m, big, X, 50, pred_big);
	CHECK(memcmp(pred_small, pred_big, sizeof(pred_small)) == 0);
	nn_predict_proba(m, small, X, 50, proba);
	nn_predict_proba(m, big, X, 50, proba_big);
	for (int i = 0; i < 50; i++)
	{
		double		s = 0;
		int			best = 0;

		for (int c = 0; c < 4; c++)
		{
			s += proba[i * 4 + c];
			if (proba[i * 4 + c] > proba[i * 4 + best])
				best = c;
			CHECK_CLOSE(proba[i * 4 + c], proba_big[i * 4 + c], 1e-6);
		}
		CHECK_CLOSE(s, 1.0, 1e-5);
		CHECK(best == pred_small[i]);
	}
	nn_workspace_free(small);
	nn_workspace_free(big);
	nn_free(m);
}

/* ---------------------------------------------------------------- optimisers */

/* SGD: plain step, then momentum with coupled weight decay over two steps, by hand. */
UNIT_TEST(test_sgd_steps)
{
	nn_optimizer *plain = nn_optimizer_create(NN_OPT_SGD, 2, 0.5f, 0.0f, 0.0f);
	nn_optimizer *opt = nn_optimizer_create(NN_OPT_SGD, 3, 0.1f, 0.9f, 0.01f);
	float		q[2] = {1.0f, 2.0f};
	float		gq[2] = {0.2f, -0.4f};
	float		p[3] = {1.0f, -2.0f, 0.5f};
	float		g1[3] = {0.1f, 0.2f, -0.3f};
	float		g2[3] = {0.05f, -0.1f, 0.2f};

	if (!plain || !opt)
	{
		CHECK(0);
		return;
	}
	/* p -= lr g */
	nn_optimizer_step(plain, q, gq);
	CHECK_CLOSE(q[0], 0.9, 1e-6);
	CHECK_CLOSE(q[1], 2.2, 1e-6);

	/* step 1: g' = g + wd p = (0.11, 0.18, -0.295); v = g'; p -= 0.1 v */
	nn_optimizer_step(opt, p, g1);
	CHECK_CLOSE(p[0], 0.989, 1e-6);
	CHECK_CLOSE(p[1], -2.018, 1e-6);
	CHECK_CLOSE(p[2], 0.5295, 1e-6);
	CHECK_CLOSE(opt->m1[0], 0.11, 1e-6);

	/*
	 * step 2: g' = g + wd p = (0.05989, -0.12018, 0.205295);
	 * v = 0.9 v + g' = (0.15889, 0.04182, -0.060205); p -= 0.1 v
	 */
	nn_optimizer_step(opt, p, g2);
	CHECK_CLOSE(opt->m1[0], 0.15889, 1e-6);
	CHECK_CLOSE(opt->m1[1], 0.04182, 1e-6);
	CHECK_CLOSE(opt->m1[2], -0.060205, 1e-6);
	CHECK_CLOSE(p[0], 0.973111, 1e-6);
	CHECK_CLOSE(p[1], -2.022182, 1e-6);
	CHECK_CLOSE(p[2], 0.5355205, 1e-6);
	CHECK(opt->t == 2);
	nn_optimizer_free(plain);
	nn_optimizer_free(opt);
}

/* Adam: two steps by hand (bias-corrected), and weight decay added to the gradient. */
UNIT_TEST(test_adam_steps)
{
	/* 13 parameters: the 8-wide, 4-wide and scalar code paths all get some */
	enum { N = 13 };
	nn_optimizer *opt = nn_optimizer_create(NN_OPT_ADAM, N, 0.01f, 0.0f, 0.0f);
	nn_optimizer *wd = nn_optimizer_create(NN_OPT_ADAM, 1, 0.01f, 0.0f, 0.1f);
	float		p[N],
				g1[N],
				g2[N];
	float		q[1] = {1.0f};
	float		gq[1] = {-0.05f};

	if (!opt || !wd)
	{
		CHECK(0);
		return;
	}
	CHECK_CLOSE(opt->beta1, 0.9, 1e-7);
	CHECK_CLOSE(opt->beta2, 0.999, 1e-7);
	CHECK_CLOSE(opt->eps, 1e-8, 1e-12);
	for (int i = 0; i < N; i++)
	{
		/* even slots: (1, g 0.1 then 0.3); odd slots: (-2, g -0.5 then 0.5) */
		p[i] = i % 2 ? -2.0f : 1.0f;
		g1[i] = i % 2 ? -0.5f : 0.1f;
		g2[i] = i % 2 ? 0.5f : 0.3f;
	}

	/* step 1: m_hat = g, v_hat = g^2, so p -= lr * sign(g) */
	nn_optimizer_step(opt, p, g1);
	CHECK_CLOSE(p[0], 0.99, 1e-6);
	CHECK_CLOSE(p[1], -1.99, 1e-6);
	CHECK_CLOSE(opt->m1[0], 0.01, 1e-8);
	CHECK_CLOSE(opt->m2[1], 2.5e-4, 1e-8);	/* 1-0.999f is not exactly 0.001 in float */

	/*
	 * step 2, slot 0: m = 0.9*0.01 + 0.1*0.3 = 0.039, v = 0.999e-5 + 0.001*0.09
	 * = 9.999e-5; m_hat = 0.039/0.19, v_hat = 9.999e-5/0.001999;
	 * p = 0.99 - 0.01*m_hat/(sqrt(v_hat)+eps) = 0.98082219.
	 * slot 1: m = 0.005, v = 4.9975e-4, p = -1.99 - 0.01*(0.005/0.19)/0.5 = -1.99052632.
	 */
	nn_optimizer_step(opt, p, g2);
	CHECK_CLOSE(opt->m1[0], 0.039, 1e-7);
	CHECK_CLOSE(opt->m2[0], 9.999e-5, 1e-8);
	for (int i = 0; i < N; i++)
		CHECK_CLOSE(p[i], i % 2 ? -1.99052632 : 0.98082219, 2e-6);
	CHECK(opt->t == 2);

	/* a third step with decay: slots with equal inputs stay bit-identical across paths */
	opt->weight_decay = 0.05f;
	nn_optimizer_step(opt, p, g1);
	for (int i = 2; i < N; i++)
	{
		CHECK(memcmp(&p[i], &p[i - 2], sizeof(float)) == 0);
		CHECK(memcmp(&opt->m2[i], &opt->m2[i - 2], sizeof(float)) == 0);
	}

	/* decay 0.1 turns g = -0.05 at p = 1 into +0.05, so the first step goes down */
	nn_optimizer_step(wd, q, gq);
	CHECK_CLOSE(q[0], 0.99, 1e-6);
	nn_optimizer_free(opt);
	nn_optimizer_free(wd);
}

/* ---------------------------------------------------------------- training */

typedef struct epoch_log
{
	int			calls;
	int			last_epoch;
	int			epochs;
	int			stop_after;
	double		first_loss;
	double		last_loss;
} epoch_log;

/* Records the callback's arguments; asks to stop after stop_after epochs when set. */
static int
log_epoch(void *arg, int epoch, int epochs, double mean_loss)
{
	epoch_log  *log = arg;

	if (log->calls == 0)
		log->first_loss = mean_loss;
	log->calls++;
	log->last_epoch = epoch;
	log->epochs = epochs;
	log->last_loss = mean_loss;
	return log->stop_after > 0 && epoch >= log->stop_after;
}

/* Same seed/data/options give byte-identical models; another seed gives another model. */
UNIT_TEST(test_train_reproducible)
{
	enum { N = 301, F = 6, C = 3 };
	int			hidden[] = {10};
	float	   *X = malloc(sizeof(float) * N * F);
	int			y[N];
	nn_rng		rng;
	nn_train_options o;
	nn_model   *a = nn_create(F, 1, hidden, C, 42, NULL, 0);
	nn_model   *b = nn_create(F, 1, hidden, C, 42, NULL, 0);
	nn_model   *c = nn_create(F, 1, hidden, C, 42, NULL, 0);
	nn_model   *d = nn_create(F, 1, hidden, C, 43, NULL, 0);
	double		la,
				lb,
				lc;

	if (!a || !b || !c || !d)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 9);
	fill_normal(&rng, X, N * F, 1.0f);
	fill_labels(&rng, y, N, C);
	nn_train_options_default(&o);
	o.batch_size = 32;			/* 301 rows: last batch has 13 */
	o.epochs = 3;
	la = nn_train(a, X, y, N, &o, NULL, NULL);
	lb = nn_train(b, X, y, N, &o, NULL, NULL);
	CHECK(la == lb);
	CHECK(memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0);

	o.seed = 43;				/* same init, other shuffle */
	lc = nn_train(c, X, y, N, &o, NULL, NULL);
	CHECK(memcmp(a->params, c->params, a->n_params * sizeof(float)) != 0);
	CHECK(lc != la);
	nn_train(d, X, y, N, &o, NULL, NULL);	/* other init too */
	CHECK(memcmp(c->params, d->params, c->n_params * sizeof(float)) != 0);
	free(X);
	nn_free(a);
	nn_free(b);
	nn_free(c);
	nn_free(d);
}

/* Training separates Gaussian blobs (MLP with Adam, softmax regression with SGD), calls back, sets the box. */
UNIT_TEST(test_train_learns_toy)
{
	enum { N = 600, F = 4, C = 3 };
	int			hidden[] = {16};
	float	   *X = malloc(sizeof(float) * N * F);
	int			y[N];
	nn_rng		rng;
	nn_train_options o;
	nn_model   *mlp = nn_create(F, 1, hidden, C, 1, NULL, 0);
	nn_model   *lin = nn_create(F, 0, NULL, C, 1, NULL, 0);
	epoch_log	log = {0};
	double		before,
				loss;
	float		lo0 = INFINITY,
				hi0 = -INFINITY;

	if (!mlp || !lin)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 10);
	make_blobs(&rng, X, y, N, F, C);
	for (int i = 0; i < N; i++)
	{
		lo0 = fminf(lo0, X[i * F]);
		hi0 = fmaxf(hi0, X[i * F]);
	}

	before = nn_accuracy(mlp, X, y, N);
	nn_train_options_default(&o);
	o.lr = 1e-2f;
	o.batch_size = 50;
	o.epochs = 20;
	loss = nn_train(mlp, X, y, N, &o, log_epoch, &log);
	CHECK(log.calls == 20 && log.last_epoch == 20 && log.epochs == 20);
	CHECK(log.last_loss == loss);
	CHECK(log.last_loss < 0.5 * log.first_loss);
	CHECK(nn_accuracy(mlp, X, y, N) > 0.95);
	CHECK(nn_accuracy(mlp, X, y, N) > before);
	CHECK(mlp->feat_lo[0] == lo0 && mlp->feat_hi[0] == hi0);

	o.optimizer = NN_OPT_SGD;
	o.lr = 0.05f;
	o.momentum = 0.9f;
	o.weight_decay = 1e-4f;
	o.epochs = 10;
	nn_train(lin, X, y, N, &o, NULL, NULL);
	CHECK(nn_accuracy(lin, X, y, N) > 0.95);
	free(X);
	nn_free(mlp);
	nn_free(lin);
}

/* A nonzero callback return stops training; bad labels are refused without touching the model. */
UNIT_TEST(test_train_early_stop_and_bad_labels)
{
	enum { N = 40, F = 2, C = 2 };
	float		X[N * F];
	int			y[N];
	nn_rng		rng;
	nn_train_options o;
	nn_model   *m = nn_create(F, 0, NULL, C, 3, NULL, 0);
	nn_model   *before;
	epoch_log	log = {0};

	if (!m)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 12);
	fill_normal(&rng, X, N * F, 1.0f);
	fill_labels(&rng, y, N, C);
	nn_train_options_default(&o);
	o.epochs = 10;
	log.stop_after = 3;
	CHECK(isfinite(nn_train(m, X, y, N, &o, log_epoch, &log)));
	CHECK(log.calls == 3);

	before = nn_clone(m);
	y[7] = C;					/* out of range */
	CHECK(isnan(nn_train(m, X, y, N, &o, NULL, NULL)));
	if (before)
		CHECK(memcmp(before->params, m->params, m->n_params * sizeof(float)) == 0);
	nn_free(before);
	nn_free(m);
}

/* ---------------------------------------------------------------- serialisation */

/* 64-bit FNV-1a reference vectors, and chaining equals hashing the concatenation. */
UNIT_TEST(test_fnv1a64)
{
	CHECK(nn_fnv1a64("", 0, NN_FNV_OFFSET) == UINT64_C(0xcbf29ce484222325));
	CHECK(nn_fnv1a64("a", 1, NN_FNV_OFFSET) == UINT64_C(0xaf63dc4c8601ec8c));
	CHECK(nn_fnv1a64("foobar", 6, NN_FNV_OFFSET) == UINT64_C(0x85944171f73967e8));
	CHECK(nn_fnv1a64("bar", 3, nn_fnv1a64("foo", 3, NN_FNV_OFFSET)) ==
		  UINT64_C(0x85944171f73967e8));
}

/* Round trip keeps bytes, shape, box and predictions; the layout matches the documented format. */
UNIT_TEST(test_serialize_roundtrip)
{
	enum { N = 40, F = 7, C = 4 };
	int			hidden[] = {5, 6};
	nn_model   *m = nn_create(F, 2, hidden, C, 77, NULL, 0);
	nn_model   *r;
	nn_workspace *ws;
	nn_rng		rng;
	float		X[N * F],
				pa[N * C],
				pb[N * C];
	int			ya[N],
				yb[N];
	unsigned char *buf,
			   *buf2;
	size_t		size;
	char		err[256] = "";
	uint32_t	v;

	if (!m)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 13);
	randomise_biases(m, &rng);
	fill_normal(&rng, X, N * F, 1.0f);
	nn_set_feature_range(m, X, N);
	size = nn_serialized_size(m);
	CHECK(size == 12 + 4 * 4 + 8 * F + 4 + 8 * F + 4 * m->n_params + 8);
	buf = malloc(size);
	buf2 = malloc(size);
	nn_serialize(m, buf);
	CHECK(memcmp(buf, "UNLN", 4) == 0);
	CHECK(buf[4] == 2 && buf[5] == 0 && buf[6] == 0 && buf[7] == 0);	/* version 2, LE */
	CHECK(buf[8] == 3);			/* n_layers */
	CHECK(buf[12] == F && buf[16] == 5 && buf[20] == 6 && buf[24] == C);
	memcpy(&v, buf + 28, 4);	/* feat_lo[0] (this host is little-endian) */
	CHECK(memcmp(&v, &m->feat_lo[0], 4) == 0);

	r = nn_deserialize(buf, size, err, sizeof(err));
	CHECK(r != NULL);
	if (r)
	{
		CHECK(r->n_layers == 3 && r->n_params == m->n_params);
		CHECK(memcmp(r->dims, m->dims, sizeof(m->dims)) == 0);
		CHECK(memcmp(r->w_off, m->w_off, sizeof(m->w_off)) == 0);
		CHECK(memcmp(r->params, m->params, m->n_params * sizeof(float)) == 0);
		CHECK(memcmp(r->feat_lo, m->feat_lo, F * sizeof(float)) == 0);
		CHECK(memcmp(r->feat_hi, m->feat_hi, F * sizeof(float)) == 0);
		nn_serialize(r, buf2);
		CHECK(memcmp(buf, buf2, size) == 0);
		ws = nn_workspace_create(m, N);
		nn_predict(m, ws, X, N, ya);
		nn_predict(r, ws, X, N, yb);
		CHECK(memcmp(ya, yb, sizeof(ya)) == 0);
		nn_predict_proba(m, ws, X, N, pa);
		nn_predict_proba(r, ws, X, N, pb);
		CHECK(memcmp(pa, pb, sizeof(pa)) == 0);
		nn_workspace_free(ws);
	}
	free(buf);
	free(buf2);
	nn_free(r);
	nn_free(m);
}

/* Truncation, any flipped bit, trailing bytes, and well-hashed bad headers are all rejected. */
UNIT_TEST(test_deserialize_rejects_corrupt)
{
	int			hidden[] = {3};
	nn_model   *m = nn_create(4, 1, hidden, 3, 5, NULL, 0);
	size_t		size;
	unsigned char *buf,
			   *bad;
	char		err[256];
	int			accepted = 0;
	nn_model   *r;

	if (!m)
	{
		CHECK(0);
		return;
	}
	size = nn_serialized_size(m);
	buf = malloc(size + 1);
	bad = malloc(size + 1);
	nn_serialize(m, buf);

	CHECK(nn_deserialize(NULL, 0, err, sizeof(err)) == NULL);
	for (size_t len = 0; len < size; len++)
	{
		r = nn_deserialize(buf, len, err, sizeof(err));
		accepted += r != NULL;
		nn_free(r);
	}
	CHECK(accepted == 0);

	for (size_t i = 0; i < size; i++)
		for (int bit = 0; bit < 8; bit += 3)
		{
			memcpy(bad, buf, size);
			bad[i] ^= (unsigned char) (1u << bit);
			r = nn_deserialize(bad, size, err, sizeof(err));
			accepted += r != NULL;
			nn_free(r);
		}
	CHECK(accepted == 0);

	memcpy(bad, buf, size);
	bad[size] = 0;
	err[0] = '\0';
	CHECK(nn_deserialize(bad, size + 1, err, sizeof(err)) == NULL);
	CHECK(err[0] != '\0');

#define EXPECT_BAD_HEADER(offset, value, word) do { \
	memcpy(bad, buf, size); \
	poke_u32(bad + (offset), (value)); \
	rehash(bad, size); \
	err[0] = '\0'; \
	r = nn_deserialize(bad, size, err, sizeof(err)); \
	CHECK(r == NULL); \
	CHECK(strstr(err, (word)) != NULL); \
	nn_free(r); \
} while (0)

	EXPECT_BAD_HEADER(0, 0x4e4c4e56u, "magic");		/* "VNLN" */
	EXPECT_BAD_HEADER(4, 5, "version");
	EXPECT_BAD_HEADER(4, 4, "member");	/* version 4 is a container of members: none fits here */
	EXPECT_BAD_HEADER(4, 0, "version");
	EXPECT_BAD_HEADER(4, 3, "stage");	/* version 3 wants a stage block after the dims */
	EXPECT_BAD_HEADER(4, 1, "trailing");	/* version 1 has no standardisation block */
	EXPECT_BAD_HEADER(12 + 4 * 3 + 8 * 4, 2, "standardisation");	/* the flag is 0 or 1 */
	EXPECT_BAD_HEADER(8, 0, "layer");
	EXPECT_BAD_HEADER(8, NN_MAX_LAYERS + 1, "layer");
	EXPECT_BAD_HEADER(8, 1, "trailing");	/* claims 1 layer: too much data */
	EXPECT_BAD_HEADER(16, 4, "truncated");	/* wider hidden layer: too little data */
	EXPECT_BAD_HEADER(12, 0, "features");
	EXPECT_BAD_HEADER(12, 0x80000004u, "width");
	EXPECT_BAD_HEADER(16, 0, "hidden");
	EXPECT_BAD_HEADER(20, 1, "classes");
	EXPECT_BAD_HEADER(20, 2, "trailing");	/* fewer classes than the data holds */
#undef EXPECT_BAD_HEADER

	/* a flipped parameter byte is caught by the hash */
	memcpy(bad, buf, size);
	bad[size - 20] ^= 0x40;
	err[0] = '\0';
	CHECK(nn_deserialize(bad, size, err, sizeof(err)) == NULL);
	CHECK(strstr(err, "hash") != NULL);

	/* and the untouched buffer is still accepted */
	r = nn_deserialize(buf, size, err, sizeof(err));
	CHECK(r != NULL);
	nn_free(r);
	free(buf);
	free(bad);
	nn_free(m);
}

/* ---------------------------------------------------------------- standardisation */

/* Give m a random standardisation: mean ~ N(0, 2), scale in [0.3, 3]. */
static void
randomise_standardization(nn_model *m, nn_rng *rng)
{
	for (int j = 0; j < NN_FEATURES(m); j++)
	{
		m->mean[j] = 2.0f * nn_rng_normal(rng);
		m->scale[j] = 0.3f + 2.7f * (float) nn_rng_uniform(rng);
	}
	m->standardized = 1;
}

/*
 * nn_set_standardization: population mean and std per feature, scale 1 for
 * a constant feature, nothing for n <= 0; the forward pass of a standardized
 * model is bit-identical to the plain model's on pre-standardised rows;
 * clone copies it.
 */
UNIT_TEST(test_standardization_values_and_forward)
{
	enum { N = 4, F = 3, C = 2 };
	float		X[N * F] = {1, 10, 5, 3, 20, 5, 5, 30, 5, 7, 40, 5};
	float		Xs[N * F];
	float		pa[N * C],
				pb[N * C];
	nn_model   *m = nn_create(F, 1, (int[]) {4}, C, 3, NULL, 0);
	nn_model   *plain,
			   *c;
	nn_workspace *ws;

	if (!m)
	{
		CHECK(0);
		return;
	}
	CHECK(m->standardized == 0 && m->mean[0] == 0.0f && m->scale[2] == 1.0f);
	CHECK(nn_set_standardization(m, X, 0) == 0 && m->standardized == 0);
	CHECK(nn_set_standardization(m, X, N) == 0);
	CHECK(m->standardized == 1);
	CHECK_CLOSE(m->mean[0], 4.0, 1e-6);
	CHECK_CLOSE(m->mean[1], 25.0, 1e-5);
	CHECK_CLOSE(m->scale[0], sqrt(5.0), 1e-6);	/* population std of 1,3,5,7 */
	CHECK_CLOSE(m->scale[1], sqrt(125.0), 1e-5);
	CHECK(m->mean[2] == 5.0f && m->scale[2] == 1.0f);	/* constant feature */

	plain = nn_clone(m);
	c = nn_clone(m);
	ws = nn_workspace_create(m, N);
	if (plain && c && ws)
	{
		CHECK(c->standardized == 1 && memcmp(c->mean, m->mean, sizeof(float) * F) == 0 &&
			  memcmp(c->scale, m->scale, sizeof(float) * F) == 0);
		plain->standardized = 0;
		nn_standardize_rows(m, X, N, Xs);
		CHECK(Xs[2] == 0.0f);
		nn_predict_proba(m, ws, X, N, pa);
		nn_predict_proba(plain, ws, Xs, N, pb);
		CHECK(memcmp(pa, pb, sizeof(pa)) == 0);
	}
	else
		CHECK(0);
	nn_workspace_free(ws);
	nn_free(c);
	nn_free(plain);
	nn_free(m);
}

/* Parameter and raw-input gradients through the standardisation, by finite differences. */
UNIT_TEST(test_gradients_standardized)
{
	int			hidden[] = {4, 3};
	nn_rng		rng;
	float		X[6 * 5];
	int			y[6];

	nn_rng_seed(&rng, 41);
	for (uint64_t seed = 1; seed <= 3; seed++)
	{
		nn_model   *m = nn_create(5, seed == 3 ? 0 : 2, hidden, 3, seed, NULL, 0);

		if (!m)
		{
			CHECK(0);
			return;
		}
		randomise_biases(m, &rng);
		randomise_standardization(m, &rng);
		/* raw rows around the model's mean, in its units */
		fill_normal(&rng, X, 30, 1.0f);
		for (int i = 0; i < 30; i++)
			X[i] = m->mean[i % 5] + m->scale[i % 5] * X[i];
		fill_labels(&rng, y, 6, 3);
		CHECK(check_gradients(m, X, y, 6) == 0);
		nn_free(m);
	}
}

/*
 * PGD on a standardized model: with mean 0 and scale 1 it is bit-identical
 * to the plain model's; with a real standardisation its examples stay in the
 * raw box and their ball is measured in standardised units.
 */
UNIT_TEST(test_pgd_standardized_space)
{
	enum { N = 6, F = 3, C = 3, PER = 3 };
	int			hidden[] = {8};
	nn_model   *m = nn_create(F, 1, hidden, C, 9, NULL, 0);
	nn_model   *id = m ? nn_clone(m) : NULL;
	float		X[N * F],
				Xa[N * PER * F],
				Xb[N * PER * F];
	int			y[N],
				ta[N * PER],
				tb[N * PER];
	nn_rng		rng,
				ra,
				rb;
	float		eps = 0.5f;

	if (!m || !id)
	{
		CHECK(0);
		nn_free(m);
		return;
	}
	nn_rng_seed(&rng, 17);
	randomise_biases(m, &rng);
	nn_copy_params(id, m);
	fill_normal(&rng, X, N * F, 1.0f);
	X[0] = -0.0f;
	fill_labels(&rng, y, N, C);
	nn_set_feature_range(m, X, N);
	nn_set_feature_range(id, X, N);
	id->standardized = 1;		/* mean 0, scale 1 */
	nn_rng_seed(&ra, 3);
	nn_rng_seed(&rb, 3);
	ul_pgd_targeted(m, X, y, N, PER, eps, 0.1f, 10, &ra, Xa, ta);
	ul_pgd_targeted(id, X, y, N, PER, eps, 0.1f, 10, &rb, Xb, tb);
	CHECK(memcmp(Xa, Xb, sizeof(Xa)) == 0);
	CHECK(memcmp(ta, tb, sizeof(ta)) == 0);

	/* scale 100 on feature 0: the ball is 100 times wider there */
	for (int i = 0; i < N; i++)
		X[i * F] *= 100.0f;
	nn_set_feature_range(id, X, N);
	CHECK(nn_set_standardization(id, X, N) == 0);
	nn_rng_seed(&rb, 3);
	ul_pgd_targeted(id, X, y, N, PER, eps, 0.1f, 10, &rb, Xb, tb);
	for (int r = 0; r < N * PER; r++)
	{
		const float *x = X + (r / PER) * F;
		double		ss = 0.0;

		for (int f = 0; f < F; f++)
		{
			double		d = ((double) Xb[r * F + f] - x[f]) / id->scale[f];

			ss += d * d;
			CHECK(Xb[r * F + f] >= id->feat_lo[f] - 1e-4f * fabsf(id->feat_lo[f]) - 1e-6f);
			CHECK(Xb[r * F + f] <= id->feat_hi[f] + 1e-4f * fabsf(id->feat_hi[f]) + 1e-6f);
		}
		CHECK(sqrt(ss) <= eps * 1.001);
	}
	nn_free(id);
	nn_free(m);
}

/*
 * A version 1 blob written by the 0.1 core (2 features, hidden {3}, 2
 * classes; seed 5, biases from seed 8, range of the rows below) and the
 * bits of the probabilities 0.1 predicted for those rows: it still loads,
 * unstandardized, and predicts the same bits.
 */
UNIT_TEST(test_deserialize_pinned_v1_blob)
{
	static const unsigned char v1[116] = {
	0x55, 0x4e, 0x4c, 0x4e, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x40, 0xc0, 0x00, 0x00, 0x80, 0xbf, 0x00, 0x00, 0x00, 0x40,
	0x00, 0x00, 0xc0, 0x3f, 0x1a, 0x36, 0x29, 0xbf, 0xb4, 0x1a, 0x21, 0x3f,
	0x45, 0xe3, 0x84, 0x3e, 0xb9, 0x6a, 0xda, 0x3e, 0x9b, 0x12, 0x32, 0xbf,
	0x41, 0x24, 0x5b, 0xbc, 0xf4, 0x73, 0xe1, 0xbe, 0x0e, 0x88, 0xc2, 0x3e,
	0xfa, 0xa7, 0x5a, 0x3d, 0x76, 0x53, 0x3e, 0xbd, 0x2d, 0x99, 0x3a, 0x3f,
	0x69, 0x8b, 0x0e, 0x3f, 0x21, 0x83, 0x33, 0xbe, 0x35, 0x3e, 0x31, 0xbf,
	0x66, 0x0a, 0x61, 0x3e, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x10, 0xa4, 0x23, 0x63, 0x5a, 0x32, 0x66, 0x39
	};
	static const uint32_t expected_bits[8] = {
		0x3f078d52u, 0x3ef0e55du, 0x3f4e8a4fu, 0x3e45d6c4u,
		0x3f4c72fcu, 0x3e4e340eu, 0x3f22d012u, 0x3eba5fdbu
	};
	float		X[4 * 2] = {0.5f, -1.0f, 2.0f, 0.25f, -3.0f, 1.5f, 0.0f, 0.0f};
	float		P[4 * 2];
	char		err[256] = "";
	nn_model   *m = nn_deserialize(v1, sizeof(v1), err, sizeof(err));
	nn_workspace *ws = m ? nn_workspace_create(m, 4) : NULL;

	CHECK(m != NULL && ws != NULL);
	if (m && ws)
	{
		CHECK(m->standardized == 0 && m->mean[1] == 0.0f && m->scale[1] == 1.0f);
		CHECK(m->feat_lo[0] == -3.0f && m->feat_hi[1] == 1.5f);
		nn_predict_proba(m, ws, X, 4, P);
		CHECK(memcmp(P, expected_bits, sizeof(P)) == 0);
	}
	nn_workspace_free(ws);
	nn_free(m);
}

/* Write m in format version 1 (no standardisation block), as 0.1 did. */
static unsigned char *
serialize_v1(const nn_model *m, size_t *size)
{
	int			F = NN_FEATURES(m);
	size_t		n = 12 + 4 * (size_t) (m->n_layers + 1) + 8 * (size_t) F + 4 * m->n_params + 8;
	unsigned char *buf = malloc(n);
	unsigned char *p = buf;

	memcpy(p, "UNLN", 4);
	poke_u32(p + 4, 1);
	poke_u32(p + 8, (uint32_t) m->n_layers);
	p += 12;
	for (int l = 0; l <= m->n_layers; l++, p += 4)
		poke_u32(p, (uint32_t) m->dims[l]);
	memcpy(p, m->feat_lo, 4 * (size_t) F);	/* this host is little-endian */
	p += 4 * (size_t) F;
	memcpy(p, m->feat_hi, 4 * (size_t) F);
	p += 4 * (size_t) F;
	memcpy(p, m->params, 4 * m->n_params);
	rehash(buf, n);
	*size = n;
	return buf;
}

/*
 * A version 1 blob loads as an unstandardized model and predicts bit-
 * identically; version 2 round-trips the standardisation exactly.
 */
UNIT_TEST(test_serialize_v1_and_standardization)
{
	enum { N = 9, F = 4, C = 3 };
	int			hidden[] = {6};
	nn_model   *m = nn_create(F, 1, hidden, C, 21, NULL, 0);
	nn_model   *r1 = NULL,
			   *r2 = NULL;
	nn_workspace *ws;
	nn_rng		rng;
	float		X[N * F],
				pa[N * C],
				pb[N * C];
	unsigned char *v1,
			   *v2,
			   *again;
	size_t		size1,
				size2;
	char		err[256] = "";

	if (!m)
	{
		CHECK(0);
		return;
	}
	nn_rng_seed(&rng, 23);
	randomise_biases(m, &rng);
	fill_normal(&rng, X, N * F, 3.0f);
	nn_set_feature_range(m, X, N);
	ws = nn_workspace_create(m, N);

	v1 = serialize_v1(m, &size1);
	r1 = nn_deserialize(v1, size1, err, sizeof(err));
	CHECK(r1 != NULL);
	if (r1)
	{
		CHECK(r1->standardized == 0 && r1->mean[3] == 0.0f && r1->scale[3] == 1.0f);
		CHECK(memcmp(r1->feat_hi, m->feat_hi, sizeof(float) * F) == 0);
		nn_predict_proba(m, ws, X, N, pa);
		nn_predict_proba(r1, ws, X, N, pb);
		CHECK(memcmp(pa, pb, sizeof(pa)) == 0);
	}

	CHECK(nn_set_standardization(m, X, N) == 0);
	m->mean[1] = -0.0f;			/* bit patterns survive */
	size2 = nn_serialized_size(m);
	CHECK(size2 == size1 + 4 + 8 * F);
	v2 = malloc(size2);
	again = malloc(size2);
	nn_serialize(m, v2);
	r2 = nn_deserialize(v2, size2, err, sizeof(err));
	CHECK(r2 != NULL);
	if (r2)
	{
		CHECK(r2->standardized == 1);
		CHECK(memcmp(r2->mean, m->mean, sizeof(float) * F) == 0);
		CHECK(memcmp(r2->scale, m->scale, sizeof(float) * F) == 0);
		nn_serialize(r2, again);
		CHECK(memcmp(v2, again, size2) == 0);
		nn_predict_proba(m, ws, X, N, pa);
		nn_predict_proba(r2, ws, X, N, pb);
		CHECK(memcmp(pa, pb, sizeof(pa)) == 0);
	}
	nn_workspace_free(ws);
	free(v1);
	free(v2);
	free(again);
	nn_free(r1);
	nn_free(r2);
	nn_free(m);
}

/*
 * A badly scaled problem (one feature in units of 1e4, one in 1e-3; the
 * label needs both) trains to high accuracy with the standardisation and
 * not without it, for every seed tried.
 */
UNIT_TEST(test_standardization_trains_badly_scaled)
{
	enum { N = 1000, F = 2, C = 2 };
	int			hidden[] = {16};
	float	   *X = malloc(sizeof(float) * N * F);
	int			y[N];
	nn_rng		rng;
	nn_train_options o;

	nn_rng_seed(&rng, 99);
	for (int i = 0; i < N; i++)
	{
		float		u = nn_rng_normal(&rng),
					v = nn_rng_normal(&rng);

		X[i * F] = 1e4f * u;
		X[i * F + 1] = 1e-3f * v;
		y[i] = u - 2.0f * v > 0.0f;
	}
	for (uint64_t seed = 1; seed <= 5; seed++)
	{
		nn_model   *a = nn_create(F, 1, hidden, C, seed, NULL, 0);
		nn_model   *b = nn_create(F, 1, hidden, C, seed, NULL, 0);
		double		acc_std,
					acc_raw;

		if (!a || !b)
		{
			CHECK(0);
			break;
		}
		nn_train_options_default(&o);
		o.seed = seed;
		o.lr = 1e-2f;
		o.epochs = 30;
		o.standardize = 1;
		nn_train(a, X, y, N, &o, NULL, NULL);
		o.standardize = 0;
		nn_train(b, X, y, N, &o, NULL, NULL);
		acc_std = nn_accuracy(a, X, y, N);
		acc_raw = nn_accuracy(b, X, y, N);
		if (getenv("UNIT_VERBOSE"))
			fprintf(stderr, "    seed %d: standardized %.4f, raw %.4f\n", (int) seed, acc_std, acc_raw);
		CHECK(a->standardized == 1 && b->standardized == 0);
		CHECK(acc_std > 0.95);
		CHECK(acc_raw < 0.85);
		nn_free(a);
		nn_free(b);
	}
	free(X);
}

/* ---------------------------------------------------------------- allocator */

static long live_allocs;		/* allocations not yet freed through the hooks */
static long allocs_left;		/* fail once this many allocations were granted (< 0: never) */

/* Counting allocator that can be told to fail, to test leak-freedom and NULL handling. */
static void *
counting_alloc(size_t size)
{
	void	   *p;

	if (allocs_left == 0)
		return NULL;
	if (allocs_left > 0)
		allocs_left--;
	p = malloc(size);
	if (p)
		live_allocs++;
	return p;
}

/* Free side of counting_alloc. */
static void
counting_free(void *p)
{
	live_allocs--;
	free(p);
}

/* Everything goes through the hooks, nothing leaks, and every allocation failure is survived. */
UNIT_TEST(test_allocator_hooks_and_failures)
{
	int			hidden[] = {5};
	float		X[20 * 3];
	int			y[20];
	nn_rng		rng;
	nn_train_options o;
	nn_model   *m,
			   *proto;
	unsigned char *buf;
	size_t		size;
	char		err[128];
	int			failures_seen = 0;

	nn_rng_seed(&rng, 14);
	fill_normal(&rng, X, 60, 1.0f);
	fill_labels(&rng, y, 20, 2);
	nn_train_options_default(&o);
	o.epochs = 2;
	o.batch_size = 8;
	proto = nn_create(3, 1, hidden, 2, 1, NULL, 0);
	if (!proto)
	{
		CHECK(0);
		return;
	}
	size = nn_serialized_size(proto);
	buf = malloc(size);
	nn_serialize(proto, buf);

	nn_set_allocator(counting_alloc, counting_free);

	/* all succeed: every allocation is freed again */
	live_allocs = 0;
	allocs_left = -1;
	m = nn_create(3, 1, hidden, 2, 1, err, sizeof(err));
	CHECK(m != NULL && live_allocs > 0);
	nn_train(m, X, y, 20, &o, NULL, NULL);
	nn_free(m);
	CHECK(live_allocs == 0);

	/* fail the k-th allocation for k = 0, 1, ...: no crash, no leak, sensible result */
	for (long k = 0; k < 40; k++)
	{
		nn_model   *c,
				   *d;
		nn_workspace *ws;
		nn_optimizer *opt;
		double		loss,
					acc;

		live_allocs = 0;
		allocs_left = k;
		err[0] = '\0';
		m = nn_create(3, 1, hidden, 2, 1, err, sizeof(err));
		if (m == NULL)
		{
			failures_seen++;
			CHECK(err[0] != '\0');
		}
		c = m ? nn_clone(m) : NULL;
		ws = m ? nn_workspace_create(m, 4) : NULL;
		opt = nn_optimizer_create(NN_OPT_ADAM, 10, 0.1f, 0.0f, 0.0f);
		loss = m ? nn_train(m, X, y, 20, &o, NULL, NULL) : 0.0;
		acc = m ? nn_accuracy(m, X, y, 20) : 0.0;
		d = nn_deserialize(buf, size, err, sizeof(err));
		CHECK(m == NULL || isnan(loss) || loss > 0);
		CHECK(isnan(acc) || (acc >= 0 && acc <= 1));
		nn_free(m);
		nn_free(c);
		nn_free(d);
		nn_workspace_free(ws);
		nn_optimizer_free(opt);
		CHECK(live_allocs == 0);
	}
	CHECK(failures_seen > 0);

	nn_set_allocator(NULL, NULL);
	m = nn_create(3, 1, hidden, 2, 1, NULL, 0);
	CHECK(m != NULL);
	nn_free(m);
	free(buf);
	nn_free(proto);
}

static int	hook_calls = 0;

/* Counts interrupt-hook calls. */
static void
counting_hook(void)
{
	hook_calls++;
}

/* The interrupt hook runs once per forward pass, and not at all once removed. */
UNIT_TEST(interrupt_hook_runs_per_forward)
{
	int			hidden[1] = {3};
	nn_model   *m = nn_create(4, 1, hidden, 2, 1, NULL, 0);
	nn_workspace *ws = nn_workspace_create(m, 8);
	float		X[8 * 4] = {0};

	hook_calls = 0;
	nn_set_interrupt_hook(counting_hook);
	nn_forward(m, ws, X, 8);
	nn_forward(m, ws, X, 2);
	CHECK(hook_calls == 2);
	nn_set_interrupt_hook(NULL);
	nn_forward(m, ws, X, 8);
	CHECK(hook_calls == 2);
	nn_workspace_free(ws);
	nn_free(m);
}

/*
 * Large products are computed in parts with a cancel point between them: the
 * same logits, input and parameter gradients (within rounding) as in one
 * product, and the cancel hook called inside the passes.
 */
UNIT_TEST(large_products_in_parts_with_the_hook_between)
{
	int			hidden[2] = {24, 16};
	int			n = 40;
	nn_model   *m = nn_create(12, 2, hidden, 5, 3, NULL, 0);
	nn_workspace *ws = nn_workspace_create(m, n);
	nn_rng		rng;
	float	   *X = malloc(sizeof(float) * n * 12);
	float	   *dl = malloc(sizeof(float) * n * 5);
	float	   *gi[2], *gp[2], *lg[2];
	int		   *y = malloc(sizeof(int) * n);
	int			calls[2];

	nn_rng_seed(&rng, 17);
	randomise_biases(m, &rng);
	fill_normal(&rng, X, n * 12, 1.0f);
	fill_labels(&rng, y, n, 5);
	for (int r = 0; r < 2; r++)
	{
		const float *logits;

		/* r = 0: one product each; r = 1: parts of at most 100 multiply-adds */
		nn_set_gemm_part_macs(r == 0 ? 2147483648.0 : 100.0);
		gi[r] = calloc((size_t) n * 12, sizeof(float));
		gp[r] = calloc(m->n_params, sizeof(float));
		lg[r] = malloc(sizeof(float) * n * 5);
		hook_calls = 0;
		nn_set_cancel_hook(counting_hook);
		logits = nn_forward(m, ws, X, n);
		memcpy(lg[r], logits, sizeof(float) * n * 5);
		nn_softmax_ce(logits, y, n, 5, 1.0f, dl, NULL);
		nn_backward(m, ws, X, n, dl, gp[r], gi[r]);
		calls[r] = hook_calls;
		nn_set_cancel_hook(NULL);
	}
	nn_set_gemm_part_macs(2147483648.0);
	CHECK(calls[0] == 0);		/* no product in parts, no cancel point */
	CHECK(calls[1] > 20);		/* every product in parts: 40 x 24 x 12 alone is 115 parts */
	for (int i = 0; i < n * 5; i++)
		CHECK_CLOSE(lg[1][i], lg[0][i], 1e-5 * (1.0 + fabs(lg[0][i])));
	for (int i = 0; i < n * 12; i++)
		CHECK_CLOSE(gi[1][i], gi[0][i], 1e-5 * (1.0 + fabs(gi[0][i])));
	for (size_t i = 0; i < m->n_params; i++)
		CHECK_CLOSE(gp[1][i], gp[0][i], 1e-5 * (1.0 + fabs(gp[0][i])));
	for (int r = 0; r < 2; r++)
	{
		free(gi[r]);
		free(gp[r]);
		free(lg[r]);
	}
	free(X);
	free(dl);
	free(y);
	nn_workspace_free(ws);
	nn_free(m);
}

const unit_case nn_tests[] = {
	UNIT_ENTRY(interrupt_hook_runs_per_forward),
	UNIT_ENTRY(large_products_in_parts_with_the_hook_between),
	UNIT_ENTRY(test_rng_reference_and_determinism),
	UNIT_ENTRY(test_rng_below_uniform_normal),
	UNIT_ENTRY(test_rng_shuffle_permutation),
	UNIT_ENTRY(test_create_rejects_bad_shapes),
	UNIT_ENTRY(test_create_layout_and_init),
	UNIT_ENTRY(test_clone_copy_feature_range),
	UNIT_ENTRY(test_softmax_ce),
	UNIT_ENTRY(test_gradients_softmax_regression),
	UNIT_ENTRY(test_gradients_mlp_two_hidden),
	UNIT_ENTRY(test_backward_accumulates),
	UNIT_ENTRY(test_predict_chunks_and_proba),
	UNIT_ENTRY(test_sgd_steps),
	UNIT_ENTRY(test_adam_steps),
	UNIT_ENTRY(test_train_reproducible),
	UNIT_ENTRY(test_train_learns_toy),
	UNIT_ENTRY(test_train_early_stop_and_bad_labels),
	UNIT_ENTRY(test_fnv1a64),
	UNIT_ENTRY(test_serialize_roundtrip),
	UNIT_ENTRY(test_deserialize_rejects_corrupt),
	UNIT_ENTRY(test_standardization_values_and_forward),
	UNIT_ENTRY(test_gradients_standardized),
	UNIT_ENTRY(test_pgd_standardized_space),
	UNIT_ENTRY(test_serialize_v1_and_standardization),
	UNIT_ENTRY(test_deserialize_pinned_v1_blob),
	UNIT_ENTRY(test_standardization_trains_badly_scaled),
	UNIT_ENTRY(test_allocator_hooks_and_failures),
	{NULL, NULL}
};
