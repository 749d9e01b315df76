/*
 * ensemble.c: sharded models (SISA): an ensemble of networks of one shape,
 * whose forward pass is the log of its members' mean probabilities, and the
 * stable hash that assigns a row to its shard.  See nn.h.
 */
#include <math.h>
#include <string.h>

#include "nn_internal.h"

#define ENSEMBLE_LOG_FLOOR 1e-30f	/* log(0) would be -inf: a probability below this counts as it */

/* splitmix64's finaliser (Steele, Lea, Flood 2014): a bijection of 64 bits that mixes every bit. */
static uint64_t
mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* The shard of an id among `shards`: mix64 of its 64 bits, modulo shards. */
int
nn_shard_of(int64_t id, int shards)
{
	NN_ASSERT(shards >= 1 && shards <= NN_MAX_SHARDS);
	return (int) (mix64((uint64_t) id) % (uint64_t) shards);
}

/* 0 if b has a's shape (input, stages, dense dims), else -1 + err naming member k. */
static int
same_shape(const nn_model *a, const nn_model *b, int k, char *err, size_t errlen)
{
	int			same = a->n_features == b->n_features && a->n_stages == b->n_stages &&
		a->n_layers == b->n_layers &&
		memcmp(a->dims, b->dims, sizeof(int) * (size_t) (a->n_layers + 1)) == 0 &&
		memcmp(a->in_shape, b->in_shape, sizeof(a->in_shape)) == 0;

	for (int s = 0; same && s < a->n_stages; s++)
		same = a->stage[s].kind == b->stage[s].kind && a->stage[s].size == b->stage[s].size &&
			a->stage[s].c_out == b->stage[s].c_out;
	if (!same)
		nn_set_error(err, errlen, "member %d of the ensemble differs in shape from member 1", k + 1);
	return same ? 0 : -1;
}

/*
 * The ensemble of members[0 .. n-1]: a shell with their shape and no
 * parameters, owning the members.  NULL + err on a bad count, a member of
 * another shape or one that is an ensemble, or memory exhaustion.
 */
nn_model *
nn_ensemble_create(nn_model **members, int n, char *err, size_t errlen)
{
	nn_model   *e;

	if (members == NULL || n < 1 || n > NN_MAX_SHARDS)
	{
		nn_set_error(err, errlen, "an ensemble has 1 to %d members, got %d", NN_MAX_SHARDS, n);
		return NULL;
	}
	/* step 1: one shape, no nesting */
	for (int k = 0; k < n; k++)
	{
		if (members[k] == NULL || members[k]->n_members != 0)
		{
			nn_set_error(err, errlen, "member %d of the ensemble is missing or an ensemble", k + 1);
			return NULL;
		}
		if (same_shape(members[0], members[k], k, err, errlen) != 0)
			return NULL;
	}
	/* step 2: the shell: member 1's shape, no arrays of its own */
	e = nn_alloc_zero(sizeof(nn_model));
	if (e == NULL || (e->members = nn_alloc_zero(sizeof(nn_model *) * (size_t) n)) == NULL)
	{
		nn_free_mem(e);
		nn_set_error(err, errlen, "out of memory");
		return NULL;
	}
	e->n_features = members[0]->n_features;
	e->n_stages = members[0]->n_stages;
	memcpy(e->in_shape, members[0]->in_shape, sizeof(e->in_shape));
	memcpy(e->stage, members[0]->stage, sizeof(e->stage));
	e->n_layers = members[0]->n_layers;
	memcpy(e->dims, members[0]->dims, sizeof(e->dims));
	memcpy(e->members, members, sizeof(nn_model *) * (size_t) n);
	e->n_members = n;
	return e;
}

/* A deep copy of an ensemble (every member cloned); NULL on allocation failure. */
nn_model *
nn_ensemble_clone(const nn_model *e)
{
	nn_model   *copies[NN_MAX_SHARDS];
	nn_model   *c = NULL;
	int			k;

	NN_ASSERT(e->n_members >= 1 && e->n_members <= NN_MAX_SHARDS);
	for (k = 0; k < e->n_members; k++)
		if ((copies[k] = nn_clone(e->members[k])) == NULL)
			break;
	if (k == e->n_members)
		c = nn_ensemble_create(copies, k, NULL, 0);
	if (c == NULL)
		while (k-- > 0)
			nn_free(copies[k]);
	return c;
}

/*
 * Forward pass of an ensemble: each member's forward pass and softmax,
 * summed into ws->ens; then log of the mean (floored, a NaN kept) into the
 * output layer's activations, as the ensemble's logits.  NULL like
 * nn_forward.
 */
const float *
nn_ensemble_forward(const nn_model *e, nn_workspace *ws, const float *X, int n)
{
	int			C = NN_CLASSES(e);
	size_t		count = (size_t) (n > 0 ? n : 0) * (size_t) C;
	float	   *out = ws->act[e->n_layers];

	NN_ASSERT(e->n_members >= 1 && ws->ens != NULL);
	if (n < 0 || n > ws->max_batch)
		return NULL;
	memset(ws->ens, 0, sizeof(float) * count);
	/* step 1: the members' probabilities, summed */
	for (int k = 0; k < e->n_members; k++)
	{
		const float *z = nn_forward(e->members[k], ws, X, n);

		if (z == NULL)
			return NULL;
		for (int i = 0; i < n; i++)
		{
			double		lse = nn_row_logsumexp(z + (size_t) i * C, C);

			for (int j = 0; j < C; j++)
				ws->ens[(size_t) i * C + j] += (float) exp((double) z[(size_t) i * C + j] - lse);
		}
	}
	/* step 2: log of their mean, where the callers read logits */
	for (size_t i = 0; i < count; i++)
	{
		float		p = ws->ens[i] / (float) e->n_members;

		out[i] = isnan(p) ? p : logf(p > ENSEMBLE_LOG_FLOOR ? p : ENSEMBLE_LOG_FLOOR);
	}
	return out;
}
