/*
 * ablation_bench.c: do PGD and MAS earn a place in the default method?
 * (issue 11).  A core-level benchmark (no PostgreSQL) over the data-set
 * suite: Fashion-MNIST and the tabular sets' array-form CSV files.
 *
 * For each data set it trains the model as the extension does by default
 * (tables: hidden {128}, standardised, epochs for about 20 000 steps within
 * 10..200; Fashion-MNIST: the core benchmark's cached MLP 784-256-10, 10
 * epochs), or loads it from a cache.  For each seed and k it draws k forget
 * rows and a replay sample (min(remaining, 16384) rows, as the extension),
 * retrains a reference without the forget rows, fits the membership attack
 * (mia.h) on the original model's remaining rows against test rows, and runs
 * each configuration:
 *   replay   today's default (replay only)
 *   pgd      the default with the PGD form (--pgd)
 *   mas      the default with the MAS form (--mas)
 *   full     the default with both
 *   adv+imp  the faithful method (paper values; its step cap is --faithful-max-steps)
 * and prints per run: forgotten share, test change (points), change on
 * held-out remaining rows (rows outside the replay sample: the selection
 * measure, never the test rows), steps, seconds, the gap to the retrain
 * (test accuracy difference; share of forgotten rows predicted as the retrain
 * predicts them) and the attack's member rate of the forgotten rows (and the
 * retrain's).  Then the continual experiment (10 requests of 16 rows, each
 * keeping the earlier rows forgotten): drift of test accuracy.  Last, markdown
 * tables with mean ± s.d. over seeds.
 *
 * Usage: ablation_bench [--sets fmnist,letter,shuttle,satellite,pima,votes,cars]
 *          [--seeds 3] [--configs replay,pgd,mas,full,adv+imp] [--fmnist-ks 8,32,128]
 *          [--pgd k=v,k=v] [--mas k=v,k=v] [--cfg NAME:k=v,k=v]... [--faithful-max-steps 3000]
 *          [--continual fmnist,letter] [--kcap 256] [--tables DIR] [--fmnist DIR] [--cache-dir DIR]
 * --cfg adds a configuration: the default method with those changes (for trying forms).
 * --pgd and --mas default to the forms the ablation selected (docs/method.md): the
 * boundary anchors (adv_weight=1,pgd_anchor=1,pgd_eps_scale=0.5,adv_per_row=4,
 * pgd_steps=20,adv_batch=128) and the saliency mask (saliency_share=0.8).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_data.h"
#include "bench_opts.h"
#include "mia.h"
#include "nn.h"
#include "unlearn_core.h"

#define MAX_CFG 16
#define MAX_SETS 8
#define MAX_CLASSES 64
#define MAX_RES 4096
#define REPLAY_ROWS 16384		/* the extension's replay_rows default */
#define EVAL_ROWS 5000			/* held-out rows and attack rows, at most */
#define CONT_REQ 10
#define CONT_K 16

/* One data set and its original model. */
typedef struct dataset
{
	char		name[32];
	float	   *Xtr,
			   *Xte;
	int		   *ytr,
			   *yte;
	int			ntr,
				nte,
				F,
				C;
	int			hidden;
	nn_train_options topts;
	nn_model   *m0;
	double		acc0;
} dataset;

/* One configuration: a method and its options. */
typedef struct config
{
	char		name[32];
	ul_options	o;
	int			replay;			/* passes the replay sample (the default method) */
} config;

/* What one run measured. */
typedef struct result
{
	char		set[32];
	char		cfg[32];
	int			k;
	int			continual;
	double		forgot,
				dtest,
				dheld,
				steps,
				sec,
				gap,
				agree,
				mia,
				success;
} result;

static result results[MAX_RES];
static int	n_results;

/* ---------------------------------------------------------------- data and models */

