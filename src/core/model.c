/*
 * model.c: a model's shape and lifetime: validate and count the layers,
 * allocate (with conv stages, laid out first), He-initialise, clone, copy,
 * free, list the parameter tensors; the feature range PGD stays
 * inside; the standardisation the forward pass applies first; the
 * finiteness check before a model is stored.
 */
#include <math.h>
#include <string.h>

#include "nn_internal.h"

/* Check a layer-width list against nn.h's limits; 0 if fine, else -1 + err. */
int
nn_validate_dims(int n_layers, const int *dims, char *err, size_t errlen)
{
	if (n_layers < 1 || n_layers > NN_MAX_LAYERS)
	{
		nn_set_error(err, errlen, "number of hidden layers must be between 0 and %d",
				  NN_MAX_LAYERS - 1);
		return -1;
	}
	if (dims[0] < 1 || dims[0] > NN_MAX_DIM)
	{
		nn_set_error(err, errlen, "number of features must be between 1 and %d, got %d",
				  NN_MAX_DIM, dims[0]);
		return -1;
	}
	for (int l = 1; l < n_layers; l++)
		if (dims[l] < 1 || dims[l] > NN_MAX_DIM)
		{
			nn_set_error(err, errlen, "hidden layer %d width must be between 1 and %d, got %d",
					  l, NN_MAX_DIM, dims[l]);
			return -1;
		}
	if (dims[n_layers] < 2 || dims[n_layers] > NN_MAX_DIM)
	{
		nn_set_error(err, errlen, "number of classes must be between 2 and %d, got %d",
				  NN_MAX_DIM, dims[n_layers]);
		return -1;
	}
	return 0;
}

/*
 * Total parameter count of validated dims (in 64 bits: each width is at most
 * 2^20, so this cannot overflow), for both allocation and deserialisation.
 */
uint64_t
nn_count_params(int n_layers, const int *dims)
{
	uint64_t	total = 0;

	for (int l = 0; l < n_layers; l++)
		total += (uint64_t) dims[l + 1] * (uint64_t) dims[l] + (uint64_t) dims[l + 1];
	return total;
}

/* Parameter count of the conv stages: each conv's weights and bias (pools have none). */
uint64_t
nn_count_stage_params(int n_stages, const nn_stage *stages)
{
	uint64_t	total = 0;

	for (int s = 0; s < n_stages; s++)
		if (stages[s].kind == NN_STAGE_CONV)
			total += (uint64_t) stages[s].c_out *
				((uint64_t) stages[s].size * stages[s].size * stages[s].c_in + 1);
	return total;
}

/* Lay out the params vector: conv weights and biases first, then the dense layers'. */
static size_t
assign_offsets(nn_model *m)
{
	size_t		off = 0;

	for (int s = 0; s < m->n_stages; s++)
	{
		nn_stage   *st = &m->stage[s];

		if (st->kind != NN_STAGE_CONV)
			continue;
		st->w_off = off;
		off += (size_t) st->c_out * (size_t) st->size * (size_t) st->size * (size_t) st->c_in;
		st->b_off = off;
		off += (size_t) st->c_out;
	}
	for (int l = 0; l < m->n_layers; l++)
	{
		m->w_off[l] = off;
		off += (size_t) m->dims[l + 1] * (size_t) m->dims[l];
		m->b_off[l] = off;
		off += (size_t) m->dims[l + 1];
	}
	return off;
}

/*
 * Allocate a model of validated shape with uninitialised params and a 0/1
 * feature range: the shared shell of create, clone and deserialise.
 */
nn_model *
nn_model_alloc(int n_layers, const int *dims, char *err, size_t errlen)
{
	return nn_model_alloc_staged(0, NULL, NULL, n_layers, dims, err, errlen);
}

