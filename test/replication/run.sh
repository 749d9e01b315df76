#!/usr/bin/env bash
#
# test/replication/run.sh: real logical replication into a training table.
# Needs the extension installed (make install).
#
# One throwaway server "repl" (/tmp/unlearn-repl, test/lib_server.sh) with
# wal_level = logical, the library preloaded and the settings of
# test/regress.conf (fast retries, naptime 1000).  Database repl_pub (no
# extension): tables pts and ppts (id bigint primary key, features real[],
# label int), 300 and 200 rows of separable data, publication repl_pub for
# both (publishing truncate, the default).  Database repl_sub: the same
# tables, ppts partitioned by range of id into two partitions,
# CREATE EXTENSION unlearn, and subscription repl_sub to repl_pub over the
# server's own unix socket (the logical slot is created on the publisher
# first: CREATE SUBSCRIPTION cannot create a slot in its own cluster).  Once
# the initial copy is done (pg_subscription_rel all 'r'), a model on each
# subscriber table (auto_unlearn on).
#
# Checks, on the subscriber unless said otherwise:
#   1. DELETE of 3 rows of pts on the publisher: the rows leave the
#      subscriber; one forget request per row, requested_by the
#      subscription's owner (the apply worker's role); unlearn_wait drains
#      them; a new auto-unlearn version, the rows out of its manifest,
#      unlearn_confirm_forgotten true.
#   2. UPDATE of a label on the publisher: a relabel request, unlearned.
#   3. The same as 1 for ppts (partitioned on the subscriber only).
#   4. TRUNCATE of pts on the publisher: the TRUNCATE guard (a statement
#      trigger, fired by apply) refuses it, the apply worker logs the error
#      and retries; the subscriber keeps its rows, its model and its queue:
#      no row leaves silently.  Then ALTER PUBLICATION ... SET (publish =
#      'insert, update, delete') and ALTER SUBSCRIPTION ... SKIP (the
#      failing transaction's finish LSN, from the log): a later TRUNCATE is
#      not published, an INSERT after it arrives.
#   Control: the same trigger probe and capture in a plain session with
#   session_replication_role = replica (the simulation sql/08_security
#   runs).
#
# The apply worker fires row triggers only, never statement triggers
# (PostgreSQL: "The logical replication apply process currently only fires
# row triggers, not statement triggers"; TRUNCATE is the exception).  So the
# capture has a row-level trigger too, unlearn_capture_apply (ENABLE ALWAYS,
# acting only inside an apply worker); the probe above shows which triggers
# apply fires, and checks 1-3 that what it removes is queued and unlearned.
#
# Prints "N passed, M failed" last; exits non-zero if anything failed.
#
# Environment:
#   REPL_PORT=N          the server's port (default 55870; must be free)
#   REPL_TIMEOUT=S       how long each poll waits (default 20 s)
#   UNLEARN_KEEP_DATA=1  keep the cluster's data directory
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib_server.sh
. "$root/test/lib_server.sh"
# shellcheck source=SCRIPTDIR/../lib_check.sh
. "$root/test/lib_check.sh"

PUB=repl_pub
SUB=repl_sub
SLOT=repl_slot
PORT=${REPL_PORT:-55870}
TIMEOUT=${REPL_TIMEOUT:-20}

check_start replication
sub_made=0

# before the server stops: the subscription first (it holds a slot and a
# worker in the same cluster), then the databases
check_cleanup() {
	if [ "$sub_made" = 1 ] && [ -n "$UNLEARN_SERVER_DATA" ]; then
		upsql -d "$SUB" -q -c "DROP SUBSCRIPTION IF EXISTS repl_sub" >/dev/null 2>&1 || true
		upsql -d postgres -q -c "DROP DATABASE IF EXISTS $SUB WITH (FORCE)" \
			-c "DROP DATABASE IF EXISTS $PUB WITH (FORCE)" >/dev/null 2>&1 || true
	fi
}

# q DB SQL: values from database DB, unaligned; fails (set -e) on error.
q() { upsql -d "$1" -At -q -c "$2"; }

# poll DB SQL EXPECTED: repeat SQL every 0.1 s until it prints EXPECTED or
# TIMEOUT seconds pass; prints the last value either way.
poll() {
	local db=$1 sql=$2 want=$3 got deadline
	deadline=$(($(date +%s) + TIMEOUT))
	while :; do
		got=$(q "$db" "$sql" 2>&1) || true
		if [ "$got" = "$want" ] || [ "$(date +%s)" -ge "$deadline" ]; then break; fi
		sleep 0.1
	done
	printf '%s' "$got"
}

