/*
 * serialize.c: the model byte format (see nn.h), little-endian whatever the
 * host, closed by an FNV-1a hash that deserialisation checks.  Version 2
 * (written for MLPs) adds the standardisation after the feature range;
 * version 3 (written for convolutional models) adds the stages after the
 * dims; version 1 (models of 0.1) still loads, as a model without
 * standardisation.  Version 4 (sharded models) is a container of members
 * in version 2 or 3.
 */
#include <string.h>

#include "nn_internal.h"

#define NN_FORMAT_VERSION	2	/* MLPs */
#define NN_FORMAT_V1		1	/* no standardisation block */
#define NN_FORMAT_V3		3	/* convolutional models: a stage block after the dims */
#define NN_FORMAT_V4		4	/* sharded models: S members, each in version 2 or 3 */
#define NN_MAGIC			"UNLN"

/* 64-bit FNV-1a over len bytes, continuing from h (start with NN_FNV_OFFSET). */
uint64_t
nn_fnv1a64(const void *data, size_t len, uint64_t h)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}

/* Store v little-endian at p, independent of host byte order. */
static void
put_u32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char) v;
	p[1] = (unsigned char) (v >> 8);
	p[2] = (unsigned char) (v >> 16);
	p[3] = (unsigned char) (v >> 24);
}

