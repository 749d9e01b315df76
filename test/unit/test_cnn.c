/*
 * test_cnn.c: unit tests of convolutional models: layer lists and their
 * errors, the forward pass against a direct (loop) convolution, gradients by
 * finite differences (conv, maxpool, a full CNN, standardised), the v3 byte
 * format, training on small images, PGD, MAS and every unlearning method
 * on a small CNN, Winograd against im2col, and the work split over threads
 * (same bytes).
 */
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "nn_internal.h"
#include "unit.h"
#include "unlearn_core.h"

/* ---------------------------------------------------------------- helpers */

#define CONV(f, k) {NN_LAYER_CONV, (f), (k)}
#define POOL(p)    {NN_LAYER_POOL, 0, (p)}
#define DENSE(w)   {NN_LAYER_DENSE, (w), 0}

/* A model from a layer list with small random biases (so ReLU patterns are generic). */
static nn_model *
cnn_make(const int shape[3], int n, const nn_layer_spec *specs, int C, uint64_t seed)
{
	char		err[160];
	nn_model   *m = nn_create_layers(shape, n, specs, C, seed, err, sizeof(err));
	nn_rng		rng;

	if (m == NULL)
	{
		fprintf(stderr, "  nn_create_layers: %s\n", err);
		return NULL;
	}
	nn_rng_seed(&rng, seed + 1);
	for (size_t i = 0; i < m->n_params; i++)
		if (m->params[i] == 0.0f)	/* the biases */
			m->params[i] = 0.2f * nn_rng_normal(&rng);
	return m;
}

/* n random rows of F features, N(0,1), and labels in [0,C). */
static void
random_rows(uint64_t seed, float *X, int *y, int n, int F, int C)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int i = 0; i < n * F; i++)
		X[i] = nn_rng_normal(&rng);
	for (int i = 0; i < n; i++)
		y[i] = (int) nn_rng_below(&rng, (uint32_t) C);
}

/*
 * 8 x 8 images of three classes: a horizontal bar (0), a vertical bar (1) or
 * a diagonal (2) at a random place, on noise, values in [0, 1].
 */
static void
bars_make(uint64_t seed, float *X, int *y, int n)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int i = 0; i < n; i++)
	{
		float	   *img = X + (size_t) i * 64;
		int			pos = 1 + (int) nn_rng_below(&rng, 6);

		y[i] = i % 3;
		for (int p = 0; p < 64; p++)
			img[p] = 0.25f * (float) nn_rng_uniform(&rng);
		for (int t = 0; t < 8; t++)
		{
			int			at = y[i] == 0 ? pos * 8 + t : y[i] == 1 ? t * 8 + pos : t * 8 + (t + pos) % 8;

			img[at] = 0.75f + 0.25f * (float) nn_rng_uniform(&rng);
		}
	}
}

/* The small CNN of the bars tests: conv 4 3, maxpool 2, conv 6 3, maxpool 2, dense 16. */
static nn_model *
bars_model(uint64_t seed)
{
	static const int shape[3] = {1, 8, 8};
	static const nn_layer_spec specs[] = {CONV(4, 3), POOL(2), CONV(6, 3), POOL(2), DENSE(16)};

	return nn_create_layers(shape, 5, specs, 3, seed, NULL, 0);
}

/* A bars CNN trained for `epochs` on n rows (Adam, lr 1e-2, batch 32, standardised). */
static nn_model *
bars_trained(const float *X, const int *y, int n, int epochs)
{
	nn_model   *m = bars_model(5);
	nn_train_options o;

	nn_train_options_default(&o);
	o.epochs = epochs;
	o.batch_size = 32;
	o.lr = 1e-2f;
	o.standardize = 1;
	nn_train(m, X, y, n, &o, NULL, NULL);
	return m;
}

/* The bars training set (360 rows) and held-out set (150 rows) of the training and unlearning tests. */
typedef struct bars_sets
{
	int			n;
	float	   *X,
			   *Xt;
	int		   *y,
				yt[150];
} bars_sets;

/* Make both sets (seeds 1 and 2). */
static void
bars_sets_make(bars_sets *b)
{
	b->n = 360;
	b->X = malloc(sizeof(float) * b->n * 64);
	b->Xt = malloc(sizeof(float) * 150 * 64);
	b->y = malloc(sizeof(int) * b->n);
	bars_make(1, b->X, b->y, b->n);
	bars_make(2, b->Xt, b->yt, 150);
}

/* Release what bars_sets_make allocated. */
static void
bars_sets_free(bars_sets *b)
{
	free(b->X);
	free(b->Xt);
	free(b->y);
}

/* ---------------------------------------------------------------- layer lists */

