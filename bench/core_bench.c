/*
 * core_bench.c: benchmark of the unlearning core on Fashion-MNIST.
 *
 * Trains (or loads from a cache) an MLP 784-256-10 with Adam lr 1e-3, batch
 * 128, 10 epochs (with --cnn: the CNN of issue 14, conv 32 3, maxpool 2,
 * conv 64 3, maxpool 2, dense 128, 5 epochs, standardised as the extension
 * trains it); then for every k and seed unlearns k random training rows
 * with each method and prints forgotten %, test accuracy before/after,
 * remaining-row accuracy, steps and seconds; a retrained-from-scratch
 * reference; and the continual experiment (10 requests of 16 rows).
 *
 * Usage: core_bench [--ks 1,8,32,128] [--seeds 3] [--methods neggrad,adv,adv+imp,default]
 *                   [--retrain-seeds 1] [--no-continual] [--max-steps N] [--replay N]
 *                   [--cache /tmp/unlearn_fmnist_mlp.bin] [--data DIR] [--set key=value]...
 *                   [--fset key=value]... [--continual-only] [--cnn] [--train-epochs N]
 *                   [--core-threads N] [--train-seed 42] [--no-winograd]
 * --set key=value changes an option of the default method (any float/int
 * field of ul_options, e.g. lr, margin, replay_weight, distill) for tuning;
 * --fset key=value does the same for the faithful methods (e.g. pgd_eps).
 * --continual-only runs just the continual experiment.
 * --train-epochs N only times training: a fresh model (not cached), N epochs,
 * one line per epoch (seconds, loss), the test accuracy and a "RESULT" line.
 * The core's element-wise loops use OPENBLAS_NUM_THREADS threads, as the
 * extension gives them unlearn.threads (nn_set_threads); --core-threads N
 * sets them apart (1: the loops on one thread, as before they were split).
 * --train-seed N seeds a fresh model's initialisation and shuffling (42;
 * the retrain reference uses it too), e.g. for test accuracy over seeds.
 * --no-winograd runs the 3 x 3 convolutions by im2col (nn_wino_set_enabled).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_data.h"
#include "bench_opts.h"
#include "nn.h"
#include "unlearn_core.h"

#define MAXK 16

static int	use_cnn = 0;		/* --cnn: the convolutional network */
static uint64_t train_seed = 42;	/* --train-seed: init and shuffling of a fresh model */

/* A fresh network (seed 42) and its training options: the MLP, or with --cnn the CNN. */
static nn_model *
new_model(nn_train_options *o)
{
	static const int shape[3] = {1, 28, 28};
	static const nn_layer_spec cnn[] = {{NN_LAYER_CONV, 32, 3}, {NN_LAYER_POOL, 0, 2},
	{NN_LAYER_CONV, 64, 3}, {NN_LAYER_POOL, 0, 2}, {NN_LAYER_DENSE, 128, 0}};
	int			hidden = 256;

	nn_train_options_default(o);
	o->seed = train_seed;
	if (!use_cnn)
		return nn_create(784, 1, &hidden, 10, train_seed, NULL, 0);
	o->epochs = 5;
	o->standardize = 1;
	return nn_create_layers(shape, 5, cnn, 10, train_seed, NULL, 0);
}

/* Trains the reference model or loads it from the cache file. */
static nn_model *
get_model(const char *cache, const float *X, const int *y, int n)
{
	nn_model   *m = bench_load_model(cache);
	nn_train_options o;
	double		t0;

	if (m)
		return m;
	m = new_model(&o);
	t0 = bench_now();
	nn_train(m, X, y, n, &o, NULL, NULL);
	fprintf(stderr, "trained the reference model in %.1f s\n", bench_now() - t0);
	bench_save_model(m, cache);
	return m;
}

/* Prints each epoch's seconds and mean loss (--train-epochs). */
static int
epoch_timer(void *arg, int epoch, int epochs, double loss)
{
	double	   *last = arg;
	double		t = bench_now();

	printf("epoch %d/%d: %.2f s, loss %.4f\n", epoch, epochs, t - *last, loss);
	fflush(stdout);
	*last = t;
	return 0;
}

