#!/bin/sh
# bench/cnn_core_ab.sh: the issue-14 CNN's training epoch, core against PyTorch,
# interleaved so both see the same load.  REPS (3) rounds of, in turn:
#   torch  bench/cnn_torch.py --epochs EPOCHS --threads THREADS
#   loops1 core_bench --cnn --train-epochs EPOCHS --core-threads 1 (sgemm on THREADS
#          threads, the element-wise loops on one: the core before src/core/par.c)
#   loopsN core_bench --cnn --train-epochs EPOCHS (sgemm and the loops on THREADS threads)
# with the 1-minute load before and after each, then the mean, min and max of
# s/epoch per variant and the ratios of the means.  No server, no lock.
# Environment: REPS (3), EPOCHS (1), THREADS (2).
set -e
cd "$(dirname "$0")/.."
REPS=${REPS:-3}
EPOCHS=${EPOCHS:-1}
THREADS=${THREADS:-2}
BIN=${TMPDIR:-/tmp}/unlearn_core_bench_ab
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# -O3 throughout (the extension: layers.c and conv.c -O3, the rest -O2)
gcc -std=gnu11 -O3 -Wall -Wextra -Werror -Isrc/core -I/usr/include/x86_64-linux-gnu/openblas-pthread \
	-o "$BIN" bench/core_bench.c src/core/*.c -lopenblas -lz -lm
load() { cut -d' ' -f1 /proc/loadavg; }
r=1
while [ "$r" -le "$REPS" ]; do
	for v in torch loops1 loopsN; do
		l0=$(load)
		case $v in
		torch) res=$(/usr/bin/python3 bench/cnn_torch.py --epochs "$EPOCHS" --threads "$THREADS" |
			sed -n 's/^RESULT //p' | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(sum(r["epoch_seconds"])/len(r["epoch_seconds"]))') ;;
		loops1) res=$(OPENBLAS_NUM_THREADS=$THREADS "$BIN" --cnn --train-epochs "$EPOCHS" --core-threads 1 |
			sed -n 's/^RESULT .*"s_per_epoch": \([0-9.]*\).*/\1/p') ;;
		loopsN) res=$(OPENBLAS_NUM_THREADS=$THREADS "$BIN" --cnn --train-epochs "$EPOCHS" |
			sed -n 's/^RESULT .*"s_per_epoch": \([0-9.]*\).*/\1/p') ;;
		esac
		echo "$(date +%H:%M:%S) round $r $v: $res s/epoch, load $l0 -> $(load)" | tee -a "$out"
	done
	r=$((r + 1))
done
/usr/bin/python3 - "$out" <<'PY'
import re, sys
s = {}
for line in open(sys.argv[1]):
    m = re.search(r"round \d+ (\S+): ([0-9.]+) s/epoch", line)
    if m:
        s.setdefault(m.group(1), []).append(float(m.group(2)))
mean = {k: sum(v) / len(v) for k, v in s.items()}
for k, v in s.items():
    print("%-7s mean %.1f s/epoch (min %.1f, max %.1f, n %d)" % (k, mean[k], min(v), max(v), len(v)))
for k in ("loops1", "loopsN"):
    if k in mean and "torch" in mean:
        print("torch / %s: %.2fx" % (k, mean["torch"] / mean[k]))
PY
