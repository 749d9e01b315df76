#!/bin/sh
# bench/cnn_core_ab.sh: the issue-14 CNN's training epoch, the numeric core
# against PyTorch, interleaved so every variant sees the same load.  REPS (3)
# rounds of, in turn:
#   torch   bench/cnn_torch.py --epochs EPOCHS --threads THREADS
#   base    (only with BASE=<git revision>) core_bench of that revision's tree
#   im2col  core_bench --cnn --train-epochs EPOCHS --no-winograd (this tree)
#   core    core_bench --cnn --train-epochs EPOCHS (this tree: Winograd)
# all at THREADS threads (OPENBLAS_NUM_THREADS, the core's threads alike),
# with the 1-minute load before and after each.  Then per variant the mean
# ± s.d., min and max of s/epoch, the GFLOP/s (1 499.7 GFLOP per epoch, see
# bench/cnn_bench.sh) against the sgemm peak measured at the start
# (bench/sgemm_peak.c, THREADS threads), and the ratios of the means to
# PyTorch's.  No server, no lock: run it under
#   flock -x /tmp/unlearn-timing.lock bench/cnn_core_ab.sh
# Environment: REPS (3), EPOCHS (1), THREADS (2), BASE (unset), VARIANTS
# (all of the above).
set -e
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-2}
VARIANTS=${VARIANTS:-torch base im2col core}
BLAS_INC=/usr/include/x86_64-linux-gnu/openblas-pthread
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$work/rounds

# build core_bench from a tree: $1 the tree, $2 the binary (-O3, as layers.c and conv.c in the extension)
build() {
	gcc -std=gnu11 -O3 -Wall -Wextra -Werror -I"$1/src/core" -I"$1/bench" -I$BLAS_INC -o "$2" \
		"$1/bench/core_bench.c" "$1/bench/bench_data.c" "$1/bench/bench_opts.c" "$1"/src/core/*.c -lopenblas -lz -lm
}
build . "$work/core"
if [ -n "$BASE" ]; then
	mkdir "$work/base_tree"
	git archive "$BASE" src/core bench | tar -x -C "$work/base_tree"
	build "$work/base_tree" "$work/base"
else
	VARIANTS=$(echo "$VARIANTS" | sed 's/base//')
fi
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -I$BLAS_INC -o "$work/peak" bench/sgemm_peak.c -lopenblas
load() { cut -d' ' -f1 /proc/loadavg; }
peak=$(OPENBLAS_NUM_THREADS=$THREADS "$work/peak" | awk '{ print $2 }')
echo "$(date -u +%H:%M:%S) sgemm peak $peak GFLOP/s at $THREADS threads, load $(load)${BASE:+, base $BASE}"
core_epoch() { sed -n 's/^RESULT .*"s_per_epoch": \([0-9.]*\).*/\1/p'; }
r=1
while [ "$r" -le "$REPS" ]; do
	for v in $VARIANTS; do
		l0=$(load)
		case $v in
		torch) res=$(/usr/bin/python3 bench/cnn_torch.py --epochs "$EPOCHS" --threads "$THREADS" |
			sed -n 's/^RESULT //p' | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(r["epoch_seconds"])/len(r["epoch_seconds"]))') ;;
		base) res=$(OPENBLAS_NUM_THREADS=$THREADS "$work/base" --cnn --train-epochs "$EPOCHS" | core_epoch) ;;
		im2col) res=$(OPENBLAS_NUM_THREADS=$THREADS "$work/core" --cnn --train-epochs "$EPOCHS" --no-winograd | core_epoch) ;;
		core) res=$(OPENBLAS_NUM_THREADS=$THREADS "$work/core" --cnn --train-epochs "$EPOCHS" | core_epoch) ;;
		esac
		echo "$(date -u +%H:%M:%S) round $r $v: $res s/epoch, load $l0 -> $(load)" | tee -a "$out"
	done
	r=$((r + 1))
done
/usr/bin/python3 - "$out" "$peak" <<'PY'
import re, statistics, sys
s = {}
for line in open(sys.argv[1]):
    m = re.search(r"round \d+ (\S+): ([0-9.]+) s/epoch", line)
    if m:
        s.setdefault(m.group(1), []).append(float(m.group(2)))
peak = float(sys.argv[2])
mean = {k: statistics.mean(v) for k, v in s.items()}
print("| variant | s/epoch, mean ± s.d. | min … max | n | GFLOP/s | of sgemm peak (%.1f) |" % peak)
print("|---|---|---|---|---|---|")
for k, v in s.items():
    sd = statistics.stdev(v) if len(v) > 1 else 0.0
    g = 1499.7 / mean[k]
    print("| %s | %.2f ± %.2f | %.2f … %.2f | %d | %.1f | %.0f %% |" % (k, mean[k], sd, min(v), max(v), len(v), g, 100 * g / peak))
for k in s:
    if k != "torch" and "torch" in mean:
        print("torch / %s: %.2fx (ratio of the means)" % (k, mean["torch"] / mean[k]))
PY