/* Each layer list that does not fit is refused with a message naming the problem. */
UNIT_TEST(cnn_layer_lists_checked)
{
	static const int shape[3] = {1, 6, 6};
	char		err[160];
	uint64_t	np,
				wsf;

#define EXPECT_BAD(n, word, ...) do { \
	nn_layer_spec s_[] = {__VA_ARGS__}; \
	err[0] = '\0'; \
	CHECK(nn_create_layers(shape, (n), s_, 3, 1, err, sizeof(err)) == NULL); \
	CHECK(strstr(err, (word)) != NULL); \
	err[0] = '\0'; \
	CHECK(nn_plan_layers(shape, (n), s_, 3, 8, &np, &wsf, err, sizeof(err)) == -1); \
	CHECK(strstr(err, (word)) != NULL); \
} while (0)

	EXPECT_BAD(2, "before the dense", DENSE(4), CONV(2, 3));
	EXPECT_BAD(1, "odd", CONV(2, 2));
	EXPECT_BAD(1, "odd", CONV(2, 17));
	EXPECT_BAD(1, "filters", CONV(0, 3));
	EXPECT_BAD(3, "does not fit", POOL(2), POOL(2), POOL(2));	/* 6 -> 3 -> 1 -> none */
	EXPECT_BAD(1, "does not fit", POOL(7));
	EXPECT_BAD(1, "does not fit", POOL(1));
	EXPECT_BAD(1, "unknown", {(nn_layer_kind) 9, 1, 1});
	EXPECT_BAD(9, "at most 8", CONV(1, 1), CONV(1, 1), CONV(1, 1), CONV(1, 1), CONV(1, 1),
			   CONV(1, 1), CONV(1, 1), CONV(1, 1), CONV(1, 1));
	EXPECT_BAD(1, "hidden layer", DENSE(0));
#undef EXPECT_BAD
	{
		static const int bad_shape[3] = {0, 6, 6};
		nn_layer_spec s1[] = {CONV(2, 3)};

		CHECK(nn_create_layers(bad_shape, 1, s1, 3, 1, err, sizeof(err)) == NULL);
		CHECK(strstr(err, "input shape") != NULL);
	}
}

/* The planned geometry, parameter layout and counts of a CNN; the plan agrees with the model. */
UNIT_TEST(cnn_layout_and_plan)
{
	static const int shape[3] = {2, 7, 5};
	nn_layer_spec specs[] = {CONV(3, 3), POOL(2), CONV(4, 1), DENSE(6)};
	nn_model   *m = nn_create_layers(shape, 4, specs, 5, 3, NULL, 0);
	uint64_t	np,
				wsf;

	CHECK(m != NULL);
	if (m == NULL)
		return;
	CHECK(m->n_stages == 3 && m->n_layers == 2 && NN_FEATURES(m) == 70);
	CHECK(m->stage[0].c_out == 3 && m->stage[0].h_out == 7 && m->stage[0].w_out == 5);
	CHECK(m->stage[1].c_out == 3 && m->stage[1].h_out == 3 && m->stage[1].w_out == 2);
	CHECK(m->stage[2].c_in == 3 && m->stage[2].c_out == 4 && m->stage[2].h_out == 3);
	CHECK(m->dims[0] == 4 * 3 * 2 && m->dims[1] == 6 && m->dims[2] == 5);
	CHECK(m->stage[0].w_off == 0 && m->stage[0].b_off == 3 * 9 * 2);
	CHECK(m->stage[2].w_off == 57 && m->stage[2].b_off == 57 + 12);
	CHECK(m->w_off[0] == 73);
	CHECK(m->n_params == 73 + 24 * 6 + 6 + 6 * 5 + 5);
	CHECK(nn_plan_layers(shape, 4, specs, 5, 8, &np, &wsf, NULL, 0) == 0);
	CHECK(np == m->n_params);
	CHECK(wsf > 8 * (uint64_t) (105 + 105 + 18 * 3 + 24 * 2));
	nn_free(m);
}

/* A list of dense layers only is nn_create's MLP, bit for bit, written as format version 2. */
UNIT_TEST(cnn_dense_only_is_the_mlp)
{
	static const int shape[3] = {1, 4, 5};
	nn_layer_spec specs[] = {DENSE(7), DENSE(3)};
	int			hidden[2] = {7, 3};
	nn_model   *a = nn_create_layers(shape, 2, specs, 4, 11, NULL, 0);
	nn_model   *b = nn_create(20, 2, hidden, 4, 11, NULL, 0);
	size_t		size = nn_serialized_size(b);
	unsigned char *ba = malloc(size),
			   *bb = malloc(size);

	CHECK(a->n_stages == 0 && a->n_params == b->n_params);
	CHECK(nn_serialized_size(a) == size);
	nn_serialize(a, ba);
	nn_serialize(b, bb);
	CHECK(memcmp(ba, bb, size) == 0);
	CHECK(ba[4] == 2);
	free(ba);
	free(bb);
	nn_free(a);
	nn_free(b);
}

/* ---------------------------------------------------------------- forward */

/*
 * Logits of one CHW image through conv (same padding, ReLU), maxpool 2 and
 * the logits layer, computed with plain loops from the documented layouts.
 */