# Lines of the server log written since offset $1 (bytes).
log_since() { tail -c +"$(($1 + 1))" "$UNLEARN_SERVER_LOG"; }
log_size() { stat -c %s "$UNLEARN_SERVER_LOG"; }

# Separable rows: 3 classes in 3-D (as sql/05_auto.sql), ids $2..$3.
rows_sql() {
	echo "INSERT INTO $1
	SELECT i, ARRAY[(i % 3) * 2.0 + 0.5 * sin(i * 12.9898), (i % 2) * 2.0 + 0.5 * cos(i * 78.233),
	                0.3 * sin(i * 1.3)]::real[], i % 3
	  FROM generate_series($2, $3) i"
}

# ---------------------------------------------------------------- setup
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ ! -f "$pkglibdir/unlearn.so" ]; then
	echo "replication: $pkglibdir/unlearn.so is not installed: run 'make install'" >&2
	exit 1
fi
if _unlearn_port_busy "$PORT" || [[ " $(_unlearn_ports_of_ours | tr '\n' ' ') " == *" $PORT "* ]]; then
	echo "replication: port $PORT is taken: set REPL_PORT" >&2
	exit 1
fi
trap check_finish EXIT
UNLEARN_PORT=$PORT unlearn_server_start repl \
	"wal_level = logical" \
	"max_replication_slots = 10" "max_wal_senders = 10" "max_logical_replication_workers = 4" \
	"wal_retrieve_retry_interval = 200ms" \
	"unlearn.threads = 1" "unlearn.retry_delay = 10" "unlearn.max_attempts = 3" \
	"unlearn.naptime = 1000" "unlearn.feature_retention = 3600" "unlearn.exact_when_cheaper = off" "unlearn.consolidate_after = 0" "unlearn.consolidate_drop = 0" "unlearn.consolidate_idle = 0" || exit 1
OWNER=$PGUSER

echo "==== $PUB: pts (300 rows), ppts (200 rows), publication; $SUB: the same tables (ppts partitioned), subscription ===="
q postgres "CREATE DATABASE $PUB" >/dev/null
q postgres "CREATE DATABASE $SUB" >/dev/null
q "$PUB" "CREATE TABLE pts (id bigint PRIMARY KEY, features real[], label int);
          CREATE TABLE ppts (id bigint PRIMARY KEY, features real[], label int);
          $(rows_sql pts 1 300); $(rows_sql ppts 1 200);
          CREATE TABLE cpts (id bigint PRIMARY KEY, a real, b double precision, c text, label int);
          INSERT INTO cpts SELECT i, (i % 3) * 2 + sin(i), CASE WHEN i % 7 = 0 THEN NULL ELSE cos(i) END,
                                  (ARRAY['x', 'y', 'z'])[1 + i % 3], i % 3 FROM generate_series(1, 200) i;
          CREATE PUBLICATION repl_pub FOR TABLE pts, ppts, cpts" >/dev/null
q "$SUB" "CREATE EXTENSION unlearn;
          CREATE TABLE pts (id bigint PRIMARY KEY, features real[], label int);
          CREATE TABLE ppts (id bigint PRIMARY KEY, features real[], label int) PARTITION BY RANGE (id);
          CREATE TABLE ppts_lo PARTITION OF ppts FOR VALUES FROM (MINVALUE) TO (101);
          CREATE TABLE ppts_hi PARTITION OF ppts FOR VALUES FROM (101) TO (MAXVALUE);
          CREATE TABLE cpts (id bigint PRIMARY KEY, a real, b double precision, c text, label int)" >/dev/null
q "$PUB" "SELECT pg_create_logical_replication_slot('$SLOT', 'pgoutput')" >/dev/null
q "$SUB" "CREATE SUBSCRIPTION repl_sub
            CONNECTION 'host=$PGHOST port=$PGPORT dbname=$PUB user=$OWNER'
            PUBLICATION repl_pub WITH (create_slot = false, slot_name = '$SLOT')" >/dev/null
sub_made=1
check "initial copy done (pg_subscription_rel: 3 tables in state r)" "3" \
	"$(poll "$SUB" "SELECT count(*) FROM pg_subscription_rel WHERE srsubstate = 'r'" 3)"
