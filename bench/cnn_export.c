/*
 * cnn_export.c: hands the core benchmark's trained CNN, its test set, the
 * forget rows core_bench draws and the core's logits to bench/cnn_unlearn_torch.py.
 *
 * Loads the model core_bench --cnn cached (nn_deserialize, so every field is
 * read as the core reads it) and writes into OUTDIR, all little-endian:
 *   meta.json       stages (kind, size, geometry, offsets), dense dims and
 *                   offsets, the parameter count, the core's test accuracy
 *   params.f32      the parameter vector, in the core's order and layouts
 *                   (conv weights c_out x (ky, kx, ci); dense W fan_out x fan_in;
 *                   the flatten after the last stage in HWC order)
 *   mean.f32, scale.f32, lo.f32, hi.f32   standardisation and the PGD box
 *   test_x.f32, test_y.i32                the test set as bench_data.c loads it
 *   logits.f32      the core's logits on the first --logits test images
 *   rows_k<K>_s<S>.i32, forget_k<K>_s<S>.f32, labels_k<K>_s<S>.i32   the k
 *                   training rows core_bench's run_one unlearns for seed S (same
 *                   RNG draw), their pixels and labels
 *   adv_k<K>_s<S>.f32, tadv_k<K>_s<S>.i32, mas_k<K>_s<S>.f32   for the --adv-ks:
 *                   the adversarial examples (raw pixels) and targets the core's
 *                   adv+imp makes for these rows with seed S (ul_pgd_targeted from
 *                   the RNG ul_unlearn seeds, nothing drawn before it in a
 *                   faithful run without replay rows) and its MAS weights
 *
 * Usage: cnn_export OUTDIR [--cache /tmp/unlearn_fmnist_cnn.bin] [--ks 1,8,32]
 *                   [--seeds 3] [--logits 256] [--data DIR] [--adv-ks 1,8]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_data.h"
#include "bench_opts.h"
#include "nn.h"
#include "unlearn_core.h"

#define MAXK 16

/* Writes n elements of size sz to OUTDIR/name; exits on failure. */
static void
write_raw(const char *dir, const char *name, const void *p, size_t sz, size_t n)
{
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, sz, n, f) != n || fclose(f) != 0)
	{
		fprintf(stderr, "cnn_export: cannot write %s\n", path);
		exit(1);
	}
}

/* The model's shape and offsets as JSON (the Python side rebuilds the network from it). */
static void
write_meta(const char *dir, const nn_model *m, double acc)
{
	char		path[1024];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/meta.json", dir);
	f = fopen(path, "w");
	if (!f)
	{
		fprintf(stderr, "cnn_export: cannot write %s\n", path);
		exit(1);
	}
	fprintf(f, "{\"n_params\": %zu, \"n_features\": %d, \"standardized\": %d, \"test_accuracy\": %.6f,\n",
			m->n_params, m->n_features, m->standardized, acc);
	fprintf(f, " \"in_shape\": [%d, %d, %d],\n \"stages\": [", m->in_shape[0], m->in_shape[1], m->in_shape[2]);
	for (int s = 0; s < m->n_stages; s++)
	{
		const nn_stage *st = &m->stage[s];

		fprintf(f, "%s{\"kind\": \"%s\", \"size\": %d, \"c_in\": %d, \"h_in\": %d, \"w_in\": %d, "
				"\"c_out\": %d, \"h_out\": %d, \"w_out\": %d, \"w_off\": %zu, \"b_off\": %zu}",
				s ? ",\n   " : "", st->kind == NN_STAGE_CONV ? "conv" : "pool", st->size,
				st->c_in, st->h_in, st->w_in, st->c_out, st->h_out, st->w_out, st->w_off, st->b_off);
	}
	fprintf(f, "],\n \"dims\": [");
	for (int l = 0; l <= m->n_layers; l++)
		fprintf(f, "%s%d", l ? ", " : "", m->dims[l]);
	fprintf(f, "],\n \"dense\": [");
	for (int l = 0; l < m->n_layers; l++)
		fprintf(f, "%s{\"w_off\": %zu, \"b_off\": %zu}", l ? ", " : "", m->w_off[l], m->b_off[l]);
	fprintf(f, "]}\n");
	fclose(f);
}