static void
reference_logits(const nn_model *m, const float *x, float *logits)
{
	const nn_stage *cv = &m->stage[0],
			   *pl = &m->stage[1];
	int			H = cv->h_in,
				W = cv->w_in,
				Ci = cv->c_in,
				Co = cv->c_out,
				K = cv->size;
	float		act[8 * 8 * 8];
	float		flat[4 * 4 * 8];

	for (int y = 0; y < H; y++)
		for (int xx = 0; xx < W; xx++)
			for (int f = 0; f < Co; f++)
			{
				float		s = m->params[cv->b_off + f];

				for (int ky = 0; ky < K; ky++)
					for (int kx = 0; kx < K; kx++)
						for (int c = 0; c < Ci; c++)
						{
							int			iy = y + ky - K / 2,
										ix = xx + kx - K / 2;

							if (iy >= 0 && iy < H && ix >= 0 && ix < W)
								s += m->params[cv->w_off + (size_t) f * K * K * Ci + (ky * K + kx) * Ci + c] *
									x[c * H * W + iy * W + ix];
						}
				act[(y * W + xx) * Co + f] = s > 0.0f ? s : 0.0f;
			}
	for (int y = 0; y < pl->h_out; y++)
		for (int xx = 0; xx < pl->w_out; xx++)
			for (int f = 0; f < Co; f++)
			{
				float		mx = act[(2 * y * W + 2 * xx) * Co + f];

				for (int p = 1; p < 4; p++)
				{
					float		v = act[((2 * y + p / 2) * W + 2 * xx + p % 2) * Co + f];

					mx = v > mx ? v : mx;
				}
				flat[(y * pl->w_out + xx) * Co + f] = mx;
			}
	for (int c = 0; c < m->dims[1]; c++)
	{
		float		s = m->params[m->b_off[0] + c];

		for (int j = 0; j < m->dims[0]; j++)
			s += m->params[m->w_off[0] + (size_t) c * m->dims[0] + j] * flat[j];
		logits[c] = s;
	}
}

/* nn_forward of conv + maxpool + logits equals the loop reference on every row. */
UNIT_TEST(cnn_forward_matches_direct_convolution)
{
	static const int shape[3] = {3, 6, 5};
	nn_layer_spec specs[] = {CONV(4, 3), POOL(2)};
	nn_model   *m = cnn_make(shape, 2, specs, 4, 21);
	nn_workspace *ws = nn_workspace_create(m, 7);
	float		X[7 * 90];
	int			y[7];
	float		ref[4];
	double		maxerr = 0.0;
	const float *z;

	random_rows(3, X, y, 7, 90, 4);
	z = nn_forward(m, ws, X, 7);
	for (int i = 0; i < 7; i++)
	{
		reference_logits(m, X + i * 90, ref);
		for (int c = 0; c < 4; c++)
			maxerr = fmax(maxerr, fabs(ref[c] - z[i * 4 + c]));
	}
	CHECK(maxerr < 1e-4);
	CHECK(fabs(z[0]) + fabs(z[1]) > 1e-3);	/* not trivially zero */
	nn_workspace_free(ws);
	nn_free(m);
}

/* ---------------------------------------------------------------- gradients */

/* Finite differences of a conv layer (2 input channels, 5 x 5, kernel 3: Winograd) and the logits. */
UNIT_TEST(cnn_gradients_conv)
{
	static const int shape[3] = {2, 5, 5};
	nn_layer_spec specs[] = {CONV(3, 3)};
	nn_model   *m = cnn_make(shape, 1, specs, 3, 31);
	float		X[4 * 50];
	int			y[4];

	random_rows(4, X, y, 4, 50, 3);
	CHECK(nn_wino_applies(&m->stage[0]));	/* Winograd, on odd sides */
	CHECK(check_gradients(m, X, y, 4) == 0);
	nn_free(m);
}

/* Finite differences through a max-pool on the raw input and one after a conv (kernel 5). */
UNIT_TEST(cnn_gradients_maxpool)
{
	static const int shape[3] = {2, 6, 6};
	nn_layer_spec first[] = {POOL(2), DENSE(5)};
	nn_layer_spec after[] = {CONV(2, 5), POOL(3)};
	nn_model   *a = cnn_make(shape, 2, first, 3, 41);
	nn_model   *b = cnn_make(shape, 2, after, 3, 43);
	float		X[4 * 72];
	int			y[4];

	random_rows(5, X, y, 4, 72, 3);
	CHECK(check_gradients(a, X, y, 4) == 0);
	CHECK(check_gradients(b, X, y, 4) == 0);
	nn_free(a);
	nn_free(b);
}

