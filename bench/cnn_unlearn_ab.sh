#!/bin/sh
# The faithful adv+imp on the CNN in the core and in PyTorch, side by side (issue 14):
# same trained weights (core_bench's cache), same forget rows, same settings.
#   bench/cnn_unlearn_ab.sh [--ks 1,8] [--seeds 3] [--max-steps N]
# Builds bench/cnn_export.c, writes the export to ${EXPORT_DIR:-/tmp/unlearn_cnn_export}
# (training and caching the model first if core_bench has not), checks the PyTorch port's
# logits against the core's, then per k runs core_bench --methods adv+imp and
# bench/cnn_unlearn_torch.py on the same rows (--max-steps caps both alike).  One thread
# each (OPENBLAS_NUM_THREADS, torch.set_num_threads); run it under nice on a shared machine.
set -e
cd "$(dirname "$0")/.."
KS=1,8 SEEDS=3 MAXSTEPS=0
while [ $# -gt 0 ]; do
    case "$1" in
        --ks) KS=$2; shift 2 ;;
        --seeds) SEEDS=$2; shift 2 ;;
        --max-steps) MAXSTEPS=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
export OPENBLAS_NUM_THREADS=1
OUT=${EXPORT_DIR:-/tmp/unlearn_cnn_export}
BIN=${TMPDIR:-/tmp}/unlearn_cnn_export
BLAS_INC=/usr/include/x86_64-linux-gnu/openblas-pthread
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -Isrc/core -Ibench -I$BLAS_INC -o "$BIN" \
    bench/cnn_export.c bench/bench_data.c bench/bench_opts.c src/core/*.c -lopenblas -lz -lm
[ -f /tmp/unlearn_fmnist_cnn.bin ] || CORE_BENCH_OPT=-O3 bench/core_bench.sh --cnn --ks 1 --seeds 1 \
    --methods neggrad --max-steps 1 --retrain-seeds 0 --no-continual >/dev/null
mkdir -p "$OUT"
"$BIN" "$OUT" --ks "$KS" --seeds "$SEEDS" --adv-ks 0
/usr/bin/python3 bench/cnn_unlearn_torch.py "$OUT" --check-only
for k in $(echo "$KS" | tr , ' '); do
    echo "== k = $k, core ($(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    CORE_BENCH_OPT=-O3 bench/core_bench.sh --cnn --methods adv+imp --ks "$k" --seeds "$SEEDS" \
        --retrain-seeds 0 --no-continual --max-steps "$MAXSTEPS" | grep '^|'
    echo "== k = $k, PyTorch ($(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))"
    /usr/bin/python3 bench/cnn_unlearn_torch.py "$OUT" --ks "$k" --seeds "$SEEDS" \
        --max-steps "$MAXSTEPS" | grep -E '^\||^RESULT'
done
echo "== done $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg)"