/* --train-epochs: time training a fresh model for `epochs` epochs, then its test accuracy. */
static int
time_training(int epochs, const float *X, const int *y, int n, const float *Xt, const int *yt, int nt)
{
	nn_train_options o;
	nn_model   *m = new_model(&o);
	double		t0 = bench_now(),
				last = t0,
				acc;

	o.epochs = epochs;
	nn_train(m, X, y, n, &o, epoch_timer, &last);
	last = bench_now() - t0;
	acc = nn_accuracy(m, Xt, yt, nt);
	printf("test accuracy %.2f %%\nRESULT {\"epochs\": %d, \"seconds\": %.2f, \"s_per_epoch\": %.2f, "
		   "\"test_accuracy\": %.4f, \"threads\": %d, \"seed\": %llu}\n", 100 * acc, epochs, last, last / epochs, acc, nn_get_threads(), (unsigned long long) train_seed);
	nn_free(m);
	return 0;
}

/* Share of rows whose prediction differs from y. */
static double
miss_rate(const nn_model *m, const float *X, const int *y, int n)
{
	return 1.0 - nn_accuracy(m, X, y, n);
}

/* Bench state. */
typedef struct bench
{
	float	   *Xtr,
			   *Xte;
	int		   *ytr,
			   *yte;
	int			ntr,
				nte;
	nn_model   *m0;
	double		acc0;
	int			replay_n;
	int			max_steps;
	ul_options	tune;			/* options of the default method */
	char		fset[8][64];	/* --fset overrides for the faithful methods */
	int			n_fset;
	unsigned char *mark;		/* ntr: 1 = forgotten */
	float	   *Xrem;			/* remaining rows (for accuracy) */
	int		   *yrem;
} bench;

/* Draws k distinct training rows with rng into idx (not already marked). */
static void
draw_rows(bench *b, nn_rng *rng, int k, int *idx)
{
	for (int i = 0; i < k; i++)
	{
		int			r;

		do
			r = (int) nn_rng_below(rng, (uint32_t) b->ntr);
		while (b->mark[r]);
		b->mark[r] = 1;
		idx[i] = r;
	}
}

/* Copies rows idx into X/y. */
static void
gather(const bench *b, const int *idx, int k, float *X, int *y)
{
	for (int i = 0; i < k; i++)
	{
		memcpy(X + (size_t) i * 784, b->Xtr + (size_t) idx[i] * 784, sizeof(float) * 784);
		y[i] = b->ytr[idx[i]];
	}
}

/* Remaining rows (unmarked) into Xrem/yrem; returns their count. */
static int
gather_remaining(bench *b)
{
	int			n = 0;

	for (int i = 0; i < b->ntr; i++)
		if (!b->mark[i])
		{
			memcpy(b->Xrem + (size_t) n * 784, b->Xtr + (size_t) i * 784, sizeof(float) * 784);
			b->yrem[n++] = b->ytr[i];
		}
	return n;
}

/* The replay sample a caller passes: min(remaining, replay_n) random unmarked rows. */
static int
replay_sample(const bench *b, nn_rng *rng, float *Xr, int *yr)
{
	int			n = 0;
	int		   *perm = malloc(sizeof(int) * b->ntr);

	for (int i = 0; i < b->ntr; i++)
		perm[i] = i;
	nn_rng_shuffle(rng, perm, b->ntr);
	for (int i = 0; i < b->ntr && n < b->replay_n; i++)
		if (!b->mark[perm[i]])
		{
			memcpy(Xr + (size_t) n * 784, b->Xtr + (size_t) perm[i] * 784, sizeof(float) * 784);
			yr[n++] = b->ytr[perm[i]];
		}
	free(perm);
	return n;
}

/* Options for a method in the bench. */
static ul_options
bench_options(const bench *b, ul_method meth, uint64_t seed)
{
	ul_options	o;

	if (meth == UL_METHOD_DEFAULT)
		o = b->tune;
	else
	{
		ul_options_default(&o, meth);
		for (int i = 0; i < b->n_fset; i++)
			bench_set_option(&o, b->fset[i]);
	}
	o.seed = seed;
	if (b->max_steps > 0)
		o.max_steps = b->max_steps;
	return o;
}