/* A full CNN (conv, pool, conv, pool, dense), plain and standardised: params and input. */
UNIT_TEST(cnn_gradients_full_network)
{
	static const int shape[3] = {1, 8, 8};
	nn_layer_spec specs[] = {CONV(3, 3), POOL(2), CONV(4, 3), POOL(2), DENSE(6)};
	nn_model   *m = cnn_make(shape, 5, specs, 3, 51);
	float		X[3 * 64];
	int			y[3];

	random_rows(6, X, y, 3, 64, 3);
	CHECK(check_gradients(m, X, y, 3) == 0);
	CHECK(nn_set_standardization(m, X, 3) == 0);
	CHECK(m->standardized == 1);
	CHECK(check_gradients(m, X, y, 3) == 0);
	nn_free(m);
}

/* Chunked im2col (more images than one chunk holds) gives the same gradients as one image at a time. */
UNIT_TEST(cnn_chunks_and_accumulation)
{
	static const int shape[3] = {16, 16, 16};
	nn_layer_spec specs[] = {CONV(4, 15)};
	nn_model   *m = cnn_make(shape, 1, specs, 3, 61);
	int			n = 6,
				F = 16 * 16 * 16;
	float	   *X = malloc(sizeof(float) * n * F);
	int			y[6];
	nn_workspace *ws = nn_workspace_create(m, n);
	nn_workspace *w1 = nn_workspace_create(m, 1);
	float	   *ga = calloc(m->n_params, sizeof(float)),
			   *gb = calloc(m->n_params, sizeof(float));
	float	   *gia = malloc(sizeof(float) * n * F),
			   *gib = malloc(sizeof(float) * n * F);
	float		dl[6 * 3];
	double		maxerr = 0.0;

	random_rows(7, X, y, n, F, 3);
	CHECK(ws->col_rows < n);	/* 16 * 16 * 225 * 16 floats per image: several chunks */
	nn_forward(m, ws, X, n);
	nn_softmax_ce(ws->act[1], y, n, 3, 1.0f, dl, NULL);
	nn_backward(m, ws, X, n, dl, ga, gia);
	for (int i = 0; i < n; i++)
	{
		nn_forward(m, w1, X + (size_t) i * F, 1);
		nn_backward(m, w1, X + (size_t) i * F, 1, dl + i * 3, gb, gib + (size_t) i * F);
	}
	for (size_t j = 0; j < m->n_params; j++)
		maxerr = fmax(maxerr, fabs(ga[j] - gb[j]) / (1.0 + fabs(gb[j])));
	for (size_t j = 0; j < (size_t) n * F; j++)
		maxerr = fmax(maxerr, fabs(gia[j] - gib[j]) / (1.0 + fabs(gib[j])));
	CHECK(maxerr < 1e-4);
	nn_workspace_free(ws);
	nn_workspace_free(w1);
	free(X);
	free(ga);
	free(gb);
	free(gia);
	free(gib);
	nn_free(m);
}

/* ---------------------------------------------------------------- serialisation */

/* Put a little-endian u32 at p. */
static void
poke32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char) (v >> (8 * i));
}

/* Deserialise buf after one u32 edit and a fresh hash; NULL expected with `word` in the error. */
static void
expect_bad_v3(const unsigned char *buf, size_t size, size_t offset, uint32_t value, const char *word)
{
	unsigned char *bad = malloc(size);
	char		err[160] = "";
	uint64_t	h;
	nn_model   *r;

	memcpy(bad, buf, size);
	poke32(bad + offset, value);
	h = nn_fnv1a64(bad, size - 8, NN_FNV_OFFSET);
	for (int i = 0; i < 8; i++)
		bad[size - 8 + i] = (unsigned char) (h >> (8 * i));
	r = nn_deserialize(bad, size, err, sizeof(err));
	CHECK(r == NULL);
	if (strstr(err, word) == NULL)
		fprintf(stderr, "  expected \"%s\" in \"%s\"\n", word, err);
	CHECK(strstr(err, word) != NULL);
	nn_free(r);
	free(bad);
}

