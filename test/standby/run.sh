#!/usr/bin/env bash
#
# test/standby/run.sh: predictions on a streaming hot standby.
# Needs the extension installed (make install).
#
# Two throwaway servers on this machine, both with
# shared_preload_libraries = 'unlearn':
#   primary  /tmp/unlearn-standby-primary (test/lib_server.sh), port 55880
#   standby  /tmp/unlearn-standby-replica, port 55881, made by
#            pg_basebackup -R -X stream from the primary over the primary's
#            unix socket, as the postgres user; it streams the primary's WAL
#            and serves read-only queries (hot_standby).
# Database stby on the primary: CREATE EXTENSION unlearn and the table pts
# (id bigint primary key, features real[], label int; 300 rows of separable
# data, 3 classes) before the base backup; the model m is trained after it,
# so it reaches the standby by replay.  A table held keeps the features of
# the rows deleted later (7, 8, 9).
#
# Checks:
#   1. The standby is in recovery and has the library loaded, but runs no
#      unlearn launcher or worker (the primary, as a control, runs its
#      launcher); the launcher is a BgWorkerStart_RecoveryFinished worker.
#   2. After replay: the standby has m at the primary's version; its
#      predictions (unlearn_predict, unlearn_predict_proba) over every row
#      are the primary's (md5); unlearn_evaluate and unlearn_verify agree.
#   3. Replay paused on the standby (pg_wal_replay_pause), DELETE of
#      7, 8, 9 on the primary, the worker's new version there
#      (unlearn_wait): the standby still answers with the old version, and
#      these answers differ from the primary's (the comparison of step 4
#      would fail here).  One standby session (a psql coprocess) predicts
#      the held rows before and after, so its backend's model cache has the
#      old version when the new one arrives.
#   4. Replay resumed, waited for (pg_last_wal_replay_lsn past the
#      primary's LSN): the same session now predicts with the new version
#      (the held rows' predictions changed); current_version, the
#      predictions' md5, unlearn_confirm_forgotten, unlearn_manifest and
#      unlearn_verify_ledger agree with the primary.
#   5. The standby's log: no ERROR, FATAL or PANIC line, no line of an
#      unlearn launcher or worker (the primary's log, as a control, has
#      the worker's line for the new version).
#   6. Writes on the standby fail cleanly (25006, read-only transaction):
#      unlearn_train, unlearn_rows, DELETE on the training table; the
#      server keeps serving.
#   7. Promotion (pg_promote): the launcher starts on the promoted server;
#      a DELETE there is captured and unlearned by its worker (a new
#      version, the row out of the manifest, unlearn_confirm_forgotten);
#      its log has no unlearn ERROR or FATAL line since step 6.
#
# Prints "N passed, M failed" last; exits non-zero if anything failed.
#
# Environment:
#   STANDBY_PRIMARY_PORT=N  the primary's port (default 55880; must be free)
#   STANDBY_PORT=N          the standby's port (default 55881; must be free)
#   STANDBY_TIMEOUT=S       how long each poll waits (default 30 s)
#   UNLEARN_KEEP_DATA=1     keep both data directories
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib_server.sh
. "$root/test/lib_server.sh"
# shellcheck source=SCRIPTDIR/../lib_check.sh
. "$root/test/lib_check.sh"

DB=stby
PPORT=${STANDBY_PRIMARY_PORT:-55880}
SPORT=${STANDBY_PORT:-55881}
TIMEOUT=${STANDBY_TIMEOUT:-30}
SDIR=${UNLEARN_SERVER_ROOT:-/tmp}/unlearn-standby-replica
SDATA=$SDIR/data
SLOG=$SDIR/server.log
HELD="7, 8, 9"

check_start standby
standby_made=0
# the coprocess's pid, kept apart: bash unsets SBS_PID once it exits
sbs_proc=

# pg_ctl (and pg_basebackup) as the clusters' owner, from /
as_owner() { _unlearn_as_owner "$@"; }

stop_standby() {
	[ "$standby_made" = 1 ] || return 0
	_unlearn_stop_dir "$SDATA" "stopping the standby" || return 1
	standby_made=0
}

