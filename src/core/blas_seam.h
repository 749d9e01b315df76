/*
 * blas_seam.h: what the numeric core needs from outside, and who provides it.
 *
 * The core's external numeric symbols are
 *
 *     cblas_sgemm               (every matrix product: layers.c, conv.c)
 *     openblas_get_num_threads  (conv.c: its chunks split over the core's own
 *     openblas_set_num_threads   threads run sgemm on one OpenBLAS thread each,
 *                                the count restored after)
 *
 * declared by OpenBLAS's <cblas.h>.  Nothing else from BLAS is called; keep
 * it that way or add the symbol here and to every provider below.
 *
 * Providers, per build:
 *   extension (unlearn.so)  src/pg/blas.c defines the three and forwards them
 *                           to OpenBLAS, dlopen()ed on first use in a backend
 *                           (the .so does not link OpenBLAS: its thread pool
 *                           must not start in the postmaster, which forks)
 *   make unit (test/unit)   linked with -lopenblas
 *   bench/core_bench.sh     linked with -lopenblas
 */
#ifndef UNLEARN_BLAS_SEAM_H
#define UNLEARN_BLAS_SEAM_H

#include <cblas.h>

#endif							/* UNLEARN_BLAS_SEAM_H */
