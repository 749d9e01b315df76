#!/usr/bin/env bash
#
# bench/fmnist_defaults.sh: Fashion-MNIST with unlearn_train's defaults
# (hidden {128}, epochs derived from the table) against the 0.1 default of
# 10 epochs, seeds 1-3: test accuracy and training seconds.  Takes
# /tmp/unlearn-pg.lock, installs this tree, starts the throwaway server
# "fmnist", loads the data (bench/load_fashion.sh) and stops the server.
# Environment: BENCH_SEEDS ("1 2 3").
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
SEEDS=${BENCH_SEEDS:-1 2 3}
. "$root/test/lib_server.sh"
exec 9>>/tmp/unlearn-pg.lock
flock 9
echo "fmnist_defaults: lock taken at $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
trap 'unlearn_server_stop; flock -u 9' EXIT
make -s -C "$root" install >/dev/null
unlearn_server_start fmnist
upsql -q -c "CREATE EXTENSION unlearn"
"$here/load_fashion.sh" >/dev/null
echo "config,seed,epochs,train_accuracy,train_seconds,test_accuracy"
for cfg in default 10; do
	for seed in $SEEDS; do
		if [ "$cfg" = default ]; then ep=""; else ep="epochs => $cfg,"; fi
		upsql -q -At -F ',' <<SQL
SELECT unlearn_drop_model(name) FROM unlearn.models WHERE name = 'fm';
SELECT t.train_accuracy, t.train_seconds FROM unlearn_train(model => 'fm', relation => 'fashion_train',
  id_column => 'id', features_column => 'pixels', label_column => 'label', $ep
  options => '{"seed": $seed}', auto_unlearn => false) t \gset t_
SELECT '$cfg', $seed, (SELECT options->>'epochs' FROM unlearn.models WHERE name = 'fm'),
       round(:t_train_accuracy::numeric, 4), round(:t_train_seconds::numeric, 1), round(e.accuracy::numeric, 4)
  FROM unlearn_evaluate('fm', 'fashion_test') e;
SQL
	done
done
echo "fmnist_defaults: load at the end $(cut -d' ' -f1-3 /proc/loadavg)"
