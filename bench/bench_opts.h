/*
 * bench_opts.h: option changes of the core benchmarks (core_bench.c, ablation_bench.c).
 */
#ifndef UNLEARN_BENCH_OPTS_H
#define UNLEARN_BENCH_OPTS_H

#include "unlearn_core.h"

/* Sets one float or int field of o from "key=value" (e.g. "margin=0.2"); 0 on success, -1 for an unknown key. */
int			bench_set_option(ul_options *o, const char *kv);

/* Parses a comma list of ints into out (at most max); returns the count. */
int			bench_parse_ints(const char *s, int *out, int max);

#endif