/* A CNN round-trips through format version 3 (stages, standardisation, params, predictions). */
UNIT_TEST(cnn_serialize_v3_roundtrip)
{
	static const int shape[3] = {1, 8, 8};
	nn_layer_spec specs[] = {CONV(3, 3), POOL(2), CONV(2, 1), DENSE(5)};
	nn_model   *m = cnn_make(shape, 4, specs, 3, 71);
	float		X[5 * 64];
	int			y[5],
				pa[5],
				pb[5];
	size_t		size;
	unsigned char *buf;
	nn_model   *r;
	char		err[160];

	random_rows(8, X, y, 5, 64, 3);
	nn_set_standardization(m, X, 5);
	nn_set_feature_range(m, X, 5);
	size = nn_serialized_size(m);
	CHECK(size == 12 + 4 * 3 + 16 + 12 * 3 + 4 + 16 * 64 + 4 * m->n_params + 8);
	buf = malloc(size);
	nn_serialize(m, buf);
	CHECK(buf[4] == 3);
	r = nn_deserialize(buf, size, err, sizeof(err));
	CHECK(r != NULL);
	if (r != NULL)
	{
		nn_workspace *wa = nn_workspace_create(m, 5),
				   *wb = nn_workspace_create(r, 5);

		CHECK(r->n_stages == 3 && r->n_params == m->n_params && NN_FEATURES(r) == 64);
		CHECK(memcmp(r->stage, m->stage, sizeof(m->stage)) == 0);
		CHECK(memcmp(r->params, m->params, sizeof(float) * m->n_params) == 0);
		CHECK(memcmp(r->mean, m->mean, sizeof(float) * 64) == 0 && r->standardized == 1);
		CHECK(memcmp(r->feat_hi, m->feat_hi, sizeof(float) * 64) == 0);
		nn_predict(m, wa, X, 5, pa);
		nn_predict(r, wb, X, 5, pb);
		CHECK(memcmp(pa, pb, sizeof(pa)) == 0);
		nn_workspace_free(wa);
		nn_workspace_free(wb);
	}
	/* stage block: count, shape, kinds, sizes, filters, and its fit with the dense input */
	expect_bad_v3(buf, size, 24, 0, "stage count");
	expect_bad_v3(buf, size, 24, 9, "stage count");
	expect_bad_v3(buf, size, 24, 2, "stages give");
	expect_bad_v3(buf, size, 28, 2, "truncated");	/* 2 channels: more params than stored */
	expect_bad_v3(buf, size, 32, 0, "input shape");
	expect_bad_v3(buf, size, 40, 7, "bad stage 1");
	expect_bad_v3(buf, size, 44, 4, "odd");
	expect_bad_v3(buf, size, 56, 9, "does not fit");
	expect_bad_v3(buf, size, 60, 5, "bad stage 2");	/* a pool with filters */
	expect_bad_v3(buf, size, 64, 0, "bad stage 3");
	expect_bad_v3(buf, size, 12, 20, "stages give");
	expect_bad_v3(buf, size, 4, 2, "trailing");	/* read as an MLP of 32 features */
	nn_free(r);
	free(buf);
	nn_free(m);
}

/* ---------------------------------------------------------------- training */

/* A small CNN learns the bars images (train and held-out accuracy), reproducibly. */
UNIT_TEST(cnn_trains_on_bars)
{
	bars_sets	d;
	nn_model   *a,
			   *b;
	double		acc0;

	bars_sets_make(&d);
	a = bars_model(5);
	acc0 = nn_accuracy(a, d.Xt, d.yt, 150);
	nn_free(a);
	a = bars_trained(d.X, d.y, d.n, 15);
	b = bars_trained(d.X, d.y, d.n, 15);
	CHECK(acc0 < 0.6);
	CHECK(nn_accuracy(a, d.X, d.y, d.n) > 0.95);
	CHECK(nn_accuracy(a, d.Xt, d.yt, 150) > 0.9);
	CHECK(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0);
	nn_free(a);
	nn_free(b);
	bars_sets_free(&d);
}

/* ---------------------------------------------------------------- unlearning */

/* PGD through the stages: inside the ball and box, and most examples reach their target. */
UNIT_TEST(cnn_pgd_reaches_targets)
{
	int			n = 300,
				per = 2;
	float	   *X = malloc(sizeof(float) * n * 64);
	int		   *y = malloc(sizeof(int) * n);
	nn_model   *m;
	float	   *Xa = malloc(sizeof(float) * 8 * per * 64);
	int			ta[16],
				pred[16],
				reached = 0;
	nn_rng		rng;
	nn_workspace *ws;

	bars_make(1, X, y, n);
	m = bars_trained(X, y, n, 10);
	nn_rng_seed(&rng, 3);
	ul_pgd_targeted(m, X, y, 8, per, 8.0f, 0.5f, 60, &rng, Xa, ta);
	ws = nn_workspace_create(m, 16);
	nn_predict(m, ws, Xa, 8 * per, pred);
	for (int r = 0; r < 8 * per; r++)
	{
		double		ss = 0.0;

		for (int d = 0; d < 64; d++)
		{
			double		dd = Xa[r * 64 + d] - X[(r / per) * 64 + d];

			/* the box, up to the rounding of the map back from standardised space */
			CHECK(Xa[r * 64 + d] >= m->feat_lo[d] - 1e-5f && Xa[r * 64 + d] <= m->feat_hi[d] + 1e-5f);
			ss += dd * dd;
		}
		CHECK(ta[r] != y[r / per]);
		reached += pred[r] == ta[r];
	}
	CHECK(reached >= 8 * per * 3 / 4);
	nn_workspace_free(ws);
	nn_free(m);
	free(X);
	free(y);
	free(Xa);
}

