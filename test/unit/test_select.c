/*
 * test_select.c: choosing the weight decay on held-out rows (select.c): the
 * step budget, no decay on a problem every candidate learns, a decay chosen
 * where the rows are few and noisy, determinism, and init left untouched.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "unit.h"

/* Counts the epochs trained, over every fold and candidate. */
static int
count_epochs(void *arg, int epoch, int epochs, double loss)
{
	(void) epoch;
	(void) epochs;
	(void) loss;
	(*(int *) arg)++;
	return 0;
}

/*
 * n rows of two blobs in the first two of F features (centres +-sep on the
 * first), the other features pure noise; labels 0/1 alternate.
 */
static void
noisy_blobs(float *X, int *y, int n, int F, float sep, uint64_t seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int i = 0; i < n; i++)
	{
		y[i] = i % 2;
		for (int f = 0; f < F; f++)
			X[(size_t) i * F + f] = nn_rng_normal(&rng);
		X[(size_t) i * F] += y[i] ? sep : -sep;
	}
}

/* The budget counts every candidate's steps over every fold; too few rows per class is never affordable. */
UNIT_TEST(select_budget)
{
	nn_train_options o;

	nn_train_options_default(&o);
	o.batch_size = 128;
	o.epochs = 200;
	/* 614 rows: folds of 409 or 410 rows, 4 batches each: 3 x 800 steps x 4 candidates */
	CHECK(nn_select_affordable(614, 2, &o, 9600));
	CHECK(!nn_select_affordable(614, 2, &o, 9599));
	/* 1 600 rows: 3 x 9 x 200 x 4 = 21 600 steps, over a 20 000-step budget */
	CHECK(!nn_select_affordable(1600, 2, &o, 20000));
	CHECK(nn_select_affordable(1500, 2, &o, 20000));
	/* fewer rows than folds x classes */
	CHECK(!nn_select_affordable(29, 10, &o, 1000000));
	CHECK(nn_select_affordable(30, 10, &o, 1000000));
}

/*
 * Separable blobs: every candidate gets every held-out row right, and no
 * decay (the most confident fit) has the lowest held-out loss.
 */
UNIT_TEST(select_separable_no_decay)
{
	enum { N = 90, F = 2 };
	float		X[N * F];
	int			y[N];
	int			hidden[] = {8};
	long		correct[NN_SELECT_CANDIDATES];
	double		loss[NN_SELECT_CANDIDATES];
	nn_train_options o;
	nn_model   *init = nn_create(F, 1, hidden, 2, 7, NULL, 0);
	int			epochs_run = 0;
	float		wd;

	noisy_blobs(X, y, N, F, 6.0f, 3);
	nn_train_options_default(&o);
	o.epochs = 30;
	o.lr = 0.01f;
	o.standardize = 1;
	wd = nn_select_weight_decay(init, X, y, N, &o, loss, correct, count_epochs, &epochs_run);
	CHECK(wd == 0.0f);
	for (int c = 0; c < NN_SELECT_CANDIDATES; c++)
		CHECK(correct[c] == N && loss[c] >= loss[0]);
	/* every fold trained every candidate for every epoch */
	CHECK(epochs_run == NN_SELECT_FOLDS * NN_SELECT_CANDIDATES * 30);
	nn_free(init);
}

/* n rows of the "hash" noise problem: feature 0 carries the label weakly, the other F - 1 none. */
static void
hash_noise(float *X, int *y, int n, int F, float sep)
{
	for (int i = 0; i < n; i++)
	{
		y[i] = (i + 1) % 2;
		for (int f = 0; f < F; f++)
		{
			double		h = sin((i + 1) * 12.9898 + f * 78.233) * 43758.5453;

			X[(size_t) i * F + f] = (float) (h - floor(h));
		}
		X[(size_t) i * F] += y[i] * sep;
	}
}

/*
 * Few rows, one weak informative feature among 30 of noise, a wide network
 * trained long: the held-out rows favour a decay; the selection is
 * deterministic and leaves init's parameters untouched.
 */
UNIT_TEST(select_noisy_prefers_decay)
{
	enum { N = 300, F = 31 };
	float	   *X = malloc(sizeof(float) * N * F);
	int			y[N];
	int			hidden[] = {64};
	long		a[NN_SELECT_CANDIDATES],
				b[NN_SELECT_CANDIDATES];
	double		la[NN_SELECT_CANDIDATES],
				lb[NN_SELECT_CANDIDATES];
	nn_train_options o;
	nn_model   *init = nn_create(F, 1, hidden, 2, 42, NULL, 0);
	float	   *before = malloc(sizeof(float) * init->n_params);
	float		wd_a,
				wd_b;
	int			chosen = -1;

	memcpy(before, init->params, sizeof(float) * init->n_params);
	hash_noise(X, y, N, F, 0.3f);
	nn_train_options_default(&o);
	o.epochs = 200;
	o.batch_size = 32;
	o.standardize = 1;
	wd_a = nn_select_weight_decay(init, X, y, N, &o, la, a, NULL, NULL);
	wd_b = nn_select_weight_decay(init, X, y, N, &o, lb, b, NULL, NULL);
	CHECK(wd_a > 0.0f);
	CHECK(wd_a == wd_b && memcmp(a, b, sizeof(a)) == 0 && memcmp(la, lb, sizeof(la)) == 0);
	for (int c = 0; c < NN_SELECT_CANDIDATES; c++)
	{
		CHECK(a[c] >= 0 && a[c] <= N && la[c] > 0);
		if (nn_select_candidates[c] == wd_a)
			chosen = c;
	}
	/* the chosen candidate has the lowest held-out loss, strictly below no decay's */
	CHECK(chosen > 0);
	for (int c = 0; c < NN_SELECT_CANDIDATES && chosen > 0; c++)
		CHECK(la[chosen] <= la[c]);
	CHECK(chosen > 0 && la[chosen] < la[0]);
	CHECK(memcmp(before, init->params, sizeof(float) * init->n_params) == 0);
	nn_free(init);
	free(before);
	free(X);
}

const unit_case select_tests[] = {
	UNIT_ENTRY(select_budget),
	UNIT_ENTRY(select_separable_no_decay),
	UNIT_ENTRY(select_noisy_prefers_decay),
	{NULL, NULL}
};
