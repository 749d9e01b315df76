#!/bin/sh
# Builds and runs the unlearning-core benchmark on Fashion-MNIST (see docs/method.md).
#   bench/core_bench.sh [core_bench arguments...]
# OPENBLAS_NUM_THREADS defaults to 2; the trained model is cached in /tmp.
# CORE_BENCH_OPT (-O2) sets the optimisation level (the extension builds layers.c and conv.c with -O3).
set -e
cd "$(dirname "$0")/.."
BLAS_INC=/usr/include/x86_64-linux-gnu/openblas-pthread
BIN=${TMPDIR:-/tmp}/unlearn_core_bench
gcc -std=gnu11 ${CORE_BENCH_OPT:--O2} -Wall -Wextra -Werror -Isrc/core -Ibench -I$BLAS_INC -o "$BIN" \
    bench/core_bench.c bench/bench_data.c bench/bench_opts.c src/core/*.c -lopenblas -lz -lm
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2} exec "$BIN" "$@"