check "$SUB has the rows (pts|ppts|ppts_lo|ppts_hi)" "300|200|100|100" \
	"$(q "$SUB" "SELECT (SELECT count(*) FROM pts), (SELECT count(*) FROM ppts),
	                    (SELECT count(*) FROM ppts_lo), (SELECT count(*) FROM ppts_hi)")"
check "the apply worker runs" "1" \
	"$(poll "$SUB" "SELECT count(*) FROM pg_stat_subscription WHERE subname = 'repl_sub' AND relid IS NULL AND pid IS NOT NULL" 1)"

info "trained m_pts on $SUB.pts: rows|train accuracy = $(q "$SUB" "SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train('m_pts', 'pts', 'id', 'features', 'label', hidden => '{16}', epochs => 40,
                         options => '{\"lr\": 0.01, \"batch_size\": 32, \"seed\": 1}')")"
info "trained m_ppts on $SUB.ppts: rows|train accuracy = $(q "$SUB" "SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train('m_ppts', 'ppts', 'id', 'features', 'label', hidden => '{16}', epochs => 40,
                         options => '{\"lr\": 0.01, \"batch_size\": 32, \"seed\": 2}')")"
info "trained column model m_cpts on $SUB.cpts (a real, b float8 with NULLs, c text): rows|inputs = $(q "$SUB" \
      "SELECT t.rows, m.features FROM unlearn_train(model => 'm_cpts', relation => 'cpts', id_column => 'id',
                         label_column => 'label', hidden => '{16}', epochs => 40,
                         options => '{\"lr\": 0.01, \"batch_size\": 32, \"seed\": 3}') t
       JOIN unlearn.models m ON m.name = t.model")"
check "capture triggers on pts, ppts and its partitions (row capture on the leaves, ENABLE REPLICA: R), cpts, the statement ones ENABLE ALWAYS (A)" "cpts:RAAA,ppts:AAA,ppts_hi:RAAA,ppts_lo:RAAA,pts:RAAA" \
	"$(q "$SUB" "SELECT string_agg(r, ',' ORDER BY r) FROM (
	               SELECT tgrelid::regclass || ':' || string_agg(tgenabled::text, '' ORDER BY tgname) r
	               FROM pg_trigger WHERE tgname LIKE 'unlearn\_%' GROUP BY tgrelid) s")"
# A probe of our own on the subscriber's pts: which triggers does apply fire?
q "$SUB" "CREATE TABLE probe (level text, op text, n int, role text);
          CREATE FUNCTION probe_row() RETURNS trigger LANGUAGE plpgsql AS
            \$\$BEGIN INSERT INTO public.probe VALUES ('row', TG_OP, 1, current_setting('session_replication_role')); RETURN NULL; END\$\$;
          CREATE FUNCTION probe_stmt() RETURNS trigger LANGUAGE plpgsql AS
            \$\$BEGIN INSERT INTO public.probe SELECT 'statement', TG_OP, count(*), current_setting('session_replication_role') FROM old_rows; RETURN NULL; END\$\$;
          CREATE TRIGGER probe_row AFTER DELETE ON pts FOR EACH ROW EXECUTE FUNCTION probe_row();
          CREATE TRIGGER probe_stmt AFTER DELETE ON pts REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION probe_stmt();
          ALTER TABLE pts ENABLE ALWAYS TRIGGER probe_row, ENABLE ALWAYS TRIGGER probe_stmt" >/dev/null
v_pts=$(q "$SUB" "SELECT current_version FROM unlearn.models WHERE name = 'm_pts'")
v_ppts=$(q "$SUB" "SELECT current_version FROM unlearn.models WHERE name = 'm_ppts'")

# ---------------------------------------------------------------- control
echo
echo "==== control: DELETE on $SUB itself with session_replication_role = replica (the simulation) ===="
q "$SUB" "SET session_replication_role = replica; DELETE FROM pts WHERE id IN (290, 291)" >/dev/null
check "probe: statement trigger fired once for 2 rows, row trigger twice (level:n)" "row:1,row:1,statement:2" \
	"$(q "$SUB" "SELECT string_agg(level || ':' || n, ',' ORDER BY level, n) FROM probe")"
check "2 forget requests queued, requested_by $OWNER" "2|$OWNER" \
	"$(q "$SUB" "SELECT count(*), string_agg(DISTINCT requested_by::text, ',') FROM unlearn.requests
	              WHERE model = 'm_pts' AND id IN (290, 291) AND kind = 'forget'")"