/* Loads a data set: "fmnist" from its idx files, else DIR/NAME/{train,test}_arr.csv. */
static void
load_dataset(dataset *d, const char *name, const char *fmnist_dir, const char *tables)
{
	static char classes[MAX_CLASSES][64];
	int			nc = 0,
				F2;

	memset(d, 0, sizeof(*d));
	snprintf(d->name, sizeof(d->name), "%s", name);
	nn_train_options_default(&d->topts);
	if (strcmp(name, "fmnist") == 0)
	{
		d->ntr = bench_load_idx(fmnist_dir, "train", &d->Xtr, &d->ytr, &d->F);
		d->nte = bench_load_idx(fmnist_dir, "t10k", &d->Xte, &d->yte, &F2);
		d->C = 10;
		d->hidden = 256;		/* the core benchmark's model (bench/core_bench.c) */
		return;
	}
	{
		char		path[512];
		int			steps_per_epoch,
					epochs;

		snprintf(path, sizeof(path), "%s/%s/train_arr.csv", tables, name);
		d->ntr = bench_load_arr_csv(path, &d->Xtr, &d->ytr, &d->F, classes, &nc, MAX_CLASSES);
		snprintf(path, sizeof(path), "%s/%s/test_arr.csv", tables, name);
		d->nte = bench_load_arr_csv(path, &d->Xte, &d->yte, &F2, classes, &nc, MAX_CLASSES);
		if (F2 != d->F)
		{
			fprintf(stderr, "%s: train has %d features, test %d\n", name, d->F, F2);
			exit(2);
		}
		d->C = nc;
		d->hidden = 128;		/* unlearn_train's default hidden '{128}' */
		/* src/pg/train.c derive_epochs: about 20 000 steps, 10..200 epochs */
		steps_per_epoch = (d->ntr + d->topts.batch_size - 1) / d->topts.batch_size;
		epochs = (20000 + steps_per_epoch - 1) / steps_per_epoch;
		d->topts.epochs = epochs < 10 ? 10 : (epochs > 200 ? 200 : epochs);
		d->topts.standardize = 1;
	}
}

/* A model trained on n rows with the data set's recipe (seed 42, as a retrain). */
static nn_model *
train_model(const dataset *d, const float *X, const int *y, int n)
{
	nn_model   *m = nn_create(d->F, 1, &d->hidden, d->C, 42, NULL, 0);

	nn_train(m, X, y, n, &d->topts, NULL, NULL);
	return m;
}

/* The original model: from the cache file, else trained and cached. */
static nn_model *
original_model(const dataset *d, const char *path)
{
	nn_model   *m = bench_load_model(path);

	if (m && NN_FEATURES(m) == d->F && NN_CLASSES(m) == d->C)
		return m;
	if (m)
		nn_free(m);
	m = train_model(d, d->Xtr, d->ytr, d->ntr);
	bench_save_model(m, path);
	return m;
}

/* ---------------------------------------------------------------- one draw */

/* The rows of one (seed, k): forget rows, replay sample, held-out remaining rows, attack rows. */
typedef struct draw
{
	int			k;
	float	   *Xf,
			   *Xr,
			   *Xh,
			   *Xm;
	int		   *yf,
			   *yr,
			   *yh,
			   *ym;
	int			nr,
				nh,
				nm;
	unsigned char *mark;		/* ntr: 1 = forgotten */
} draw;

/* Appends row i of the training set to (X, y) at position *n. */
static void
put_row(const dataset *d, int i, float *X, int *y, int *n)
{
	memcpy(X + (size_t) *n * d->F, d->Xtr + (size_t) i * d->F, sizeof(float) * d->F);
	y[(*n)++] = d->ytr[i];
}

