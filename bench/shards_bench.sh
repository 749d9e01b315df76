#!/usr/bin/env bash
#
# bench/shards_bench.sh: sharded models (the training option "shards", SISA)
# against the single model, on Fashion-MNIST and the LetterRecognition suite
# table (bench/datasets/load.sh letter, its array form).
#
#   1. accuracy: for S = 1, 2, 4, 8 shards and each seed, unlearn_train on the
#      training table (same hidden, epochs and options for every S; S = 1 is
#      the single model, byte for byte), then unlearn_evaluate on the test
#      table: test accuracy (mean, sample s.d., min, max over the seeds) and
#      training seconds;
#   2. exact deletes: for each S, a model (first seed) on a fresh copy of the
#      training table; per repeat r = 1..BENCH_SHARDS_REPEATS (ids drawn with
#      setseed(0.1 r)): unlearn_rows of 1 random id with {"method": "exact"}
#      (timed, wall, and the shards it retrained), of 32 random ids (timed),
#      then unlearn_retrain (the full retrain, timed); the ratio delete /
#      retrain of the same repeat (mean, s.d., min, max);
#   3. parallel training: for S in BENCH_SHARDS_PARALLEL and W in
#      BENCH_SHARDS_WORKERS, unlearn_train with unlearn.shard_workers = W
#      (W + 1 processes train shards), repeats interleaved over W: wall
#      seconds (the result's `seconds`), the workers launched, the speed-up
#      against W = 0, and whether every W gave the same weights (sha256).
#
# It starts its own server "shardsbench" (test/lib_server.sh) after make
# install under /tmp/unlearn-pg.lock, releases the lock once the server runs,
# loads the data, and stops the server at the end: run it on its own, not
# through bench/run.sh.  The machine is shared: the 1-minute load average is
# printed with every timing.  Shards train one after the other in the
# calling backend (no background workers), unlearn.threads = BENCH_THREADS.
#
# Environment: BENCH_SEEDS ("1 2 3"), BENCH_SHARDS ("1 2 4 8"),
# BENCH_SHARDS_REPEATS (3), BENCH_SHARDS_DATA ("fashion letter"),
# BENCH_FASHION_EPOCHS (5), BENCH_LETTER_EPOCHS (40), BENCH_HIDDEN ('{128}'),
# BENCH_THREADS (1), BENCH_SHARDS_SECTIONS ("accuracy delete parallel"),
# BENCH_SHARDS_PARALLEL ("4 8"), BENCH_SHARDS_WORKERS ("0 1 3"),
# UNLEARN_KEEP_DATA=1 keeps the cluster.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/../test/lib_server.sh
. "$root/test/lib_server.sh"

read -r -a SEEDS <<<"${BENCH_SEEDS:-1 2 3}"
read -r -a SHARDS <<<"${BENCH_SHARDS:-1 2 4 8}"
read -r -a DATA <<<"${BENCH_SHARDS_DATA:-fashion letter}"
REPEATS=${BENCH_SHARDS_REPEATS:-3}
HIDDEN=${BENCH_HIDDEN:-'{128}'}
THREADS=${BENCH_THREADS:-1}
SECTIONS=" ${BENCH_SHARDS_SECTIONS:-accuracy delete parallel} "
read -r -a PAR_SHARDS <<<"${BENCH_SHARDS_PARALLEL:-4 8}"
read -r -a WORKERS <<<"${BENCH_SHARDS_WORKERS:-0 1 3}"
load() { cut -d' ' -f1 /proc/loadavg; }
q() { upsql -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }

tmp=$(mktemp -d)
finish() {
	local rc=$?
	trap - EXIT
	unlearn_server_stop || rc=1
	rm -rf "$tmp"
	exit "$rc"
}

# data set NAME -> "train table|test table|features column|epochs"
spec() {
	case $1 in
		fashion) echo "fashion_train|fashion_test|pixels|${BENCH_FASHION_EPOCHS:-5}" ;;
		letter) echo "letter_train_arr|letter_test_arr|features|${BENCH_LETTER_EPOCHS:-40}" ;;
		*) echo "shards_bench: unknown data set $1" >&2; exit 2 ;;
	esac
}

