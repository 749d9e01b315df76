#!/usr/bin/env bash
#
# bench/cnn_bench.sh: the convolutional benchmark (issue 14).  Fashion-MNIST,
# the network conv 32 3, maxpool 2, conv 64 3, maxpool 2, dense 128, batch
# 128, Adam lr 1e-3 without weight decay (as PyTorch's; unlearn_train's
# "auto" would first run its 3-fold selection, which at 5 epochs fits the
# step budget), BENCH_EPOCHS epochs (5), trained
#   1. by unlearn_train in a throwaway server "cnnbench" (unlearn.threads =
#      BENCH_THREADS, 2), then unlearn_evaluate on fashion_test;
#   2. by PyTorch (bench/cnn_torch.py, Debian's python3-torch, run with
#      /usr/bin/python3, torch.set_num_threads(BENCH_THREADS)), the same
#      network, batch, optimiser and per-pixel standardisation;
# one after the other, on the same machine.  Prints seconds per epoch of
# each, test accuracy, the speed ratio, and the GFLOP/s of unlearn's training
# against the machine's sgemm rate (bench/sgemm_peak.c, 2048^3, the same
# thread count), with the 1-minute load average before each part.
#
# The training FLOPs per image are counted from the layers: forward
# 2 * 4 241 152 multiply-adds (conv1 225 792, conv2 3 612 672, dense
# 401 408 and 1 280), the weight gradients as many, the input gradients as
# many less conv1's (not needed): 24.995 MFLOP, 1 499.7 GFLOP per epoch.
# That is the direct convolution's count: the core runs conv2 by Winograd
# F(2x2, 3x3) (16 multiplications per 2 x 2 tile and channel pair, not
# 36), so its GFLOP/s are effective rates, not the multiplications done.
#
# It installs the tree (make install) and starts its server holding
# /tmp/unlearn-pg.lock, then releases the lock (the server has the library
# loaded).  Environment: BENCH_EPOCHS (5), BENCH_THREADS (2), BENCH_SEED
# (42), FMNIST_* (bench/load_fashion.sh), UNLEARN_KEEP_DATA=1 keeps the
# cluster.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/../test/lib_server.sh
. "$root/test/lib_server.sh"

EPOCHS=${BENCH_EPOCHS:-5}
THREADS=${BENCH_THREADS:-2}
SEED=${BENCH_SEED:-42}
LAYERS='["conv 32 3", "maxpool 2", "conv 64 3", "maxpool 2", "dense 128"]'
GFLOP_PER_EPOCH=1499.7
loadavg() { cut -d' ' -f1 /proc/loadavg; }

tmp=$(mktemp -d)
finish() {
	local rc=$?
	trap - EXIT
	unlearn_server_stop || rc=1
	rm -rf "$tmp"
	exit "$rc"
}

# the machine's sgemm rate
gcc -std=gnu11 -O2 -Wall -Wextra -Werror -I/usr/include/x86_64-linux-gnu/openblas-pthread \
	-o "$tmp/sgemm_peak" "$here/sgemm_peak.c" -lopenblas
peak=$(OPENBLAS_NUM_THREADS=$THREADS "$tmp/sgemm_peak" | awk '{ print $2 }')
echo "cnn_bench: $(nproc) cores, $THREADS threads, $EPOCHS epochs, seed $SEED; sgemm peak $peak GFLOP/s"

# install and start the server under the shared lock, then let it go
exec 9>/tmp/unlearn-pg.lock
flock 9
make -s -C "$root" install >/dev/null
unlearn_server_start cnnbench "unlearn.threads = $THREADS" || exit 1
flock -u 9
exec 9>&-
trap finish EXIT
upsql -q -c "CREATE EXTENSION unlearn"
"$here/load_fashion.sh"

# 1. unlearn
load_u=$(loadavg)
upsql -q -At >"$tmp/unlearn.out" <<SQL
SELECT train_seconds
FROM unlearn_train(model => 'cnn', relation => 'fashion_train', id_column => 'id',
                   features_column => 'pixels', label_column => 'label', epochs => $EPOCHS,
                   auto_unlearn => false,
                   options => '{"input_shape": [1, 28, 28], "layers": $LAYERS, "seed": $SEED, "weight_decay": 0}');
SELECT accuracy FROM unlearn_evaluate('cnn', 'fashion_test');
SQL
{ read -r u_train; read -r u_acc; } <"$tmp/unlearn.out"
u_epoch=$(awk -v t="$u_train" -v e="$EPOCHS" 'BEGIN { printf "%.2f", t / e }')
echo "unlearn: load $load_u, $u_epoch s/epoch, test accuracy $u_acc"

# 2. PyTorch
load_t=$(loadavg)
/usr/bin/python3 "$here/cnn_torch.py" --epochs "$EPOCHS" --threads "$THREADS" --seed "$SEED" | tee "$tmp/torch.out"
t_epoch=$(sed -n 's/^RESULT //p' "$tmp/torch.out" |
	/usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.2f %.4f" % (sum(r["epoch_seconds"])/len(r["epoch_seconds"]), r["test_accuracy"]))')
read -r t_epoch t_acc <<<"$t_epoch"
echo "pytorch: load $load_t, $t_epoch s/epoch, test accuracy $t_acc"

awk -v u="$u_epoch" -v t="$t_epoch" -v g="$GFLOP_PER_EPOCH" -v p="$peak" -v ua="$u_acc" -v ta="$t_acc" 'BEGIN {
	printf "| framework | s/epoch | GFLOP/s | of sgemm peak | test accuracy |\n"
	printf "|---|---|---|---|---|\n"
	printf "| unlearn | %.1f | %.1f | %.0f %% | %.2f %% |\n", u, g / u, 100 * g / u / p, 100 * ua
	printf "| PyTorch | %.1f | %.1f | %.0f %% | %.2f %% |\n", t, g / t, 100 * g / t / p, 100 * ta
	printf "unlearn is %.2fx PyTorch per epoch\n", t / u
}'