check "unlearn_wait(m_pts) drains them" t "$(q "$SUB" "SELECT unlearn_wait('m_pts', '30 s')")"
v_pts=$(q "$SUB" "SELECT current_version FROM unlearn.models WHERE name = 'm_pts'")
q "$SUB" "TRUNCATE probe" >/dev/null

# ---------------------------------------------------------------- 1. DELETE
echo
echo "==== 1. DELETE FROM pts WHERE id IN (7, 8, 9) on $PUB ===="
q "$PUB" "DELETE FROM pts WHERE id IN (7, 8, 9)" >/dev/null
check "the rows leave $SUB.pts" "0" "$(poll "$SUB" "SELECT count(*) FROM pts WHERE id IN (7, 8, 9)" 0)"
check "probe: apply fired the row trigger for each row (ENABLE ALWAYS, role replica)" "3|replica" \
	"$(q "$SUB" "SELECT count(*), string_agg(DISTINCT role, ',') FROM probe WHERE level = 'row'")"
stmt_fired=$(q "$SUB" "SELECT count(*) FROM probe WHERE level = 'statement'")
info "probe: statement trigger calls under apply: $stmt_fired (PostgreSQL 15's apply fires row triggers only)"
check "3 forget requests queued on $SUB, requested_by the subscription owner $OWNER" "3|$OWNER" \
	"$(q "$SUB" "SELECT count(*), coalesce(string_agg(DISTINCT requested_by::text, ','), '') FROM unlearn.requests
	              WHERE model = 'm_pts' AND id IN (7, 8, 9) AND kind = 'forget'")"
check "unlearn_wait(m_pts) returns true" t "$(q "$SUB" "SELECT unlearn_wait('m_pts', '30 s')")"
check "a new auto-unlearn version of m_pts, forgetting 7, 8, 9" "$((v_pts + 1))|auto-unlearn|{7,8,9}" \
	"$(q "$SUB" "SELECT m.current_version || '|' || v.reason || '|' || v.forgotten_ids::text
	              FROM unlearn.models m JOIN unlearn.versions v ON v.model = m.name AND v.version = m.current_version
	              WHERE m.name = 'm_pts'")"
check "7, 8, 9 out of the current manifest" "0" \
	"$(q "$SUB" "SELECT count(*) FROM unlearn_manifest('m_pts') x WHERE x IN (7, 8, 9)")"
check "7, 8, 9 in the ledger" "3" \
	"$(q "$SUB" "SELECT count(*) FROM unlearn.forgotten WHERE model = 'm_pts' AND id IN (7, 8, 9)")"
check "unlearn_confirm_forgotten(m_pts)" t "$(q "$SUB" "SELECT unlearn_confirm_forgotten('m_pts')" 2>/dev/null)"
v_pts=$(q "$SUB" "SELECT current_version FROM unlearn.models WHERE name = 'm_pts'")

# ---------------------------------------------------------------- 2. UPDATE
echo
echo "==== 2. UPDATE pts SET label = 0 WHERE id = 50 on $PUB (label was 2) ===="
q "$PUB" "UPDATE pts SET label = 0 WHERE id = 50" >/dev/null
check "the new label reaches $SUB" "0" "$(poll "$SUB" "SELECT label FROM pts WHERE id = 50" 0)"
check "a relabel request 2 -> 0 queued on $SUB" "relabel|2|0|$OWNER" \
	"$(q "$SUB" "SELECT coalesce(string_agg(kind || '|' || label || '|' || new_label || '|' || requested_by, ','), '')
	              FROM unlearn.requests WHERE model = 'm_pts' AND id = 50")"
check "unlearn_wait(m_pts) returns true" t "$(q "$SUB" "SELECT unlearn_wait('m_pts', '30 s')")"
check "a new auto-relabel version of m_pts" "$((v_pts + 1))|auto-relabel" \
	"$(q "$SUB" "SELECT m.current_version || '|' || v.reason FROM unlearn.models m
	              JOIN unlearn.versions v ON v.model = m.name AND v.version = m.current_version WHERE m.name = 'm_pts'")"
v_pts=$(q "$SUB" "SELECT current_version FROM unlearn.models WHERE name = 'm_pts'")

