/*
 * gemm_split.c: a convolutional model's matrix products on the core's own
 * threads.  Its forward and backward passes run every cblas_sgemm on one
 * OpenBLAS thread (OpenBLAS's count set to 1 for the pass and restored
 * after): the convolutions split their chunks over the core's threads
 * (conv.c), and the dense layers' products are split here by columns of
 * the result, each range one sgemm.  A column's values do not depend on the
 * columns beside it, so the bytes are the same on any number of threads,
 * and no OpenBLAS thread spins waiting for work beside the core's.
 */
#include "blas_seam.h"
#include "nn_internal.h"

/* A split product's blocks: up to this many, of at least SPLIT_MIN_WORK multiply-adds each. */
#define SPLIT_BLOCKS 8
#define SPLIT_MIN_WORK ((size_t) 1 << 20)

/* Set OpenBLAS to one thread; returns the count to give back to nn_blas_single_end. */
int
nn_blas_single_begin(void)
{
	int			saved = openblas_get_num_threads();

	if (saved != 1)
		openblas_set_num_threads(1);
	return saved;
}

/* Restore the count nn_blas_single_begin returned. */
void
nn_blas_single_end(int saved)
{
	if (saved != 1)
		openblas_set_num_threads(saved);
}

/* One product C = alpha op(A) op(B) + beta C, row-major, cut in blocks of rows or of columns of C. */
typedef struct split_job
{
	enum CBLAS_TRANSPOSE ta,
				tb;
	int			m,
				n,
				k;
	float		alpha;
	const float *a;
	int			lda;
	const float *b;
	int			ldb;
	float		beta;
	float	   *c;
	int			ldc;
	int			by_rows;		/* blocks of rows of C (else of columns) */
	int			block;			/* rows or columns per block */
} split_job;

/* Blocks lo .. hi: one sgemm each, on their rows of A and C or columns of B and C. */
static void
split_range(void *arg, size_t lo, size_t hi)
{
	const split_job *j = arg;
	int			len = j->by_rows ? j->m : j->n;

	for (size_t blk = lo; blk < hi; blk++)
	{
		int			i0 = (int) blk * j->block,
					i1 = i0 + j->block < len ? i0 + j->block : len;

		if (j->by_rows)
			cblas_sgemm(CblasRowMajor, j->ta, j->tb, i1 - i0, j->n, j->k, j->alpha,
						j->a + (size_t) i0 * (j->ta == CblasTrans ? 1 : (size_t) j->lda), j->lda,
						j->b, j->ldb, j->beta, j->c + (size_t) i0 * j->ldc, j->ldc);
		else
			cblas_sgemm(CblasRowMajor, j->ta, j->tb, j->m, i1 - i0, j->k, j->alpha, j->a, j->lda,
						j->b + (size_t) i0 * (j->tb == CblasTrans ? (size_t) j->ldb : 1), j->ldb,
						j->beta, j->c + i0, j->ldc);
	}
}

/*
 * cblas_sgemm (row-major; trans_a, trans_b 1 for CblasTrans) cut along the
 * longer side of C in up to SPLIT_BLOCKS blocks (multiples of 16), the
 * blocks shared out over the core's threads, for a pass inside
 * nn_blas_single_begin / _end.  The blocks depend on the shape only, not on
 * the thread count, so neither do the bytes.
 */
void
nn_sgemm_split(int trans_a, int trans_b, int m, int n, int k,
			   float alpha, const float *a, int lda, const float *b, int ldb,
			   float beta, float *c, int ldc)
{
	split_job	j = {trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
	m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, m > n, 0};
	size_t		len = (size_t) (m > n ? m : n),
				work = (size_t) m * n * (size_t) k,
				blocks = work / SPLIT_MIN_WORK < SPLIT_BLOCKS ? work / SPLIT_MIN_WORK : SPLIT_BLOCKS;

	if (m <= 0 || n <= 0)
		return;
	blocks = blocks < 1 ? 1 : blocks;
	j.block = (int) (((len + blocks - 1) / blocks + 15) / 16 * 16);
	nn_par_for((len + j.block - 1) / j.block, 1, split_range, &j);
}
