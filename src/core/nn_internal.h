/*
 * nn_internal.h: helpers shared by the files of the numeric core (not part of
 * the public API in nn.h; nothing outside src/core includes this).
 *
 * The core is plain C99 without PostgreSQL headers, but it is compiled into
 * the extension with PostgreSQL's flags: declarations sit at the top of
 * blocks (-Wdeclaration-after-statement) and every non-static function has a
 * prototype in a header (-Wmissing-prototypes).
 *
 * Files of the core, one concern each:
 *   alloc.c       allocator hooks, overflow-checked float arrays, error text
 *   rng.c         xoshiro256** seeded by splitmix64
 *   model.c       model shape, create/clone/free, feature range, standardisation, finiteness
 *   layers.c      workspace, forward and backward passes (the sgemm calls)
 *   classify.c    softmax cross-entropy, predictions, accuracy
 *   optim.c       SGD and Adam (scalar, SSE2 and run-time AVX kernels)
 *   fit.c         nn_train: the mini-batch training loop
 *   serialize.c   the model byte format and FNV-1a
 *   pgd.c, mas.c, unlearn_*.c, mia.c: the unlearning side (unlearn_core.h, mia.h)
 */
#ifndef UNLEARN_NN_INTERNAL_H
#define UNLEARN_NN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "nn.h"

/*
 * NN_ASSERT(cond): an invariant of the core.  PGXS does not define NDEBUG,
 * so plain assert() would stay on in production builds of the extension (and
 * abort the backend); NN_ASSERT is a no-op unless UNLEARN_CORE_ASSERTS is
 * defined, which `make unit` does.  Conditions must have no side effects.
 */
#ifdef UNLEARN_CORE_ASSERTS
#include <assert.h>
#define NN_ASSERT(cond) assert(cond)
#else
#define NN_ASSERT(cond) ((void) 0)
#endif

/* Allocate count floats, or NULL on size_t overflow or allocation failure (alloc.c). */
float	   *nn_alloc_floats(size_t count);

/* printf into the caller's error buffer, tolerating a NULL or empty buffer (alloc.c). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
void		nn_set_error(char *err, size_t errlen, const char *fmt,...);

/* Check a layer-width list against nn.h's limits; 0 if fine, else -1 + err (model.c). */
int			nn_validate_dims(int n_layers, const int *dims, char *err, size_t errlen);

/* Total parameter count of validated dims, in 64 bits (model.c). */
uint64_t	nn_count_params(int n_layers, const int *dims);

/*
 * A model of validated shape with uninitialised params and a 0/1 feature
 * range: the shared shell of create, clone and deserialise (model.c).
 */
nn_model   *nn_model_alloc(int n_layers, const int *dims, char *err, size_t errlen);

/* Log-sum-exp of one logit row, shifted by its maximum (classify.c). */
double		nn_row_logsumexp(const float *row, int C);

/* ---------- early stopping (early_stop.c), used by nn_train ---------- */
typedef struct nn_early_stop
{
	int			n_val;			/* held-out rows; 0: no early stopping */
	float	   *Xv;				/* n_val x features */
	int		   *yv;
	float	   *best;			/* parameters of the best epoch */
	double		best_accuracy;
	int			best_epoch;		/* 1-based; 0 before the first */
	int			patience;
} nn_early_stop;

int			nn_early_stop_start(nn_early_stop *es, const nn_model *m, const float *X, const int *y, int n,
								const nn_train_options *o, int *order);
int			nn_early_stop_epoch(nn_early_stop *es, const nn_model *m, int epoch);
void		nn_early_stop_finish(nn_early_stop *es, nn_model *m);
void		nn_early_stop_free(nn_early_stop *es);

#endif							/* UNLEARN_NN_INTERNAL_H */