# ---------------------------------------------------------------- 3. partitioned
echo
echo "==== 3. DELETE FROM ppts WHERE id IN (20, 21, 150) on $PUB (partitioned on $SUB: 20, 21 in ppts_lo, 150 in ppts_hi) ===="
q "$PUB" "DELETE FROM ppts WHERE id IN (20, 21, 150)" >/dev/null
check "the rows leave $SUB.ppts (ppts_lo|ppts_hi)" "98|99" \
	"$(poll "$SUB" "SELECT (SELECT count(*) FROM ppts_lo) || '|' || (SELECT count(*) FROM ppts_hi)" "98|99")"
check "3 forget requests queued for m_ppts" "3|$OWNER" \
	"$(q "$SUB" "SELECT count(*), coalesce(string_agg(DISTINCT requested_by::text, ','), '') FROM unlearn.requests
	              WHERE model = 'm_ppts' AND id IN (20, 21, 150) AND kind = 'forget'")"
check "unlearn_wait(m_ppts) returns true" t "$(q "$SUB" "SELECT unlearn_wait('m_ppts', '30 s')")"
check "a new version of m_ppts; 20, 21, 150 out of its manifest" "$((v_ppts + 1))|0" \
	"$(q "$SUB" "SELECT (SELECT current_version FROM unlearn.models WHERE name = 'm_ppts'),
	                    (SELECT count(*) FROM unlearn_manifest('m_ppts') x WHERE x IN (20, 21, 150))")"
check "unlearn_confirm_forgotten(m_ppts)" t "$(q "$SUB" "SELECT unlearn_confirm_forgotten('m_ppts')" 2>/dev/null)"

# ---------------------------------------------------------------- 3b. a column model
echo
echo "==== 3b. a column model: DELETE, UPDATE of a feature and of the label on $PUB ===="
v_cpts=$(q "$SUB" "SELECT current_version FROM unlearn.models WHERE name = 'm_cpts'")
q "$PUB" "DELETE FROM cpts WHERE id IN (14, 15); UPDATE cpts SET c = 'w' WHERE id = 16;
          UPDATE cpts SET label = (label + 1) % 3 WHERE id = 17" >/dev/null
check "the changes reach $SUB.cpts (rows|c of 16|label of 17)" "198|w|0" \
	"$(poll "$SUB" "SELECT (SELECT count(*) FROM cpts) || '|' || (SELECT c FROM cpts WHERE id = 16)
	                       || '|' || (SELECT label FROM cpts WHERE id = 17)" "198|w|0")"
check "queued by the row capture (id:kind)" "14:forget,15:forget,16:forget,17:relabel" \
	"$(q "$SUB" "SELECT string_agg(id || ':' || kind, ',' ORDER BY id) FROM unlearn.requests WHERE model = 'm_cpts'")"
check "unlearn_wait(m_cpts) returns true" t "$(q "$SUB" "SELECT unlearn_wait('m_cpts', '30 s')")"
check "14, 15, 16 out of the current manifest of m_cpts, in its ledger with their encoded rows (6 inputs)" "0|3|6" \
	"$(q "$SUB" "SELECT (SELECT count(*) FROM unlearn_manifest('m_cpts') x WHERE x IN (14, 15, 16)),
	                    (SELECT count(*) FROM unlearn.forgotten WHERE model = 'm_cpts' AND id IN (14, 15, 16)),
	                    (SELECT min(array_length(features, 1)) FROM unlearn.forgotten
	                     WHERE model = 'm_cpts' AND id IN (14, 15, 16))")"
check "unlearn_confirm_forgotten(m_cpts)" t "$(q "$SUB" "SELECT unlearn_confirm_forgotten('m_cpts')" 2>/dev/null)"