/* Draws k new forget rows (not yet marked) and a fresh replay sample and held-out rows from the rest. */
static void
make_draw(const dataset *d, draw *w, nn_rng *rng, int k)
{
	int		   *perm = malloc(sizeof(int) * d->ntr);
	int			nf = 0;

	w->k = k;
	for (int i = 0; i < d->ntr; i++)
		perm[i] = i;
	nn_rng_shuffle(rng, perm, d->ntr);
	w->nr = w->nh = w->nm = 0;
	for (int p = 0; p < d->ntr; p++)
	{
		int			i = perm[p];

		if (w->mark[i])
			continue;
		if (nf < k)
		{
			w->mark[i] = 1;
			put_row(d, i, w->Xf, w->yf, &nf);
			continue;
		}
		/* the rest: the replay sample first, then held-out rows; attack members from all */
		if (w->nr < REPLAY_ROWS)
			put_row(d, i, w->Xr, w->yr, &w->nr);
		else if (w->nh < EVAL_ROWS)
			put_row(d, i, w->Xh, w->yh, &w->nh);
		if (w->nm < EVAL_ROWS)
			put_row(d, i, w->Xm, w->ym, &w->nm);
	}
	free(perm);
}

/* Buffers of a draw for up to kmax forget rows. */
static void
draw_alloc(const dataset *d, draw *w, int kmax)
{
	memset(w, 0, sizeof(*w));
	w->Xf = malloc(sizeof(float) * (size_t) kmax * d->F);
	w->yf = malloc(sizeof(int) * kmax);
	w->Xr = malloc(sizeof(float) * (size_t) REPLAY_ROWS * d->F);
	w->yr = malloc(sizeof(int) * REPLAY_ROWS);
	w->Xh = malloc(sizeof(float) * (size_t) EVAL_ROWS * d->F);
	w->yh = malloc(sizeof(int) * EVAL_ROWS);
	w->Xm = malloc(sizeof(float) * (size_t) EVAL_ROWS * d->F);
	w->ym = malloc(sizeof(int) * EVAL_ROWS);
	w->mark = calloc(d->ntr, 1);
}

/* Frees a draw's buffers. */
static void
draw_free(draw *w)
{
	free(w->Xf);
	free(w->yf);
	free(w->Xr);
	free(w->yr);
	free(w->Xh);
	free(w->yh);
	free(w->Xm);
	free(w->ym);
	free(w->mark);
}

/* ---------------------------------------------------------------- measures */

/* Each row's loss (-log p of its label) and predicted class under m. */
static void
row_losses(const nn_model *m, const float *X, const int *y, int n, double *loss, int *pred)
{
	int			C = NN_CLASSES(m);
	float	   *p = malloc(sizeof(float) * (size_t) (n > 0 ? n : 1) * C);
	nn_workspace *ws = nn_workspace_create(m, 256);

	nn_predict_proba(m, ws, X, n, p);
	nn_workspace_free(ws);
	for (int i = 0; i < n; i++)
	{
		const float *pi = p + (size_t) i * C;
		int			best = 0;

		for (int c = 1; c < C; c++)
			if (pi[c] > pi[best])
				best = c;
		if (pred)
			pred[i] = best;
		if (loss)
			loss[i] = ul_mia_loss(pi[y[i]]);
	}
	free(p);
}

/* The attack of the audits fit on the original model: remaining rows (members) vs test rows. */
static ul_mia_attack
fit_attack(const dataset *d, const draw *w)
{
	int			nt = d->nte < EVAL_ROWS ? d->nte : EVAL_ROWS;
	double	   *lm = malloc(sizeof(double) * w->nm),
			   *lt = malloc(sizeof(double) * nt);
	ul_mia_attack a;

	row_losses(d->m0, w->Xm, w->ym, w->nm, lm, NULL);
	row_losses(d->m0, d->Xte, d->yte, nt, lt, NULL);
	if (ul_mia_fit(lm, w->nm, lt, nt, &a) != 0)
		memset(&a, 0, sizeof(a));
	free(lm);
	free(lt);
	return a;
}

/* Share of the forget rows the attack calls members (probability > 0.5) under m. */
static double
member_rate(const nn_model *m, const ul_mia_attack *a, const draw *w)
{
	double	   *l = malloc(sizeof(double) * w->k);
	int			mem = 0;

	row_losses(m, w->Xf, w->yf, w->k, l, NULL);
	for (int i = 0; i < w->k; i++)
		mem += ul_mia_member_probability(a, l[i]) > 0.5;
	free(l);
	return (double) mem / w->k;
}

