#!/bin/sh
# Builds and runs the ablation of PGD and MAS in the default method over the
# data-set suite (issue 11; see docs/method.md, "Does PGD or MAS help the default?").
#   bench/ablation_bench.sh [ablation_bench arguments...]
# Needs the tabular suite's array-form CSV files (bench/datasets/load.sh --prepare-only
# writes them to /tmp/unlearn-tabular-data) and Fashion-MNIST (make deps).
# Runs niced with OPENBLAS_NUM_THREADS=1 unless set; models are cached in /tmp.
set -e
cd "$(dirname "$0")/.."
BLAS_INC=/usr/include/x86_64-linux-gnu/openblas-pthread
BIN=${TMPDIR:-/tmp}/unlearn_ablation_bench
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Isrc/core -Ibench -I$BLAS_INC -o "$BIN" \
    bench/ablation_bench.c bench/bench_data.c bench/bench_opts.c src/core/*.c -lopenblas -lz -lm
OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} exec nice "$BIN" "$@"