/* MAS weights of a CNN: every tensor (conv ones included) normalised to [0, 1] with its extremes. */
UNIT_TEST(cnn_mas_per_tensor)
{
	int			n = 90;
	float	   *X = malloc(sizeof(float) * n * 64);
	int		   *y = malloc(sizeof(int) * n);
	nn_model   *m;
	float	   *omega,
			   *w;
	size_t		start[NN_MAX_TENSORS],
				end[NN_MAX_TENSORS];
	int			nt;

	bars_make(1, X, y, n);
	m = bars_trained(X, y, n, 3);
	omega = malloc(sizeof(float) * m->n_params);
	w = malloc(sizeof(float) * m->n_params);
	ul_mas_weights(m, X, n, omega, w);
	nt = nn_param_tensors(m, start, end, NN_MAX_TENSORS);
	CHECK(nt == 8);
	CHECK(start[0] == m->stage[0].w_off && end[nt - 1] == m->n_params);
	for (int t = 0; t < nt; t++)
	{
		float		lo = 2.0f,
					hi = -1.0f;

		for (size_t j = start[t]; j < end[t]; j++)
		{
			CHECK(omega[j] >= 0.0f);
			lo = w[j] < lo ? w[j] : lo;
			hi = w[j] > hi ? w[j] : hi;
		}
		CHECK(lo == 0.0f && hi == 1.0f);
	}
	nn_free(m);
	free(X);
	free(y);
	free(omega);
	free(w);
}

/*
 * Every method forgets rows of a CNN: 4 rows, or 1 for neggrad (on this
 * confident net, plain gradient ascent on 4 rows runs away: the rows it
 * misclassifies first dominate the gradient until the weights overflow,
 * the paper's reason for the ADV term); the default keeps held-out accuracy
 * within 10 points.
 */
UNIT_TEST(cnn_every_method_forgets)
{
	bars_sets	d;
	nn_model   *m;
	double		acc0;

	bars_sets_make(&d);
	m = bars_trained(d.X, d.y, d.n, 15);
	acc0 = nn_accuracy(m, d.Xt, d.yt, 150);
	CHECK(nn_accuracy(m, d.X, d.y, 4) == 1.0);	/* the first rows are learned */
	for (int meth = 0; meth <= UL_METHOD_DEFAULT; meth++)
	{
		nn_model   *a = nn_clone(m);
		int			k = meth == UL_METHOD_NEGGRAD ? 1 : 4;
		ul_options	o;
		ul_result	r;
		char		err[160];

		ul_options_default(&o, (ul_method) meth);
		o.pgd_steps = 20;
		o.adv_per_row = 5;
		CHECK(ul_unlearn(a, d.X, d.y, k, NULL, NULL, NULL, 0, d.X + k * 64, d.y + k, d.n - k,
						 &o, NULL, NULL, &r, err, sizeof(err)) == 0);
		if (!(r.success == 1 && r.forgotten == k))
			fprintf(stderr, "  %s: forgot %d of %d in %d steps\n", ul_method_name((ul_method) meth),
					r.forgotten, k, r.steps);
		CHECK(r.success == 1 && r.forgotten == k);
		CHECK(nn_accuracy(a, d.X, d.y, k) == 0.0);
		CHECK(nn_params_finite(a));
		CHECK(memcmp(a->params, m->params, sizeof(float) * m->n_params) != 0);
		if (meth == UL_METHOD_DEFAULT)
			CHECK(nn_accuracy(a, d.Xt, d.yt, 150) >= acc0 - 0.10);
		nn_free(a);
	}
	nn_free(m);
	bars_sets_free(&d);
}

/* ---------------------------------------------------------------- threads */

/* What one nn_par_for call saw: how often each item ran, and on how many ranges. */
typedef struct par_seen
{
	int			count[40];
	int			ranges;
} par_seen;

static void
par_mark(void *arg, size_t lo, size_t hi)
{
	par_seen   *s = arg;

	__atomic_add_fetch(&s->ranges, 1, __ATOMIC_SEQ_CST);
	for (size_t i = lo; i < hi; i++)
		s->count[i]++;
}

/* Forward logits and parameter and input gradients of n rows, Winograd on or off. */
static void
cnn_pass(nn_model *m, nn_workspace *ws, const float *X, const int *y, int n, int wino,
		 float *logits, float *g, float *gi)
{
	int			C = NN_CLASSES(m);
	float	   *dl = malloc(sizeof(float) * n * C);

	nn_wino_set_enabled(wino);
	memcpy(logits, nn_forward(m, ws, X, n), sizeof(float) * n * C);
	nn_softmax_ce(logits, y, n, C, 1.0f / n, dl, NULL);
	memset(g, 0, sizeof(float) * m->n_params);
	nn_backward(m, ws, X, n, dl, g, gi);
	nn_wino_set_enabled(1);
	free(dl);
}

/* The largest |a - b| / (1 + |b|) over n values. */
static double
max_rel_diff(const float *a, const float *b, size_t n)
{
	double		e = 0.0;

	for (size_t i = 0; i < n; i++)
		e = fmax(e, fabs(a[i] - b[i]) / (1.0 + fabs(b[i])));
	return e;
}

