/*
 * bench_data.c: the data sets of the core benchmarks; see bench_data.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "bench_data.h"
#include "nn.h"

/* Seconds on the monotonic clock. */
double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Reads a whole gzip file into memory; exits on error. */
static unsigned char *
read_gz(const char *path, size_t *len)
{
	gzFile		g = gzopen(path, "rb");
	size_t		cap = 1 << 20,
				n = 0;
	unsigned char *buf = malloc(cap);
	int			r;

	if (!g)
	{
		fprintf(stderr, "cannot open %s\n", path);
		exit(2);
	}
	while ((r = gzread(g, buf + n, (unsigned) (cap - n))) > 0)
	{
		n += r;
		if (n == cap)
			buf = realloc(buf, cap *= 2);
	}
	gzclose(g);
	*len = n;
	return buf;
}

/* Big-endian u32 at p. */
static int
be32(const unsigned char *p)
{
	return (p[0] << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}

/* Loads an idx image/label pair; see bench_data.h. */
int
bench_load_idx(const char *dir, const char *prefix, float **X, int **y, int *F)
{
	char		path[512];
	size_t		li,
				ll;
	unsigned char *im,
			   *lb;
	int			n;

	snprintf(path, sizeof(path), "%s/%s-images-idx3-ubyte.gz", dir, prefix);
	im = read_gz(path, &li);
	snprintf(path, sizeof(path), "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
	lb = read_gz(path, &ll);
	n = be32(im + 4);
	*F = be32(im + 8) * be32(im + 12);
	*X = malloc(sizeof(float) * (size_t) n * *F);
	*y = malloc(sizeof(int) * n);
	for (size_t j = 0; j < (size_t) n * *F; j++)
		(*X)[j] = im[16 + j] / 255.0f;
	for (int i = 0; i < n; i++)
		(*y)[i] = lb[8 + i];
	free(im);
	free(lb);
	return n;
}

/* The class number of a label, added to the table when new; exits when it is full. */
static int
class_of(const char *label, char classes[][64], int *n_classes, int max_classes)
{
	for (int c = 0; c < *n_classes; c++)
		if (strcmp(classes[c], label) == 0)
			return c;
	if (*n_classes >= max_classes)
	{
		fprintf(stderr, "more than %d classes\n", max_classes);
		exit(2);
	}
	snprintf(classes[*n_classes], 64, "%s", label);
	return (*n_classes)++;
}

/* Loads an array-form CSV; see bench_data.h. */
int
bench_load_arr_csv(const char *path, float **X, int **y, int *F,
				   char classes[][64], int *n_classes, int max_classes)
{
	FILE	   *fp = fopen(path, "r");
	size_t		cap = 0;
	char	   *line = NULL;
	int			n = 0,
				rows_cap = 1024;

	if (!fp)
	{
		fprintf(stderr, "cannot open %s (run bench/datasets/load.sh --prepare-only)\n", path);
		exit(2);
	}
	*F = 0;
	*X = NULL;
	*y = malloc(sizeof(int) * rows_cap);
	while (getline(&line, &cap, fp) > 0)
	{
		char	   *open = strchr(line, '{'),
				   *close = open ? strchr(open, '}') : NULL,
				   *p,
				   *label;
		int			f = 0;

		if (!close || close[1] != '"' || close[2] != ',')
		{
			fprintf(stderr, "%s: malformed row %d\n", path, n + 1);
			exit(2);
		}
		/* the features: the first row sets F */
		if (*F == 0)
		{
			for (p = open; p < close; p++)
				*F += *p == ',';
			(*F)++;
			*X = malloc(sizeof(float) * (size_t) rows_cap * *F);
		}
		if (n == rows_cap)
		{
			rows_cap *= 2;
			*X = realloc(*X, sizeof(float) * (size_t) rows_cap * *F);
			*y = realloc(*y, sizeof(int) * rows_cap);
		}
		for (p = open + 1; f < *F && p < close; f++)
		{
			(*X)[(size_t) n * *F + f] = strtof(p, &p);
			p++;
		}
		/* the label, without its end of line */
		label = close + 3;
		label[strcspn(label, "\r\n")] = '\0';
		if (f != *F)
		{
			fprintf(stderr, "%s: row %d has %d features, not %d\n", path, n + 1, f, *F);
			exit(2);
		}
		(*y)[n++] = class_of(label, classes, n_classes, max_classes);
	}
	free(line);
	fclose(fp);
	return n;
}

/* A model from a file nn_serialize wrote, or NULL. */
nn_model *
bench_load_model(const char *path)
{
	FILE	   *fp = fopen(path, "rb");
	nn_model   *m = NULL;
	char		err[256];
	size_t		len;
	void	   *buf;

	if (!fp)
		return NULL;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc(len);
	if (fread(buf, 1, len, fp) == len)
		m = nn_deserialize(buf, len, err, sizeof(err));
	fclose(fp);
	free(buf);
	return m;
}

/* Writes the model to path. */
void
bench_save_model(const nn_model *m, const char *path)
{
	FILE	   *fp = fopen(path, "wb");
	size_t		len = nn_serialized_size(m);
	void	   *buf = malloc(len);

	nn_serialize(m, buf);
	if (!fp || fwrite(buf, 1, len, fp) != len)
		fprintf(stderr, "could not write %s\n", path);
	if (fp)
		fclose(fp);
	free(buf);
}