/* The same, with n_stages planned conv / pool stages before the dense layers. */
nn_model *
nn_model_alloc_staged(int n_stages, const nn_stage *stages, const int in_shape[3],
					  int n_layers, const int *dims, char *err, size_t errlen)
{
	uint64_t	n_params = nn_count_params(n_layers, dims) + nn_count_stage_params(n_stages, stages);
	nn_model   *m;
	int			F = n_stages > 0 ? in_shape[0] * in_shape[1] * in_shape[2] : dims[0];

	NN_ASSERT(n_stages >= 0 && n_stages <= NN_MAX_STAGES);
	if (n_params > SIZE_MAX / sizeof(float))
	{
		nn_set_error(err, errlen, "model too large");
		return NULL;
	}
	m = nn_alloc_zero(sizeof(nn_model));
	if (m == NULL)
	{
		nn_set_error(err, errlen, "out of memory");
		return NULL;
	}
	m->n_features = F;
	m->n_stages = n_stages;
	for (int s = 0; s < n_stages; s++)
		m->stage[s] = stages[s];
	for (int i = 0; i < 3 && n_stages > 0; i++)
		m->in_shape[i] = in_shape[i];
	m->n_layers = n_layers;
	for (int l = 0; l <= n_layers; l++)
		m->dims[l] = dims[l];
	m->n_params = assign_offsets(m);
	NN_ASSERT((uint64_t) m->n_params == n_params);
	m->params = nn_alloc_floats(m->n_params);
	m->feat_lo = nn_alloc_floats((size_t) F);
	m->feat_hi = nn_alloc_floats((size_t) F);
	m->mean = nn_alloc_floats((size_t) F);
	m->scale = nn_alloc_floats((size_t) F);
	if (m->params == NULL || m->feat_lo == NULL || m->feat_hi == NULL ||
		m->mean == NULL || m->scale == NULL)
	{
		nn_free(m);
		nn_set_error(err, errlen, "out of memory allocating a model of %zu parameters",
				  (size_t) n_params);
		return NULL;
	}
	for (int j = 0; j < F; j++)
	{
		m->feat_lo[j] = 0.0f;
		m->feat_hi[j] = 1.0f;
		m->mean[j] = 0.0f;
		m->scale[j] = 1.0f;
	}
	m->standardized = 0;
	return m;
}

/* Fill W (n floats) with N(0, 2 / fan_in) draws from rng and zero the bias b (nb floats). */
static void
he_init(nn_rng *rng, float *W, size_t n, size_t fan_in, float *b, size_t nb)
{
	float		std = (float) sqrt(2.0 / (double) fan_in);

	for (size_t i = 0; i < n; i++)
		W[i] = nn_rng_normal(rng) * std;
	memset(b, 0, nb * sizeof(float));
}

/* He-initialise every weight tensor from seed (conv stages first, then the dense layers), biases 0. */
void
nn_init_params(nn_model *m, uint64_t seed)
{
	nn_rng		rng;

	nn_rng_seed(&rng, seed);
	for (int s = 0; s < m->n_stages; s++)
	{
		const nn_stage *st = &m->stage[s];
		size_t		fan_in = (size_t) st->size * (size_t) st->size * (size_t) st->c_in;

		if (st->kind == NN_STAGE_CONV)
			he_init(&rng, m->params + st->w_off, (size_t) st->c_out * fan_in, fan_in,
					m->params + st->b_off, (size_t) st->c_out);
	}
	for (int l = 0; l < m->n_layers; l++)
		he_init(&rng, m->params + m->w_off[l], (size_t) m->dims[l + 1] * (size_t) m->dims[l],
				(size_t) m->dims[l], m->params + m->b_off[l], (size_t) m->dims[l + 1]);
}