/* One unlearning run; prints a table row. */
static void
run_one(bench *b, ul_method meth, int k, uint64_t seed, double *sum_drop, double *sum_forg, double *sum_sec, int *n_succ)
{
	nn_rng		rng;
	int		   *idx = malloc(sizeof(int) * k);
	float	   *Xf = malloc(sizeof(float) * (size_t) k * 784);
	int		   *yf = malloc(sizeof(int) * k);
	float	   *Xr = malloc(sizeof(float) * (size_t) b->replay_n * 784);
	int		   *yr = malloc(sizeof(int) * b->replay_n);
	int			nr,
				nrem;
	nn_model   *m = nn_clone(b->m0);
	ul_options	o = bench_options(b, meth, seed);
	ul_result	res;
	char		err[256];
	double		t0,
				sec,
				acc,
				racc,
				forg;

	nn_rng_seed(&rng, 1000 + seed * 7919 + (uint64_t) k);
	memset(b->mark, 0, b->ntr);
	draw_rows(b, &rng, k, idx);
	gather(b, idx, k, Xf, yf);
	nr = replay_sample(b, &rng, Xr, yr);
	t0 = bench_now();
	if (ul_unlearn(m, Xf, yf, k, NULL, NULL, NULL, 0,
				   meth == UL_METHOD_DEFAULT ? Xr : NULL, meth == UL_METHOD_DEFAULT ? yr : NULL,
				   meth == UL_METHOD_DEFAULT ? nr : 0,
				   &o, NULL, NULL, &res, err, sizeof(err)) != 0)
	{
		fprintf(stderr, "ul_unlearn: %s\n", err);
		exit(1);
	}
	sec = bench_now() - t0;
	acc = nn_accuracy(m, b->Xte, b->yte, b->nte);
	nrem = gather_remaining(b);
	racc = nn_accuracy(m, b->Xrem, b->yrem, nrem);
	forg = miss_rate(m, Xf, yf, k);
	printf("| %-8s | %4d | %4d | %6.1f | %6.2f | %6.2f | %+6.2f | %6.2f | %6d | %6d | %7.2f | %s\n",
		   ul_method_name(meth), k, (int) seed, 100 * forg, 100 * b->acc0, 100 * acc,
		   100 * (acc - b->acc0), 100 * racc, res.forget_steps, res.steps, sec, res.success ? "yes" : "NO");
	fflush(stdout);
	*sum_drop += 100 * (b->acc0 - acc);
	*sum_forg += 100 * forg;
	*sum_sec += sec;
	*n_succ += res.success;
	nn_free(m);
	free(idx);
	free(Xf);
	free(yf);
	free(Xr);
	free(yr);
}

/* Retrains from scratch without k random rows (same draw as run_one). */
static void
run_retrain(bench *b, int k, uint64_t seed)
{
	nn_rng		rng;
	int		   *idx = malloc(sizeof(int) * k);
	float	   *Xf = malloc(sizeof(float) * (size_t) k * 784);
	int		   *yf = malloc(sizeof(int) * k);
	int			nrem;
	nn_train_options o;
	nn_model   *m = new_model(&o);
	double		t0,
				sec,
				acc;
	char		epochs[16];

	nn_rng_seed(&rng, 1000 + seed * 7919 + (uint64_t) k);
	memset(b->mark, 0, b->ntr);
	draw_rows(b, &rng, k, idx);
	gather(b, idx, k, Xf, yf);
	nrem = gather_remaining(b);
	snprintf(epochs, sizeof(epochs), "%d ep", o.epochs);
	t0 = bench_now();
	nn_train(m, b->Xrem, b->yrem, nrem, &o, NULL, NULL);
	sec = bench_now() - t0;
	acc = nn_accuracy(m, b->Xte, b->yte, b->nte);
	printf("| %-8s | %4d | %4d | %6.1f | %6.2f | %6.2f | %+6.2f | %6.2f | %6s | %6s | %7.2f | %s\n",
		   "retrain", k, (int) seed, 100 * miss_rate(m, Xf, yf, k), 100 * b->acc0, 100 * acc,
		   100 * (acc - b->acc0), 100 * nn_accuracy(m, b->Xrem, b->yrem, nrem), "-", epochs, sec, "-");
	fflush(stdout);
	nn_free(m);
	free(idx);
	free(Xf);
	free(yf);
}