# stats FILE COLUMN: "mean s.d. min max" of a column of numbers
stats() {
	awk -v c="$2" '{ x[++n] = $c; m += $c; if (n == 1 || $c < lo) lo = $c; if (n == 1 || $c > hi) hi = $c }
		END { m /= n; for (i = 1; i <= n; i++) v += (x[i] - m) ^ 2
		      printf "%.4f %.4f %.4f %.4f", m, (n > 1 ? sqrt(v / (n - 1)) : 0), lo, hi }' "$1"
}

# ---- install and start the server under the shared lock, then let it go
make -s -C "$root"
[[ " ${DATA[*]} " == *" letter "* ]] && "$here/datasets/load.sh" --prepare-only letter >/dev/null
exec 9>/tmp/unlearn-pg.lock
flock 9
make -s -C "$root" install >/dev/null
unlearn_server_start shardsbench "unlearn.threads = $THREADS" || exit 1
flock -u 9
exec 9>&-
trap finish EXIT
q "CREATE EXTENSION unlearn"
[[ " ${DATA[*]} " == *" fashion "* ]] && "$here/load_fashion.sh" >/dev/null
[[ " ${DATA[*]} " == *" letter "* ]] && "$here/datasets/load.sh" --load-only letter >/dev/null
echo "shards_bench: $(nproc) cores, unlearn.threads $THREADS, hidden $HIDDEN, seeds ${SEEDS[*]}," \
	"shards ${SHARDS[*]}, $REPEATS delete repeats; load $(cut -d' ' -f1-3 /proc/loadavg)"