/* core_bench's run_one draw: k distinct rows from an RNG seeded 1000 + seed * 7919 + k. */
static void
draw_rows(int ntr, int k, int seed, int *idx, unsigned char *mark)
{
	nn_rng		rng;

	memset(mark, 0, (size_t) ntr);
	nn_rng_seed(&rng, 1000 + (uint64_t) seed * 7919 + (uint64_t) k);
	for (int i = 0; i < k; i++)
	{
		int			r;

		do
			r = (int) nn_rng_below(&rng, (uint32_t) ntr);
		while (mark[r]);
		mark[r] = 1;
		idx[i] = r;
	}
}

/* The core's adversarial examples, targets and MAS weights for k rows X, y and seed. */
static void
write_adv(const char *dir, const nn_model *m, const float *X, const int *y, int k, int seed)
{
	ul_options	o;
	nn_rng		rng;
	int			n;
	float	   *Xa,
			   *w;
	int		   *t;
	char		name[64];

	ul_options_default(&o, UL_METHOD_ADV_IMP);
	n = k * o.adv_per_row;
	Xa = malloc(sizeof(float) * (size_t) n * m->n_features);
	t = malloc(sizeof(int) * (size_t) n);
	w = malloc(sizeof(float) * m->n_params);
	nn_rng_seed(&rng, (uint64_t) seed);
	ul_pgd_targeted(m, X, y, k, o.adv_per_row, o.pgd_eps, o.pgd_alpha, o.pgd_steps, &rng, Xa, t);
	ul_mas_weights(m, X, k, NULL, w);
	snprintf(name, sizeof(name), "adv_k%d_s%d.f32", k, seed);
	write_raw(dir, name, Xa, sizeof(float), (size_t) n * m->n_features);
	snprintf(name, sizeof(name), "tadv_k%d_s%d.i32", k, seed);
	write_raw(dir, name, t, sizeof(int), (size_t) n);
	snprintf(name, sizeof(name), "mas_k%d_s%d.f32", k, seed);
	write_raw(dir, name, w, sizeof(float), m->n_params);
	free(Xa);
	free(t);
	free(w);
}

/* Whether k is in the list. */
static int
in_list(int k, const int *list, int n)
{
	for (int i = 0; i < n; i++)
		if (list[i] == k)
			return 1;
	return 0;
}

/* The forget rows of every k and seed: their indices and pixels (and for adv_ks the core's adversarial examples). */
static void
write_rows(const char *dir, const nn_model *m, const float *Xtr, const int *ytr, int ntr, int F,
		   const int *ks, int nk, int seeds, const int *adv_ks, int n_adv)
{
	unsigned char *mark = calloc((size_t) ntr, 1);

	for (int ki = 0; ki < nk; ki++)
		for (int s = 1; s <= seeds; s++)
		{
			int			k = ks[ki];
			int		   *idx = malloc(sizeof(int) * (size_t) k);
			int		   *y = malloc(sizeof(int) * (size_t) k);
			float	   *X = malloc(sizeof(float) * (size_t) k * F);
			char		name[64];

			draw_rows(ntr, k, s, idx, mark);
			for (int i = 0; i < k; i++)
			{
				memcpy(X + (size_t) i * F, Xtr + (size_t) idx[i] * F, sizeof(float) * F);
				y[i] = ytr[idx[i]];
			}
			snprintf(name, sizeof(name), "rows_k%d_s%d.i32", k, s);
			write_raw(dir, name, idx, sizeof(int), (size_t) k);
			snprintf(name, sizeof(name), "forget_k%d_s%d.f32", k, s);
			write_raw(dir, name, X, sizeof(float), (size_t) k * F);
			snprintf(name, sizeof(name), "labels_k%d_s%d.i32", k, s);
			write_raw(dir, name, y, sizeof(int), (size_t) k);
			if (in_list(k, adv_ks, n_adv))
				write_adv(dir, m, X, y, k, s);
			free(idx);
			free(y);
			free(X);
		}
	free(mark);
}