/* Validate the shape, then He-initialise weights (normal, std sqrt(2/fan_in)) and zero biases. */
nn_model *
nn_create(int n_features, int n_hidden, const int *hidden,
		  int n_classes, uint64_t seed, char *err, size_t errlen)
{
	int			dims[NN_MAX_LAYERS + 1];
	int			n_layers;
	nn_model   *m;

	if (err && errlen)
		err[0] = '\0';
	if (n_hidden < 0 || n_hidden > NN_MAX_LAYERS - 1)
	{
		nn_set_error(err, errlen, "number of hidden layers must be between 0 and %d, got %d",
				  NN_MAX_LAYERS - 1, n_hidden);
		return NULL;
	}
	if (n_hidden > 0 && hidden == NULL)
	{
		nn_set_error(err, errlen, "hidden layer widths missing");
		return NULL;
	}
	n_layers = n_hidden + 1;
	dims[0] = n_features;
	for (int l = 0; l < n_hidden; l++)
		dims[l + 1] = hidden[l];
	dims[n_layers] = n_classes;
	if (nn_validate_dims(n_layers, dims, err, errlen) != 0)
		return NULL;

	m = nn_model_alloc(n_layers, dims, err, errlen);
	if (m == NULL)
		return NULL;

	nn_init_params(m, seed);
	return m;
}

/* Deep copy (params, feature range, standardisation); NULL on allocation failure. */
nn_model *
nn_clone(const nn_model *m)
{
	nn_model   *c;

	if (m->n_members > 0)
		return nn_ensemble_clone(m);
	c = nn_model_alloc_staged(m->n_stages, m->stage, m->in_shape, m->n_layers, m->dims, NULL, 0);
	if (c == NULL)
		return NULL;
	memcpy(c->params, m->params, m->n_params * sizeof(float));
	memcpy(c->feat_lo, m->feat_lo, (size_t) NN_FEATURES(m) * sizeof(float));
	memcpy(c->feat_hi, m->feat_hi, (size_t) NN_FEATURES(m) * sizeof(float));
	memcpy(c->mean, m->mean, (size_t) NN_FEATURES(m) * sizeof(float));
	memcpy(c->scale, m->scale, (size_t) NN_FEATURES(m) * sizeof(float));
	c->standardized = m->standardized;
	return c;
}

/* Overwrite dst's parameters with src's (same shape; feature range and standardisation are left alone). */
void
nn_copy_params(nn_model *dst, const nn_model *src)
{
	if (dst != src)
		memcpy(dst->params, src->params, src->n_params * sizeof(float));
}

/* Each weight matrix and bias vector as a [start, end) range of params, stages first. */
int
nn_param_tensors(const nn_model *m, size_t *start, size_t *end, int max)
{
	int			n = 0;

	for (int s = 0; s < m->n_stages && n + 2 <= max; s++)
		if (m->stage[s].kind == NN_STAGE_CONV)
		{
			start[n] = m->stage[s].w_off;
			end[n++] = m->stage[s].b_off;
			start[n] = m->stage[s].b_off;
			end[n++] = m->stage[s].b_off + (size_t) m->stage[s].c_out;
		}
	for (int l = 0; l < m->n_layers && n + 2 <= max; l++)
	{
		start[n] = m->w_off[l];
		end[n++] = m->b_off[l];
		start[n] = m->b_off[l];
		end[n++] = m->b_off[l] + (size_t) m->dims[l + 1];
	}
	return n;
}

/* Release a model and its arrays (an ensemble's members too); NULL is ignored. */
void
nn_free(nn_model *m)
{
	if (m == NULL)
		return;
	for (int k = 0; k < m->n_members; k++)
		nn_free(m->members[k]);
	nn_free_mem(m->members);
	nn_free_mem(m->params);
	nn_free_mem(m->feat_lo);
	nn_free_mem(m->feat_hi);
	nn_free_mem(m->mean);
	nn_free_mem(m->scale);
	nn_free_mem(m);
}

/* Record per-feature min/max of X as the input box PGD stays inside; n <= 0 leaves it unchanged. */
void
nn_set_feature_range(nn_model *m, const float *X, int n)
{
	int			F = NN_FEATURES(m);
	float	   *lo = m->feat_lo;
	float	   *hi = m->feat_hi;

	if (n <= 0)
		return;
	memcpy(lo, X, (size_t) F * sizeof(float));
	memcpy(hi, X, (size_t) F * sizeof(float));
	for (int i = 1; i < n; i++)
	{
		const float *row = X + (size_t) i * F;

		for (int j = 0; j < F; j++)
		{
			float		v = row[j];

			lo[j] = v < lo[j] ? v : lo[j];
			hi[j] = v > hi[j] ? v : hi[j];
		}
	}
}