# ---------------------------------------------------------------- 4. TRUNCATE
echo
echo "==== 4. TRUNCATE pts on $PUB (published: truncate is in the default publish list) ===="
rows_before=$(q "$SUB" "SELECT count(*) FROM pts")
state_before=$(q "$SUB" "SELECT current_version || '|' || (SELECT count(*) FROM unlearn.requests WHERE model = 'm_pts')
                         FROM unlearn.models WHERE name = 'm_pts'")
log0=$(log_size)
q "$PUB" "TRUNCATE pts" >/dev/null
# the apply worker fails, exits, and the launcher restarts it
# (wal_retrieve_retry_interval): wait for two failures
errs=0
deadline=$(($(date +%s) + TIMEOUT))
while [ "$(date +%s)" -lt "$deadline" ]; do
	errs=$(log_since "$log0" | grep -c 'ERROR:  cannot truncate "pts": it is the training table of model' || true)
	[ "$errs" -ge 2 ] && break
	sleep 0.1
done
if [ "$errs" -ge 2 ]; then
	ok "the apply worker hit the TRUNCATE guard and retried ($errs errors in the log)"
else
	bad "the apply worker did not fail on the TRUNCATE guard twice ($errs errors in the log)"
fi
log_since "$log0" | grep -m1 -A2 'ERROR:  cannot truncate "pts"' | sed 's/^/        log: /' || true
check "pg_stat_subscription_stats counts the apply errors" t \
	"$(q "$SUB" "SELECT apply_error_count >= 1 FROM pg_stat_subscription_stats WHERE subname = 'repl_sub'")"
check "$SUB keeps its rows of pts" "$rows_before" "$(q "$SUB" "SELECT count(*) FROM pts")"
check "$SUB keeps m_pts and its queue (current version|requests)" "$state_before" \
	"$(q "$SUB" "SELECT current_version || '|' || (SELECT count(*) FROM unlearn.requests WHERE model = 'm_pts')
	             FROM unlearn.models WHERE name = 'm_pts'")"
skip_lsn=$(log_since "$log0" | grep -A3 'ERROR:  cannot truncate "pts"' |
	sed -n 's/.*during message type "TRUNCATE".* finished at \([0-9A-F]*\/[0-9A-F]*\).*/\1/p' | head -1 || true)
if [ -n "$skip_lsn" ]; then
	ok "the log names the failing transaction's finish LSN ($skip_lsn)"
else
	bad "no finish LSN in the log's CONTEXT line"
fi
echo "---- ALTER PUBLICATION repl_pub SET (publish = 'insert, update, delete'); ALTER SUBSCRIPTION repl_sub SKIP (lsn = '$skip_lsn')"
q "$PUB" "ALTER PUBLICATION repl_pub SET (publish = 'insert, update, delete')" >/dev/null
# pgoutput decodes each change with the catalog as of its LSN: the TRUNCATE
# written before the ALTER is still sent.  The second error after the ALTER
# comes from an apply worker (and walsender) started after it.
log1=$(log_size)
errs=0
deadline=$(($(date +%s) + TIMEOUT))
while [ "$(date +%s)" -lt "$deadline" ]; do
	errs=$(log_since "$log1" | grep -c 'ERROR:  cannot truncate "pts"' || true)
	[ "$errs" -ge 2 ] && break
	sleep 0.1
done
check "ALTER PUBLICATION alone does not unstick it: the TRUNCATE already in the WAL is still applied and refused" 1 \
	"$([ "$errs" -ge 2 ] && echo 1 || echo 0)"
if [ -n "$skip_lsn" ]; then q "$SUB" "ALTER SUBSCRIPTION repl_sub SKIP (lsn = '$skip_lsn')" >/dev/null; fi
check "the apply worker skips the TRUNCATE (subskiplsn back to 0/0)" "0/0" \
	"$(poll "$SUB" "SELECT subskiplsn FROM pg_subscription WHERE subname = 'repl_sub'" 0/0)"
log2=$(log_size)
q "$PUB" "TRUNCATE pts; $(rows_sql pts 1001 1002)" >/dev/null
check "rows inserted on $PUB after a second TRUNCATE arrive (the TRUNCATE is no longer published)" "$((rows_before + 2))" \
	"$(poll "$SUB" "SELECT count(*) FROM pts" "$((rows_before + 2))")"
check "no new TRUNCATE error in the log" "0" \
	"$(log_since "$log2" | grep -c 'cannot truncate' || true)"
check "TRUNCATE on $SUB itself is still refused" "refused" \
	"$(q "$SUB" "TRUNCATE pts" >/dev/null 2>&1 && echo allowed || echo refused)"

# ---------------------------------------------------------------- cleanup
echo
echo "==== cleanup: DROP SUBSCRIPTION (drops the slot on $PUB) ===="
info "$(q "$SUB" "DROP SUBSCRIPTION repl_sub" 2>&1)"
sub_made=0
check "no replication slot left" "0" "$(q "$PUB" "SELECT count(*) FROM pg_replication_slots")"
q postgres "DROP DATABASE $SUB WITH (FORCE)" >/dev/null
q postgres "DROP DATABASE $PUB WITH (FORCE)" >/dev/null
ok "databases dropped"