/* Entry point; see the header comment. */
int
main(int argc, char **argv)
{
	const char *cache = "/tmp/unlearn_fmnist_cnn.bin",
			   *data = "/usr/share/datasets/fashion-mnist",
			   *out;
	int			ks[MAXK] = {1, 8, 32},
				nk = 3,
				adv_ks[MAXK] = {1, 8},
				n_adv = 2,
				seeds = 3,
				nlog = 256,
				F,
				ntr,
				nte;
	float	   *Xtr,
			   *Xte;
	int		   *ytr,
			   *yte;
	nn_model   *m;
	nn_workspace *ws;

	if (argc < 2)
	{
		fprintf(stderr, "usage: cnn_export OUTDIR [--cache F] [--ks 1,8,32] [--seeds 3] [--logits 256] [--data DIR] [--adv-ks 1,8]\n");
		return 2;
	}
	out = argv[1];
	for (int i = 2; i + 1 < argc; i += 2)
	{
		if (strcmp(argv[i], "--cache") == 0)
			cache = argv[i + 1];
		else if (strcmp(argv[i], "--ks") == 0)
			nk = bench_parse_ints(argv[i + 1], ks, MAXK);
		else if (strcmp(argv[i], "--adv-ks") == 0)
			n_adv = bench_parse_ints(argv[i + 1], adv_ks, MAXK);
		else if (strcmp(argv[i], "--seeds") == 0)
			seeds = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--logits") == 0)
			nlog = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--data") == 0)
			data = argv[i + 1];
		else
		{
			fprintf(stderr, "unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	if ((m = bench_load_model(cache)) == NULL || m->n_stages == 0)
	{
		fprintf(stderr, "cnn_export: no convolutional model in %s (run bench/core_bench.sh --cnn first)\n", cache);
		return 1;
	}
	ntr = bench_load_idx(data, "train", &Xtr, &ytr, &F);
	nte = bench_load_idx(data, "t10k", &Xte, &yte, &F);
	nlog = nlog < nte ? nlog : nte;

	/* the model, its standardisation and box, the test set */
	write_meta(out, m, nn_accuracy(m, Xte, yte, nte));
	write_raw(out, "params.f32", m->params, sizeof(float), m->n_params);
	write_raw(out, "mean.f32", m->mean, sizeof(float), (size_t) F);
	write_raw(out, "scale.f32", m->scale, sizeof(float), (size_t) F);
	write_raw(out, "lo.f32", m->feat_lo, sizeof(float), (size_t) F);
	write_raw(out, "hi.f32", m->feat_hi, sizeof(float), (size_t) F);
	write_raw(out, "test_x.f32", Xte, sizeof(float), (size_t) nte * F);
	write_raw(out, "test_y.i32", yte, sizeof(int), (size_t) nte);

	/* the core's logits on the first nlog test images */
	ws = nn_workspace_create(m, nlog);
	write_raw(out, "logits.f32", nn_forward(m, ws, Xte, nlog), sizeof(float), (size_t) nlog * NN_CLASSES(m));
	nn_workspace_free(ws);

	/* the rows core_bench unlearns */
	write_rows(out, m, Xtr, ytr, ntr, F, ks, nk, seeds, adv_ks, n_adv);
	printf("cnn_export: %zu parameters, %d logits rows, ks x %d seeds into %s\n", m->n_params, nlog, seeds, out);
	nn_free(m);
	return 0;
}
