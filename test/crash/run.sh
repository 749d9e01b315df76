#!/usr/bin/env bash
#
# test/crash/run.sh: crash and signal tests of the unlearn background worker.
# Run by `make test` after pg_regress (needs the extension installed).
#
# A throwaway server "crash" (/tmp/unlearn-crash, test/lib_server.sh) with
# synchronous_commit = on (lib_server's default, off, may lose the last
# commits at a crash: a DELETE would then vanish together with its requests,
# which is correct but tests nothing) and unlearn.naptime = 1 s.  A model
# (MLP 8-512-512-3) is trained on 300 synthetic rows (3 clusters in 8-D,
# deterministic md5 noise), with unlearn_auto options that make a run take
# a few seconds (repair_steps), so that a kill lands inside a run.
#
# Scenarios (each prints what it checks; every check can fail):
#   a. kill -9 of the per-database worker while it runs a batch
#   b. pg_ctl stop -m immediate while the worker runs a batch, restart
#   c. DELETE committed, immediate stop before the worker ran (batch_window
#      5 s), restart: the requests are processed once
#   d. SIGTERM (pg_terminate_backend) of a worker in a run: the launcher
#      starts a new one within naptime, which finishes the requests
#   e. SIGHUP: ALTER SYSTEM + pg_reload_conf: new sessions and the worker see
#      the new unlearn.naptime / unlearn.batch_window, the worker keeps going
#   f. SIGTERM of the launcher while a worker runs: the restarted launcher
#      must not start a second worker for the database, and the requests of
#      the run in progress stay done once
#   h. the warm worker: a run that took the worker's cached samples killed
#      (kill -9): done once by the restarted worker, which reads its samples
#      from the table (replay_cached false) and keeps them for the next run
#   i. a database owner (not a superuser) sets unlearn.max_accuracy_drop = 100
#      with ALTER DATABASE: its sessions take it, the worker refuses it
#      (WARNING in the log) and keeps the guard (a held-out sample is read)
#   j. a database owner (not a superuser) makes every session of its database
#      read-only, with a 1 ms statement timeout (ALTER DATABASE ... SET): its
#      sessions take them; the worker, restarted to read them, keeps running
#      and unlearns a DELETE (it used to exit at its first write, restarted
#      in a loop)
#   k. consolidation when deletes pause (unlearn.consolidate_idle = 2 s, in a
#      database of its own): an approximate version is retrained exactly once
#      the model is idle; a kill -9 inside that retrain leaves no version, and
#      the restarted worker consolidates once (no gap, no second retrain)
#   l. the worker's share of the CPU: with unlearn.worker_cpu_share = 20 and a
#      session committing writes meanwhile, the worker pauses (wait event
#      PgSleep) in most of its run; at 100, or with no session writing, never
#   m. unlearn.max_run_time: an ordinary owner's two models whose
#      auto_options would hold the worker for hours are cancelled at the limit
#      per attempt and fail after unlearn.max_attempts; another model's
#      request is served before their retries; a run interrupted by kill -9
#      counts its attempt
# After each of a-f the queue/ledger/version invariants are checked:
#   every request of the deleted ids done exactly once, one version for the
#   batch, one ledger row per id carrying that version, the ids out of the
#   current manifest, no request left running/pending/skipped/failed,
#   current_version advanced by exactly the number of runs that completed
#   (= new 'auto-unlearn' versions = distinct versions of the requests),
#   versions 1..current_version without gaps, unlearn_confirm_forgotten.
#
# Prints "N passed, M failed" last; exits non-zero if anything failed.
#
# Environment:
#   CRASH_SCENARIOS="a b c d e f g h i j k l m"  run only these (default: all)
#   UNLEARN_KEEP_DATA=1            keep the cluster's data directory
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib_server.sh
. "$root/test/lib_server.sh"
# shellcheck source=SCRIPTDIR/../lib_check.sh
. "$root/test/lib_check.sh"

SCENARIOS=${CRASH_SCENARIOS:-"a b c d e f g h i j k l m"}
MODEL=crash_model
TABLE=crash_data
NAPTIME_MS=1000
SLOW_OPTS='{"repair_steps": 600}'		# ~2-4 s a run on 2 shared cores
VERY_SLOW_OPTS='{"repair_steps": 2500}'	# f: a run must outlive the launcher's 5 s restart

check_start crash

# q SQL: one value (or rows) from the server; fails (set -e) on error.
q() { upsql -At -q -c "$1"; }
# q_soft SQL: same, but prints nothing and returns non-zero on error.
q_soft() { upsql -At -q -c "$1" 2>/dev/null; }

