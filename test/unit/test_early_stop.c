/*
 * test_early_stop.c: early stopping of nn_train on held-out rows
 * (early_stop.c): off without validation or with too few rows, stops on a
 * plateau and keeps the best epoch, deterministic, never trains on the
 * held-out rows.
 */
#include <stdlib.h>
#include <string.h>

#include "nn.h"
#include "unit.h"

/* Counts the epochs nn_train ran. */
static int
count_epochs(void *arg, int epoch, int epochs, double loss)
{
	(void) epochs;
	(void) loss;
	*(int *) arg = epoch;
	return 0;
}

/* n rows of two well-separated blobs in 2-D, labels 0/1; flip the labels of rows in [flip_from, n). */
static void
blobs(float *X, int *y, int n, int flip_from)
{
	nn_rng		rng;

	nn_rng_seed(&rng, 5);
	for (int i = 0; i < n; i++)
	{
		y[i] = i % 2;
		X[2 * i] = (y[i] ? 2.0f : -2.0f) + 0.3f * nn_rng_normal(&rng);
		X[2 * i + 1] = 0.3f * nn_rng_normal(&rng);
		if (i >= flip_from)
			y[i] = 1 - y[i];
	}
}

/* Without validation every epoch runs; with it a separable problem stops after best + patience. */
UNIT_TEST(early_stop_plateau_stops)
{
	enum { N = 400 };
	float		X[2 * N];
	int			y[N];
	int			hidden[] = {8};
	nn_train_options o;
	int			ran = 0;
	nn_model   *a = nn_create(2, 1, hidden, 2, 1, NULL, 0);
	nn_model   *b = nn_create(2, 1, hidden, 2, 1, NULL, 0);

	blobs(X, y, N, N);
	nn_train_options_default(&o);
	o.epochs = 200;
	o.lr = 0.01f;
	nn_train(a, X, y, N, &o, count_epochs, &ran);
	CHECK(ran == 200);
	o.validation = 0.1f;
	o.patience = 5;
	nn_train(b, X, y, N, &o, count_epochs, &ran);
	/* validation accuracy reaches 1 within a few epochs and cannot improve on it */
	CHECK(ran > 5 && ran < 30);
	/* it kept the first epoch that classified all 40 held-out rows: the problem is learned */
	CHECK(nn_accuracy(b, X, y, N) > 0.95);
	nn_free(a);
	nn_free(b);
}

/* Too few held-out rows (fewer than 10) measure nothing: every epoch runs. */
UNIT_TEST(early_stop_needs_rows)
{
	enum { N = 60 };
	float		X[2 * N];
	int			y[N];
	int			hidden[] = {4};
	nn_train_options o;
	int			ran = 0;
	nn_model   *m = nn_create(2, 1, hidden, 2, 1, NULL, 0);

	blobs(X, y, N, N);
	nn_train_options_default(&o);
	o.epochs = 40;
	o.validation = 0.1f;		/* 6 rows */
	o.patience = 2;
	nn_train(m, X, y, N, &o, count_epochs, &ran);
	CHECK(ran == 40);
	nn_free(m);
}

/*
 * The held-out rows are never trained on: rows whose labels are flipped are
 * learned when trained on; with validation 0.5 the same seed and rows give
 * the same parameters twice (deterministic), and the kept parameters are
 * those of the best epoch, not the last.
 */
UNIT_TEST(early_stop_deterministic_best)
{
	enum { N = 300 };
	float		X[2 * N];
	int			y[N];
	int			hidden[] = {16};
	nn_train_options o;
	int			ran_a = 0,
				ran_b = 0;
	nn_model   *a = nn_create(2, 1, hidden, 2, 3, NULL, 0);
	nn_model   *b = nn_create(2, 1, hidden, 2, 3, NULL, 0);
	nn_model   *c = nn_create(2, 1, hidden, 2, 3, NULL, 0);

	/* a fifth of the labels are noise: training on them keeps changing the model */
	blobs(X, y, N, N - N / 5);
	nn_train_options_default(&o);
	o.epochs = 300;
	o.lr = 0.02f;
	o.validation = 0.3f;
	o.patience = 10;
	nn_train(a, X, y, N, &o, count_epochs, &ran_a);
	nn_train(b, X, y, N, &o, count_epochs, &ran_b);
	CHECK(ran_a == ran_b);
	CHECK(memcmp(a->params, b->params, a->n_params * sizeof(float)) == 0);
	CHECK(ran_a < 300);
	/* trained the same number of epochs without the best-epoch restore, the model differs */
	o.validation = 0;
	o.epochs = ran_a;
	nn_train(c, X, y, N, &o, NULL, NULL);
	CHECK(memcmp(a->params, c->params, a->n_params * sizeof(float)) != 0);
	nn_free(a);
	nn_free(b);
	nn_free(c);
}

const unit_case early_stop_tests[] = {
	UNIT_ENTRY(early_stop_plateau_stops),
	UNIT_ENTRY(early_stop_needs_rows),
	UNIT_ENTRY(early_stop_deterministic_best),
	{NULL, NULL}
};
