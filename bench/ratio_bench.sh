#!/usr/bin/env bash
#
# bench/ratio_bench.sh: unlearn_rows of k = 1 and k = 32 rows as a share of
# a full retrain of the same model, in the extension.  The Fashion-MNIST MLP
# (784-256-10, 10 epochs, seed 42, as bench/train_bench.sh) is trained on a
# copy of fashion_train (ratio_train, capture off).  Then, per repeat r =
# 1..BENCH_RATIO_REPEATS (ids drawn with setseed(0.1 r)):
#
#   unlearn_rows(model, 1 random id)       timed (wall, in the session)
#   unlearn_rows(model, 32 random ids)     timed
#   unlearn_retrain(model)                 timed: the full retrain, from scratch
#                                          on the rows left, the recorded options
#
# ratio = unlearn_rows wall / unlearn_retrain wall of the same repeat.  Also
# printed: the method each run used (the accuracy guard may replace a run by
# an exact retrain), steps, test accuracy after each step, and the five
# largest phases of each unlearn_rows run (versions.metrics->'phases').  Prints each
# repeat, then mean, sample s.d., min and max of the ratios.
#
# Needs: the PG* environment pointing at a database with the extension and
# fashion_train / fashion_test loaded (bench/run.sh does that).
#
# Environment: BENCH_RATIO_REPEATS (3), BENCH_RATIO_EPOCHS (10),
# BENCH_RATIO_HIDDEN ('{256}'), BENCH_RATIO_KS ("1 32").
set -euo pipefail

REPEATS=${BENCH_RATIO_REPEATS:-3}
EPOCHS=${BENCH_RATIO_EPOCHS:-10}
HIDDEN=${BENCH_RATIO_HIDDEN:-'{256}'}
read -r -a KS <<<"${BENCH_RATIO_KS:-1 32}"
TABLE=ratio_train
MODEL=ratio_bench
BENCH_NAME=ratio_bench
. "$(dirname "${BASH_SOURCE[0]}")/lib_fashion_copy.sh"
fashion_copy
train=$(fashion_train_model "$HIDDEN" "$EPOCHS" '{"seed": 42}')
echo "ratio_bench: model $MODEL, hidden $HIDDEN, $EPOCHS epochs on $TABLE: $train"
echo "  cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg); unlearn.threads $(q "SHOW unlearn.threads")," \
	"unlearn.max_accuracy_drop $(q "SHOW unlearn.max_accuracy_drop"), fsync $(q "SHOW fsync")"

# One session per repeat; result lines "R|repeat|what|wall s|method|steps|test accuracy".
for ((r = 1; r <= REPEATS; r++)); do
	{
		echo "SET client_min_messages = warning;"
		echo "SELECT setseed(0.1 * $r);"
		for k in "${KS[@]}"; do
			cat <<SQL
SELECT array_agg(id)::text AS ids FROM (SELECT id FROM $TABLE ORDER BY random() LIMIT $k) s \gset
SELECT clock_timestamp() AS t0 \gset
SELECT method, steps, version FROM unlearn_rows('$MODEL', :'ids'::bigint[]) \gset
SELECT 'R|$r|k=$k|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|' || :'method' || '|' || :'steps'
       || '|' || round((SELECT accuracy FROM unlearn_evaluate('$MODEL', 'fashion_test'))::numeric, 4)
       || '|' || coalesce((SELECT string_agg(format('%s %s', key, round(value::numeric, 3)), ', '
                                             ORDER BY value::float8 DESC)
                             FROM (SELECT key, value FROM unlearn.versions v, jsonb_each_text(v.metrics->'phases')
                                    WHERE v.model = '$MODEL' AND v.version = :version
                                    ORDER BY value::float8 DESC LIMIT 5) p), '-');
SQL
		done
		cat <<SQL
SELECT clock_timestamp() AS t0 \gset
SELECT version AS rv FROM unlearn_retrain('$MODEL') \gset
SELECT 'R|$r|retrain|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz) || '|retrain|0|'
       || round((SELECT accuracy FROM unlearn_evaluate('$MODEL', 'fashion_test'))::numeric, 4);
SQL
	} >"$work/repeat.sql"
	"$PSQL" -X -q -v ON_ERROR_STOP=1 -At -f "$work/repeat.sql" | grep '^R|' | tee -a "$work/results" |
		awk -F'|' '{ printf "  repeat %s  %-8s %7.3f s  method %-8s steps %5s  test accuracy %s%s\n", $2, $3, $4, $5, $6, $7,
		             ($8 != "" ? "\n      largest phases (s): " $8 : "") }'
done

echo
echo "  ratio = unlearn_rows wall / unlearn_retrain wall, same repeat ($REPEATS repeats; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
for k in "${KS[@]}"; do
	awk -F'|' -v k="k=$k" '
		$3 == "retrain" { rt[$2] = $4 }
		$3 == k { u[$2] = $4 }
		END {
			n = 0
			for (r in u) if (r in rt) { x[++n] = u[r] / rt[r]; su += u[r]; sr += rt[r] }
			if (n == 0) { print "  " k ": no data"; exit }
			for (i = 1; i <= n; i++) { m += x[i]; if (i == 1 || x[i] < lo) lo = x[i]; if (i == 1 || x[i] > hi) hi = x[i] }
			m /= n
			for (i = 1; i <= n; i++) v += (x[i] - m) ^ 2
			sd = n > 1 ? sqrt(v / (n - 1)) : 0
			printf "  %-5s unlearn_rows %.3f s, retrain %.3f s (means); ratio mean %.4f, s.d. %.4f, min %.4f, max %.4f\n",
				k, su / n, sr / n, m, sd, lo, hi
		}' "$work/results"
done
echo "  targets (issue 12): k = 1 at most 0.02, k = 32 at most 0.05"