/* Continual unlearning: 10 requests of 16 rows, each keeping the earlier ones. */
static void
run_continual(bench *b, ul_method meth, uint64_t seed)
{
	int			R = 10,
				K = 16;
	nn_rng		rng;
	nn_model   *m = nn_clone(b->m0);
	int		   *idx = malloc(sizeof(int) * R * K);
	float	   *Xall = malloc(sizeof(float) * (size_t) R * K * 784);
	int		   *yall = malloc(sizeof(int) * R * K);
	float	   *Xr = malloc(sizeof(float) * (size_t) b->replay_n * 784);
	int		   *yr = malloc(sizeof(int) * b->replay_n);
	double		t_total = 0.0;
	int			all_ok = 1;

	nn_rng_seed(&rng, 5000 + seed);
	memset(b->mark, 0, b->ntr);
	printf("\ncontinual, method %s, seed %d: 10 requests of 16 rows\n", ul_method_name(meth), (int) seed);
	printf("| req | forgotten | priors kept | test acc | drop  | steps | seconds |\n");
	printf("|-----|-----------|-------------|----------|-------|-------|---------|\n");
	for (int r = 0; r < R; r++)
	{
		ul_options	o = bench_options(b, meth, seed * 100 + r);
		ul_result	res;
		char		err[256];
		int			nr;
		double		t0,
					acc;
		float	   *Xf = Xall + (size_t) r * K * 784;
		int		   *yf = yall + r * K;

		draw_rows(b, &rng, K, idx + r * K);
		gather(b, idx + r * K, K, Xf, yf);
		nr = replay_sample(b, &rng, Xr, yr);
		t0 = bench_now();
		ul_unlearn(m, Xf, yf, K, NULL, Xall, yall, r * K,
				   meth == UL_METHOD_DEFAULT ? Xr : NULL, meth == UL_METHOD_DEFAULT ? yr : NULL,
				   meth == UL_METHOD_DEFAULT ? nr : 0, &o, NULL, NULL, &res, err, sizeof(err));
		t_total += bench_now() - t0;
		acc = nn_accuracy(m, b->Xte, b->yte, b->nte);
		all_ok &= res.success;
		printf("| %3d | %5d/%-3d | %5d/%-5d | %8.2f | %5.2f | %5d | %7.2f |\n", r + 1, res.forgotten, K,
			   res.prior_kept, r * K, 100 * acc, 100 * (b->acc0 - acc), res.steps, bench_now() - t0);
		fflush(stdout);
	}
	printf("all requests successful: %s; total %.2f s\n", all_ok ? "yes" : "NO", t_total);
	nn_free(m);
	free(idx);
	free(Xall);
	free(yall);
	free(Xr);
	free(yr);
}