# before the primary stops: the session coprocess, then the standby
check_cleanup() {
	if [ -n "$sbs_proc" ] && kill -0 "$sbs_proc" 2>/dev/null; then kill "$sbs_proc" 2>/dev/null || true; fi
	if [ "$failed" -gt 0 ] && [ -r "$SLOG" ]; then
		echo "---- last 40 lines of $SLOG ----" >&2
		tail -n 40 "$SLOG" >&2
	fi
	stop_standby || true
}
check_after_stop() {
	if [ "${UNLEARN_KEEP_DATA:-0}" != 1 ] && [ "$standby_made" = 0 ]; then rm -rf "$SDATA"; fi
}

# p SQL / s SQL: values from database stby on the primary / the standby.
p() { upsql -d "$DB" -At -q -c "$1"; }
s() { upsql -h "$SDIR" -p "$SPORT" -d "$DB" -At -q -c "$1"; }

# poll_s SQL EXPECTED: repeat SQL on the standby every 0.1 s until it prints
# EXPECTED or TIMEOUT seconds pass; prints the last value either way.
poll_s() {
	local sql=$1 want=$2 got deadline
	deadline=$(($(date +%s) + TIMEOUT))
	while :; do
		got=$(s "$sql" 2>&1) || true
		if [ "$got" = "$want" ] || [ "$(date +%s)" -ge "$deadline" ]; then break; fi
		sleep 0.1
	done
	printf '%s' "$got"
}

# Waits until the standby has replayed the primary's WAL up to now: t or f.
wait_replay() {
	local lsn
	lsn=$(p "SELECT pg_current_wal_insert_lsn()")	# not _lsn (the write position): commits are asynchronous (lib_server)
	poll_s "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn" t
}

# sbs SQL: one line from the standby session that stays open (the coprocess).
sbs() {
	local line
	printf '%s;\n' "$(printf '%s' "$1" | tr '\n' ' ')" >&"${SBS[1]}"
	IFS= read -r -t "$TIMEOUT" line <&"${SBS[0]}" || line="(no answer)"
	printf '%s' "$line"
}

log_size() { stat -c %s "$1"; }
log_since() { tail -c +"$(($2 + 1))" "$1"; }

# What both servers are compared on: every row's prediction and probabilities.
PRED_MD5="SELECT md5(string_agg(id || ':' || unlearn_predict('m', features)::text || ':' ||
                 array_to_string(unlearn_predict_proba('m', features), ',') , ';' ORDER BY id)) FROM pts"
# The held rows: how many are predicted as their label, and the predictions.
HELD_PRED="SELECT sum((unlearn_predict('m', features)::text = label::text)::int) || '|' ||
                  string_agg(unlearn_predict('m', features)::text, ',' ORDER BY id) FROM held"
VERSION="SELECT current_version FROM unlearn.models WHERE name = 'm'"

# ---------------------------------------------------------------- setup
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ ! -f "$pkglibdir/unlearn.so" ]; then
	echo "standby: $pkglibdir/unlearn.so is not installed: run 'make install'" >&2
	exit 1
fi
for port in "$PPORT" "$SPORT"; do
	if _unlearn_port_busy "$port" || [[ " $(_unlearn_ports_of_ours | tr '\n' ' ') " == *" $port "* ]]; then
		echo "standby: port $port is taken: set STANDBY_PRIMARY_PORT / STANDBY_PORT" >&2
		exit 1
	fi
done
if [ -d "$SDIR" ]; then
	_unlearn_stop_dir "$SDATA" "stopping a standby left running in $SDATA" || exit 1
	rm -rf "$SDIR"
fi
trap check_finish EXIT
UNLEARN_PORT=$PPORT unlearn_server_start standby-primary \
	"wal_level = replica" "max_wal_senders = 5" "wal_keep_size = 256MB" \
	"unlearn.threads = 1" "unlearn.retry_delay = 10" "unlearn.max_attempts = 3" \
	"unlearn.naptime = 1000" "unlearn.feature_retention = 3600" "unlearn.exact_when_cheaper = off" "unlearn.consolidate_after = 0" "unlearn.consolidate_drop = 0" "unlearn.consolidate_idle = 0" || exit 1
PDIR=$PGHOST
# no statement of the test may hang it (and the servers with it)
export PGOPTIONS="-c statement_timeout=120s"