/* Share of the forget rows m predicts as ref_pred does. */
static double
agreement(const nn_model *m, const draw *w, const int *ref_pred)
{
	int		   *p = malloc(sizeof(int) * w->k);
	int			same = 0;

	row_losses(m, w->Xf, w->yf, w->k, NULL, p);
	for (int i = 0; i < w->k; i++)
		same += p[i] == ref_pred[i];
	free(p);
	return (double) same / w->k;
}

/* Records a result and prints it as a RUN line. */
static void
record(const result *r, int seed)
{
	if (n_results < MAX_RES)
		results[n_results++] = *r;
	printf("RUN\t%s\t%s\tk=%d\tseed=%d\t%s\tforgot=%.1f\tdtest=%+.2f\tdheld=%+.2f\tsteps=%.0f\tsec=%.2f"
		   "\tgap=%+.2f\tagree=%.1f\tmia=%.1f\tsuccess=%.0f\n",
		   r->set, r->cfg, r->k, seed, r->continual ? "continual" : "single", r->forgot, r->dtest,
		   r->dheld, r->steps, r->sec, r->gap, r->agree, r->mia, r->success);
	fflush(stdout);
}

/* ---------------------------------------------------------------- runs */

/* The retrain reference of a draw: its test accuracy, predictions of the forget rows, member rate. */
typedef struct reference
{
	double		acc;
	int		   *pred;
	double		mia;
} reference;

/* Retrains without the forget rows, records it as the "retrain" configuration. */
static reference
run_retrain(const dataset *d, const draw *w, const ul_mia_attack *a, int seed)
{
	float	   *X = malloc(sizeof(float) * (size_t) d->ntr * d->F);
	int		   *y = malloc(sizeof(int) * d->ntr);
	int			n = 0;
	double		t0 = bench_now();
	nn_model   *m;
	reference	ref;
	result		r;

	for (int i = 0; i < d->ntr; i++)
		if (!w->mark[i])
			put_row(d, i, X, y, &n);
	m = train_model(d, X, y, n);
	memset(&r, 0, sizeof(r));
	snprintf(r.set, sizeof(r.set), "%.31s", d->name);
	snprintf(r.cfg, sizeof(r.cfg), "retrain");
	r.k = w->k;
	r.sec = bench_now() - t0;
	ref.acc = nn_accuracy(m, d->Xte, d->yte, d->nte);
	ref.pred = malloc(sizeof(int) * w->k);
	row_losses(m, w->Xf, w->yf, w->k, NULL, ref.pred);
	ref.mia = member_rate(m, a, w);
	r.forgot = 100.0 * (1.0 - nn_accuracy(m, w->Xf, w->yf, w->k));
	r.dtest = 100.0 * (ref.acc - d->acc0);
	r.dheld = w->nh > 0 ? 100.0 * (nn_accuracy(m, w->Xh, w->yh, w->nh) -
								   nn_accuracy(d->m0, w->Xh, w->yh, w->nh)) : NAN;
	r.steps = (double) d->topts.epochs * ((n + d->topts.batch_size - 1) / d->topts.batch_size);
	r.agree = 100.0;
	r.mia = 100.0 * ref.mia;
	r.success = NAN;			/* no promise to keep */
	record(&r, seed);
	nn_free(m);
	free(X);
	free(y);
	return ref;
}

