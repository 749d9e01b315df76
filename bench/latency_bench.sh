#!/usr/bin/env bash
#
# bench/latency_bench.sh: how long after a DELETE's COMMIT the model has
# forgotten the rows.  Fashion-MNIST MLP (784-256-10, 10 epochs, seed 42, as
# bench/train_bench.sh) trained on a copy of fashion_train (latency_train,
# so fashion_train stays intact and no other model's trigger adds work),
# automatic unlearning on, worker at its defaults.  Then, one at a time:
#
#   BENCH_LATENCY_SINGLE trials deleting 1 random row, and
#   BENCH_LATENCY_BATCH trials deleting BENCH_LATENCY_ROWS random rows in one
#   statement,
#
# each: read current_version; DELETE (autocommit); right after the COMMIT
# returns, the same session polls unlearn.models every 2 ms until
# current_version changes ("commit -> new version", as the client sees it);
# then unlearn_wait for the rest of the queue.  Also read, per trial: the
# server-side done_at - enqueued_at of the requests (max over the trial),
# the unlearning run's own seconds (versions.metrics), and how many versions
# the trial made.  The worker is idle (latch wait) when each trial starts:
# 0.3 s pause between trials.  Prints p50 / p90 / max (nearest rank).
#
# Needs: the PG* environment pointing at a database with the extension and
# fashion_train loaded (bench/run.sh does that).
#
# Environment: BENCH_LATENCY_SINGLE (20), BENCH_LATENCY_BATCH (10),
# BENCH_LATENCY_ROWS (32), BENCH_LATENCY_EPOCHS (10), BENCH_LATENCY_HIDDEN
# ('{256}'), BENCH_LATENCY_TIMEOUT (120 s a trial), BENCH_LATENCY_TARGET
# (0.2: p50 for one row, seconds; reported, not enforced; issue 12's target,
# with p90 <= 0.4 s and 32 rows p50 <= 0.5 s), BENCH_LATENCY_SEED (0.42: the
# setseed of the rows the trials delete), BENCH_LATENCY_AUTO_OPTIONS
# (unlearning options for the worker, unlearn_auto's third argument; none).  At the end: the per-phase
# breakdown of the worker's runs (versions.metrics->'phases'), the test
# accuracy before and after the trials, the runs' optimiser steps, and how
# many runs took the worker's cached samples (unlearn.worker_cache_size).
set -euo pipefail

