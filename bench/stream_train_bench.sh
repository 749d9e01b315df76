#!/usr/bin/env bash
#
# bench/stream_train_bench.sh: training a table larger than its memory bound
# (unlearn.max_training_memory, stream.c) against training it in memory.
#
# A synthetic table of BENCH_ROWS (2 000 000) rows of 32 features (real[],
# 128 bytes of features a row: 244 MiB in all), each feature a seeded hash of
# the id in [-1, 1); 4 classes from the first four features, one linear
# split and one XOR (so the network needs its hidden layer); a primary key
# on id.  A test table of 100 000 rows beyond the training ids, the same
# function.  Then for each mode (a bound of BENCH_BOUND, default 32MB, and
# no bound) and each seed (BENCH_SEEDS, default "1 2 3"), in a new session
# (a new backend): unlearn_train with hidden {64}, BENCH_EPOCHS (5) epochs,
# batch 256, lr 0.003, auto_unlearn off; unlearn_evaluate on the test table.
# A first run trains the same network on 2 000 rows of the table: the
# backend's memory without the rows (OpenBLAS's buffers, caches).
# Prints per run: the backend's peak anonymous memory (RssAnon sampled every
# 0.1 s while it trains, the memory the run itself holds), VmHWM (peak RSS,
# which also counts the shared buffers the backend touched), seconds per
# epoch (train_seconds / epochs: in chunks this includes re-reading the
# table each epoch; the statistics and accuracy passes are in it too),
# load seconds, train and test accuracy, and the version's "stream" metrics;
# then mean ± s.d. per mode.  Reports the load average before and after.
#
# It starts its own server "streamtrain" (test/lib_server.sh) with
# shared_buffers 128MB; run it after make install, under nice:
#   nice -n 10 bench/stream_train_bench.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ROWS=${BENCH_ROWS:-2000000}
BOUND=${BENCH_BOUND:-32MB}
EPOCHS=${BENCH_EPOCHS:-5}
SEEDS=${BENCH_SEEDS:-"1 2 3"}
TEST_ROWS=100000

# shellcheck source=SCRIPTDIR/../test/lib_server.sh
. "$root/test/lib_server.sh"
unlearn_server_start streamtrain "shared_buffers = 128MB" "max_wal_size = 4GB" || exit 1
trap unlearn_server_stop EXIT
upsql -q -c 'CREATE EXTENSION unlearn'

echo "stream_train_bench: $ROWS rows x 32 features, bound $BOUND, $EPOCHS epochs, seeds $SEEDS" \
	"(cores: $(nproc); nice $(nice); load before: $(cut -d' ' -f1-3 /proc/loadavg))"

# The table: feature j of row i is frac(sin(i * 12.9898 + j * 78.233) * 43758.5453) * 2 - 1;
# the label is 2 * (x1 + x2 > 0) + (x3 * x4 > 0).
feature() { echo "(2 * ((sin(i * 12.9898 + $1 * 78.233) * 43758.5453) - floor(sin(i * 12.9898 + $1 * 78.233) * 43758.5453)) - 1)"; }
features=$(for j in $(seq 1 32); do feature "$j"; done | paste -sd,)
gen_sql() {
	cat <<SQL
CREATE TABLE $1 AS
SELECT id, x, (2 * (x[1] + x[2] > 0)::int + (x[3] * x[4] > 0)::int) AS label
FROM (SELECT i::bigint AS id, ARRAY[$features]::real[] AS x
      FROM generate_series($2, $3) i) s;
ALTER TABLE $1 ADD PRIMARY KEY (id);
VACUUM ANALYZE $1;
SQL
}
t0=$(date +%s)
gen_sql big 1 "$ROWS" | upsql -q
gen_sql big_test $((ROWS + 1)) $((ROWS + TEST_ROWS)) | upsql -q
echo "tables built in $(($(date +%s) - t0)) s: $(upsql -At -c "SELECT pg_size_pretty(pg_total_relation_size('big'))") (big)," \
	"labels $(upsql -At -c "SELECT string_agg(label || ':' || n, ' ' ORDER BY label) FROM (SELECT label, count(*) n FROM big GROUP BY 1) s")"