for d in "${DATA[@]}"; do
	IFS='|' read -r train test col epochs <<<"$(spec "$d")"
	echo
	echo "== $d: $train ($(q "SELECT count(*) FROM $train") rows), $epochs epochs; test $test"
	# ---- 1. accuracy per shard count and seed
	[[ $SECTIONS == *" accuracy "* ]] && for s in "${SHARDS[@]}"; do
		: >"$tmp/acc_$s"
		for seed in "${SEEDS[@]}"; do
			l=$(load)
			r=$(q "SELECT round(train_seconds::numeric, 2) FROM unlearn_train('b_${s}_$seed', '$train', 'id', '$col', 'label',
			          hidden => '$HIDDEN', epochs => $epochs, auto_unlearn => false,
			          options => '{\"seed\": $seed, \"shards\": $s}')")
			a=$(q "SELECT round(accuracy::numeric, 4) FROM unlearn_evaluate('b_${s}_$seed', '$test')")
			q "SELECT unlearn_drop_model('b_${s}_$seed')" >/dev/null
			echo "$a $r $l" >>"$tmp/acc_$s"
			echo "  S=$s seed $seed: test accuracy $a, train $r s (load $l)"
		done
	done
	[[ $SECTIONS == *" accuracy "* ]] && echo "  accuracy over seeds (mean s.d. min max) | train s (mean s.d. min max):"
	[[ $SECTIONS == *" accuracy "* ]] && for s in "${SHARDS[@]}"; do
		echo "    S=$s  $(stats "$tmp/acc_$s" 1) | $(stats "$tmp/acc_$s" 2)"
	done
	# ---- 2. exact deletes against a full retrain, on a copy of the table
	[[ $SECTIONS == *" delete "* ]] && for s in "${SHARDS[@]}"; do
		q "SET client_min_messages = warning; DROP TABLE IF EXISTS del_train;
		   CREATE TABLE del_train AS SELECT * FROM $train; ALTER TABLE del_train ADD PRIMARY KEY (id)"
		q "SELECT 1 FROM unlearn_train('del', 'del_train', 'id', '$col', 'label', hidden => '$HIDDEN',
		     epochs => $epochs, auto_unlearn => false, options => '{\"seed\": ${SEEDS[0]}, \"shards\": $s}')" >/dev/null
		: >"$tmp/del_$s"
		for ((r = 1; r <= REPEATS; r++)); do
			{
				echo "SET client_min_messages = warning;"
				echo "SELECT setseed(0.1 * $r);"
				for k in 1 32; do
					cat <<SQL
SELECT array_agg(id)::text AS ids FROM (SELECT id FROM del_train ORDER BY random() LIMIT $k) x \gset
SELECT clock_timestamp() AS t0 \gset
SELECT version AS v FROM unlearn_rows('del', :'ids'::bigint[], '{"method": "exact"}') \gset
SELECT 'R|k$k|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|'
       || coalesce(jsonb_array_length(metrics->'retrained_shards'), 1) || '|' || (metrics->>'rows')
FROM unlearn.versions WHERE model = 'del' AND version = :v;
SQL
				done
				cat <<SQL
SELECT clock_timestamp() AS t0 \gset
SELECT version AS v FROM unlearn_retrain('del') \gset
SELECT 'R|retrain|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|$s|'
       || (metrics->>'rows') FROM unlearn.versions WHERE model = 'del' AND version = :v;
SQL
			} >"$tmp/repeat.sql"
			l=$(load)
			upsql -X -q -v ON_ERROR_STOP=1 -At -f "$tmp/repeat.sql" | grep '^R|' >"$tmp/rep"
			awk -F'|' -v l="$l" '{ t[$2] = $3; n[$2] = $4; w[$2] = $5 }
				END { printf "%s %s %s %s %s %s %s %s %s\n", t["k1"], t["k32"], t["retrain"], n["k1"], n["k32"], l,
				      w["k1"], w["k32"], w["retrain"] }' "$tmp/rep" >>"$tmp/del_$s"
			tail -n1 "$tmp/del_$s" | awk -v s="$s" -v r="$r" '{ printf "  S=%s repeat %d: exact 1 row %.2f s (%d shards, %d rows trained), 32 rows %.2f s (%d shards, %d rows), retrain %.2f s (%d rows) (load %s)\n", s, r, $1, $4, $7, $2, $5, $8, $3, $9, $6 }'
		done
		awk '{ print $1 / $3, $2 / $3, $7 / $9, $8 / $9 }' "$tmp/del_$s" >"$tmp/ratio_$s"
		echo "    S=$s delete / retrain, wall (mean s.d. min max): 1 row $(stats "$tmp/ratio_$s" 1); 32 rows $(stats "$tmp/ratio_$s" 2);" \
			"retrain s $(stats "$tmp/del_$s" 3)"
		echo "    S=$s rows trained / retrain's rows (mean s.d. min max): 1 row $(stats "$tmp/ratio_$s" 3); 32 rows $(stats "$tmp/ratio_$s" 4)"
		q "SELECT unlearn_drop_model('del')" >/dev/null
		q "DROP TABLE del_train"
	done
	# ---- 3. parallel training: the same model with W parallel workers
	[[ $SECTIONS == *" parallel "* ]] && for s in "${PAR_SHARDS[@]}"; do
		for ((r = 1; r <= REPEATS; r++)); do
			for w in "${WORKERS[@]}"; do
				l=$(load)
				t=$(q "SET unlearn.shard_workers = $w; SELECT seconds FROM unlearn_train('p_$w', '$train', 'id', '$col', 'label',
				          hidden => '$HIDDEN', epochs => $epochs, auto_unlearn => false,
				          options => '{\"seed\": ${SEEDS[0]}, \"shards\": $s}')")
				IFS='|' read -r sha launched <<<"$(q "SELECT encode(weights_sha256, 'hex'), coalesce(metrics->>'shard_workers', '0')
				                                      FROM unlearn.versions WHERE model = 'p_$w'")"
				q "SELECT unlearn_drop_model('p_$w')" >/dev/null
				echo "$t $l" >>"$tmp/par_${d}_${s}_$w"
				echo "$sha" >>"$tmp/sha_${d}_$s"
				printf "  S=%s repeat %d: unlearn.shard_workers %s (%s launched): %.2f s (load %s)\n" "$s" "$r" "$w" "$launched" "$t" "$l"
			done
		done
		base=$(stats "$tmp/par_${d}_${s}_${WORKERS[0]}" 1 | cut -d' ' -f1)
		for w in "${WORKERS[@]}"; do
			st=$(stats "$tmp/par_${d}_${s}_$w" 1)
			echo "    S=$s, $((w + 1)) processes: wall s (mean s.d. min max) $st; speed-up $(awk -v b="$base" -v m="${st%% *}" 'BEGIN { printf "%.2f", b / m }')"
		done
		echo "    S=$s: $(sort -u "$tmp/sha_${d}_$s" | wc -l) distinct weights over every run (1: the same bytes for every worker count)"
	done
done
echo
echo "shards_bench: done, load $(cut -d' ' -f1-3 /proc/loadavg)"