echo "==== primary: database $DB, extension, pts (300 rows); standby: pg_basebackup -R ===="
upsql -d postgres -q -c "CREATE DATABASE $DB"
p "CREATE EXTENSION unlearn;
   CREATE TABLE pts (id bigint PRIMARY KEY, features real[], label int);
   INSERT INTO pts
   SELECT i, ARRAY[(i % 3) * 2.0 + 0.5 * sin(i * 12.9898), (i % 2) * 2.0 + 0.5 * cos(i * 78.233),
                   0.3 * sin(i * 1.3)]::real[], i % 3
     FROM generate_series(1, 300) i;
   CREATE TABLE held AS SELECT * FROM pts WHERE id IN ($HELD)" >/dev/null
mkdir -p "$SDIR"
chmod 755 "$SDIR"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$SDIR"; fi
if ! as_owner "$UNLEARN_PG_BINDIR/pg_basebackup" -h "$PDIR" -p "$PPORT" -U "$PGUSER" \
	-D "$SDATA" -R -X stream -c fast >"$SDIR/basebackup.log" 2>&1; then
	cat "$SDIR/basebackup.log" >&2
	bad "pg_basebackup -R from the primary"
	exit 1
fi
ok "pg_basebackup -R -X stream from the primary's unix socket"
{
	echo
	echo "# ---- the standby ----"
	echo "port = $SPORT"
	echo "unix_socket_directories = '$SDIR'"
	echo "hot_standby = on"
} >>"$SDATA/postgresql.conf"
: >"$SLOG"
if [ "$(id -u)" -eq 0 ]; then chown postgres:postgres "$SLOG"; fi
standby_made=1
if ! as_owner "$UNLEARN_PG_BINDIR/pg_ctl" -D "$SDATA" -l "$SLOG" -w -t 120 start >"$SDIR/pg_ctl.log" 2>&1; then
	cat "$SDIR/pg_ctl.log" >&2
	bad "the standby starts"
	exit 1
fi
ok "the standby starts (port $SPORT)"

# ---------------------------------------------------------------- 1. nothing runs
echo
echo "==== 1. the standby: in recovery, library loaded, no launcher or worker ===="
check "the standby is in recovery, streaming from the primary" "true|streaming" \
	"$(poll_s "SELECT pg_is_in_recovery() || '|' || (SELECT status FROM pg_stat_wal_receiver)" "true|streaming")"
check "the standby preloads unlearn (shared_preload_libraries|unlearn.naptime)" "unlearn|1s" \
	"$(s "SELECT current_setting('shared_preload_libraries') || '|' || current_setting('unlearn.naptime')")"
check "control: the primary runs its unlearn launcher" "1" \
	"$(p "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'unlearn launcher'")"
check "the standby runs no unlearn launcher or worker" "0" \
	"$(s "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'unlearn%'")"

# ---------------------------------------------------------------- 2. training replays
echo
echo "==== 2. unlearn_train on the primary; predictions on the standby ===="
lsn0=$(p "SELECT pg_current_wal_lsn()")
info "trained m on the primary: rows|train accuracy = $(p "SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train('m', 'pts', 'id', 'features', 'label', hidden => '{16}', epochs => 40,
                         options => '{\"lr\": 0.01, \"batch_size\": 32, \"seed\": 1}')")"
info "WAL of the training: $(p "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0'))")"
t0=$(date +%s%N)
check "the standby replays up to the primary's LSN" t "$(wait_replay)"
info "replayed in $((($(date +%s%N) - t0) / 1000000)) ms (measured by polling every 0.1 s)"
v1=$(p "$VERSION")
check "the standby has m at the primary's version" "$v1" "$(s "$VERSION")"
md5_p1=$(p "$PRED_MD5")
check "the standby's predictions and probabilities over every row are the primary's (md5)" "$md5_p1" "$(s "$PRED_MD5")"
check "unlearn_evaluate agrees" "$(p "SELECT unlearn_evaluate('m', 'pts')")" \
	"$(s "SELECT unlearn_evaluate('m', 'pts')")"
check "unlearn_verify agrees" "$(p "SELECT unlearn_verify('m')")" "$(s "SELECT unlearn_verify('m')")"
held_before=$(p "$HELD_PRED")
check "the held rows (7, 8, 9) are predicted as their labels by version $v1" "3" "${held_before%%|*}"

