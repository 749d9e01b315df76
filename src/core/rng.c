/*
 * rng.c: the seeded RNG of the core, xoshiro256** seeded by splitmix64
 * (see nn.h): the same seed gives the same stream on every platform.
 */
#include <math.h>

#include "nn_internal.h"

/* One splitmix64 step: spreads a single seed word into well-mixed state words. */
static uint64_t
splitmix64_next(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

/* Rotate left; used by xoshiro's scrambler and state update. */
static inline uint64_t
rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* Seed the four state words from splitmix64(seed) (never all zero in practice). */
void
nn_rng_seed(nn_rng *rng, uint64_t seed)
{
	uint64_t	x = seed;

	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64_next(&x);
}

/* Next 64 random bits (xoshiro256**). */
uint64_t
nn_rng_next(nn_rng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl64(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return result;
}

/* Uniform double in [0,1) from the top 53 bits. */
double
nn_rng_uniform(nn_rng *rng)
{
	return (double) (nn_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

/*
 * Uniform integer in [0,n) by Lemire's multiply-and-reject, which has no
 * modulo bias; n == 0 returns 0.
 */
uint32_t
nn_rng_below(nn_rng *rng, uint32_t n)
{
	uint64_t	product;
	uint32_t	low;

	if (n == 0)
		return 0;
	product = (nn_rng_next(rng) >> 32) * (uint64_t) n;
	low = (uint32_t) product;
	if (low < n)
	{
		uint32_t	threshold = (uint32_t) (-n) % n;	/* 2^32 mod n */

		while (low < threshold)
		{
			product = (nn_rng_next(rng) >> 32) * (uint64_t) n;
			low = (uint32_t) product;
		}
	}
	NN_ASSERT((uint32_t) (product >> 32) < n);
	return (uint32_t) (product >> 32);
}

/*
 * Standard normal by Box-Muller (cosine branch only: the state struct has no
 * room to cache the sine partner).  1-u keeps the log argument in (0,1].
 */
float
nn_rng_normal(nn_rng *rng)
{
	double		u1 = 1.0 - nn_rng_uniform(rng);
	double		u2 = nn_rng_uniform(rng);

	return (float) (sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Fisher-Yates shuffle of idx[0..n) driven by rng (deterministic per seed). */
void
nn_rng_shuffle(nn_rng *rng, int *idx, int n)
{
	for (int i = n - 1; i > 0; i--)
	{
		int			j = (int) nn_rng_below(rng, (uint32_t) i + 1);
		int			tmp = idx[i];

		idx[i] = idx[j];
		idx[j] = tmp;
	}
}