/* One configuration on one draw: unlearn a copy of the original model, measure, record. */
static void
run_config(const dataset *d, const config *cf, const draw *w, const ul_mia_attack *a,
		   const reference *ref, int seed)
{
	nn_model   *m = nn_clone(d->m0);
	ul_options	o = cf->o;
	ul_result	res;
	result		r;
	char		err[256];
	double		t0 = bench_now(),
				acc;

	o.seed = (uint64_t) seed;
	if (ul_unlearn(m, w->Xf, w->yf, w->k, NULL, NULL, NULL, 0, cf->replay ? w->Xr : NULL,
				   cf->replay ? w->yr : NULL, cf->replay ? w->nr : 0, &o, NULL, NULL, &res,
				   err, sizeof(err)) != 0)
	{
		fprintf(stderr, "%s %s: ul_unlearn: %s\n", d->name, cf->name, err);
		exit(1);
	}
	memset(&r, 0, sizeof(r));
	r.sec = bench_now() - t0;
	snprintf(r.set, sizeof(r.set), "%.31s", d->name);
	snprintf(r.cfg, sizeof(r.cfg), "%.31s", cf->name);
	r.k = w->k;
	acc = nn_accuracy(m, d->Xte, d->yte, d->nte);
	r.forgot = 100.0 * (1.0 - nn_accuracy(m, w->Xf, w->yf, w->k));
	r.dtest = 100.0 * (acc - d->acc0);
	r.dheld = w->nh > 0 ? 100.0 * (nn_accuracy(m, w->Xh, w->yh, w->nh) -
								   nn_accuracy(d->m0, w->Xh, w->yh, w->nh)) : NAN;
	r.steps = res.steps;
	r.gap = 100.0 * (acc - ref->acc);
	r.agree = 100.0 * agreement(m, w, ref->pred);
	r.mia = 100.0 * member_rate(m, a, w);
	r.success = res.success;
	record(&r, seed);
	nn_free(m);
}

/* Continual unlearning: CONT_REQ requests of CONT_K rows, each keeping the earlier ones forgotten. */
static void
run_continual(const dataset *d, const config *cf, int seed)
{
	nn_model   *m = nn_clone(d->m0);
	draw		w;
	nn_rng		rng;
	float	   *Xp = malloc(sizeof(float) * (size_t) CONT_REQ * CONT_K * d->F);
	int		   *yp = malloc(sizeof(int) * CONT_REQ * CONT_K);
	result		r;
	double		t0 = bench_now(),
				steps = 0;
	int			ok = 1;

	draw_alloc(d, &w, CONT_K);
	nn_rng_seed(&rng, 5000 + (uint64_t) seed);
	for (int q = 0; q < CONT_REQ; q++)
	{
		ul_options	o = cf->o;
		ul_result	res;
		char		err[256];

		make_draw(d, &w, &rng, CONT_K);
		o.seed = (uint64_t) seed * 100 + q;
		ul_unlearn(m, w.Xf, w.yf, CONT_K, NULL, Xp, yp, q * CONT_K, cf->replay ? w.Xr : NULL,
				   cf->replay ? w.yr : NULL, cf->replay ? w.nr : 0, &o, NULL, NULL, &res, err, sizeof(err));
		ok &= res.success;
		steps += res.steps;
		memcpy(Xp + (size_t) q * CONT_K * d->F, w.Xf, sizeof(float) * CONT_K * d->F);
		memcpy(yp + q * CONT_K, w.yf, sizeof(int) * CONT_K);
	}
	memset(&r, 0, sizeof(r));
	snprintf(r.set, sizeof(r.set), "%.31s", d->name);
	snprintf(r.cfg, sizeof(r.cfg), "%.31s", cf->name);
	r.k = CONT_K;
	r.continual = 1;
	r.sec = bench_now() - t0;
	r.forgot = 100.0 * (1.0 - nn_accuracy(m, Xp, yp, CONT_REQ * CONT_K));
	r.dtest = 100.0 * (nn_accuracy(m, d->Xte, d->yte, d->nte) - d->acc0);
	r.dheld = w.nh > 0 ? 100.0 * (nn_accuracy(m, w.Xh, w.yh, w.nh) -
								  nn_accuracy(d->m0, w.Xh, w.yh, w.nh)) : NAN;
	r.steps = steps;
	r.gap = r.agree = r.mia = NAN;
	r.success = ok;
	record(&r, seed);
	draw_free(&w);
	free(Xp);
	free(yp);
	nn_free(m);
}

/* ---------------------------------------------------------------- the tables */

