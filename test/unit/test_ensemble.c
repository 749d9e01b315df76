/*
 * test_ensemble.c: sharded models (ensemble.c): the shard hash, the
 * ensemble's averaged probabilities and predictions, its byte format
 * (version 4), clone and the refusals.
 */
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "unit.h"

enum
{
	EN_N = 30, EN_F = 5, EN_C = 3, EN_S = 3
};

/* Three MLPs of one shape with different seeds, each with its own standardisation. */
static void
make_members(nn_model **m, const float *X)
{
	int			hidden[] = {6};

	for (int k = 0; k < EN_S; k++)
	{
		m[k] = nn_create(EN_F, 1, hidden, EN_C, 100 + (uint64_t) k, NULL, 0);
		if (m[k])
			nn_set_standardization(m[k], X + k * EN_F, EN_N - k);
	}
}

/* Rows of normal features from seed. */
static void
make_rows(float *X, int n, uint64_t seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int i = 0; i < n * EN_F; i++)
		X[i] = 2.0f * nn_rng_normal(&rng);
}

/* The shard hash: pinned values (splitmix64's finaliser), its range, and an even spread. */
UNIT_TEST(shard_of_is_pinned_and_even)
{
	int			count[8] = {0};

	CHECK(nn_shard_of(0, 8) == 0);
	CHECK(nn_shard_of(1, 8) == 5);
	CHECK(nn_shard_of(2, 8) == 2);
	CHECK(nn_shard_of(3, 8) == 0);
	CHECK(nn_shard_of(42, 8) == 2);
	CHECK(nn_shard_of(-1, 8) == 3);
	CHECK(nn_shard_of(1, 64) == 37);
	CHECK(nn_shard_of(INT64_MAX, 64) == 61);
	CHECK(nn_shard_of(3, 3) == 2);
	for (int64_t id = -5; id < 5; id++)
		CHECK(nn_shard_of(id, 1) == 0);
	/* consecutive ids spread within 10% of the mean */
	for (int64_t id = 1; id <= 8000; id++)
		count[nn_shard_of(id, 8)]++;
	for (int s = 0; s < 8; s++)
		CHECK(count[s] > 900 && count[s] < 1100);
}

/* The ensemble's probabilities are the mean of its members', its predictions their argmax. */
UNIT_TEST(ensemble_averages_members)
{
	nn_model   *m[EN_S];
	nn_model   *e;
	nn_workspace *ws;
	float		X[EN_N * EN_F],
				p[EN_N * EN_C],
				mean[EN_N * EN_C] = {0},
				pk[EN_N * EN_C];
	int			pred[EN_N];
	char		err[256];

	make_rows(X, EN_N, 7);
	make_members(m, X);
	for (int k = 0; k < EN_S; k++)
	{
		ws = nn_workspace_create(m[k], 8);
		nn_predict_proba(m[k], ws, X, EN_N, pk);
		for (int i = 0; i < EN_N * EN_C; i++)
			mean[i] += pk[i] / EN_S;
		nn_workspace_free(ws);
	}
	e = nn_ensemble_create(m, EN_S, err, sizeof(err));
	CHECK(e != NULL && e->n_members == EN_S && e->n_params == 0);
	if (e == NULL)
		return;
	ws = nn_workspace_create(e, 8);	/* batches of 8: chunks end inside the rows */
	nn_predict_proba(e, ws, X, EN_N, p);
	nn_predict(e, ws, X, EN_N, pred);
	for (int i = 0; i < EN_N; i++)
	{
		double		sum = 0;
		int			best = 0;

		for (int j = 0; j < EN_C; j++)
		{
			CHECK_CLOSE(p[i * EN_C + j], mean[i * EN_C + j], 1e-6);
			sum += p[i * EN_C + j];
			if (mean[i * EN_C + j] > mean[i * EN_C + best])
				best = j;
		}
		CHECK_CLOSE(sum, 1.0, 1e-5);
		CHECK(pred[i] == best);
	}
	CHECK(nn_params_finite(e));
	nn_workspace_free(ws);
	nn_free(e);
}

/* An ensemble of one member predicts as the member does. */
UNIT_TEST(ensemble_of_one_is_its_member)
{
	nn_model   *m[EN_S];
	nn_model   *e;
	nn_workspace *ws;
	float		X[EN_N * EN_F],
				pa[EN_N * EN_C],
				pb[EN_N * EN_C];

	make_rows(X, EN_N, 8);
	make_members(m, X);
	ws = nn_workspace_create(m[1], EN_N);
	nn_predict_proba(m[1], ws, X, EN_N, pa);
	nn_workspace_free(ws);
	e = nn_ensemble_create(&m[1], 1, NULL, 0);
	CHECK(e != NULL);
	if (e)
	{
		ws = nn_workspace_create(e, EN_N);
		nn_predict_proba(e, ws, X, EN_N, pb);
		for (int i = 0; i < EN_N * EN_C; i++)
			CHECK_CLOSE(pa[i], pb[i], 1e-6);
		nn_workspace_free(ws);
	}
	nn_free(e);
	nn_free(m[0]);
	nn_free(m[2]);
}

