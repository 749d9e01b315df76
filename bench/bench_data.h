/*
 * bench_data.h: the data sets of the core benchmarks (core_bench.c,
 * ablation_bench.c): Fashion-MNIST's idx files and the tabular suite's
 * array-form CSV files (bench/datasets/load.sh --prepare-only writes them).
 */
#ifndef UNLEARN_BENCH_DATA_H
#define UNLEARN_BENCH_DATA_H

/* Seconds on the monotonic clock. */
double		bench_now(void);

/* Loads an idx image/label pair DIR/PREFIX-{images-idx3,labels-idx1}-ubyte.gz: X (n x F, [0,1]), y; returns n, F in *F. */
int			bench_load_idx(const char *dir, const char *prefix, float **X, int **y, int *F);

/*
 * Loads an array-form CSV (id,"{f1,...,fF}",label): X (n x F), y as class
 * numbers in the order of first appearance in `classes` (shared between the
 * train and test files: pass the same table; *n_classes grows); returns n, F in *F.
 * Exits on a malformed file.
 */
int			bench_load_arr_csv(const char *path, float **X, int **y, int *F,
							   char classes[][64], int *n_classes, int max_classes);

/* A model from a file nn_serialize wrote, or NULL (missing or unreadable). */
struct nn_model *bench_load_model(const char *path);

/* Writes the model to path (a warning on stderr if that fails). */
void		bench_save_model(const struct nn_model *m, const char *path);

#endif