/* Entry point; see the header comment for arguments. */
int
main(int argc, char **argv)
{
	bench		b;
	const char *dir = "/usr/share/datasets/fashion-mnist";
	const char *cache = "/tmp/unlearn_fmnist_mlp.bin";
	int			ks[MAXK] = {1, 8, 32, 128},
				nk = 4,
				seeds = 3,
				retrain_seeds = 1,
				continual = 1,
				train_epochs = 0,
				core_threads = 0,
				features;
	int			methods[8] = {0, 1, 2, 3},
				nm = 4;
	double		t0;

	memset(&b, 0, sizeof(b));
	b.replay_n = 16384;			/* the replay sample the caller passes; see docs/method.md */
	ul_options_default(&b.tune, UL_METHOD_DEFAULT);
	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i],
				   *v = i + 1 < argc ? argv[i + 1] : "";

		if (strcmp(a, "--ks") == 0)
			nk = bench_parse_ints(v, ks, MAXK), i++;
		else if (strcmp(a, "--seeds") == 0)
			seeds = atoi(v), i++;
		else if (strcmp(a, "--retrain-seeds") == 0)
			retrain_seeds = atoi(v), i++;
		else if (strcmp(a, "--no-continual") == 0)
			continual = 0;
		else if (strcmp(a, "--continual-only") == 0)
			nk = 0, retrain_seeds = 0;
		else if (strcmp(a, "--max-steps") == 0)
			b.max_steps = atoi(v), i++;
		else if (strcmp(a, "--replay") == 0)
			b.replay_n = atoi(v), i++;
		else if (strcmp(a, "--cnn") == 0)
		{
			use_cnn = 1;
			if (strcmp(cache, "/tmp/unlearn_fmnist_mlp.bin") == 0)
				cache = "/tmp/unlearn_fmnist_cnn.bin";
		}
		else if (strcmp(a, "--no-winograd") == 0)
			nn_wino_set_enabled(0);
		else if (strcmp(a, "--core-threads") == 0)
			core_threads = atoi(v), i++;
		else if (strcmp(a, "--train-epochs") == 0)
			train_epochs = atoi(v), i++;
		else if (strcmp(a, "--train-seed") == 0)
			train_seed = strtoull(v, NULL, 10), i++;
		else if (strcmp(a, "--cache") == 0)
			cache = v, i++;
		else if (strcmp(a, "--data") == 0)
			dir = v, i++;
		else if (strcmp(a, "--set") == 0)
		{
			if (bench_set_option(&b.tune, v) != 0)
			{
				fprintf(stderr, "bad --set %s\n", v);
				return 2;
			}
			i++;
		}
		else if (strcmp(a, "--fset") == 0)
		{
			ul_options	probe;

			ul_options_default(&probe, UL_METHOD_ADV_IMP);
			if (b.n_fset >= 8 || bench_set_option(&probe, v) != 0)
			{
				fprintf(stderr, "bad --fset %s\n", v);
				return 2;
			}
			snprintf(b.fset[b.n_fset++], 64, "%s", v);
			i++;
		}
		else if (strcmp(a, "--methods") == 0)
		{
			char		buf[256],
					   *tok,
					   *save = NULL;

			snprintf(buf, sizeof(buf), "%s", v);
			nm = 0;
			for (tok = strtok_r(buf, ",", &save); tok && nm < 8; tok = strtok_r(NULL, ",", &save))
			{
				ul_method mm;

				if (ul_method_from_name(tok, &mm) != 0)
				{
					fprintf(stderr, "unknown method %s\n", tok);
					return 2;
				}
				methods[nm++] = mm;
			}
			i++;
		}
		else
		{
			fprintf(stderr, "unknown argument %s\n", a);
			return 2;
		}
	}

	if (getenv("OPENBLAS_NUM_THREADS"))
		nn_set_threads(atoi(getenv("OPENBLAS_NUM_THREADS")));
	if (core_threads > 0)
		nn_set_threads(core_threads);
	b.ntr = bench_load_idx(dir, "train", &b.Xtr, &b.ytr, &features);
	b.nte = bench_load_idx(dir, "t10k", &b.Xte, &b.yte, &features);
	if (train_epochs > 0)
		return time_training(train_epochs, b.Xtr, b.ytr, b.ntr, b.Xte, b.yte, b.nte);
	b.mark = calloc(b.ntr, 1);
	b.Xrem = malloc(sizeof(float) * (size_t) b.ntr * 784);
	b.yrem = malloc(sizeof(int) * b.ntr);
	t0 = bench_now();
	b.m0 = get_model(cache, b.Xtr, b.ytr, b.ntr);
	b.acc0 = nn_accuracy(b.m0, b.Xte, b.yte, b.nte);
	printf("Fashion-MNIST: %d train, %d test rows; %s, test acc %.2f %% (model ready in %.1f s)\n",
		   b.ntr, b.nte, use_cnn ? "CNN conv32-pool-conv64-pool-128" : "MLP 784-256-10", 100 * b.acc0, bench_now() - t0);
	printf("default: lr %g mom %g wd %g margin %g replay_weight %g replay_batch %d repair_steps %d "
		   "forget_weight %g adv_weight %g imp_lambda %g distill %g optimizer %d; replay sample %d rows\n",
		   b.tune.lr, b.tune.momentum, b.tune.weight_decay, b.tune.margin, b.tune.replay_weight,
		   b.tune.replay_batch, b.tune.repair_steps, b.tune.forget_weight, b.tune.adv_weight,
		   b.tune.imp_lambda, b.tune.distill, (int) b.tune.optimizer, b.replay_n);

	if (nk > 0)
	{
		printf("\n| method   |    k | seed | forgot | acc0   | acc    | delta  | remain | fsteps |  steps | seconds | success\n");
		printf("|----------|------|------|--------|--------|--------|--------|--------|--------|--------|---------|--------\n");
	}
	for (int ki = 0; ki < nk; ki++)
	{
		for (int mi = 0; mi < nm; mi++)
		{
			double		sd = 0,
						sf = 0,
						ss = 0;
			int			ns = 0;

			for (int s = 0; s < seeds; s++)
				run_one(&b, (ul_method) methods[mi], ks[ki], (uint64_t) s + 1, &sd, &sf, &ss, &ns);
			if (seeds > 1)
				printf("| %-8s | %4d | mean | %6.1f |        |        | %+6.2f |        |        |        | %7.2f | %d/%d\n",
					   ul_method_name((ul_method) methods[mi]), ks[ki], sf / seeds, -sd / seeds, ss / seeds, ns, seeds);
		}
		for (int s = 0; s < retrain_seeds; s++)
			run_retrain(&b, ks[ki], (uint64_t) s + 1);
	}
	if (continual)
		for (int mi = 0; mi < nm; mi++)
			if (methods[mi] == UL_METHOD_DEFAULT || nk == 0)
				run_continual(&b, (ul_method) methods[mi], 1);
	return 0;
}