/*
 * Winograd F(2x2, 3x3) against the im2col path on the same model and rows:
 * a first convolution on the CHW input (4 channels, 30 x 30, three chunks)
 * and a second on HWC tiles with odd sides (15 x 15), on one and two threads:
 * the logits, every parameter gradient and the input gradient agree.
 */
UNIT_TEST(cnn_winograd_matches_im2col)
{
	static const int shape[3] = {4, 30, 30};
	nn_layer_spec specs[] = {CONV(8, 3), POOL(2), CONV(6, 3), POOL(3), DENSE(10)};
	nn_model   *m = cnn_make(shape, 5, specs, 4, 81);
	int			n = 20,
				F = 4 * 30 * 30;
	nn_workspace *ws = nn_workspace_create(m, n);
	float	   *X = malloc(sizeof(float) * n * F),
			   *gi[2],
			   *g[2],
				z[2][20 * 4];
	int			y[20];

	random_rows(82, X, y, n, F, 4);
	CHECK(nn_wino_applies(&m->stage[0]) && nn_wino_applies(&m->stage[2]) && ws->col_rows < n / 2);
	for (int threads = 1; threads <= 2; threads++)
	{
		nn_set_threads(threads);
		for (int w = 0; w < 2; w++)
		{
			g[w] = malloc(sizeof(float) * m->n_params);
			gi[w] = malloc(sizeof(float) * n * F);
			cnn_pass(m, ws, X, y, n, w, z[w], g[w], gi[w]);
		}
		CHECK(max_rel_diff(z[1], z[0], (size_t) n * 4) < 1e-5);
		CHECK(max_rel_diff(g[1], g[0], m->n_params) < 1e-5);
		CHECK(max_rel_diff(gi[1], gi[0], (size_t) n * F) < 1e-5);
		CHECK(fabs(g[0][m->stage[2].w_off]) + fabs(gi[0][F / 2]) > 1e-6);	/* not trivially zero */
		for (int w = 0; w < 2; w++)
		{
			free(g[w]);
			free(gi[w]);
		}
	}
	nn_set_threads(1);
	nn_workspace_free(ws);
	free(X);
	nn_free(m);
}

/* nn_par_for runs every item once, in at most nn_get_threads() ranges of at least grain items. */
UNIT_TEST(cnn_par_for_covers_once)
{
	static const struct
	{
		int			threads;
		size_t		n,
					grain;
		int			ranges;
	}			cases[] = {{1, 40, 1, 1}, {2, 40, 1, 2}, {3, 40, 1, 3}, {3, 40, 15, 2}, {3, 40, 41, 1},
	{4, 3, 1, 3}, {2, 0, 1, 0}, {0, 5, 1, 1}};

	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++)
	{
		par_seen	s;

		memset(&s, 0, sizeof(s));
		nn_set_threads(cases[c].threads);
		nn_par_for(cases[c].n, cases[c].grain, par_mark, &s);
		CHECK(s.ranges == cases[c].ranges);
		for (size_t i = 0; i < 40; i++)
			CHECK(s.count[i] == (i < cases[c].n ? 1 : 0));
	}
	nn_set_threads(1);
	CHECK(nn_get_threads() == 1);
}

/*
 * The work split over threads gives the same bytes as one thread: a forward
 * and backward pass (parameter and input gradients, every stage large
 * enough to be split, each convolution in several chunks: im2col for the
 * first, Winograd for the second) and two epochs of standardised Adam
 * training.
 */
UNIT_TEST(cnn_threads_same_bytes)
{
	static const int shape[3] = {1, 28, 28};
	static const nn_layer_spec specs[] = {CONV(8, 3), POOL(2), CONV(8, 3), POOL(2), DENSE(256)};
	int			n = 192,
				b = 64,
				F = 784;
	float	   *X = malloc(sizeof(float) * n * F);
	int		   *y = malloc(sizeof(int) * n);
	float	   *ref = NULL,
			   *refgi = malloc(sizeof(float) * b * F),
			   *refp = NULL;
	size_t		np = 0;

	random_rows(71, X, y, n, F, 4);
	for (int threads = 1; threads <= 3; threads++)
	{
		nn_model   *m = cnn_make(shape, 5, specs, 4, 72);
		nn_workspace *ws = nn_workspace_create(m, b);
		float	   *g = calloc(m->n_params, sizeof(float)),
				   *gi = malloc(sizeof(float) * b * F),
					dl[64 * 4];
		nn_train_options o;

		nn_set_threads(threads);
		CHECK(ws->col_rows < b / 2 && !nn_wino_applies(&m->stage[0]) && nn_wino_applies(&m->stage[2]));
		nn_forward(m, ws, X, b);
		nn_softmax_ce(ws->act[m->n_layers], y, b, 4, 1.0f / b, dl, NULL);
		nn_backward(m, ws, X, b, dl, g, gi);
		nn_train_options_default(&o);
		o.epochs = 2;
		o.batch_size = b;
		o.standardize = 1;
		nn_train(m, X, y, n, &o, NULL, NULL);
		if (threads == 1)
		{
			np = m->n_params;
			ref = g;
			refp = malloc(sizeof(float) * np);
			memcpy(refp, m->params, sizeof(float) * np);
			memcpy(refgi, gi, sizeof(float) * b * F);
		}
		else
		{
			CHECK(memcmp(ref, g, sizeof(float) * np) == 0);
			CHECK(memcmp(refgi, gi, sizeof(float) * b * F) == 0);
			CHECK(memcmp(refp, m->params, sizeof(float) * np) == 0);
			free(g);
		}
		free(gi);
		nn_workspace_free(ws);
		nn_free(m);
	}
	nn_set_threads(1);
	free(ref);
	free(refp);
	free(refgi);
	free(X);
	free(y);
}