/* Mean and sample s.d. of field `off` (a double in result) over the matching results. */
static void
stat(const char *set, const char *cfg, int k, int cont, size_t off, double *mean, double *sd, int *n)
{
	double		s = 0,
				s2 = 0;

	*n = 0;
	for (int i = 0; i < n_results; i++)
	{
		const result *r = &results[i];
		double		v = *(const double *) ((const char *) r + off);

		if (strcmp(r->set, set) || strcmp(r->cfg, cfg) || r->k != k || r->continual != cont || isnan(v))
			continue;
		s += v;
		s2 += v * v;
		(*n)++;
	}
	*mean = *n ? s / *n : NAN;
	*sd = *n > 1 ? sqrt(fmax(s2 - s * s / *n, 0) / (*n - 1)) : 0.0;
}

/* Prints "mean ± sd" of a field (or a dash when nothing was measured). */
static void
cell(const char *set, const char *cfg, int k, int cont, size_t off, const char *fmt)
{
	double		m,
				sd;
	int			n;
	char		a[32],
				b[32];

	stat(set, cfg, k, cont, off, &m, &sd, &n);
	if (n == 0)
	{
		printf(" – |");
		return;
	}
	snprintf(a, sizeof(a), fmt, m);
	snprintf(b, sizeof(b), fmt, sd);
	printf(" %s ± %s |", a, b + (b[0] == '+'));
}

/* The markdown tables: one row per data set, k and configuration (single runs), then continual. */
static void
print_tables(void)
{
	char		seen[MAX_RES][80];
	int			ns = 0;

	for (int cont = 0; cont <= 1; cont++)
	{
		printf("\n%s\n\n", cont ? "Continual: 10 requests of 16 rows (drift = test change after the 10th)"
			   : "Single requests (mean ± s.d. over seeds)");
		printf("| set | k | config | forgot %% | Δ test | Δ held-out | steps | seconds | gap to retrain | "
			   "agree %% | MIA member %% | success |\n");
		printf("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
		ns = 0;
		for (int i = 0; i < n_results; i++)
		{
			const result *r = &results[i];
			char		key[80];
			int			dup = 0;

			if (r->continual != cont)
				continue;
			snprintf(key, sizeof(key), "%.31s/%d/%.31s", r->set, r->k, r->cfg);
			for (int j = 0; j < ns && !dup; j++)
				dup = strcmp(seen[j], key) == 0;
			if (dup)
				continue;
			snprintf(seen[ns++], sizeof(seen[0]), "%s", key);
			printf("| %s | %d | %s |", r->set, r->k, r->cfg);
			cell(r->set, r->cfg, r->k, cont, offsetof(result, forgot), "%.1f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, dtest), "%+.2f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, dheld), "%+.2f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, steps), "%.0f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, sec), "%.2f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, gap), "%+.2f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, agree), "%.1f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, mia), "%.1f");
			cell(r->set, r->cfg, r->k, cont, offsetof(result, success), "%.2f");
			printf("\n");
		}
	}
}

/* ---------------------------------------------------------------- arguments */

/* Applies a comma list of key=value changes to o; exits on a bad one. */
static void
apply_changes(ul_options *o, const char *list)
{
	char		buf[512],
			   *tok,
			   *save = NULL;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (bench_set_option(o, tok) != 0)
		{
			fprintf(stderr, "bad option change %s\n", tok);
			exit(2);
		}
}

/* Adds a configuration of the default method with the given changes. */
static void
add_default_config(config *cf, int *n, const char *name, const char *changes1, const char *changes2)
{
	config	   *c = &cf[(*n)++];

	snprintf(c->name, sizeof(c->name), "%s", name);
	ul_options_default(&c->o, UL_METHOD_DEFAULT);
	apply_changes(&c->o, changes1);
	apply_changes(&c->o, changes2);
	c->replay = 1;
}

/* Whether name is in the comma list. */
static int
in_list(const char *list, const char *name)
{
	size_t		l = strlen(name);
	const char *p = list;

	while ((p = strstr(p, name)) != NULL)
	{
		if ((p == list || p[-1] == ',') && (p[l] == ',' || p[l] == '\0'))
			return 1;
		p += l;
	}
	return 0;
}