/* Version 4: round trip to the same bytes and probabilities; clone; every corruption refused. */
UNIT_TEST(ensemble_serialize_roundtrip)
{
	nn_model   *m[EN_S];
	nn_model   *e,
			   *r,
			   *c;
	nn_workspace *ws;
	float		X[EN_N * EN_F],
				pa[EN_N * EN_C],
				pb[EN_N * EN_C];
	unsigned char *buf,
			   *buf2;
	size_t		size;
	char		err[256];

	make_rows(X, EN_N, 9);
	make_members(m, X);
	e = nn_ensemble_create(m, EN_S, err, sizeof(err));
	if (e == NULL)
	{
		CHECK(0);
		return;
	}
	size = nn_serialized_size(e);
	CHECK(size == 12 + 8 + EN_S * (8 + nn_serialized_size(m[0])));
	buf = malloc(size);
	buf2 = malloc(size);
	nn_serialize(e, buf);
	CHECK(memcmp(buf, "UNLN", 4) == 0 && buf[4] == 4 && buf[8] == EN_S);
	r = nn_deserialize(buf, size, err, sizeof(err));
	c = nn_clone(e);
	CHECK(r != NULL && r->n_members == EN_S && c != NULL && c->n_members == EN_S);
	if (r && c)
	{
		nn_serialize(r, buf2);
		CHECK(memcmp(buf, buf2, size) == 0);
		nn_serialize(c, buf2);
		CHECK(memcmp(buf, buf2, size) == 0);
		ws = nn_workspace_create(e, EN_N);
		nn_predict_proba(e, ws, X, EN_N, pa);
		nn_predict_proba(r, ws, X, EN_N, pb);
		CHECK(memcmp(pa, pb, sizeof(pa)) == 0);
		nn_workspace_free(ws);
	}
	/* truncation, a flipped byte anywhere, a bad count */
	CHECK(nn_deserialize(buf, size - 1, err, sizeof(err)) == NULL);
	CHECK(nn_deserialize(buf, 16, err, sizeof(err)) == NULL);
	for (size_t at = 8; at < size; at += 37)
	{
		buf[at] ^= 0x10;
		CHECK(nn_deserialize(buf, size, err, sizeof(err)) == NULL);
		buf[at] ^= 0x10;
	}
	nn_free(r);
	nn_free(c);
	nn_free(e);
	free(buf);
	free(buf2);
}

/* Members of another shape, nested ensembles and bad counts are refused; an ensemble is not trained. */
UNIT_TEST(ensemble_refusals)
{
	int			hidden[] = {6},
				other[] = {7};
	nn_model   *m[2];
	nn_model   *e,
			   *nested[2];
	float		X[EN_N * EN_F];
	int			y[EN_N] = {0};
	char		err[256];

	m[0] = nn_create(EN_F, 1, hidden, EN_C, 1, NULL, 0);
	m[1] = nn_create(EN_F, 1, other, EN_C, 2, NULL, 0);
	CHECK(nn_ensemble_create(m, 2, err, sizeof(err)) == NULL && strstr(err, "member 2") != NULL);
	CHECK(nn_ensemble_create(m, 0, err, sizeof(err)) == NULL);
	CHECK(nn_ensemble_create(m, NN_MAX_SHARDS + 1, err, sizeof(err)) == NULL);
	nn_free(m[1]);
	e = nn_ensemble_create(m, 1, err, sizeof(err));
	CHECK(e != NULL);
	if (e == NULL)
		return;
	nested[0] = e;
	nested[1] = e;
	CHECK(nn_ensemble_create(nested, 1, err, sizeof(err)) == NULL);
	make_rows(X, EN_N, 10);
	CHECK(isnan(nn_train(e, X, y, EN_N, NULL, NULL, NULL)));
	nn_free(e);
}

const unit_case ensemble_tests[] = {
	UNIT_ENTRY(shard_of_is_pinned_and_even),
	UNIT_ENTRY(ensemble_averages_members),
	UNIT_ENTRY(ensemble_of_one_is_its_member),
	UNIT_ENTRY(ensemble_serialize_roundtrip),
	UNIT_ENTRY(ensemble_refusals),
	{NULL, NULL}
};