pg_ctl_() { _unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_ctl" -D "$UNLEARN_SERVER_DATA" "$@"; }

# Waits until the server accepts queries (after a crash restart); seconds.
wait_server() {
	local deadline=$(($(date +%s) + ${1:-60}))
	until q_soft "SELECT 1" >/dev/null; do
		if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
		sleep 0.2
	done
}

# Waits until one of the requests of ids $1 ('{...}') is running; prints the
# worker's pid.  Fails after $2 seconds.
wait_running() {
	local ids=$1 deadline=$(($(date +%s) + ${2:-30})) pid
	while :; do
		pid=$(q_soft "SELECT a.pid FROM pg_stat_activity a
			WHERE a.backend_type = 'unlearn worker' AND a.datname = current_database()
			  AND EXISTS (SELECT 1 FROM unlearn.requests r WHERE r.model = '$MODEL'
			              AND r.id = ANY('$ids') AND r.state = 'running')
			ORDER BY a.backend_start DESC LIMIT 1" || true)
		if [ -n "$pid" ]; then
			echo "$pid"
			return 0
		fi
		if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
		sleep 0.05
	done
}

worker_pids() {
	q_soft "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity
		WHERE backend_type = 'unlearn worker' AND datname = current_database()" || true
}

# Waits (reconnecting while the server restarts) for the queue to drain.
drain() {
	local deadline=$(($(date +%s) + ${1:-120})) r
	while :; do
		r=$(q_soft "SELECT unlearn_wait('$MODEL', '20 s')" || true)
		if [ "$r" = t ]; then return 0; fi
		if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
		sleep 0.5
	done
}

# kill_in_run PID WHAT [DELAY]: kill -9 of a worker DELAY s (0.3) into its run, then wait for the
# server's restart.
kill_in_run() {
	sleep "${3:-0.3}"
	info "$2: kill -9"
	kill -9 "$1"
	sleep 1
	wait_server 60 || bad "the server did not come back after the crash"
}

# Snapshot of the version counters before a scenario.
cv0=0 nv0=0 log0=0
snapshot() {
	cv0=$(q "SELECT current_version FROM unlearn.models WHERE name = '$MODEL'")
	nv0=$(q "SELECT count(*) FROM unlearn.versions WHERE model = '$MODEL' AND reason = 'auto-unlearn'")
	log0=$(wc -l <"$UNLEARN_SERVER_LOG")
}

# Lines of the server log written since the snapshot.
log_since() { tail -n +"$((log0 + 1))" "$UNLEARN_SERVER_LOG"; }

# wait_log TEXT SECONDS: true once TEXT is in the log since the snapshot.
wait_log() {
	local deadline=$(($(date +%s) + $2))
	until log_since | grep -qF "$1"; do
		if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
		sleep 0.2
	done
}

# verify IDS RUNS: the queue, ledger and version invariants for the ids
# deleted in this scenario ('{...}'), which should have taken RUNS runs.
verify() {
	local ids=$1 runs=$2 n out
	n=$(q "SELECT cardinality('$ids'::bigint[])")
	out=$(q "SELECT count(*), count(*) FILTER (WHERE state = 'done'), count(DISTINCT id),
	                count(DISTINCT version)
	           FROM unlearn.requests WHERE model = '$MODEL' AND id = ANY('$ids')")
	check "one request per deleted row, each done (requests|done|ids)" "$n|$n|$n" "${out%|*}"
	check "the batch made $runs version(s) (distinct versions of its requests)" "$runs" "${out##*|}"
	out=$(q "SELECT count(*), count(*) FILTER (WHERE f.version = r.version)
	           FROM unlearn.forgotten f
	           LEFT JOIN unlearn.requests r ON r.model = f.model AND r.id = f.id AND r.state = 'done'
	          WHERE f.model = '$MODEL' AND f.id = ANY('$ids')")
	check "ledger: each id once, with the version of its done request (rows|same version)" "$n|$n" "$out"
	check "the ids are out of the current manifest" 0 \
		"$(q "SELECT count(*) FROM unlearn_manifest('$MODEL') m WHERE m = ANY('$ids')")"
	check "no request pending, running, skipped or failed (whole queue)" 0 \
		"$(q "SELECT count(*) FROM unlearn.requests WHERE model = '$MODEL' AND state <> 'done'")"
	out=$(q "SELECT m.current_version - $cv0,
	                (SELECT count(*) FROM unlearn.versions v WHERE v.model = m.name AND v.reason = 'auto-unlearn') - $nv0
	           FROM unlearn.models m WHERE m.name = '$MODEL'")
	check "current_version and auto-unlearn versions each up by $runs" "$runs|$runs" "$out"
	out=$(q "SELECT (SELECT count(*) FROM unlearn.versions WHERE model = '$MODEL' AND reason = 'auto-unlearn')
	                = (SELECT count(DISTINCT version) FROM unlearn.requests WHERE model = '$MODEL' AND state = 'done'),
	                (SELECT count(*) = max(version) AND max(version) = m.current_version
	                   FROM unlearn.versions WHERE model = '$MODEL')
	           FROM unlearn.models m WHERE m.name = '$MODEL'")
	check "whole history: auto-unlearn versions = distinct request versions; versions 1..current, no gap" "t|t" "$out"
	check "unlearn_confirm_forgotten" t "$(q "SELECT unlearn_confirm_forgotten('$MODEL')")"
}

scenario() {
	echo
	echo "==== $1 ===="
	shift
	local line
	for line in "$@"; do echo "  checks: $line"; done
}

want() { [[ " $SCENARIOS " == *" $1 "* ]]; }

# small_model DB TABLE MODEL ROWS: the extension in DB, a table of ROWS rows (2 classes), a model on it.
small_model() {
	upsql -d "$1" -At -q -c "CREATE EXTENSION unlearn" \
		-c "CREATE TABLE $2 (id bigint PRIMARY KEY, features real[], label int)" \
		-c "INSERT INTO $2 SELECT i, ARRAY[(i % 2) * 2.0, 0.3 * sin(i)]::real[], i % 2 FROM generate_series(1, $4) i" \
		-c "SELECT count(*) FROM unlearn_train('$3', '$2', 'id', 'features', 'label', hidden => '{16}', epochs => 30,
		                                      options => '{\"lr\": 0.01, \"batch_size\": 32}')" >/dev/null
}

# ---------------------------------------------------------------- setup
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ ! -f "$pkglibdir/unlearn.so" ]; then
	echo "crash: $pkglibdir/unlearn.so is not installed: run 'make install'" >&2
	exit 1
fi
trap check_finish EXIT
unlearn_server_start crash "synchronous_commit = on" "unlearn.naptime = ${NAPTIME_MS}ms" \
	"unlearn.threads = 2" "unlearn.exact_when_cheaper = off" "unlearn.consolidate_after = 0" \
	"unlearn.consolidate_drop = 0" "unlearn.consolidate_idle = 0" || exit 1

echo "==== setup: extension, $TABLE (300 rows, 3 clusters in 8-D), model $MODEL (8-512-512-3) ===="
q "CREATE EXTENSION unlearn" >/dev/null
q "CREATE TABLE $TABLE AS
   SELECT i::bigint AS id,
          ARRAY(SELECT (CASE WHEN d % 3 = i % 3 THEN 2.0 ELSE 0.0 END
                        + 1.5 * (('x' || substr(md5(i || ':' || d), 1, 8))::bit(32)::int / 2147483648.0))::real
                  FROM generate_series(0, 7) d ORDER BY d) AS features,
          i % 3 AS label
     FROM generate_series(1, 300) i" >/dev/null
q "ALTER TABLE $TABLE ADD PRIMARY KEY (id)" >/dev/null
out=$(q "SELECT rows, round(train_accuracy::numeric, 3), round(seconds::numeric, 2)
           FROM unlearn_train('$MODEL', '$TABLE', 'id', 'features', 'label', hidden => '{512,512}',
                              epochs => 30, options => '{\"seed\": 1, \"batch_size\": 32, \"lr\": 0.01}')")
info "trained: rows|train accuracy|seconds = $out"
q "SELECT unlearn_auto('$MODEL', true, '$SLOW_OPTS')" >/dev/null
info "worker runs use auto_options $SLOW_OPTS"
info "launcher pid $(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'unlearn launcher'");" \
	"the database's worker starts with the first DELETE's commit"

# ---------------------------------------------------------------- a
if want a; then
	scenario "a. kill -9 of the worker in the middle of a run" \
		"the kill hits a run (requests running, attempts 2 afterwards), postgres restarts," \
		"the requests are run again and done once, the killed run left no version"
	ids='{11,12,13,14}'
	snapshot
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	if pid=$(wait_running "$ids" 30); then
		kill_in_run "$pid" "requests running in worker $pid"
		if log_since | grep -q "unlearn worker.*was terminated by signal 9" &&
			log_since | grep -q "all server processes terminated; reinitializing"; then
			ok "postmaster saw the worker die (signal 9) and reinitialized"
		else bad "no 'terminated by signal 9' / 'reinitializing' in the server log"; fi
		drain 120 || bad "queue not drained within 120 s after the crash"
		check "the killed run was claimed, then claimed again (attempts)" "2" \
			"$(q "SELECT string_agg(DISTINCT attempts::text, ',') FROM unlearn.requests WHERE model = '$MODEL' AND id = ANY('$ids')")"
		verify "$ids" 1
	else
		bad "no request of $ids became running within 30 s"
	fi
fi

# ---------------------------------------------------------------- b
if want b; then
	scenario "b. pg_ctl stop -m immediate in the middle of a run, restart" \
		"same as a: the run is redone once after the restart, no version from the interrupted run"
	ids='{21,22,23,24}'
	snapshot
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	if pid=$(wait_running "$ids" 30); then
		sleep 0.3
		info "requests running in worker $pid: pg_ctl stop -m immediate"
		pg_ctl_ -m immediate -w -t 60 stop >/dev/null
		pg_ctl_ -l "$UNLEARN_SERVER_LOG" -w -t 60 start >/dev/null
		wait_server 60 || bad "the server did not come back"
		drain 120 || bad "queue not drained within 120 s after the restart"
		check "the interrupted run was claimed, then claimed again (attempts)" "2" \
			"$(q "SELECT string_agg(DISTINCT attempts::text, ',') FROM unlearn.requests WHERE model = '$MODEL' AND id = ANY('$ids')")"
		verify "$ids" 1
	else
		bad "no request of $ids became running within 30 s"
	fi
fi

# ---------------------------------------------------------------- c
if want c; then
	scenario "c. DELETE committed, immediate stop before the worker ran (unlearn.batch_window 5 s)" \
		"the requests survive the stop as pending, no run happened before it," \
		"after the restart they are processed once"
	ids='{31,32,33,34}'
	q "ALTER SYSTEM SET unlearn.batch_window = '5s'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	snapshot
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	pg_ctl_ -m immediate -w -t 60 stop >/dev/null
	info "stopped (immediate) right after the DELETE's commit"
	pg_ctl_ -l "$UNLEARN_SERVER_LOG" -w -t 60 start >/dev/null
	wait_server 60 || bad "the server did not come back"
	out=$(q "SELECT count(*), count(*) FILTER (WHERE state = 'pending' AND attempts = 0)
	           FROM unlearn.requests WHERE model = '$MODEL' AND id = ANY('$ids')")
	check "after the restart: the 4 requests are there, pending, never attempted" "4|4" "$out"
	check "the rows stayed deleted" 0 "$(q "SELECT count(*) FROM $TABLE WHERE id = ANY('$ids')")"
	q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	drain 120 || bad "queue not drained within 120 s after the restart"
	verify "$ids" 1
fi

# ---------------------------------------------------------------- d
if want d; then
	scenario "d. SIGTERM (pg_terminate_backend) of the worker during a run" \
		"the launcher starts a new worker within naptime (${NAPTIME_MS} ms) + 2 s, which re-runs the" \
		"interrupted batch once (the worker killed had started a few seconds before)"
	ids='{41,42,43,44}'
	snapshot
	# a young worker: terminate the current one while idle; the DELETE's
	# commit asks the launcher for a new one
	old=$(worker_pids)
	[ -z "$old" ] || q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	                     WHERE backend_type = 'unlearn worker' AND datname = current_database()" >/dev/null
	sleep 0.3
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	if pid=$(wait_running "$ids" 30); then
		sleep 0.3
		info "worker $pid (started $(q "SELECT round(extract(epoch FROM now() - backend_start)::numeric, 1) FROM pg_stat_activity WHERE pid = $pid") s ago) running: pg_terminate_backend"
		q "SELECT pg_terminate_backend($pid)" >/dev/null
		t0=$(date +%s.%N)
		limit=$(awk -v n="$NAPTIME_MS" 'BEGIN { printf "%.1f", n / 1000 + 2 }')
		new=
		while awk -v a="$t0" -v b="$(date +%s.%N)" -v l="$limit" 'BEGIN { exit !(b - a < l) }'; do
			new=$(worker_pids)
			if [ -n "$new" ] && [ "$new" != "$pid" ]; then break; fi
			new=
			sleep 0.1
		done
		if [ -n "$new" ]; then
			ok "a new worker ($new) started $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the SIGTERM"
		else
			bad "no worker restarted within $limit s of the SIGTERM (requests left: $(q "SELECT string_agg(state || ':' || count, ',') FROM (SELECT state, count(*) FROM unlearn.requests WHERE model = '$MODEL' AND state <> 'done' GROUP BY state) s"))"
			# wake it the way a commit does, so that the checks below still mean something
			ids='{41,42,43,44,45}'
			q "DELETE FROM $TABLE WHERE id = 45" >/dev/null
			info "woke the launcher with another DELETE (id 45)"
		fi
		drain 120 || bad "queue not drained within 120 s"
		verify "$ids" 1
	else
		bad "no request of $ids became running within 30 s"
	fi
fi

# ---------------------------------------------------------------- e
if want e; then
	scenario "e. SIGHUP: ALTER SYSTEM SET unlearn.naptime / unlearn.batch_window, pg_reload_conf()" \
		"SHOW in a new session gives the new values, the worker is not restarted, it applies the" \
		"new batch_window (server-side latency >= 1.5 s) and still unlearns"
	ids='{51}'
	snapshot
	before=$(worker_pids)
	q "ALTER SYSTEM SET unlearn.naptime = '1500ms'" >/dev/null
	q "ALTER SYSTEM SET unlearn.batch_window = '1500ms'" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	check "SHOW unlearn.naptime in a new session" 1500ms "$(q "SHOW unlearn.naptime")"
	check "SHOW unlearn.batch_window in a new session" 1500ms "$(q "SHOW unlearn.batch_window")"
	check "the same worker process after the reload" "$before" "$(worker_pids)"
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	drain 60 || bad "queue not drained within 60 s"
	lat=$(q "SELECT round(extract(epoch FROM done_at - enqueued_at)::numeric, 2) FROM unlearn.requests
	          WHERE model = '$MODEL' AND id = 51")
	if awk -v l="${lat:-0}" 'BEGIN { exit !(l >= 1.5) }'; then ok "the worker waited the new batch_window (latency $lat s)"
	else bad "latency $lat s < 1.5 s: the worker did not apply the reloaded unlearn.batch_window"; fi
	verify "$ids" 1
	q "ALTER SYSTEM RESET unlearn.naptime" >/dev/null
	q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
fi

# ---------------------------------------------------------------- f
if want f; then
	scenario "f. SIGTERM of the launcher while the worker runs a batch (run longer than the launcher's 5 s restart)" \
		"the restarted launcher does not start a second worker for the database; the batch" \
		"in progress is done once (not reset and re-run, not marked skipped)"
	ids='{61,62,63,64}'
	q "SELECT unlearn_auto('$MODEL', true, '$VERY_SLOW_OPTS')" >/dev/null
	snapshot
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	if pid=$(wait_running "$ids" 30); then
		launcher=$(q "SELECT pid FROM pg_stat_activity WHERE backend_type = 'unlearn launcher'")
		info "worker $pid running; pg_terminate_backend(launcher $launcher)"
		q "SELECT pg_terminate_backend($launcher)" >/dev/null
		max_workers=0
		for _ in $(seq 1 80); do	# ~8 s: the launcher comes back after 5 s
			w=$(worker_pids)
			c=$(wc -w <<<"$w")
			[ "$c" -gt "$max_workers" ] && max_workers=$c && seen=$w
			sleep 0.1
		done
		check "workers for the database at once, over 8 s after the launcher's restart" 1 "$max_workers"
		[ "$max_workers" -le 1 ] || info "worker pids seen together: $seen"
		drain 120 || bad "queue not drained within 120 s"
		check "the batch in progress was not claimed again (attempts)" 1 \
			"$(q "SELECT string_agg(DISTINCT attempts::text, ',') FROM unlearn.requests WHERE model = '$MODEL' AND id = ANY('$ids')")"
		verify "$ids" 1
		q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'unlearn worker' AND pid <> $pid" >/dev/null || true
	else
		bad "no request of $ids became running within 30 s"
	fi
	q "SELECT unlearn_auto('$MODEL', true, '$SLOW_OPTS')" >/dev/null
fi

# ---------------------------------------------------------------- g
if want g; then
	scenario "g. 70 databases created and dropped (what a role with CREATEDB can do)" \
		"the launcher forgets them: a database made afterwards still gets its worker"
	printf '%s\n' "SELECT format('CREATE DATABASE crash_g%s', g) FROM generate_series(1, 70) g" '\gexec' |
		upsql -q >/dev/null
	sleep $((NAPTIME_MS * 3 / 1000 + 1))	# the launcher has listed them
	printf '%s\n' "SELECT format('DROP DATABASE crash_g%s WITH (FORCE)', g) FROM generate_series(1, 70) g" '\gexec' |
		upsql -q >/dev/null
	sleep $((NAPTIME_MS * 2 / 1000 + 1))	# and seen them gone
	q "CREATE DATABASE crash_g_new" >/dev/null
	small_model crash_g_new g gm 200
	upsql -d crash_g_new -q -c "DELETE FROM g WHERE id IN (1, 2)" >/dev/null
	check "the new database's worker unlearned its DELETE (unlearn_wait)" t \
		"$(upsql -d crash_g_new -At -q -c "SELECT unlearn_wait('gm', '30 s')")"
	q "DROP DATABASE crash_g_new WITH (FORCE)" >/dev/null
fi

# ---------------------------------------------------------------- h
# replay_cached of the auto-unlearn version that did request id $1
cached_for() {
	q "SELECT v.metrics->>'replay_cached' FROM unlearn.versions v JOIN unlearn.requests r
	     ON r.model = v.model AND r.version = v.version WHERE v.model = '$MODEL' AND r.id = $1"
}
if want h; then
	scenario "h. kill -9 of the warm worker in a run that took its cached samples" \
		"two runs: the second takes the samples the first kept (replay_cached); the killed warm run" \
		"is done once by the restarted worker, which reads its samples cold and keeps them again"
	for id in 71 72; do
		q "DELETE FROM $TABLE WHERE id = $id" >/dev/null
		drain 120 || bad "queue not drained within 120 s"
	done
	check "the first run read cold or warm, the second took the cached samples (replay_cached of 72)" \
		true "$(cached_for 72)"
	ids='{73,74}'
	snapshot
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	if pid=$(wait_running "$ids" 30); then
		kill_in_run "$pid" "warm run of $ids in worker $pid"
		drain 120 || bad "queue not drained within 120 s after the crash"
		check "the killed run was claimed again (attempts)" "2" \
			"$(q "SELECT string_agg(DISTINCT attempts::text, ',') FROM unlearn.requests WHERE model = '$MODEL' AND id = ANY('$ids')")"
		verify "$ids" 1
		check "the restarted worker read its samples from the table (replay_cached of 73)" false "$(cached_for 73)"
		q "DELETE FROM $TABLE WHERE id = 75" >/dev/null
		drain 120 || bad "queue not drained within 120 s"
		check "and took them from its cache in the next run (replay_cached of 75)" true "$(cached_for 75)"
	else
		bad "no request of $ids became running within 30 s"
	fi
fi

# ---------------------------------------------------------------- i
if want i; then
	scenario "i. ALTER DATABASE ... SET unlearn.max_accuracy_drop = 100 by the database's owner (not a superuser)" \
		"its sessions take the value; the worker refuses it (WARNING) and keeps the server's guard"
	q "CREATE ROLE crash_dbo LOGIN" >/dev/null
	q "CREATE DATABASE crash_i OWNER crash_dbo" >/dev/null
	upsql -d crash_i -U crash_dbo -At -q -c "ALTER DATABASE crash_i SET unlearn.max_accuracy_drop = 100" >/dev/null
	check "a session of the database takes the owner's value" 100 \
		"$(upsql -d crash_i -U crash_dbo -At -q -c "SHOW unlearn.max_accuracy_drop")"
	snapshot
	small_model crash_i i im 300
	upsql -d crash_i -q -c "DELETE FROM i WHERE id IN (1, 2)" >/dev/null
	check "the worker unlearned the DELETE (unlearn_wait)" t \
		"$(upsql -d crash_i -At -q -c "SELECT unlearn_wait('im', '60 s')")"
	# the guard on: the run read a held-out sample, or the guard refused it and retrained instead
	held=$(upsql -d crash_i -At -q -c "SELECT coalesce(metrics->>'held_out_rows', '0') FROM unlearn.versions
	                                   WHERE model = 'im' ORDER BY version DESC LIMIT 1")
	if [ "${held:-0}" -gt 0 ] || log_since | grep -q 'unlearning would lower the accuracy of model "im"'; then
		ok "the worker's run kept the accuracy guard (held-out rows $held, or the guard's fallback logged)"
	else bad "the worker's run had no accuracy guard: no held-out rows, no fallback"; fi
	if log_since | grep -q 'WARNING:  invalid value for parameter "unlearn.max_accuracy_drop": 100'; then
		ok "the worker logged that it refused the database's value"
	else bad "no WARNING about unlearn.max_accuracy_drop from the worker in the server log"; fi
	q "DROP DATABASE crash_i WITH (FORCE)" >/dev/null
	q "DROP ROLE crash_dbo" >/dev/null
fi

# ---------------------------------------------------------------- j
if want j; then
	scenario "j. ALTER DATABASE ... SET default_transaction_read_only = on, statement_timeout = 1 by the database's owner" \
		"its sessions take them; the worker overrides them, stays up and unlearns a DELETE"
	q "CREATE ROLE crash_dbo LOGIN" >/dev/null
	q "CREATE DATABASE crash_j OWNER crash_dbo" >/dev/null
	small_model crash_j j jm 300
	upsql -d crash_j -U crash_dbo -At -q -c "ALTER DATABASE crash_j SET default_transaction_read_only = on" \
		-c "ALTER DATABASE crash_j SET statement_timeout = 1" >/dev/null
	# read with the client's statement_timeout = 0 (a 1 ms timeout cancels even this query
	# under the sanitizers); the session's default stays the database's (reset_val is the
	# client's value, so the catalog shows the database's timeout)
	check "a session of the database takes the owner's read-only value; the catalog holds both" \
		"on|{default_transaction_read_only=on,statement_timeout=1}" \
		"$(PGOPTIONS="-c statement_timeout=0" upsql -d crash_j -U crash_dbo -At -q -c "SELECT
		     current_setting('default_transaction_read_only') || '|' ||
		     (SELECT array_agg(c ORDER BY c)::text FROM pg_db_role_setting s, unnest(s.setconfig) c
		       WHERE s.setdatabase = (SELECT oid FROM pg_database WHERE datname = 'crash_j') AND s.setrole = 0)")"
	snapshot
	# the database's worker started before the settings: a new one reads them at connection
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	   WHERE datname = 'crash_j' AND backend_type = 'unlearn worker'" >/dev/null
	sleep $(( NAPTIME_MS / 1000 + 2 ))
	PGOPTIONS="-c default_transaction_read_only=off -c statement_timeout=0" \
		upsql -d crash_j -q -c "DELETE FROM j WHERE id IN (1, 2)" >/dev/null
	check "the worker unlearned the DELETE (unlearn_wait)" t \
		"$(PGOPTIONS="-c statement_timeout=0" upsql -d crash_j -At -q -c "SELECT unlearn_wait('jm', '60 s')")"
	check "the requests are done" "done:2" \
		"$(PGOPTIONS="-c statement_timeout=0" upsql -d crash_j -At -q -c "SELECT string_agg(state || ':' || n, ',')
		   FROM (SELECT state, count(*) AS n FROM unlearn.requests WHERE model = 'jm' GROUP BY state) s")"
	check "no worker exited on a read-only transaction or a statement timeout" 0 \
		"$(log_since | grep -c -E 'read-only transaction|statement timeout' || true)"
	q "DROP DATABASE crash_j WITH (FORCE)" >/dev/null
	q "DROP ROLE crash_dbo" >/dev/null
fi

# ---------------------------------------------------------------- k
# kq SQL: one value from database crash_k.
kq() { upsql -d crash_k -At -q -c "$1"; }
# wait_consolidated VERSION SECONDS: waits until km's current version is newer than VERSION and exact.
wait_consolidated() {
	local deadline=$(($(date +%s) + $2))
	until [ "$(upsql -d crash_k -At -q -c "SELECT v.guarantee FROM unlearn.models m JOIN unlearn.versions v
	             ON v.model = m.name AND v.version = m.current_version
	           WHERE m.name = 'km' AND m.current_version > $1" 2>/dev/null)" = exact ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
		sleep 0.1
	done
}
if want k; then
	scenario "k. consolidation once a model's deletes pause (unlearn.consolidate_idle = 2 s)" \
		"an approximate version is retrained exactly after 2 s without requests; its rows stay in the ledger" \
		"with their own version; a kill -9 in the consolidation's retrain leaves no version, the restarted" \
		"worker consolidates once"
	q "ALTER SYSTEM SET unlearn.consolidate_idle = 2" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	q "CREATE DATABASE crash_k" >/dev/null
	upsql -d crash_k -At -q -c "CREATE EXTENSION unlearn" \
		-c "CREATE TABLE k AS SELECT i::bigint AS id,
		      ARRAY(SELECT (CASE WHEN d % 3 = i % 3 THEN 2.0 ELSE 0.0 END
		                    + 1.5 * (('x' || substr(md5(i || ':' || d), 1, 8))::bit(32)::int / 2147483648.0))::real
		              FROM generate_series(0, 7) d ORDER BY d) AS features, i % 3 AS label
		      FROM generate_series(1, 20000) i" \
		-c "ALTER TABLE k ADD PRIMARY KEY (id)" >/dev/null
	info "km trained in $(kq "SELECT round(seconds::numeric, 2) FROM unlearn_train('km', 'k', 'id', 'features', 'label',
	      hidden => '{256,256}', epochs => 12, options => '{\"seed\": 1, \"batch_size\": 32}')") s"
	log0=$(wc -l <"$UNLEARN_SERVER_LOG")
	kq "DELETE FROM k WHERE id IN (1, 2)" >/dev/null
	check "the worker unlearned the DELETE (unlearn_wait)" t "$(kq "SELECT unlearn_wait('km', '60 s')")"
	check "version 2 is the approximate run's" "2|approximate|auto-unlearn" \
		"$(kq "SELECT version, guarantee, reason FROM unlearn.versions WHERE model = 'km' AND version = 2")"
	if wait_consolidated 2 60; then
		check "version 3: retrained exactly from version 2 (parent|reason|guarantee|forgot)" \
			"3|2|exact-consolidate|exact|0" \
			"$(kq "SELECT version, parent, reason, guarantee, cardinality(forgotten_ids) FROM unlearn.versions
			       WHERE model = 'km' AND version = (SELECT current_version FROM unlearn.models WHERE name = 'km')")"
		check "its manifest: every row of version 2's, so not rows 1 and 2" "t|t" \
			"$(kq "SELECT (SELECT ids FROM unlearn.manifests WHERE model = 'km' AND version = 3)
			             = (SELECT ids FROM unlearn.manifests WHERE model = 'km' AND version = 2),
			             NOT (SELECT ids FROM unlearn.manifests WHERE model = 'km' AND version = 3) && '{1,2}'")"
		check "the ledger keeps rows 1 and 2 with the version that forgot them" "1:2,2:2" \
			"$(kq "SELECT string_agg(id || ':' || version, ',' ORDER BY id) FROM unlearn.forgotten WHERE model = 'km'")"
		check "unlearn_confirm_forgotten, unlearn_verify_ledger" "t|0" \
			"$(kq "SELECT unlearn_confirm_forgotten('km'), (SELECT count(*) FROM unlearn_verify_ledger('km') WHERE NOT valid)")"
		if log_since | grep -q 'unlearn worker: consolidated model "km": version 3 retrained exactly from version 2'; then
			ok "the worker logged the consolidation"
		else bad "no 'consolidated model \"km\"' line in the server log"; fi
	else
		bad "no exact version of km within 60 s after the run"
	fi
	# the kill: wait for the consolidation's retrain, kill -9 the worker in it
	kq "DELETE FROM k WHERE id = 3" >/dev/null
	check "the next DELETE is unlearned approximately from the exact version (version|parent|guarantee)" \
		"4|3|approximate" \
		"$(kq "SELECT unlearn_wait('km', '60 s') AND true" >/dev/null;
		   kq "SELECT version, parent, guarantee FROM unlearn.versions WHERE model = 'km' AND version = 4")"
	deadline=$(($(date +%s) + 30)) pid=""
	while [ -z "$pid" ] && [ "$(date +%s)" -lt "$deadline" ]; do
		pid=$(upsql -d crash_k -At -q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'unlearn worker'
		        AND datname = 'crash_k' AND state = 'active' AND query = 'consolidating a model'" 2>/dev/null || true)
		[ -n "$pid" ] || sleep 0.05
	done
	if [ -n "$pid" ]; then
		# at once, while it is active: the retrain (12 epochs, about 2 s) must not end first
		kill_in_run "$pid" "consolidation of km in worker $pid" 0
		if wait_log "Failed process was running: consolidating a model" 10; then
			ok "the kill hit the consolidation (the postmaster logged its activity)"
		else bad "no 'Failed process was running: consolidating a model' in the server log"; fi
		# the restarted worker (started by the launcher's pass, or by the next commit that queues a
		# request) consolidates version 4, or version 5 if the DELETE below is unlearned first
		kq "DELETE FROM k WHERE id = 4" >/dev/null
		kq "SELECT unlearn_wait('km', '60 s')" >/dev/null
		if wait_consolidated 4 60 && sleep 3 && wait_consolidated 4 1; then
			check "after the restart: every consolidation's parent approximate and consolidated once, versions gapless" \
				"t|t|t" \
				"$(kq "SELECT bool_and(p.guarantee = 'approximate'), count(DISTINCT c.parent) = count(*),
				              (SELECT max(version) = count(*) FROM unlearn.versions WHERE model = 'km')
				       FROM unlearn.versions c JOIN unlearn.versions p ON p.model = c.model AND p.version = c.parent
				       WHERE c.model = 'km' AND c.reason = 'exact-consolidate'")"
			check "the head is exact" exact \
				"$(kq "SELECT v.guarantee FROM unlearn.models m JOIN unlearn.versions v
				       ON v.model = m.name AND v.version = m.current_version WHERE m.name = 'km'")"
			check "rows 1-4 out of the current manifest; confirm_forgotten" "0|t" \
				"$(kq "SELECT (SELECT count(*) FROM unlearn_manifest('km') x WHERE x = ANY('{1,2,3,4}')),
				              unlearn_confirm_forgotten('km')")"
		else
			bad "no consolidation of km within 60 s after the restart"
		fi
	else
		bad "the worker was never seen consolidating km within 30 s"
	fi
	q "ALTER SYSTEM RESET unlearn.consolidate_idle" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	q "DROP DATABASE crash_k WITH (FORCE)" >/dev/null
fi

# ---------------------------------------------------------------- l
# throttled_run IDS WRITER: deletes IDS while (WRITER = 1) or without a session
# committing a write every 2 ms (a procedure, stopped by pg_terminate_backend);
# prints "paused samples|samples of the run": the worker's wait event, every
# 0.01 s while a request of IDS is running (crash_l_sample, in one session, so
# a run of a few tenths of a second is sampled often enough).
throttled_run() {
	local ids=$1 writer_pid="" out="0|0"
	if [ "$2" = 1 ]; then
		PGAPPNAME=crash_l_writer upsql -q -c "CALL crash_l_write(120)" >/dev/null 2>&1 &
		writer_pid=$!
		sleep 0.5
	fi
	q "DELETE FROM $TABLE WHERE id = ANY('$ids')" >/dev/null
	if pid=$(wait_running "$ids" 30); then
		out=$(q "SELECT crash_l_sample($pid, '$ids')")
	fi
	if [ -n "$writer_pid" ]; then
		q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'crash_l_writer'" >/dev/null
		wait "$writer_pid" 2>/dev/null || true
	fi
	drain 120 >/dev/null || true
	echo "$out"
}
if want l; then
	scenario "l. the worker's share of the CPU (unlearn.worker_cpu_share)" \
		"at 20 %, while a session commits writes, the worker pauses (wait event PgSleep) in most of its run;" \
		"at 100 % it never pauses; at 20 % on a quiet server it never pauses; each run's invariants hold"
	q "CREATE TABLE crash_l_scratch (x int)" >/dev/null
	q "CREATE PROCEDURE crash_l_write(seconds int) LANGUAGE plpgsql AS \$\$
	   DECLARE t timestamptz := clock_timestamp();
	   BEGIN
	     WHILE clock_timestamp() < t + seconds * interval '1 s' LOOP
	       INSERT INTO crash_l_scratch VALUES (1);
	       COMMIT;
	       PERFORM pg_sleep(0.002);
	     END LOOP;
	   END \$\$" >/dev/null
	# the worker's wait event every 0.01 s while a request of ids runs (at most 120 s):
	# "paused samples|samples"; each sample reads pg_stat_activity afresh
	q "CREATE FUNCTION crash_l_sample(worker int, ids bigint[]) RETURNS text LANGUAGE plpgsql AS \$\$
	   DECLARE paused int := 0; samples int := 0; ev text; t timestamptz := clock_timestamp();
	   BEGIN
	     LOOP
	       PERFORM pg_stat_clear_snapshot();
	       SELECT coalesce(a.wait_event, 'CPU') INTO ev FROM pg_stat_activity a
	        WHERE a.pid = worker AND EXISTS (SELECT 1 FROM unlearn.requests r WHERE r.model = '$MODEL'
	              AND r.id = ANY(ids) AND r.state = 'running');
	       EXIT WHEN ev IS NULL OR clock_timestamp() > t + interval '120 s';
	       samples := samples + 1;
	       paused := paused + (ev = 'PgSleep')::int;
	       PERFORM pg_sleep(0.01);
	     END LOOP;
	     RETURN paused || '|' || samples;
	   END \$\$" >/dev/null
	for case in "20 1 {91,92}" "100 1 {93,94}" "20 0 {95,96}"; do
		read -r share writer ids <<<"$case"
		q "ALTER SYSTEM SET unlearn.worker_cpu_share = $share" >/dev/null
		q "SELECT pg_reload_conf()" >/dev/null
		sleep 1.5	# the worker reads the file at the bottom of its pass (within naptime)
		snapshot
		out=$(throttled_run "$ids" "$writer")
		info "share $share %, writer $writer: paused samples|samples = $out"
		paused=${out%|*} samples=${out#*|}
		if [ "$samples" -lt 5 ]; then
			bad "share $share, writer $writer: the run was sampled $samples times (fewer than 5)"
		elif [ "$share" = 20 ] && [ "$writer" = 1 ]; then
			if [ $((paused * 100)) -ge $((samples * 40)) ]; then ok "share 20, writer: paused in at least 40 % of the samples"
			else bad "share 20, writer: paused in $paused of $samples samples (expected at least 40 %)"; fi
		else
			check "share $share, writer $writer: never paused" 0 "$paused"
		fi
		verify "$ids" 1
	done
	q "ALTER SYSTEM RESET unlearn.worker_cpu_share" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	q "DROP PROCEDURE crash_l_write(int)" >/dev/null
	q "DROP FUNCTION crash_l_sample(int, bigint[])" >/dev/null
	q "DROP TABLE crash_l_scratch" >/dev/null
fi

# ---------------------------------------------------------------- m
# mq ROLE SQL: one value from the crash database as ROLE.
mq() { upsql -U "$1" -At -q -c "$2"; }
# wait_state MODEL ID STATE SECONDS: waits until the model's request for ID is in STATE.
wait_state() {
	local deadline=$(($(date +%s) + $4))
	until [ "$(q_soft "SELECT state FROM unlearn.requests WHERE model = '$1' AND id = $2 ORDER BY request_id DESC LIMIT 1")" = "$3" ]; do
		if [ "$(date +%s)" -ge "$deadline" ]; then return 1; fi
		sleep 0.1
	done
}
# reload_with SETTING=VALUE...: ALTER SYSTEM for each, reload, and give the worker a pass to read them.
reload_with() {
	local kv
	for kv in "$@"; do q "ALTER SYSTEM SET ${kv%%=*} = '${kv#*=}'" >/dev/null; done
	q "SELECT pg_reload_conf()" >/dev/null
	sleep $(( NAPTIME_MS / 1000 + 1 ))
}
if want m; then
	scenario "m. an ordinary owner's models whose auto_options hold the worker (unlearn.max_run_time = 2s, max_attempts = 3, max_batch = 2)" \
		"each run is cancelled at the limit and counted: the requests fail after 3 attempts with the limit in last_error," \
		"and no version; another model's DELETE made during the first run is served after one run of each model ahead" \
		"of it (models take turns: after a run, failed or not, a model goes to the back of the line); then (max_attempts = 1," \
		"no limit) a run interrupted by kill -9 counts its attempt: the request fails after the restart instead of running again"
	q "CREATE ROLE crash_hog LOGIN" >/dev/null
	q "GRANT CREATE ON SCHEMA public TO crash_hog" >/dev/null
	q "GRANT SELECT ON $TABLE TO crash_hog" >/dev/null
	for t in hog hog2 quick; do
		mq crash_hog "CREATE TABLE $t AS SELECT id, features, label FROM $TABLE" >/dev/null
		mq crash_hog "ALTER TABLE $t ADD PRIMARY KEY (id)" >/dev/null
	done
	for t in hog hog2; do
		mq crash_hog "SELECT count(*) FROM unlearn_train('${t}_m', '$t', 'id', 'features', 'label', hidden => '{512,512}',
		              epochs => 5, options => '{\"seed\": 1, \"batch_size\": 32}')" >/dev/null
		# the faithful adversarial method at the options' largest PGD budget: hours of the worker's time
		mq crash_hog "SELECT unlearn_auto('${t}_m', true, '{\"method\": \"adv\", \"pgd_steps\": 100000, \"adv_per_row\": 1000}')" >/dev/null
	done
	mq crash_hog "SELECT count(*) FROM unlearn_train('quick_m', 'quick', 'id', 'features', 'label', hidden => '{16}',
	              epochs => 30, options => '{\"seed\": 1, \"batch_size\": 32}')" >/dev/null
	mq crash_hog "SELECT unlearn_auto('quick_m', true)" >/dev/null
	reload_with unlearn.max_run_time=2s unlearn.max_attempts=3 unlearn.retry_delay=200ms unlearn.max_batch=2
	snapshot
	hog_v0=$(q "SELECT current_version FROM unlearn.models WHERE name = 'hog_m'")
	mq crash_hog "DELETE FROM hog WHERE id <= 4" >/dev/null	# two batches of unlearn.max_batch = 2
	mq crash_hog "DELETE FROM hog2 WHERE id = 1" >/dev/null
	wait_state hog_m 1 running 30 || bad "the hog's request was not claimed within 30 s"
	mq crash_hog "DELETE FROM quick WHERE id = 1" >/dev/null
	info "quick's DELETE committed while the hog's first run holds the worker"
	check "the other model's DELETE is unlearned while the hogs' requests are retried (unlearn_wait 60 s)" t \
		"$(mq crash_hog "SELECT unlearn_wait('quick_m', '60 s')")"
	# turns: hog's first batch (in flight), hog2 (queued before quick), quick; not hog's second
	# batch (due order: 3 runs before quick) nor its retries (request-id order: 6 and more)
	quick_done=$(q "SELECT to_char(done_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') FROM unlearn.requests
	                 WHERE model = 'quick_m' AND id = 1")
	check "cancelled runs of the hogs before quick's request was done" 2 \
		"$(log_since | awk -v t="$quick_done" '/run for model "hog2?_m" failed/ && ($1 " " $2) < t' | wc -l)"
	for id in 1 2 3 4; do wait_state hog_m $id failed 60 || bad "the hog's request $id did not fail within 60 s"; done
	wait_state hog2_m 1 failed 60 || bad "the second hog's request did not fail within 60 s"
	check "the hogs' 5 requests: failed after 3 attempts each, the limit in last_error" "5|5" \
		"$(q "SELECT count(*), count(*) FILTER (WHERE state = 'failed' AND attempts = 3
		         AND last_error = 'the run exceeded unlearn.max_run_time (2000 ms) and was cancelled')
		       FROM unlearn.requests WHERE model IN ('hog_m', 'hog2_m')")"
	check "the worker logged six cancelled runs of hog_m (two batches, three attempts; 57014, the limit)" 6 \
		"$(log_since | grep -c 'run for model "hog_m" failed: the run exceeded unlearn.max_run_time (2000 ms)' || true)"
	check "no version of hog_m from the cancelled runs" "$hog_v0" \
		"$(q "SELECT current_version FROM unlearn.models WHERE name = 'hog_m'")"
	q "ALTER SYSTEM RESET unlearn.max_batch" >/dev/null
	reload_with unlearn.max_run_time=0 unlearn.max_attempts=1
	snapshot
	mq crash_hog "DELETE FROM hog WHERE id = 5" >/dev/null
	if wait_state hog_m 5 running 30; then
		pid=$(worker_pids)
		kill_in_run "$pid" "the hog's run in worker $pid"
		if wait_state hog_m 5 failed 60; then
			check "the interrupted run counted: failed at attempt 1, last_error says why" \
				"failed|1|the run of attempt 1 was interrupted (the worker or the server stopped)" \
				"$(q "SELECT state, attempts, last_error FROM unlearn.requests WHERE model = 'hog_m' AND id = 5")"
		else
			bad "after the restart the interrupted request is $(q "SELECT state || ', attempts ' || attempts FROM unlearn.requests WHERE model = 'hog_m' AND id = 5"), not failed"
		fi
	else
		bad "the hog's second request was not claimed within 30 s"
	fi
	q "ALTER SYSTEM RESET unlearn.max_run_time" >/dev/null
	q "ALTER SYSTEM RESET unlearn.max_attempts" >/dev/null
	q "ALTER SYSTEM RESET unlearn.retry_delay" >/dev/null
	q "SELECT pg_reload_conf()" >/dev/null
	for m in hog_m hog2_m quick_m; do mq crash_hog "SELECT unlearn_drop_model('$m')" >/dev/null; done
	q "DROP OWNED BY crash_hog" >/dev/null
	q "DROP ROLE crash_hog" >/dev/null
fi

echo
q "SELECT 'final status: pending ' || pending || ', running ' || running || ', done ' || done ||
          ', failed ' || failed || ', skipped ' || skipped || ', latency p50 ' || coalesce(latency_p50::text, '-')
     FROM unlearn.status WHERE model = '$MODEL'"