/* The ks of a data set: Fashion-MNIST's list; 1 % of the rows (capped) from 5000 rows; else 8. */
static int
dataset_ks(const dataset *d, const int *fks, int nfk, int kcap, int *ks)
{
	if (strcmp(d->name, "fmnist") == 0)
	{
		memcpy(ks, fks, sizeof(int) * nfk);
		return nfk;
	}
	ks[0] = d->ntr >= 5000 ? (d->ntr + 50) / 100 : 8;
	if (ks[0] > kcap)
		ks[0] = kcap;
	return 1;
}

/* ---------------------------------------------------------------- main */

/* The command line. */
typedef struct args
{
	const char *sets,
			   *cfgs,
			   *cont_sets,
			   *pgd,
			   *mas,
			   *tables,
			   *fdir,
			   *cache_dir;
	const char *extra[MAX_CFG];
	int			n_extra,
				seeds,
				fks[8],
				nfk,
				kcap,
				faithful_cap;
} args;

/* Parses the arguments (pairs) over the defaults; returns 0, or 2 on an unknown one. */
static int
parse_args(args *a, int argc, char **argv)
{
	static const int fks[3] = {8, 32, 128};

	memset(a, 0, sizeof(*a));
	a->sets = "fmnist,letter,shuttle,satellite,pima,votes,cars";
	a->cfgs = "replay,pgd,mas,full,adv+imp";
	a->cont_sets = "fmnist,letter";
	a->pgd = "adv_weight=1,pgd_anchor=1,pgd_eps_scale=0.5,adv_per_row=4,pgd_steps=20,adv_batch=128";
	a->mas = "saliency_share=0.8";
	a->tables = "/tmp/unlearn-tabular-data";
	a->fdir = "/usr/share/datasets/fashion-mnist";
	a->cache_dir = "/tmp";
	a->seeds = 3;
	memcpy(a->fks, fks, sizeof(fks));
	a->nfk = 3;
	a->kcap = 256;
	a->faithful_cap = 3000;
	for (int i = 1; i + 1 < argc; i += 2)
	{
		const char *k = argv[i],
				   *v = argv[i + 1];

		if (strcmp(k, "--sets") == 0)
			a->sets = v;
		else if (strcmp(k, "--seeds") == 0)
			a->seeds = atoi(v);
		else if (strcmp(k, "--configs") == 0)
			a->cfgs = v;
		else if (strcmp(k, "--fmnist-ks") == 0)
			a->nfk = bench_parse_ints(v, a->fks, 8);
		else if (strcmp(k, "--pgd") == 0)
			a->pgd = v;
		else if (strcmp(k, "--mas") == 0)
			a->mas = v;
		else if (strcmp(k, "--cfg") == 0 && a->n_extra < MAX_CFG - 5)
			a->extra[a->n_extra++] = v;
		else if (strcmp(k, "--faithful-max-steps") == 0)
			a->faithful_cap = atoi(v);
		else if (strcmp(k, "--continual") == 0)
			a->cont_sets = v;
		else if (strcmp(k, "--kcap") == 0)
			a->kcap = atoi(v);
		else if (strcmp(k, "--tables") == 0)
			a->tables = v;
		else if (strcmp(k, "--fmnist") == 0)
			a->fdir = v;
		else if (strcmp(k, "--cache-dir") == 0)
			a->cache_dir = v;
		else
		{
			fprintf(stderr, "unknown argument %s (arguments come in pairs)\n", k);
			return 2;
		}
	}
	return 0;
}

