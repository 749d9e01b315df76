#!/usr/bin/env bash
#
# bench/memory_bench.sh: backend and worker memory over many consecutive
# unlearning requests (issue 12: no growth over 1 000).  A Fashion-MNIST
# model (BENCH_MEMORY_HIDDEN, default '{32}' so that 1 000 runs fit in a few
# minutes; BENCH_MEMORY_ROWS rows of fashion_train) with automatic
# unlearning on.  One session (the "backend") runs a procedure that,
# BENCH_MEMORY_REQUESTS times, deletes one random row, commits, and waits
# until the worker has stored the version that forgets it (one request, one
# run, one version each).  Every BENCH_MEMORY_EVERY requests it samples:
#
#   backend  RssAnon (/proc/PID/status: its private memory, not the shared
#            buffers it touches) and the sum of pg_backend_memory_contexts
#   worker   RssAnon, and its MemoryContext grand total, logged on request
#            by pg_log_backend_memory_contexts (read from the server log)
#
# and prints the samples, then the change from the second sample (after
# warm-up) to the last.  Needs: the PG* environment of a superuser on a
# database with the extension and fashion_train loaded (bench/run.sh), and
# UNLEARN_SERVER_LOG (bench/run.sh exports it) for the worker's totals.
#
# Environment: BENCH_MEMORY_REQUESTS (1000), BENCH_MEMORY_EVERY (100),
# BENCH_MEMORY_ROWS (3000), BENCH_MEMORY_HIDDEN ('{32}'), BENCH_MEMORY_EPOCHS (3).
set -euo pipefail

REQUESTS=${BENCH_MEMORY_REQUESTS:-1000}
EVERY=${BENCH_MEMORY_EVERY:-100}
ROWS=${BENCH_MEMORY_ROWS:-3000}
HIDDEN=${BENCH_MEMORY_HIDDEN:-'{32}'}
EPOCHS=${BENCH_MEMORY_EPOCHS:-3}
TABLE=memory_train
MODEL=memory_bench
PSQL=${PSQL:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)/psql}
LOG=${UNLEARN_SERVER_LOG:-}

q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }

cleanup() {
	q "SELECT unlearn_drop_model('$MODEL') FROM unlearn.models WHERE name = '$MODEL'" >/dev/null 2>&1 || true
	q "DROP TABLE IF EXISTS $TABLE, pg_temp.x" >/dev/null 2>&1 || true
	q "DROP TABLE IF EXISTS memory_samples; DROP PROCEDURE IF EXISTS memory_run(int, int)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

[ "$ROWS" -gt $((REQUESTS + 100)) ] || { echo "memory_bench: BENCH_MEMORY_ROWS must exceed the requests + 100" >&2; exit 2; }
cleanup
q "CREATE TABLE $TABLE AS SELECT * FROM fashion_train WHERE id <= $ROWS" >/dev/null
q "ALTER TABLE $TABLE ADD PRIMARY KEY (id)" >/dev/null
q "VACUUM ANALYZE $TABLE" >/dev/null
train=$(q "SELECT rows || ' rows, ' || round(seconds::numeric, 1) || ' s'
            FROM unlearn_train('$MODEL', '$TABLE', 'id', 'pixels', 'label', hidden => '$HIDDEN',
                               epochs => $EPOCHS, options => '{\"seed\": 42}')")
echo "memory_bench: model $MODEL, hidden $HIDDEN, $EPOCHS epochs: $train; $REQUESTS requests, a sample every $EVERY"
echo "  cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg); fsync $(q "SHOW fsync")"

q "CREATE TABLE memory_samples (n int, at timestamptz, backend_pid int, backend_rss_kb bigint,
                                backend_contexts bigint, worker_pid int, worker_rss_kb bigint, versions int)" >/dev/null
q "CREATE PROCEDURE memory_run(total int, every int) LANGUAGE plpgsql AS \$\$
DECLARE
	cv int;
	wpid int;
	victim bigint;
	t0 timestamptz;
BEGIN
	PERFORM setseed(0.42);
	FOR i IN 0 .. total LOOP
		IF i % every = 0 THEN
			SELECT pid INTO wpid FROM pg_stat_activity
			 WHERE backend_type = 'unlearn worker' AND datname = current_database();
			INSERT INTO memory_samples
			SELECT i, clock_timestamp(), pg_backend_pid(),
			       substring(pg_read_file('/proc/' || pg_backend_pid() || '/status') FROM 'RssAnon:\s+(\d+)')::bigint,
			       (SELECT sum(total_bytes) FROM pg_backend_memory_contexts),
			       wpid,
			       CASE WHEN wpid IS NOT NULL THEN
			         substring(pg_read_file('/proc/' || wpid || '/status') FROM 'RssAnon:\s+(\d+)')::bigint END,
			       (SELECT current_version FROM unlearn.models WHERE name = '$MODEL');
			IF wpid IS NOT NULL THEN
				PERFORM pg_log_backend_memory_contexts(wpid);
			END IF;
			COMMIT;
		END IF;
		EXIT WHEN i = total;
		SELECT current_version INTO cv FROM unlearn.models WHERE name = '$MODEL';
		SELECT id INTO victim FROM $TABLE ORDER BY random() LIMIT 1;
		DELETE FROM $TABLE WHERE id = victim;
		COMMIT;
		t0 := clock_timestamp();
		LOOP
			EXIT WHEN (SELECT current_version FROM unlearn.models WHERE name = '$MODEL') > cv;
			IF clock_timestamp() - t0 > interval '60 s' THEN
				RAISE EXCEPTION 'request % not unlearned within 60 s', i;
			END IF;
			PERFORM pg_sleep(0.005);
			COMMIT;
		END LOOP;
	END LOOP;
END \$\$" >/dev/null

t0=$(date +%s)
q "CALL memory_run($REQUESTS, $EVERY)"
t1=$(date +%s)
sleep 1	# the worker's last memory report reaches the log

# the worker's grand totals, in the order logged (one per sample)
wtotals=()
if [ -n "$LOG" ] && [ -r "$LOG" ]; then
	wpid=$(q "SELECT worker_pid FROM memory_samples WHERE worker_pid IS NOT NULL ORDER BY n DESC LIMIT 1")
	mapfile -t wtotals < <(grep "\[$wpid\]" "$LOG" | grep -o 'Grand total: [0-9]* bytes' | awk '{ print $3 }' || true)
fi
echo
printf '  %6s %9s %12s %15s %9s %12s %16s\n' requests versions "backend pid" "backend KiB" "ctx KiB" "worker pid" "worker KiB" 
printf '  %6s %9s %12s %15s %9s %12s %16s\n' "" "" "" "(RssAnon)" "" "" "(RssAnon / ctx)" 
i=0
while IFS='|' read -r n v bpid brss bctx wpid wrss; do
	wctx=
	if [ -n "$wpid" ]; then wctx=${wtotals[$i]:-}; i=$((i + 1)); fi
	printf '  %6s %9s %12s %15s %9s %12s %16s\n' "$n" "$v" "$bpid" "$brss" "$((bctx / 1024))" "${wpid:--}" \
		"${wrss:--} / $([ -n "$wctx" ] && echo $((wctx / 1024)) || echo -)"
done < <(q "SELECT n, versions, backend_pid, backend_rss_kb, backend_contexts, worker_pid, worker_rss_kb
             FROM memory_samples ORDER BY n")
echo
q "SELECT format('  from request %s to %s: backend RssAnon %s KiB, contexts %s KiB; worker RssAnon %s KiB; %s versions in %s s',
                 a.n, b.n, b.backend_rss_kb - a.backend_rss_kb, (b.backend_contexts - a.backend_contexts) / 1024,
                 b.worker_rss_kb - a.worker_rss_kb, b.versions - a.versions, $t1 - $t0)
     FROM memory_samples a, memory_samples b
    WHERE a.n = $EVERY AND b.n = (SELECT max(n) FROM memory_samples)"
if [ "${#wtotals[@]}" -ge 2 ]; then
	echo "  worker MemoryContext grand total, second sample to last: $(( (wtotals[-1] - wtotals[1]) / 1024 )) KiB" \
		"(${wtotals[1]} -> ${wtotals[-1]} bytes)"
fi
q "SELECT format('  worker pids seen: %s', string_agg(DISTINCT worker_pid::text, ', ')) FROM memory_samples"
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