static int	cancel_calls = 0;

/* The cancel hook of the test below: counts. */
static void
counting_cancel(void)
{
	cancel_calls++;
}

/*
 * A convolution over many im2col chunks runs in rounds with cancel points
 * between them: the batch's logits are each row's alone (within rounding),
 * and its gradient the sum of its two halves'.
 */
UNIT_TEST(cnn_passes_have_cancel_points)
{
	int			shape[3] = {1, 28, 28};
	nn_layer_spec specs[] = {CONV(8, 5), DENSE(16)};
	int			n = 200, F = 784, C = 3;
	nn_model   *m = cnn_make(shape, 2, specs, C, 31);
	nn_workspace *ws = m ? nn_workspace_create(m, n) : NULL;
	float	   *X = malloc(sizeof(float) * n * F), *lg = malloc(sizeof(float) * n * C);
	float	   *dl = malloc(sizeof(float) * n * C);
	float	   *g_all = m ? calloc(m->n_params, sizeof(float)) : NULL, *g_halves = m ? calloc(m->n_params, sizeof(float)) : NULL;
	int		   *y = malloc(sizeof(int) * n);
	int			fwd_calls;

	if (!m || !ws)
	{
		CHECK(0);
		return;
	}
	random_rows(41, X, y, n, F, C);
	cancel_calls = 0;
	nn_set_cancel_hook(counting_cancel);
	memcpy(lg, nn_forward(m, ws, X, n), sizeof(float) * n * C);
	fwd_calls = cancel_calls;
	nn_softmax_ce(lg, y, n, C, 1.0f, dl, NULL);
	nn_backward(m, ws, X, n, dl, g_all, NULL);
	nn_set_cancel_hook(NULL);
	/* 13 images a chunk (the 1 MB im2col cap), 16 chunks, rounds of 4 a thread */
	CHECK(fwd_calls >= 1);
	CHECK(cancel_calls > fwd_calls);
	for (int i = 0; i < n; i++)
	{
		const float *one = nn_forward(m, ws, X + (size_t) i * F, 1);

		for (int c = 0; c < C; c++)
			CHECK_CLOSE(one[c], lg[i * C + c], 1e-4 * (1.0 + fabs(lg[i * C + c])));
	}
	for (int h = 0; h < 2; h++)
	{
		nn_forward(m, ws, X + (size_t) h * (n / 2) * F, n / 2);
		nn_backward(m, ws, X + (size_t) h * (n / 2) * F, n / 2, dl + (size_t) h * (n / 2) * C, g_halves, NULL);
	}
	for (size_t i = 0; i < m->n_params; i++)
		CHECK_CLOSE(g_halves[i], g_all[i], 1e-4 * (1.0 + fabs(g_all[i])));
	free(X);
	free(lg);
	free(dl);
	free(g_all);
	free(g_halves);
	free(y);
	nn_workspace_free(ws);
	nn_free(m);
}

const unit_case cnn_tests[] = {
	UNIT_ENTRY(cnn_passes_have_cancel_points),
	UNIT_ENTRY(cnn_layer_lists_checked),
	UNIT_ENTRY(cnn_layout_and_plan),
	UNIT_ENTRY(cnn_dense_only_is_the_mlp),
	UNIT_ENTRY(cnn_forward_matches_direct_convolution),
	UNIT_ENTRY(cnn_gradients_conv),
	UNIT_ENTRY(cnn_gradients_maxpool),
	UNIT_ENTRY(cnn_gradients_full_network),
	UNIT_ENTRY(cnn_chunks_and_accumulation),
	UNIT_ENTRY(cnn_serialize_v3_roundtrip),
	UNIT_ENTRY(cnn_trains_on_bars),
	UNIT_ENTRY(cnn_pgd_reaches_targets),
	UNIT_ENTRY(cnn_mas_per_tensor),
	UNIT_ENTRY(cnn_every_method_forgets),
	UNIT_ENTRY(cnn_par_for_covers_once),
	UNIT_ENTRY(cnn_winograd_matches_im2col),
	UNIT_ENTRY(cnn_threads_same_bytes),
	{NULL, NULL}
};