SINGLE=${BENCH_LATENCY_SINGLE:-20}
BATCH=${BENCH_LATENCY_BATCH:-10}
BATCH_ROWS=${BENCH_LATENCY_ROWS:-32}
EPOCHS=${BENCH_LATENCY_EPOCHS:-10}
HIDDEN=${BENCH_LATENCY_HIDDEN:-'{256}'}
TIMEOUT=${BENCH_LATENCY_TIMEOUT:-120}
TARGET=${BENCH_LATENCY_TARGET:-0.2}
SEED=${BENCH_LATENCY_SEED:-0.42}
AUTO_OPTIONS=${BENCH_LATENCY_AUTO_OPTIONS:-}
TABLE=latency_train
MODEL=latency_bench
BENCH_NAME=latency_bench
. "$(dirname "${BASH_SOURCE[0]}")/lib_fashion_copy.sh"
fashion_copy
train=$(q "SELECT rows || ' rows, train accuracy ' || round(train_accuracy::numeric, 4) || ', '
                 || round(seconds::numeric, 1) || ' s'
            FROM unlearn_train('$MODEL', '$TABLE', 'id', 'pixels', 'label', hidden => '$HIDDEN',
                               epochs => $EPOCHS, options => '{\"seed\": 42}')")
if [ -n "$AUTO_OPTIONS" ]; then q "SELECT unlearn_auto('$MODEL', true, '$AUTO_OPTIONS')" >/dev/null; fi
acc0=$(q "SELECT round(accuracy::numeric, 4) FROM unlearn_evaluate('$MODEL', 'fashion_test')")
echo "latency_bench: model $MODEL, hidden $HIDDEN, $EPOCHS epochs: $train"
echo "  cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg);" \
	"unlearn.batch_window $(q "SHOW unlearn.batch_window"), unlearn.naptime $(q "SHOW unlearn.naptime")," \
	"unlearn.threads $(q "SHOW unlearn.threads"), auto_options $(q "SELECT auto_options FROM unlearn.models WHERE name = '$MODEL'")"

# One session runs every trial; result lines are "R|rows|trial|commit->version|server max|run s|versions".
{
	cat <<SQL
SET client_min_messages = warning;
SELECT setseed($SEED);
CREATE FUNCTION pg_temp.wait_version(m text, v integer, timeout double precision)
RETURNS double precision LANGUAGE plpgsql AS \$\$
DECLARE
	t0 timestamptz := clock_timestamp();
	cur integer;
BEGIN
	LOOP
		SELECT current_version INTO cur FROM unlearn.models WHERE name = m;
		IF cur > v THEN
			RETURN extract(epoch FROM clock_timestamp() - t0);
		END IF;
		IF extract(epoch FROM clock_timestamp() - t0) > timeout THEN
			RETURN NULL;
		END IF;
		PERFORM pg_sleep(0.002);
	END LOOP;
END \$\$;
SQL
	trial() {	# ROWS TRIAL
		cat <<SQL
SELECT pg_sleep(0.3);
SELECT current_version AS cv FROM unlearn.models WHERE name = '$MODEL' \gset
SELECT array_agg(id)::text AS ids FROM (SELECT id FROM $TABLE ORDER BY random() LIMIT $1) s \gset
DELETE FROM $TABLE WHERE id = ANY(:'ids'::bigint[]);
SELECT coalesce(pg_temp.wait_version('$MODEL', :cv, $TIMEOUT)::text, 'timeout') AS lat \gset
SELECT unlearn_wait('$MODEL', '$TIMEOUT s') AS drained \gset
SELECT 'R|$1|$2|' || :'lat' || '|'
       || coalesce((SELECT max(extract(epoch FROM done_at - enqueued_at))::text FROM unlearn.requests
                     WHERE model = '$MODEL' AND id = ANY(:'ids'::bigint[])), 'none') || '|'
       || coalesce((SELECT sum((metrics->>'seconds')::float8)::text FROM unlearn.versions
                     WHERE model = '$MODEL' AND version > :cv), 'none') || '|'
       || (SELECT current_version - :cv FROM unlearn.models WHERE name = '$MODEL') || '|'
       || (SELECT count(*) FILTER (WHERE state <> 'done') FROM unlearn.requests
            WHERE model = '$MODEL' AND id = ANY(:'ids'::bigint[]));
SQL
	}
	for ((i = 1; i <= SINGLE; i++)); do trial 1 "$i"; done
	for ((i = 1; i <= BATCH; i++)); do trial "$BATCH_ROWS" "$i"; done
} >"$work/trials.sql"

"$PSQL" -X -q -v ON_ERROR_STOP=1 -At -f "$work/trials.sql" | grep '^R|' >"$work/results"

# pct FILE P: nearest-rank percentile of the numbers in FILE (P in 0..100; 100 = max)
pct() {
	sort -g "$1" | awk -v p="$2" '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR
		printf "%.3f", v[r] }'
}

bad=0
echo
printf '  %-11s %6s   %-25s   %-25s   %-25s  %s\n' "rows/DELETE" trials \
	"commit -> new version (s)" "server done-enqueued (s)" "unlearning run (s)" "versions/trial"
printf '  %-11s %6s   %-25s   %-25s   %-25s\n' "" "" "p50 / p90 / max" "p50 / p90 / max" "p50 / p90 / max"
for k in 1 "$BATCH_ROWS"; do
	awk -F'|' -v k="$k" '$2 == k { print $4 }' "$work/results" | grep -v timeout >"$work/lat" || true
	awk -F'|' -v k="$k" '$2 == k { print $5 }' "$work/results" | grep -v none >"$work/srv" || true
	awk -F'|' -v k="$k" '$2 == k { print $6 }' "$work/results" | grep -v none >"$work/run" || true
	n=$(awk -F'|' -v k="$k" '$2 == k' "$work/results" | wc -l)
	timeouts=$(awk -F'|' -v k="$k" '$2 == k && $4 == "timeout"' "$work/results" | wc -l)
	undone=$(awk -F'|' -v k="$k" '$2 == k { s += $8 } END { print s + 0 }' "$work/results")
	versions=$(awk -F'|' -v k="$k" '$2 == k { c[$7]++ } END { for (v in c) printf "%s%s x%d", (n++ ? ", " : ""), v, c[v] }' "$work/results")
	printf '  %-11s %6s   %-25s   %-25s   %-25s  %s\n' "$k" "$n" \
		"$(pct "$work/lat" 50) / $(pct "$work/lat" 90) / $(pct "$work/lat" 100)" \
		"$(pct "$work/srv" 50) / $(pct "$work/srv" 90) / $(pct "$work/srv" 100)" \
		"$(pct "$work/run" 50) / $(pct "$work/run" 90) / $(pct "$work/run" 100)" "$versions"
	if [ "$timeouts" -gt 0 ] || [ "$undone" -gt 0 ]; then
		echo "  rows $k: $timeouts trial(s) timed out, $undone request(s) not done" >&2
		bad=1
	fi
	if [ "$k" = 1 ]; then p50_one=$(pct "$work/lat" 50); fi
