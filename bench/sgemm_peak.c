/*
 * sgemm_peak.c: the machine's single-precision GEMM rate through OpenBLAS,
 * the reference for the GFLOP/s of bench/cnn_bench.sh: the best of 5
 * products of two 2048 x 2048 matrices (OPENBLAS_NUM_THREADS threads).
 * Prints "sgemm_peak_gflops N".
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <cblas.h>

/* Seconds on the monotonic clock. */
static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Times C = A B five times and prints the best rate. */
int
main(void)
{
	int			n = 2048;
	float	   *a = malloc(sizeof(float) * n * n),
			   *b = malloc(sizeof(float) * n * n),
			   *c = malloc(sizeof(float) * n * n);
	double		best = 0.0;

	for (long i = 0; i < (long) n * n; i++)
	{
		a[i] = (float) (i % 7) * 0.1f;
		b[i] = (float) (i % 5) * 0.1f;
	}
	for (int r = 0; r < 5; r++)
	{
		double		t0 = now(),
					dt;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
		dt = now() - t0;
		if (2.0 * n * n * (double) n / dt / 1e9 > best)
			best = 2.0 * n * n * (double) n / dt / 1e9;
	}
	printf("sgemm_peak_gflops %.1f\n", best);
	free(a);
	free(b);
	free(c);
	return 0;
}