# One standby session from here to step 4: its backend caches version v1.
coproc SBS { exec "$UNLEARN_PG_BINDIR/psql" -X -At -q -v VERBOSITY=terse \
	-h "$SDIR" -p "$SPORT" -d "$DB" 2>&1; }
sbs_proc=$SBS_PID
sbs_pid=$(sbs "SELECT pg_backend_pid()")
check "a standby session predicts the held rows as the primary does" "$held_before" "$(sbs "$HELD_PRED")"

# ---------------------------------------------------------------- 3. replay paused
echo
echo "==== 3. replay paused on the standby; DELETE of $HELD on the primary, the worker's new version ===="
s "SELECT pg_wal_replay_pause()" >/dev/null
check "replay paused" "paused" "$(poll_s "SELECT pg_get_wal_replay_pause_state()" paused)"
lsn0=$(p "SELECT pg_current_wal_lsn()")
p "DELETE FROM pts WHERE id IN ($HELD)" >/dev/null
check "unlearn_wait(m) on the primary" t "$(p "SELECT unlearn_wait('m', '60 s')")"
info "WAL of the DELETE and the new version: $(p "SELECT pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), '$lsn0'))")"
v2=$(p "$VERSION")
check "the primary's worker made a new auto-unlearn version forgetting $HELD" "$((v1 + 1))|auto-unlearn|{7,8,9}" \
	"$(p "SELECT v.version || '|' || v.reason || '|' || v.forgotten_ids::text FROM unlearn.models m
	      JOIN unlearn.versions v ON v.model = m.name AND v.version = m.current_version WHERE m.name = 'm'")"
held_after=$(p "$HELD_PRED")
check "the primary predicts none of the held rows as its label" "0" "${held_after%%|*}"
md5_p2=$(p "$PRED_MD5")
lsn_paused=$(s "SELECT pg_last_wal_replay_lsn()")
check "the standby (paused) still has version $v1" "$v1" "$(s "$VERSION")"
check "the standby session still predicts with version $v1 (the held rows as their labels)" "$held_before" \
	"$(sbs "$HELD_PRED")"
check "before replay the standby's answers differ from the primary's (the checks below can fail)" "differ" \
	"$([ "$(s "$PRED_MD5")" != "$md5_p2" ] && [ "$(sbs "$HELD_PRED")" != "$held_after" ] && echo differ || echo same)"
check "replay stayed paused during the checks" "$lsn_paused" "$(s "SELECT pg_last_wal_replay_lsn()")"

# ---------------------------------------------------------------- 4. replay resumed
echo
echo "==== 4. replay resumed: the standby predicts with version $v2 ===="
s "SELECT pg_wal_replay_resume()" >/dev/null
t0=$(date +%s%N)
check "the standby replays up to the primary's LSN" t "$(wait_replay)"
info "replayed in $((($(date +%s%N) - t0) / 1000000)) ms after the resume"
check "current_version equal on both" "$v2" "$(s "$VERSION")"
check "the same standby session (same backend) predicts with version $v2: the held rows' predictions changed" \
	"$sbs_pid|$held_after" "$(sbs "SELECT pg_backend_pid()")|$(sbs "$HELD_PRED")"
check "the standby's predictions and probabilities over every row are the primary's (md5)" "$md5_p2" "$(s "$PRED_MD5")"
check "unlearn_confirm_forgotten(m) on both; the standby's ledger: 3 rows, all misclassified (unlearn_forgotten)" "t|t|3|3" \
	"$(p "SELECT unlearn_confirm_forgotten('m')" 2>/dev/null)|$(s "SELECT unlearn_confirm_forgotten('m')" 2>/dev/null)|$(
		s "SELECT count(*) || '|' || count(*) FILTER (WHERE forgotten) FROM unlearn_forgotten('m')")"
check "$HELD out of the current manifest on the standby" "0|297" \
	"$(s "SELECT count(*) FILTER (WHERE x IN ($HELD)) || '|' || count(*) FROM unlearn_manifest('m') x")"
check "unlearn_verify_ledger(m) on the standby: every version valid" "$v2|$v2" \
	"$(s "SELECT count(*) || '|' || count(*) FILTER (WHERE valid) FROM unlearn_verify_ledger('m')")"
