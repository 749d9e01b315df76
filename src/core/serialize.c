/*
 * serialize.c: the model byte format (see nn.h), little-endian whatever the
 * host, closed by an FNV-1a hash that deserialisation checks.  Version 2
 * (written) adds the standardisation after the feature range; version 1
 * (models of 0.1) still loads, as a model without standardisation.
 */
#include <string.h>

#include "nn_internal.h"

#define NN_FORMAT_VERSION	2
#define NN_FORMAT_V1		1	/* no standardisation block */
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

/* Byte length of the header: magic, version, n_layers and the dims. */
static size_t
header_size(int n_layers)
{
	return 12 + 4 * (size_t) (n_layers + 1);
}

/* Bytes of the per-feature arrays of a format version: the range, and in 2 the standardisation. */
static uint64_t
feature_block_size(uint32_t version, int F)
{
	return version == NN_FORMAT_V1 ? 8 * (uint64_t) F : 4 + 16 * (uint64_t) F;
}

/* Exact size of nn_serialize's output for m. */
size_t
nn_serialized_size(const nn_model *m)
{
	return header_size(m->n_layers) + (size_t) feature_block_size(NN_FORMAT_VERSION, NN_FEATURES(m)) +
		4 * m->n_params + 8;
}

/* Write m in the documented little-endian format followed by its FNV-1a hash. */
void
nn_serialize(const nn_model *m, void *buf)
{
	unsigned char *start = buf;
	unsigned char *p = start;
	int			F = NN_FEATURES(m);

	memcpy(p, NN_MAGIC, 4);
	put_u32(p + 4, NN_FORMAT_VERSION);
	put_u32(p + 8, (uint32_t) m->n_layers);
	p += 12;
	for (int l = 0; l <= m->n_layers; l++, p += 4)
		put_u32(p, (uint32_t) m->dims[l]);
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
 * Read and check the header: magic, version, layer count and widths within
 * nn.h's limits.  Fills *version, *n_layers, dims and *hdr (the header's
 * length); 0 if fine, else -1 + err.
 */
static int
read_header(const unsigned char *p, size_t len, uint32_t *version, uint32_t *n_layers,
			int *dims, size_t *hdr, char *err, size_t errlen)
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
	*version = get_u32(p + 4);
	if (*version != NN_FORMAT_VERSION && *version != NN_FORMAT_V1)
	{
		nn_set_error(err, errlen, "unsupported model format version %u (expected %d or %d)",
					 (unsigned) *version, NN_FORMAT_V1, NN_FORMAT_VERSION);
		return -1;
	}
	*n_layers = get_u32(p + 8);
	if (*n_layers < 1 || *n_layers > NN_MAX_LAYERS)
	{
		nn_set_error(err, errlen, "bad layer count %u", (unsigned) *n_layers);
		return -1;
	}
	*hdr = header_size((int) *n_layers);
	if (len < *hdr)
	{
		nn_set_error(err, errlen, "model data truncated (%zu bytes)", len);
		return -1;
	}
	for (uint32_t l = 0; l <= *n_layers; l++)
	{
		uint32_t	d = get_u32(p + 12 + 4 * l);

		if (d > NN_MAX_DIM)
		{
			nn_set_error(err, errlen, "bad layer width %u", (unsigned) d);
			return -1;
		}
		dims[l] = (int) d;
	}
	return nn_validate_dims((int) *n_layers, dims, err, errlen);
}

/*
 * Check that len is exactly what the shape asks for and that the hash at
 * the end matches; 0 if fine, else -1 + err.
 */
static int
check_length_and_hash(const unsigned char *p, size_t len, uint32_t version, int n_layers,
					  const int *dims, size_t hdr, char *err, size_t errlen)
{
	uint64_t	expected = (uint64_t) hdr + feature_block_size(version, dims[0]) +
		4 * nn_count_params(n_layers, dims) + 8;

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
 * Parse a serialised model, checking length, magic, version, shape limits,
 * exact total length and the hash before allocating anything large.
 */
nn_model *
nn_deserialize(const void *buf, size_t len, char *err, size_t errlen)
{
	const unsigned char *p = buf;
	uint32_t	version;
	uint32_t	n_layers;
	uint32_t	standardized = 0;
	int			dims[NN_MAX_LAYERS + 1];
	size_t		hdr;
	nn_model   *m;

	if (err && errlen)
		err[0] = '\0';
	/* header, then the whole length and the hash */
	if (read_header(p, len, &version, &n_layers, dims, &hdr, err, errlen) != 0 ||
		check_length_and_hash(p, len, version, (int) n_layers, dims, hdr, err, errlen) != 0)
		return NULL;
	if (version != NN_FORMAT_V1)
	{
		standardized = get_u32(p + hdr + 8 * (size_t) dims[0]);
		if (standardized > 1)
		{
			nn_set_error(err, errlen, "bad standardisation flag %u", (unsigned) standardized);
			return NULL;
		}
	}

	/* the model, then its arrays in file order */
	m = nn_model_alloc((int) n_layers, dims, err, errlen);
	if (m == NULL)
		return NULL;
	p += hdr;
	p = get_floats(p, m->feat_lo, (size_t) dims[0]);
	p = get_floats(p, m->feat_hi, (size_t) dims[0]);
	if (version != NN_FORMAT_V1)	/* version 1: mean 0, scale 1 from nn_model_alloc */
	{
		p += 4;
		p = get_floats(p, m->mean, (size_t) dims[0]);
		p = get_floats(p, m->scale, (size_t) dims[0]);
		m->standardized = (int) standardized;
	}
	p = get_floats(p, m->params, m->n_params);
	NN_ASSERT((size_t) (p - (const unsigned char *) buf) == len - 8);
	return m;
}
