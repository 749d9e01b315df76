/*
 * arch.c: layer lists (conv, maxpool, dense) on an input shape: checking
 * that they fit, the stage geometry they give, the memory they need, and
 * creating a convolutional model from one.
 */
#include <string.h>

#include "nn_internal.h"

/* Plan one conv stage on its input: odd kernel, same padding, so the size is kept. */
static int
plan_conv(nn_stage *st, int index, char *err, size_t errlen)
{
	if (st->c_out < 1 || st->c_out > NN_MAX_CHANNELS)
	{
		nn_set_error(err, errlen, "layer %d: a convolution needs 1 to %d filters, got %d",
					 index + 1, NN_MAX_CHANNELS, st->c_out);
		return -1;
	}
	if (st->size < 1 || st->size > NN_MAX_KERNEL || st->size % 2 == 0)
	{
		nn_set_error(err, errlen, "layer %d: a convolution kernel must be odd, 1 to %d, got %d",
					 index + 1, NN_MAX_KERNEL, st->size);
		return -1;
	}
	st->h_out = st->h_in;
	st->w_out = st->w_in;
	return 0;
}

/* Plan one max-pool stage: P x P windows, stride P, the incomplete edge dropped. */
static int
plan_pool(nn_stage *st, int index, char *err, size_t errlen)
{
	if (st->size < 2 || st->size > st->h_in || st->size > st->w_in)
	{
		nn_set_error(err, errlen, "layer %d: maxpool %d does not fit its %d x %d input",
					 index + 1, st->size, st->h_in, st->w_in);
		return -1;
	}
	st->c_out = st->c_in;
	st->h_out = st->h_in / st->size;
	st->w_out = st->w_in / st->size;
	return 0;
}

/* Check in_shape, then give every stage its input and output geometry. */
int
nn_plan_stages(const int in_shape[3], int n_stages, nn_stage *stages, int *flat,
			   char *err, size_t errlen)
{
	int			c = in_shape[0],
				h = in_shape[1],
				w = in_shape[2];

	if (c < 1 || h < 1 || w < 1 || c > NN_MAX_CHANNELS ||
		(int64_t) c * h * w > NN_MAX_DIM)
	{
		nn_set_error(err, errlen, "input shape %d x %d x %d must be positive, at most %d channels and %d values",
					 c, h, w, NN_MAX_CHANNELS, NN_MAX_DIM);
		return -1;
	}
	for (int s = 0; s < n_stages; s++)
	{
		nn_stage   *st = &stages[s];

		st->c_in = c;
		st->h_in = h;
		st->w_in = w;
		if ((st->kind == NN_STAGE_CONV ? plan_conv(st, s, err, errlen) :
			 plan_pool(st, s, err, errlen)) != 0)
			return -1;
		if ((int64_t) st->c_out * st->h_out * st->w_out > NN_MAX_DIM)
		{
			nn_set_error(err, errlen, "layer %d: its output has more than %d values", s + 1, NN_MAX_DIM);
			return -1;
		}
		c = st->c_out;
		h = st->h_out;
		w = st->w_out;
	}
	*flat = c * h * w;
	return 0;
}

/*
 * Split a layer list into stages and dense widths (conv and maxpool must
 * come before every dense layer), plan the stages and check the dense dims.
 */
static int
split_layers(const int in_shape[3], int n_specs, const nn_layer_spec *specs, int n_classes,
			 nn_stage *stages, int *n_stages, int *dims, int *n_layers, char *err, size_t errlen)
{
	int			ns = 0,
				nd = 0;

	for (int i = 0; i < n_specs; i++)
	{
		if (specs[i].kind == NN_LAYER_DENSE)
		{
			if (nd + 2 > NN_MAX_LAYERS)
			{
				nn_set_error(err, errlen, "at most %d dense hidden layers are supported", NN_MAX_LAYERS - 1);
				return -1;
			}
			dims[++nd] = specs[i].units;
			continue;
		}
		if (nd > 0 || ns == NN_MAX_STAGES ||
			(specs[i].kind != NN_LAYER_CONV && specs[i].kind != NN_LAYER_POOL))
		{
			nn_set_error(err, errlen, nd > 0 ? "layer %d: conv and maxpool layers must come before the dense layers" :
						 ns == NN_MAX_STAGES ? "layer %d: at most 8 conv and maxpool layers are supported" :
						 "layer %d: unknown layer kind", i + 1);
			return -1;
		}
		memset(&stages[ns], 0, sizeof(nn_stage));
		stages[ns].kind = specs[i].kind == NN_LAYER_CONV ? NN_STAGE_CONV : NN_STAGE_POOL;
		stages[ns].size = specs[i].size;
		stages[ns++].c_out = specs[i].units;
	}
	*n_stages = ns;
	*n_layers = nd + 1;
	dims[nd + 1] = n_classes;
	if (nn_plan_stages(in_shape, ns, stages, &dims[0], err, errlen) != 0)
		return -1;
	return nn_validate_dims(nd + 1, dims, err, errlen);
}

/* Check a layer list; its parameter count and a batch's workspace floats. */
int
nn_plan_layers(const int in_shape[3], int n_specs, const nn_layer_spec *specs,
			   int n_classes, int max_batch, uint64_t *n_params, uint64_t *ws_floats,
			   char *err, size_t errlen)
{
	nn_stage	stages[NN_MAX_STAGES];
	int			dims[NN_MAX_LAYERS + 1];
	int			ns,
				nl;
	uint64_t	row = 0;

	if (split_layers(in_shape, n_specs, specs, n_classes, stages, &ns, dims, &nl, err, errlen) != 0)
		return -1;
	*n_params = nn_count_params(nl, dims) + nn_count_stage_params(ns, stages);
	for (int s = 0; s < ns; s++)	/* output, its gradient and (pools) the max indices */
		row += (uint64_t) (stages[s].kind == NN_STAGE_POOL ? 3 : 2) *
			stages[s].c_out * stages[s].h_out * stages[s].w_out;
	for (int l = 1; l <= nl; l++)	/* dense activations and deltas, logits and probabilities */
		row += 2 * (uint64_t) dims[l];
	row += (uint64_t) in_shape[0] * in_shape[1] * in_shape[2];	/* the standardised input */
	*ws_floats = row * (uint64_t) (max_batch > 0 ? max_batch : 1) +
		(uint64_t) nn_conv_scratch_floats(ns, stages, max_batch);
	return 0;
}

/* Create a model from a layer list: plan it, allocate, He-initialise from seed. */
nn_model *
nn_create_layers(const int in_shape[3], int n_specs, const nn_layer_spec *specs,
				 int n_classes, uint64_t seed, char *err, size_t errlen)
{
	nn_stage	stages[NN_MAX_STAGES];
	int			dims[NN_MAX_LAYERS + 1];
	int			ns,
				nl;
	nn_model   *m;

	if (err && errlen)
		err[0] = '\0';
	if (in_shape == NULL || (n_specs > 0 && specs == NULL) || n_specs < 0)
	{
		nn_set_error(err, errlen, "input shape or layer list missing");
		return NULL;
	}
	if (split_layers(in_shape, n_specs, specs, n_classes, stages, &ns, dims, &nl, err, errlen) != 0)
		return NULL;
	m = nn_model_alloc_staged(ns, stages, in_shape, nl, dims, err, errlen);
	if (m != NULL)
		nn_init_params(m, seed);
	return m;
}