check "unlearn.status on the standby: 3 done, nothing open" "0|0|3|0" \
	"$(s "SELECT pending || '|' || running || '|' || done || '|' || failed FROM unlearn.status WHERE model = 'm'")"
eval "exec ${SBS[1]}>&-"
wait "$sbs_proc" 2>/dev/null || true
sbs_proc=

# ---------------------------------------------------------------- 5. logs
echo
echo "==== 5. the standby's log ===="
check "the standby still runs no unlearn launcher or worker" "0" \
	"$(s "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'unlearn%'")"
check "no ERROR, FATAL or PANIC line in the standby's log" "0" "$(grep -cE '(ERROR|FATAL|PANIC):' "$SLOG" || true)"
grep -E '(ERROR|FATAL|PANIC):' "$SLOG" | head -5 | sed 's/^/        log: /' || true
check "no line of an unlearn launcher or worker in the standby's log" "0" \
	"$(grep -ciE 'unlearn (launcher|worker)' "$SLOG" || true)"
check "control: the primary's log has its worker's line for version $v2" "1" \
	"$(grep -c "unlearn worker: model \"m\" version $v2 forgot 3 rows" "$UNLEARN_SERVER_LOG" || true)"

# ---------------------------------------------------------------- 6. writes refused
echo
echo "==== 6. writes on the standby fail cleanly (read-only transaction, 25006) ===="
slog0=$(log_size "$SLOG")
for sql in "SELECT unlearn_train('m2', 'pts', 'id', 'features', 'label')" \
	"SELECT unlearn_rows('m', ARRAY[10::bigint])" \
	"DELETE FROM pts WHERE id = 10"; do
	check "refused: $sql" "25006" \
		"$(upsql -h "$SDIR" -p "$SPORT" -d "$DB" -At -q -v VERBOSITY=sqlstate -c "$sql" 2>&1 | sed -n 's/^ERROR:  *//p')"
done
check "the standby serves on: row 10 still there, the same version" "1|$v2" \
	"$(s "SELECT (SELECT count(*) FROM pts WHERE id = 10) || '|' || ($VERSION)")"

# ---------------------------------------------------------------- 7. promotion
echo
echo "==== 7. pg_promote() on the standby: the worker starts serving ===="
check "pg_promote() waits for the promotion" t "$(s "SELECT pg_promote(true, 60)")"
check "out of recovery" f "$(s "SELECT pg_is_in_recovery()")"
check "the unlearn launcher runs on the promoted server" "1" \
	"$(poll_s "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'unlearn launcher'" 1)"
s "DELETE FROM pts WHERE id = 10" >/dev/null
check "the DELETE is captured and unlearn_wait(m) returns true" "1|t" \
	"$(s "SELECT count(*) FROM unlearn.requests WHERE model = 'm' AND id = 10")|$(s "SELECT unlearn_wait('m', '60 s')")"
check "the promoted server's worker made version $((v2 + 1)), forgetting 10" "$((v2 + 1))|auto-unlearn|{10}|0" \
	"$(s "SELECT v.version || '|' || v.reason || '|' || v.forgotten_ids::text || '|' ||
	             (SELECT count(*) FROM unlearn_manifest('m') x WHERE x = 10)
	      FROM unlearn.models m JOIN unlearn.versions v ON v.model = m.name AND v.version = m.current_version
	      WHERE m.name = 'm'")"
check "unlearn_confirm_forgotten(m) on the promoted server" t "$(s "SELECT unlearn_confirm_forgotten('m')" 2>/dev/null)"
check "its log: the worker's line for version $((v2 + 1))" "1" \
	"$(log_since "$SLOG" "$slog0" | grep -c "unlearn worker: model \"m\" version $((v2 + 1)) forgot 1 rows" || true)"
# (but step 6's refusals, and the wal receiver that promotion ends with FATAL)
check "its log since step 6: no other ERROR, FATAL or PANIC line" "0" \
	"$(log_since "$SLOG" "$slog0" | grep -E '(ERROR|FATAL|PANIC):' |
		grep -v -e 'ERROR:  cannot execute [A-Za-z_ ]* in a read-only transaction$' \
			-e 'FATAL:  terminating walreceiver process due to administrator command$' | grep -c . || true)"