# One run in a new session: sample the backend's RssAnon while it trains, then evaluate.
run_one() {
	local mode=$1 seed=$2 bound=$3 table=${4:-big} model="st_${1}_$2" pidf out
	pidf=$(mktemp) out=$(mktemp)
	upsql -At -F '|' >"$out" <<SQL &
SET unlearn.max_training_memory = '$bound';
SELECT pg_backend_pid() AS pid \gset
\setenv UNLEARN_BENCH_PID :pid
\! echo \$UNLEARN_BENCH_PID > $pidf
SELECT pg_sleep(0.3);
SELECT 'T', rows, train_accuracy, load_seconds, train_seconds
  FROM unlearn_train('$model', '$table', 'id', 'x', 'label', hidden => '{64}', epochs => $EPOCHS,
                     options => '{"seed": $seed, "batch_size": 256, "lr": 0.003}', auto_unlearn => false);
\! awk '/^VmHWM:/ { print "H|" \$2 }' /proc/\$UNLEARN_BENCH_PID/status
SELECT 'E', accuracy FROM unlearn_evaluate('$model', 'big_test');
SELECT 'S', coalesce((metrics->'stream')::text, '-') FROM unlearn.versions WHERE model = '$model';
SQL
	local job=$! pid="" peak=0 v
	while [ -z "$pid" ]; do sleep 0.05; pid=$(cat "$pidf" 2>/dev/null || true); done
	while kill -0 "$job" 2>/dev/null; do
		v=$(awk '/^RssAnon:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
		[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v
		grep -q '^H|' "$out" && break	# training done: the evaluation's own read is not sampled
		sleep 0.1
	done
	wait "$job"
	awk -F'|' -v mode="$mode" -v seed="$seed" -v peak="$peak" -v epochs="$EPOCHS" '
		$1 == "T" { rows = $2; acc = $3; load = $4; train = $5 }
		$1 == "H" { hwm = $2 }
		$1 == "E" { test = $2 }
		$1 == "S" { stream = $2 }
		END { printf "RUN %s seed %s: rows %s, peak RssAnon %.1f MiB, VmHWM %.1f MiB, load %.2f s, %.2f s/epoch, train acc %.4f, test acc %.4f, stream %s\n",
			mode, seed, rows, peak / 1024, hwm / 1024, load, train / epochs, acc, test, stream }' "$out"
	rm -f "$pidf" "$out"
}

results=$(mktemp)
# the backend's own memory: the same training on 2 000 rows (OpenBLAS's buffers, caches)
upsql -q -c "CREATE TABLE small AS SELECT * FROM big WHERE id <= 2000"
run_one baseline 1 -1 small
for seed in $SEEDS; do
	run_one bounded "$seed" "$BOUND" | tee -a "$results"
	run_one memory "$seed" -1 | tee -a "$results"
done

# mean ± s.d. (sample) per mode of peak RssAnon, VmHWM, s/epoch, test accuracy
for mode in bounded memory; do
	grep "^RUN $mode " "$results" | sed -E 's/.*RssAnon ([0-9.]+) MiB, VmHWM ([0-9.]+) MiB, load ([0-9.]+) s, ([0-9.]+) s\/epoch, train acc ([0-9.]+), test acc ([0-9.]+).*/\1 \2 \3 \4 \6/' |
		awk -v mode="$mode" '
			{ for (k = 1; k <= 5; k++) { s[k] += $k; q[k] += $k * $k }; n++ }
			END {
				split("peak RssAnon MiB|VmHWM MiB|load s|s/epoch|test accuracy", name, "|")
				printf "SUMMARY %s (%d runs):", mode, n
				for (k = 1; k <= 5; k++) {
					m = s[k] / n; v = n > 1 ? (q[k] - n * m * m) / (n - 1) : 0
					printf " %s %.4g ± %.2g;", name[k], m, sqrt(v > 0 ? v : 0)
				}
				printf "\n" }'
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -f "$results"