/* Load a little-endian u32 from p. */
static uint32_t
get_u32(const unsigned char *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) |
		((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

/* Store v little-endian at p. */
static void
put_u64(unsigned char *p, uint64_t v)
{
	put_u32(p, (uint32_t) v);
	put_u32(p + 4, (uint32_t) (v >> 32));
}

/* Load a little-endian u64 from p. */
static uint64_t
get_u64(const unsigned char *p)
{
	return (uint64_t) get_u32(p) | ((uint64_t) get_u32(p + 4) << 32);
}

/* Write count floats little-endian (bit patterns preserved); returns the end. */
static unsigned char *
put_floats(unsigned char *p, const float *src, size_t count)
{
	for (size_t i = 0; i < count; i++, p += 4)
	{
		uint32_t	bits;

		memcpy(&bits, &src[i], 4);
		put_u32(p, bits);
	}
	return p;
}

/* Read count little-endian floats; returns the position after them. */
static const unsigned char *
get_floats(const unsigned char *p, float *dst, size_t count)
{
	for (size_t i = 0; i < count; i++, p += 4)
	{
		uint32_t	bits = get_u32(p);

		memcpy(&dst[i], &bits, 4);
	}
	return p;
}

/* What a model's header says: format version, dense dims, stages; where the feature block starts. */
typedef struct header
{
	uint32_t	version;
	int			n_layers;
	int			dims[NN_MAX_LAYERS + 1];
	int			n_stages;		/* version 3 only */
	int			in_shape[3];
	nn_stage	stage[NN_MAX_STAGES];
	int			F;				/* features: dims[0], or C*H*W with stages */
	size_t		size;			/* bytes up to the feature block */
} header;

/* Byte length of the header: magic, version, n_layers and the dims, and in 3 the stages. */
static size_t
header_size(uint32_t version, int n_layers, int n_stages)
{
	return 12 + 4 * (size_t) (n_layers + 1) +
		(version == NN_FORMAT_V3 ? 16 + 12 * (size_t) n_stages : 0);
}

/* Bytes of the per-feature arrays of a format version: the range, and from 2 the standardisation. */
static uint64_t
feature_block_size(uint32_t version, int F)
{
	return version == NN_FORMAT_V1 ? 8 * (uint64_t) F : 4 + 16 * (uint64_t) F;
}

/* The version m is written in: 3 with conv stages, else 2 (as before stages existed). */
static uint32_t
format_of(const nn_model *m)
{
	return m->n_stages > 0 ? NN_FORMAT_V3 : NN_FORMAT_VERSION;
}

/* Exact size of nn_serialize's output for m. */
size_t
nn_serialized_size(const nn_model *m)
{
	uint32_t	version = format_of(m);

	if (m->n_members > 0)
	{
		size_t		size = 12 + 8;	/* magic, version, S; the hash */

		for (int k = 0; k < m->n_members; k++)
			size += 8 + nn_serialized_size(m->members[k]);
		return size;
	}
	return header_size(version, m->n_layers, m->n_stages) +
		(size_t) feature_block_size(version, NN_FEATURES(m)) + 4 * m->n_params + 8;
}

/* Write the stage block of version 3: n_stages, in_shape, then kind, size, c_out (0 for a pool) per stage. */
static unsigned char *
put_stages(unsigned char *p, const nn_model *m)
{
	put_u32(p, (uint32_t) m->n_stages);
	p += 4;
	for (int i = 0; i < 3; i++, p += 4)
		put_u32(p, (uint32_t) m->in_shape[i]);
	for (int s = 0; s < m->n_stages; s++, p += 12)
	{
		put_u32(p, (uint32_t) m->stage[s].kind);
		put_u32(p + 4, (uint32_t) m->stage[s].size);
		put_u32(p + 8, m->stage[s].kind == NN_STAGE_CONV ? (uint32_t) m->stage[s].c_out : 0);
	}
	return p;
}

/* Write an ensemble as version 4: S, then each member's length and bytes; then the hash. */
static void
serialize_ensemble(const nn_model *e, unsigned char *start)
{
	unsigned char *p = start;

	memcpy(p, NN_MAGIC, 4);
	put_u32(p + 4, NN_FORMAT_V4);
	put_u32(p + 8, (uint32_t) e->n_members);
	p += 12;
	for (int k = 0; k < e->n_members; k++)
	{
		size_t		size = nn_serialized_size(e->members[k]);

		put_u64(p, (uint64_t) size);
		nn_serialize(e->members[k], p + 8);
		p += 8 + size;
	}
	NN_ASSERT((size_t) (p - start) + 8 == nn_serialized_size(e));
	put_u64(p, nn_fnv1a64(start, (size_t) (p - start), NN_FNV_OFFSET));
}

/* Write m in the documented little-endian format followed by its FNV-1a hash. */
void
nn_serialize(const nn_model *m, void *buf)
{
	unsigned char *start = buf;
	unsigned char *p = start;
	int			F = NN_FEATURES(m);
	uint32_t	version = format_of(m);

	if (m->n_members > 0)
	{
		serialize_ensemble(m, start);
		return;
	}
	memcpy(p, NN_MAGIC, 4);
	put_u32(p + 4, version);
	put_u32(p + 8, (uint32_t) m->n_layers);
	p += 12;
	for (int l = 0; l <= m->n_layers; l++, p += 4)
		put_u32(p, (uint32_t) m->dims[l]);
	if (version == NN_FORMAT_V3)
		p = put_stages(p, m);
	p = put_floats(p, m->feat_lo, (size_t) F);
	p = put_floats(p, m->feat_hi, (size_t) F);
	put_u32(p, m->standardized ? 1 : 0);
	p += 4;
	p = put_floats(p, m->mean, (size_t) F);
	p = put_floats(p, m->scale, (size_t) F);
	p = put_floats(p, m->params, m->n_params);
	NN_ASSERT((size_t) (p - start) + 8 == nn_serialized_size(m));
	put_u64(p, nn_fnv1a64(start, (size_t) (p - start), NN_FNV_OFFSET));
}

/*
 * Read version 3's stage block at p (len bytes left): the stage count, the
 * input shape and the stages, planned again (nn_plan_stages) and checked
 * against the dense input width dims[0]; 0 if fine, else -1 + err.
 */
static int
read_stages(const unsigned char *p, size_t len, header *h, char *err, size_t errlen)
{
	int			flat;

	h->n_stages = len >= 4 ? (int) get_u32(p) : 0;
	if (h->n_stages < 1 || h->n_stages > NN_MAX_STAGES)
	{
		nn_set_error(err, errlen, "bad stage count %d", h->n_stages);
		return -1;
	}
	if (len < 16 + 12 * (size_t) h->n_stages)
	{
		nn_set_error(err, errlen, "model data truncated (stages)");
		return -1;
	}
	for (int i = 0; i < 3; i++)
		h->in_shape[i] = (int) (get_u32(p + 4 + 4 * i) > NN_MAX_DIM ? 0 : get_u32(p + 4 + 4 * i));
	for (int s = 0; s < h->n_stages; s++)
	{
		const unsigned char *q = p + 16 + 12 * s;
		uint32_t	kind = get_u32(q);

		memset(&h->stage[s], 0, sizeof(nn_stage));
		h->stage[s].kind = kind == NN_STAGE_CONV ? NN_STAGE_CONV : NN_STAGE_POOL;
		h->stage[s].size = (int) (get_u32(q + 4) > NN_MAX_DIM ? 0 : get_u32(q + 4));
		h->stage[s].c_out = (int) (get_u32(q + 8) > NN_MAX_DIM ? 0 : get_u32(q + 8));
		if ((kind != NN_STAGE_CONV && kind != NN_STAGE_POOL) ||
			(kind == NN_STAGE_POOL && get_u32(q + 8) != 0))
		{
			nn_set_error(err, errlen, "bad stage %d", s + 1);
			return -1;
		}
	}
	if (nn_plan_stages(h->in_shape, h->n_stages, h->stage, &flat, err, errlen) != 0)
		return -1;
	if (flat != h->dims[0])
	{
		nn_set_error(err, errlen, "stages give %d values, the dense layers take %d", flat, h->dims[0]);
		return -1;
	}
	h->F = h->in_shape[0] * h->in_shape[1] * h->in_shape[2];
	return 0;
}

/*
 * Read and check the header: magic, version, layer count and widths within
 * nn.h's limits, and in version 3 the stages; 0 if fine, else -1 + err.
 */
static int
read_header(const unsigned char *p, size_t len, header *h, char *err, size_t errlen)
{
	if (p == NULL || len < 12)
	{
		nn_set_error(err, errlen, "model data truncated (%zu bytes)", len);
		return -1;
	}
	if (memcmp(p, NN_MAGIC, 4) != 0)
	{
		nn_set_error(err, errlen, "not a model (bad magic)");
		return -1;
	}
	h->version = get_u32(p + 4);
	if (h->version != NN_FORMAT_VERSION && h->version != NN_FORMAT_V1 && h->version != NN_FORMAT_V3)
	{
		nn_set_error(err, errlen, "unsupported model format version %u (expected %d to %d)",
					 (unsigned) h->version, NN_FORMAT_V1, NN_FORMAT_V4);
		return -1;
	}
	if (get_u32(p + 8) < 1 || get_u32(p + 8) > NN_MAX_LAYERS)
	{
		nn_set_error(err, errlen, "bad layer count %u", (unsigned) get_u32(p + 8));
		return -1;
	}
	h->n_layers = (int) get_u32(p + 8);
	h->n_stages = 0;
	h->size = header_size(NN_FORMAT_VERSION, h->n_layers, 0);
	if (len < h->size)
	{
		nn_set_error(err, errlen, "model data truncated (%zu bytes)", len);
		return -1;
	}
	for (int l = 0; l <= h->n_layers; l++)
	{
		uint32_t	d = get_u32(p + 12 + 4 * l);

		if (d > NN_MAX_DIM)
		{
			nn_set_error(err, errlen, "bad layer width %u", (unsigned) d);
			return -1;
		}
		h->dims[l] = (int) d;
	}
	h->F = h->dims[0];
	if (nn_validate_dims(h->n_layers, h->dims, err, errlen) != 0 ||
		(h->version == NN_FORMAT_V3 && read_stages(p + h->size, len - h->size, h, err, errlen) != 0))
		return -1;
	h->size = header_size(h->version, h->n_layers, h->n_stages);
	return 0;
}

/*
 * Check that len is exactly what the shape asks for and that the hash at
 * the end matches; 0 if fine, else -1 + err.
 */
static int
check_length_and_hash(const unsigned char *p, size_t len, const header *h, char *err, size_t errlen)
{
	uint64_t	expected = (uint64_t) h->size + feature_block_size(h->version, h->F) +
		4 * (nn_count_params(h->n_layers, h->dims) + nn_count_stage_params(h->n_stages, h->stage)) + 8;

	if (expected > SIZE_MAX || len < expected)
	{
		nn_set_error(err, errlen, "model data truncated (%zu bytes, expected %llu)",
					 len, (unsigned long long) expected);
		return -1;
	}
	if (len > expected)
	{
		nn_set_error(err, errlen, "model data has %zu trailing bytes",
					 len - (size_t) expected);
		return -1;
	}
	if (nn_fnv1a64(p, (size_t) expected - 8, NN_FNV_OFFSET) != get_u64(p + expected - 8))
	{
		nn_set_error(err, errlen, "model data corrupt (hash mismatch)");
		return -1;
	}
	return 0;
}

/*
 * Parse version 4: the container's hash first, then S members, each a
 * complete model of version 2 or 3 of one shape (nn_ensemble_create checks
 * it); NULL + err on any problem.
 */
static nn_model *
deserialize_ensemble(const unsigned char *p, size_t len, char *err, size_t errlen)
{
	nn_model   *members[NN_MAX_SHARDS];
	nn_model   *e = NULL;
	uint32_t	S = len >= 12 ? get_u32(p + 8) : 0;
	size_t		at = 12;
	int			k;

	if (len < 20 || nn_fnv1a64(p, len - 8, NN_FNV_OFFSET) != get_u64(p + len - 8))
	{
		nn_set_error(err, errlen, len < 20 ? "model data truncated (%zu bytes)" : "model data corrupt (hash mismatch)", len);
		return NULL;
	}
	if (S < 1 || S > NN_MAX_SHARDS)
	{
		nn_set_error(err, errlen, "bad shard count %u", (unsigned) S);
		return NULL;
	}
	for (k = 0; k < (int) S; k++)
	{
		size_t		left = len - 8 - at;	/* bytes before the hash */
		uint64_t	size = left >= 8 ? get_u64(p + at) : UINT64_MAX;

		if (size > left - 8 || (size >= 8 && get_u32(p + at + 8 + 4) == NN_FORMAT_V4))
		{
			nn_set_error(err, errlen, "bad member %d of a sharded model", k + 1);
			break;
		}
		if ((members[k] = nn_deserialize(p + at + 8, (size_t) size, err, errlen)) == NULL)
			break;
		at += 8 + (size_t) size;
	}
	if (k == (int) S && at != len - 8)
		nn_set_error(err, errlen, "model data has %zu trailing bytes", len - 8 - at);
	else if (k == (int) S)
		e = nn_ensemble_create(members, k, err, errlen);
	if (e == NULL)
		while (k-- > 0)
			nn_free(members[k]);
	return e;
}

/*
 * Parse a serialised model, checking length, magic, version, shape limits,
 * exact total length and the hash before allocating anything large.
 */
nn_model *
nn_deserialize(const void *buf, size_t len, char *err, size_t errlen)
{
	const unsigned char *p = buf;
	header		h;
	uint32_t	standardized = 0;
	nn_model   *m;

	if (err && errlen)
		err[0] = '\0';
	if (p != NULL && len >= 12 && memcmp(p, NN_MAGIC, 4) == 0 && get_u32(p + 4) == NN_FORMAT_V4)
		return deserialize_ensemble(p, len, err, errlen);
	/* header, then the whole length and the hash */
	if (read_header(p, len, &h, err, errlen) != 0 ||
		check_length_and_hash(p, len, &h, err, errlen) != 0)
		return NULL;
	if (h.version != NN_FORMAT_V1)
	{
		standardized = get_u32(p + h.size + 8 * (size_t) h.F);
		if (standardized > 1)
		{
			nn_set_error(err, errlen, "bad standardisation flag %u", (unsigned) standardized);
			return NULL;
		}
	}

	/* the model, then its arrays in file order */
	m = nn_model_alloc_staged(h.n_stages, h.stage, h.in_shape, h.n_layers, h.dims, err, errlen);
	if (m == NULL)
		return NULL;
	p += h.size;
	p = get_floats(p, m->feat_lo, (size_t) h.F);
	p = get_floats(p, m->feat_hi, (size_t) h.F);
	if (h.version != NN_FORMAT_V1)	/* version 1: mean 0, scale 1 from nn_model_alloc */
	{
		p += 4;
		p = get_floats(p, m->mean, (size_t) h.F);
		p = get_floats(p, m->scale, (size_t) h.F);
		m->standardized = (int) standardized;
	}
	p = get_floats(p, m->params, m->n_params);
	NN_ASSERT((size_t) (p - (const unsigned char *) buf) == len - 8);
	return m;
}
