/*
 * test_stream.c: training a chunk at a time (stats.c, nn_stream_* in
 * fit.c): statistics merged over chunks against those over all rows, one
 * chunk against nn_train byte for byte, determinism for a seed, and that
 * chunked training learns an easy problem.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "unit.h"

enum
{
	ST_N = 600, ST_F = 4, ST_C = 3
};

/* Rows of an easy problem: the class is the argmax of the first three features plus offsets. */
static void
make_problem(float *X, int *y, int n, uint64_t seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int i = 0; i < n; i++)
	{
		int			best = 0;

		for (int j = 0; j < ST_F; j++)
			X[i * ST_F + j] = 3.0f * nn_rng_normal(&rng) + 5.0f * (float) j;
		for (int c = 1; c < ST_C; c++)
			if (X[i * ST_F + c] - 5.0f * c > X[i * ST_F + best] - 5.0f * best)
				best = c;
		y[i] = best;
	}
}

/* A small MLP of the problem's shape. */
static nn_model *
make_net(uint64_t seed)
{
	int			hidden[] = {8};

	return nn_create(ST_F, 1, hidden, ST_C, seed, NULL, 0);
}

/* Options of these tests: Adam, batch 32, standardised. */
static void
options(nn_train_options *o)
{
	nn_train_options_default(o);
	o->batch_size = 32;
	o->standardize = 1;
	o->epochs = 1;
	o->lr = 1e-2f;
}

/* Statistics merged over uneven chunks match those over all rows; one chunk matches exactly. */
UNIT_TEST(stats_merge_matches_whole)
{
	float	   *X = malloc(sizeof(float) * ST_N * ST_F);
	int		   *y = malloc(sizeof(int) * ST_N);
	nn_model   *whole = make_net(1);
	nn_model   *chunked = make_net(1);
	nn_model   *one = make_net(1);
	nn_stats   *s = nn_stats_create(ST_F);
	nn_stats   *s1 = nn_stats_create(ST_F);
	int			cuts[] = {0, 7, 250, 251, 600};

	make_problem(X, y, ST_N, 3);
	nn_set_standardization(whole, X, ST_N);
	nn_set_feature_range(whole, X, ST_N);
	for (int k = 0; k + 1 < (int) (sizeof(cuts) / sizeof(cuts[0])); k++)
		nn_stats_add(s, X + cuts[k] * ST_F, cuts[k + 1] - cuts[k]);
	CHECK(nn_stats_rows(s) == ST_N);
	nn_stats_apply(chunked, s, 1);
	nn_stats_add(s1, X, ST_N);
	nn_stats_apply(one, s1, 1);
	for (int j = 0; j < ST_F; j++)
	{
		CHECK(fabsf(chunked->mean[j] - whole->mean[j]) < 1e-5f * (1.0f + fabsf(whole->mean[j])));
		CHECK(fabsf(chunked->scale[j] - whole->scale[j]) < 1e-5f * whole->scale[j]);
		CHECK(chunked->feat_lo[j] == whole->feat_lo[j] && chunked->feat_hi[j] == whole->feat_hi[j]);
		CHECK(one->mean[j] == whole->mean[j] && one->scale[j] == whole->scale[j]);
	}
	CHECK(chunked->standardized == 1);
	nn_stats_free(s);
	nn_stats_free(s1);
	nn_free(whole);
	nn_free(chunked);
	nn_free(one);
	free(X);
	free(y);
}

/* Trains net for epochs passes over chunks of `rows` rows in a shuffled chunk order. */
static void
train_chunked(nn_model *net, const float *X, const int *y, int rows, int epochs)
{
	nn_train_options o;
	nn_stats   *s = nn_stats_create(ST_F);
	nn_stream  *st;
	int			k = (ST_N + rows - 1) / rows;
	int		   *order = malloc(sizeof(int) * k);

	options(&o);
	for (int c = 0; c < k; c++)
		nn_stats_add(s, X + c * rows * ST_F, c == k - 1 ? ST_N - c * rows : rows);
	nn_stats_apply(net, s, 1);
	st = nn_stream_begin(net, &o, rows);
	CHECK(st != NULL);
	for (int e = 0; e < epochs && st; e++)
	{
		for (int c = 0; c < k; c++)
			order[c] = c;
		nn_stream_shuffle(st, order, k);
		for (int c = 0; c < k; c++)
			CHECK(isfinite(nn_stream_chunk(st, X + order[c] * rows * ST_F, y + order[c] * rows,
										   order[c] == k - 1 ? ST_N - order[c] * rows : rows)));
	}
	nn_stream_end(st);
	nn_stats_free(s);
	free(order);
}

/* One epoch over one chunk is nn_train's epoch, byte for byte. */
UNIT_TEST(stream_one_chunk_is_nn_train)
{
	float	   *X = malloc(sizeof(float) * ST_N * ST_F);
	int		   *y = malloc(sizeof(int) * ST_N);
	nn_model   *a = make_net(5);
	nn_model   *b = make_net(5);
	nn_train_options o;

	make_problem(X, y, ST_N, 4);
	options(&o);
	nn_train(a, X, y, ST_N, &o, NULL, NULL);
	train_chunked(b, X, y, ST_N, 1);
	CHECK(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0);
	CHECK(memcmp(a->mean, b->mean, sizeof(float) * ST_F) == 0);
	nn_free(a);
	nn_free(b);
	free(X);
	free(y);
}

/* Chunks of 70 rows: the same bytes twice for a seed, and the problem learned. */
UNIT_TEST(stream_chunks_deterministic_and_learn)
{
	float	   *X = malloc(sizeof(float) * ST_N * ST_F);
	int		   *y = malloc(sizeof(int) * ST_N);
	nn_model   *a = make_net(6);
	nn_model   *b = make_net(6);
	int			bad[] = {0, 1, 7};

	make_problem(X, y, ST_N, 5);
	train_chunked(a, X, y, 70, 30);
	train_chunked(b, X, y, 70, 30);
	CHECK(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0);
	CHECK(nn_accuracy(a, X, y, ST_N) > 0.9);
	/* a label outside the classes: NaN, nothing trained */
	{
		nn_train_options o;
		nn_stream  *st;

		options(&o);
		st = nn_stream_begin(b, &o, 3);
		CHECK(st != NULL && isnan(nn_stream_chunk(st, X, bad, 3)));
		nn_stream_end(st);
	}
	nn_free(a);
	nn_free(b);
	free(X);
	free(y);
}

const unit_case stream_tests[] = {
	UNIT_ENTRY(stats_merge_matches_whole),
	UNIT_ENTRY(stream_one_chunk_is_nn_train),
	UNIT_ENTRY(stream_chunks_deterministic_and_learn),
	{NULL, NULL}
};
