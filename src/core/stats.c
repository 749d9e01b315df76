/*
 * stats.c: the statistics training fixes before its first step (feature
 * range, and standardisation's mean and scale), accumulated over chunks of
 * rows, for tables trained a chunk at a time (nn_stream_* in fit.c).
 *
 * Each chunk's mean and summed squared deviations are computed exactly as
 * nn_set_standardization does over all rows, then merged into the totals
 * with Chan, Golub and LeVeque's pairwise update, so one chunk gives the
 * bytes nn_set_standardization gives.
 */
#include <math.h>
#include <string.h>

#include "nn_internal.h"

struct nn_stats
{
	int			F;
	double		n;				/* rows so far */
	double	   *mean;			/* F: their mean */
	double	   *ss;				/* F: their summed squared deviations from it */
	double	   *cmean;			/* F: scratch, one chunk's mean */
	double	   *css;			/* F: scratch, one chunk's squared deviations */
	float	   *lo;				/* F: feature range */
	float	   *hi;
};

/* Empty statistics of F features, or NULL when memory runs out. */
nn_stats *
nn_stats_create(int n_features)
{
	nn_stats   *s = nn_alloc_zero(sizeof(nn_stats));
	size_t		d = sizeof(double) * (size_t) n_features;

	if (s == NULL)
		return NULL;
	s->F = n_features;
	s->mean = nn_alloc_zero(d);
	s->ss = nn_alloc_zero(d);
	s->cmean = nn_alloc_zero(d);
	s->css = nn_alloc_zero(d);
	s->lo = nn_alloc_floats((size_t) n_features);
	s->hi = nn_alloc_floats((size_t) n_features);
	if (s->mean == NULL || s->ss == NULL || s->cmean == NULL || s->css == NULL ||
		s->lo == NULL || s->hi == NULL)
	{
		nn_stats_free(s);
		return NULL;
	}
	return s;
}

void
nn_stats_free(nn_stats *s)
{
	if (s == NULL)
		return;
	nn_free_mem(s->mean);
	nn_free_mem(s->ss);
	nn_free_mem(s->cmean);
	nn_free_mem(s->css);
	nn_free_mem(s->lo);
	nn_free_mem(s->hi);
	nn_free_mem(s);
}

/* One chunk's mean and squared deviations into cmean/css (two passes, as nn_set_standardization). */
static void
chunk_moments(nn_stats *s, const float *X, int n)
{
	int			F = s->F;

	memset(s->cmean, 0, sizeof(double) * (size_t) F);
	memset(s->css, 0, sizeof(double) * (size_t) F);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < F; j++)
			s->cmean[j] += X[(size_t) i * F + j];
	for (int j = 0; j < F; j++)
		s->cmean[j] /= (double) n;
	for (int i = 0; i < n; i++)
		for (int j = 0; j < F; j++)
		{
			double		d = (double) X[(size_t) i * F + j] - s->cmean[j];

			s->css[j] += d * d;
		}
}

/* One chunk's range merged into lo/hi (the first chunk's rows set them). */
static void
chunk_range(nn_stats *s, const float *X, int n)
{
	int			F = s->F;

	if (s->n == 0)
	{
		memcpy(s->lo, X, sizeof(float) * (size_t) F);
		memcpy(s->hi, X, sizeof(float) * (size_t) F);
	}
	for (int i = 0; i < n; i++)
		for (int j = 0; j < F; j++)
		{
			float		v = X[(size_t) i * F + j];

			s->lo[j] = v < s->lo[j] ? v : s->lo[j];
			s->hi[j] = v > s->hi[j] ? v : s->hi[j];
		}
}

/* Adds n rows of X (n x F) to the statistics; n <= 0 changes nothing. */
void
nn_stats_add(nn_stats *s, const float *X, int n)
{
	if (n <= 0)
		return;
	chunk_moments(s, X, n);
	chunk_range(s, X, n);
	/* the merge: a first chunk is copied, so one chunk is nn_set_standardization's bytes */
	for (int j = 0; j < s->F; j++)
	{
		double		delta = s->cmean[j] - s->mean[j];
		double		total = s->n + (double) n;

		if (s->n == 0)
		{
			s->mean[j] = s->cmean[j];
			s->ss[j] = s->css[j];
			continue;
		}
		s->mean[j] += delta * (double) n / total;
		s->ss[j] += s->css[j] + delta * delta * s->n * (double) n / total;
	}
	s->n += (double) n;
}

/* Rows added so far. */
double
nn_stats_rows(const nn_stats *s)
{
	return s->n;
}

/*
 * Sets m's feature range from the statistics and, with standardize, its
 * standardisation (as nn_set_feature_range and nn_set_standardization would
 * over every row added).  No rows: m unchanged.
 */
void
nn_stats_apply(nn_model *m, const nn_stats *s, int standardize)
{
	NN_ASSERT(NN_FEATURES(m) == s->F);
	if (s->n == 0)
		return;
	memcpy(m->feat_lo, s->lo, sizeof(float) * (size_t) s->F);
	memcpy(m->feat_hi, s->hi, sizeof(float) * (size_t) s->F);
	if (standardize)
		nn_finish_standardization(m, s->mean, s->ss, s->n);
}