/* The configurations asked for (--configs, then each --cfg); returns their count. */
static int
make_configs(const args *a, config *cf)
{
	int			ncf = 0;

	if (in_list(a->cfgs, "replay"))
		add_default_config(cf, &ncf, "replay", "", "");
	if (in_list(a->cfgs, "pgd"))
		add_default_config(cf, &ncf, "pgd", a->pgd, "");
	if (in_list(a->cfgs, "mas"))
		add_default_config(cf, &ncf, "mas", a->mas, "");
	if (in_list(a->cfgs, "full"))
		add_default_config(cf, &ncf, "full", a->pgd, a->mas);
	if (in_list(a->cfgs, "adv+imp"))
	{
		config	   *c = &cf[ncf++];

		snprintf(c->name, sizeof(c->name), "adv+imp");
		ul_options_default(&c->o, UL_METHOD_ADV_IMP);
		c->o.max_steps = a->faithful_cap;
		c->replay = 0;
	}
	for (int e = 0; e < a->n_extra; e++)
	{
		char		name[32];
		const char *colon = strchr(a->extra[e], ':');

		snprintf(name, sizeof(name), "%.*s", colon ? (int) (colon - a->extra[e]) : 31, a->extra[e]);
		add_default_config(cf, &ncf, name, colon ? colon + 1 : "", "");
	}
	return ncf;
}

/* One data set: its model, then every seed, k and configuration, then the continual runs. */
static void
run_dataset(const args *a, const char *name, const config *cf, int ncf)
{
	dataset		d;
	char		path[512];
	int			ks[8],
				nk;
	double		t0 = bench_now();

	load_dataset(&d, name, a->fdir, a->tables);
	snprintf(path, sizeof(path), strcmp(name, "fmnist") == 0 ? "%s/unlearn_fmnist_mlp.bin"
			 : "%s/unlearn_ablate_%s.bin", a->cache_dir, name);
	d.m0 = original_model(&d, path);
	d.acc0 = nn_accuracy(d.m0, d.Xte, d.yte, d.nte);
	nk = dataset_ks(&d, a->fks, a->nfk, a->kcap, ks);
	printf("\n## %s: %d train, %d test rows, %d features, %d classes; hidden %d, %d epochs; "
		   "test accuracy %.2f %% (ready in %.1f s)\n", d.name, d.ntr, d.nte, d.F, d.C,
		   d.hidden, d.topts.epochs, 100 * d.acc0, bench_now() - t0);
	fflush(stdout);
	for (int ki = 0; ki < nk; ki++)
		for (int s = 1; s <= a->seeds; s++)
		{
			draw		w;
			nn_rng		rng;
			ul_mia_attack at;
			reference	ref;

			draw_alloc(&d, &w, ks[ki]);
			nn_rng_seed(&rng, 1000 + (uint64_t) s * 7919 + (uint64_t) ks[ki]);
			make_draw(&d, &w, &rng, ks[ki]);
			at = fit_attack(&d, &w);
			ref = run_retrain(&d, &w, &at, s);
			for (int c = 0; c < ncf; c++)
				run_config(&d, &cf[c], &w, &at, &ref, s);
			free(ref.pred);
			draw_free(&w);
		}
	if (in_list(a->cont_sets, name))
		for (int c = 0; c < ncf; c++)
			for (int s = 1; s <= a->seeds; s++)
				run_continual(&d, &cf[c], s);
	nn_free(d.m0);
	free(d.Xtr);
	free(d.Xte);
	free(d.ytr);
	free(d.yte);
}

/* Every configuration on every data set, seed and k, then the continual runs and the tables. */
int
main(int argc, char **argv)
{
	args		a;
	config		cf[MAX_CFG];
	int			ncf;
	char		setbuf[256],
			   *tok,
			   *save = NULL;

	if (parse_args(&a, argc, argv) != 0)
		return 2;
	if (getenv("OPENBLAS_NUM_THREADS"))
		nn_set_threads(atoi(getenv("OPENBLAS_NUM_THREADS")));
	ncf = make_configs(&a, cf);
	printf("forms: pgd = %s; mas = %s; adv+imp capped at %d steps; replay sample %d rows\n",
		   a.pgd, a.mas, a.faithful_cap, REPLAY_ROWS);
	snprintf(setbuf, sizeof(setbuf), "%s", a.sets);
	for (tok = strtok_r(setbuf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		run_dataset(&a, tok, cf, ncf);
	print_tables();
	return 0;
}