/*
 * Fix the standardisation from per-feature means and summed squared
 * deviations over n rows: scale is the population standard deviation, 1
 * where that is 0 or not finite; mean 0 where it is not finite.  Turns
 * standardisation on (nn_set_standardization, nn_stats_apply).
 */
void
nn_finish_standardization(nn_model *m, const double *mean, const double *ss, double n)
{
	for (int j = 0; j < NN_FEATURES(m); j++)
	{
		float		mu = (float) mean[j];
		float		sd = (float) sqrt(ss[j] / n);

		m->mean[j] = isfinite(mu) ? mu : 0.0f;
		m->scale[j] = (isfinite(sd) && sd > 0.0f) ? sd : 1.0f;
	}
	m->standardized = 1;
}

/*
 * Learn the standardisation from X (n rows): mean and population standard
 * deviation per feature, accumulated in double; scale is 1 where the
 * deviation is 0 or not finite (a constant feature), mean 0 where the mean
 * is not finite.  Turns standardisation on.  0, or -1 (model unchanged)
 * when the scratch cannot be allocated; n <= 0 changes nothing.
 */
int
nn_set_standardization(nn_model *m, const float *X, int n)
{
	int			F = NN_FEATURES(m);
	double	   *sum;
	double	   *ss;

	if (n <= 0)
		return 0;
	sum = nn_alloc_zero(sizeof(double) * (size_t) F);
	ss = nn_alloc_zero(sizeof(double) * (size_t) F);
	if (sum == NULL || ss == NULL)
	{
		nn_free_mem(sum);
		nn_free_mem(ss);
		return -1;
	}
	for (int i = 0; i < n; i++)
	{
		const float *row = X + (size_t) i * F;

		for (int j = 0; j < F; j++)
			sum[j] += row[j];
	}
	for (int j = 0; j < F; j++)
		sum[j] /= (double) n;	/* now the mean */
	for (int i = 0; i < n; i++)
	{
		const float *row = X + (size_t) i * F;

		for (int j = 0; j < F; j++)
		{
			double		d = (double) row[j] - sum[j];

			ss[j] += d * d;
		}
	}
	nn_finish_standardization(m, sum, ss, (double) n);
	nn_free_mem(sum);
	nn_free_mem(ss);
	return 0;
}

/* Features per block of nn_standardize_rows: its mean and reciprocal scale sit on the stack. */
#define NN_STD_BLOCK 256

/*
 * Map n rows of raw X to (x - mean) * (1 / scale) into out (which may be X),
 * a block of features at a time so the inner loop is a plain multiply-add
 * on local arrays that compilers vectorise (a division per element costs a
 * third of a training step on 784 features).  With mean 0 and scale 1 every
 * value is unchanged, bit for bit.
 */
void
nn_standardize_rows(const nn_model *m, const float *X, int n, float *out)
{
	int			F = NN_FEATURES(m);
	float		mu[NN_STD_BLOCK];
	float		inv[NN_STD_BLOCK];

	for (int j0 = 0; j0 < F; j0 += NN_STD_BLOCK)
	{
		int			w = F - j0 < NN_STD_BLOCK ? F - j0 : NN_STD_BLOCK;

		for (int j = 0; j < w; j++)
		{
			mu[j] = m->mean[j0 + j];
			inv[j] = 1.0f / m->scale[j0 + j];
		}
		for (int i = 0; i < n; i++)
		{
			const float *row = X + (size_t) i * F + j0;
			float	   *o = out + (size_t) i * F + j0;

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC ivdep
#endif
			for (int j = 0; j < w; j++)
				o[j] = (row[j] - mu[j]) * inv[j];
		}
	}
}

/* True when every parameter is finite (a diverged run is never stored). */
int
nn_params_finite(const nn_model *m)
{
	for (int k = 0; k < m->n_members; k++)
		if (!nn_params_finite(m->members[k]))
			return 0;
	for (size_t i = 0; i < m->n_params; i++)
		if (!isfinite(m->params[i]))
			return 0;
	return 1;
}