done
echo
echo "  where the worker's time goes (versions.metrics->'phases', s): p50 [p10 .. p90] over the trials' versions"
q "SELECT format('  %-11s %-17s %8s [%s .. %s]', rows, phase, to_char(p50, '0.0000'), to_char(p10, '0.0000'),
                 to_char(p90, '0.0000'))
     FROM (SELECT (v.metrics->>'rows')::int AS rows, p.key AS phase,
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY p.value::float8) AS p50,
                  percentile_cont(0.1) WITHIN GROUP (ORDER BY p.value::float8) AS p10,
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY p.value::float8) AS p90
             FROM unlearn.versions v, jsonb_each_text(v.metrics->'phases') p
            WHERE v.model = '$MODEL' AND v.reason = 'auto-unlearn'
            GROUP BY 1, 2
           UNION ALL
           SELECT (v.metrics->>'rows')::int, '(total_seconds)',
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY (v.metrics->>'total_seconds')::float8),
                  percentile_cont(0.1) WITHIN GROUP (ORDER BY (v.metrics->>'total_seconds')::float8),
                  percentile_cont(0.9) WITHIN GROUP (ORDER BY (v.metrics->>'total_seconds')::float8)
             FROM unlearn.versions v
            WHERE v.model = '$MODEL' AND v.reason = 'auto-unlearn' AND v.metrics ? 'total_seconds'
            GROUP BY 1) s
    WHERE p50 >= 0.0005 OR phase = '(total_seconds)'
    ORDER BY rows, p50 DESC"
echo "  (phases under 0.5 ms at p50 left out; the version's own INSERT and the requests' finish"
echo "  come after its metrics: in the worker's LOG line)"
echo "  test accuracy (fashion_test) before the trials ${acc0}, after $(q "SELECT round(accuracy::numeric, 4) FROM unlearn_evaluate('$MODEL', 'fashion_test')");" \
	"optimiser steps per run (metrics->'steps'): $(q "SELECT string_agg(x, '; ' ORDER BY rows) FROM (
	       SELECT rows, format('%s rows mean %s median %s', rows, round(avg(steps)),
	                           percentile_disc(0.5) WITHIN GROUP (ORDER BY steps)) AS x
	         FROM (SELECT (metrics->>'rows')::int AS rows, (metrics->>'steps')::int AS steps FROM unlearn.versions
	                WHERE model = '$MODEL' AND reason = 'auto-unlearn') s GROUP BY rows) t")"
echo "  samples: $(q "SELECT count(*) FILTER (WHERE (metrics->>'replay_cached')::boolean) || ' of ' || count(*)
                     || ' runs took the worker''s cached samples (replay_cached)'
                FROM unlearn.versions WHERE model = '$MODEL' AND reason = 'auto-unlearn'")"
echo "  paused for sessions' writes (unlearn.worker_cpu_share): $(q "SELECT count(*) FILTER (WHERE (metrics->>'paused_seconds')::float8 > 0)
                     || ' runs, ' || coalesce(round(sum((metrics->>'paused_seconds')::numeric), 3), 0) || ' s in all'
                FROM unlearn.versions WHERE model = '$MODEL' AND reason = 'auto-unlearn'")"
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "  commit -> new version: measured by the deleting session, polling current_version every 2 ms from"
echo "  right after its COMMIT returned; server done-enqueued: max over the trial's requests of"
echo "  done_at - enqueued_at; unlearning run: the run's own seconds (versions.metrics), the rest is"
echo "  batch window (unlearn.batch_window), wake-up, reading the queue and storing the version."
if awk -v p="${p50_one:-999}" -v t="$TARGET" 'BEGIN { exit !(p < t) }'; then
	echo "  one row: p50 ${p50_one} s < target ${TARGET} s: met"
else
	echo "  one row: p50 ${p50_one:-?} s >= target ${TARGET} s: NOT met"
fi
exit "$bad"
