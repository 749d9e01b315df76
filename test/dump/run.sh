#!/usr/bin/env bash
#
# test/dump/run.sh: pg_dump / restore of a database that uses unlearn.
# Needs the extension installed (make install).
#
# A throwaway server "dump" (/tmp/unlearn-dump, test/lib_server.sh).  In
# database dump_a: CREATE EXTENSION unlearn; two training tables with a
# primary key, deterministic synthetic rows (3 classes, 6 features): ul_int
# (integer labels, 300 rows) and ul_txt (text labels, 240 rows); a model on
# each (auto_unlearn on).  History of model m_int: unlearn_rows (once with
# unlearn.feature_retention = -1 so the ledger keeps some feature copies,
# once with the default 0), a DELETE unlearned by the background worker,
# unlearn_relabel, a reference retrain.  Model m_txt: a DELETE unlearned by
# the worker.  Model m_sh: 3 shards (the training option "shards") on a copy
# of ul_int, ul_sh, without capture, and an exact delete (version 2, format 4
# weights).  Model m_part: sharded by partition ("shards": "partition") on
# ul_part, a copy of ul_int in three range partitions, without capture, and
# an exact delete (the manifests record each id's shard).
#
# Snapshot of dump_a (every query's output, compared byte for byte):
#   unlearn.models; unlearn.versions (lineage, options, metrics, sha256s,
#   hash chain, forgotten_ids, md5 of the weights, created_by/at);
#   unlearn.manifests (md5 of the ids and of their shards); unlearn.forgotten (the ledger, with
#   features and their sha256); unlearn.requests (states, timestamps) and
#   its sequence; unlearn.status; predictions and probabilities of the
#   models on rows of the tables; unlearn_verify; unlearn_verify_ledger;
#   unlearn_confirm_forgotten (with its NOTICE); the training tables' rows;
#   the capture triggers' definitions.
#
# Then pg_dump (as the postgres OS user) of dump_a three times: custom
# format, restored with pg_restore --verbose --exit-on-error into dump_b;
# plain format, restored with psql -v ON_ERROR_STOP=1 into dump_c; directory
# format, restored in parallel with pg_restore -j 2 into dump_d (the
# catalog tables have no foreign keys between them, so their data may load
# in any order).  pg_dump must print no warning.  In each restored database:
# the same snapshot; every ledger link valid; the capture triggers on the
# restored tables; a DELETE is queued and unlearned by that database's
# worker (unlearn_wait true, a new auto-unlearn version whose parent is the
# restored current version, the ids in the ledger, out of the manifest, the
# chain still valid); an exact delete on m_sh retrains only its row's shard
# from the restored weights, one on m_part only its row's partition's shard
# from the restored manifest; TRUNCATE and DROP TABLE of a training table still
# refused; dump_a untouched by it.
#
# Known issue, reported as XFAIL and not counted (DUMP_STRICT=1 counts it):
#   - pg_restore --clean over an existing database fails: it drops the
#     training tables before the extension and the drop guard (an event
#     trigger) refuses.  Checked: the same with session_replication_role =
#     replica (event triggers do not fire) brings dump_c back to dump_a's
#     state.
#
# Prints "N passed, M failed" last; exits non-zero if anything failed.
#
# Environment:
#   UNLEARN_KEEP_DATA=1   keep the cluster's data directory (and the dumps)
#   DUMP_STRICT=1         count the known issue above as a failure
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib_server.sh
. "$root/test/lib_server.sh"
# shellcheck source=SCRIPTDIR/../lib_check.sh
. "$root/test/lib_check.sh"

DB_A=dump_a
DB_B=dump_b	# from pg_dump -Fc, pg_restore
DB_C=dump_c	# from pg_dump (plain), psql
DB_D=dump_d	# from pg_dump -Fd, pg_restore -j 2

check_start dump
work=

# Known extension issues (reported, not yet fixed): not counted unless
# DUMP_STRICT=1; an unexpected pass counts as a pass and says so.
xfail() {
	if [ "${DUMP_STRICT:-0}" = 1 ]; then bad "(known issue) $*"; else echo "  XFAIL $* (known issue, not counted)"; fi
}
xpass() { ok "$* (known issue fixed? remove the XFAIL)"; }

# after the server: the work directory goes, unless kept
check_after_stop() {
	if [ -n "$work" ] && [ "${UNLEARN_KEEP_DATA:-0}" != 1 ]; then rm -rf "$work"; fi
}

# q DB SQL: values from database DB, unaligned; fails (set -e) on error.
q() { upsql -d "$1" -At -q -c "$2"; }

# ---------------------------------------------------------------- snapshot
# snapshot DB: everything that must survive a dump and restore, as text.
# NULLs print as <null>; every query has an ORDER BY.
snapshot() {
	local db=$1
	upsql -d "$db" -q -A -F ' | ' -P null='<null>' -P footer=off 2>&1 <<'SQL'
\echo ---- unlearn.models
SELECT name, owner, relation, id_column, features_column, label_column, label_type, features,
       hidden, classes, options, current_version, auto_unlearn, auto_options, created_at,
       feature_columns, feature_types
FROM unlearn.models ORDER BY name;
\echo ---- unlearn.encodings
SELECT model, inputs FROM unlearn.encodings ORDER BY model;
\echo ---- unlearn.versions
SELECT model, version, parent, reason, method, options, rows,
       encode(weights_sha256, 'hex') AS weights_sha256, encode(hash, 'hex') AS hash,
       forgotten_ids, md5(weights) AS weights_md5, length(weights) AS weights_bytes,
       metrics, created_by, created_at
FROM unlearn.versions ORDER BY model, version;
\echo ---- unlearn.manifests
SELECT model, version, cardinality(ids) AS n, md5(ids::text) AS ids_md5, md5(shards::text) AS shards_md5
FROM unlearn.manifests ORDER BY model, version;
\echo ---- unlearn.forgotten
SELECT model, id, label, version, encode(features_sha256, 'hex') AS features_sha256, features,
       forgotten_at, requested_by
FROM unlearn.forgotten ORDER BY model, id;
\echo ---- unlearn.requests
SELECT request_id, model, kind, id, label, new_label, features, state, attempts, last_error, note,
       next_attempt_at, enqueued_at, done_at, version, requested_by
FROM unlearn.requests ORDER BY request_id;
SELECT last_value, is_called FROM unlearn.requests_request_id_seq;
\echo ---- unlearn.status
SELECT * FROM unlearn.status ORDER BY model;
\echo ---- predictions
SELECT 'm_int' AS model, id, unlearn_predict('m_int', features) AS predicted,
       unlearn_predict_proba('m_int', features) AS proba
FROM ul_int WHERE id % 7 = 1 ORDER BY id;
SELECT 'm_txt' AS model, id, unlearn_predict('m_txt', features) AS predicted,
       unlearn_predict_proba('m_txt', features) AS proba
FROM ul_txt WHERE id % 7 = 1 ORDER BY id;
SELECT 'm_col' AS model, id, unlearn_predict('m_col', c) AS predicted,
       unlearn_predict_proba('m_col', c) AS proba
FROM ul_col c WHERE id % 7 = 1 ORDER BY id;
SELECT * FROM unlearn_evaluate('m_int', 'ul_int');
SELECT * FROM unlearn_evaluate('m_txt', 'ul_txt');
SELECT * FROM unlearn_evaluate('m_col', 'ul_col');
SELECT 'm_sh' AS model, id, unlearn_predict('m_sh', features) AS predicted,
       unlearn_predict_proba('m_sh', features) AS proba
FROM ul_sh WHERE id % 7 = 1 ORDER BY id;
SELECT * FROM unlearn_evaluate('m_sh', 'ul_sh');
SELECT 'm_part' AS model, id, unlearn_predict_proba('m_part', features) AS proba
FROM ul_part WHERE id % 7 = 1 ORDER BY id;
SELECT * FROM unlearn_describe('m_col') ORDER BY input;
\echo ---- unlearn_verify
SELECT 'm_int' AS model, * FROM unlearn_verify('m_int') ORDER BY id;
SELECT 'm_txt' AS model, * FROM unlearn_verify('m_txt') ORDER BY id;
\echo ---- unlearn_verify_ledger
SELECT 'm_int' AS model, * FROM unlearn_verify_ledger('m_int') ORDER BY version;
SELECT 'm_txt' AS model, * FROM unlearn_verify_ledger('m_txt') ORDER BY version;
\echo ---- unlearn_confirm_forgotten
SELECT unlearn_confirm_forgotten('m_int') AS m_int;
SELECT unlearn_confirm_forgotten('m_txt') AS m_txt;
SELECT unlearn_confirm_forgotten('m_col') AS m_col;
\echo ---- training tables
SELECT 'ul_int' AS t, count(*), md5(string_agg(format('%s %s %s', id, features, label), ',' ORDER BY id))
FROM ul_int;
SELECT 'ul_txt' AS t, count(*), md5(string_agg(format('%s %s %s', id, features, label), ',' ORDER BY id))
FROM ul_txt;
SELECT 'ul_col' AS t, count(*), md5(string_agg(c::text, ',' ORDER BY id)) FROM ul_col c;
\echo ---- capture triggers
SELECT tgrelid::regclass, tgname, tgenabled, pg_get_triggerdef(oid)
FROM pg_trigger WHERE tgrelid IN ('ul_int'::regclass, 'ul_txt'::regclass, 'ul_col'::regclass)
  AND NOT tgisinternal
ORDER BY tgrelid::regclass::text, tgname;
SELECT evtname, evtevent, evtfoid::regproc, evtenabled FROM pg_event_trigger ORDER BY 1;
SQL
}

# ---------------------------------------------------------------- checks on a restored copy
# check_restored DB LABEL: the restored database DB matches the snapshot of
# dump_a and still unlearns.
check_restored() {
	local db=$1 label=$2 out cv nv
	echo
	echo "==== $label: contents ===="
	snapshot "$db" >"$work/snap_$db.txt"
	if diff -u "$work/snap_a.txt" "$work/snap_$db.txt" >"$work/diff_$db.txt"; then
		ok "snapshot identical to $DB_A ($(wc -l <"$work/snap_a.txt") lines: catalog tables," \
			"predictions, verify, verify_ledger, confirm_forgotten, tables, triggers)"
	else
		bad "snapshot differs from $DB_A:"
		head -n 60 "$work/diff_$db.txt" | sed 's/^/        /'
	fi
	# a few of those again as explicit checks, for a readable log
	check "models restored (name:current_version)" "$models_a" \
		"$(q "$db" "SELECT string_agg(name || ':' || current_version, ',' ORDER BY name) FROM unlearn.models")"
	check "models.relation resolves to the restored tables" "ul_col,ul_int,ul_part,ul_sh,ul_txt" \
		"$(q "$db" "SELECT string_agg(relation::text, ',' ORDER BY name) FROM unlearn.models")"
	check "every version's weights and link valid (unlearn_verify_ledger)" "$links_a|$links_a" \
		"$(q "$db" "SELECT count(*), count(*) FILTER (WHERE valid)
		            FROM unlearn.models m, unlearn_verify_ledger(m.name)")"
	check "unlearn_confirm_forgotten (m_int, m_txt, m_col)" "$confirm_a" \
		"$(q "$db" "SELECT unlearn_confirm_forgotten('m_int') || ',' || unlearn_confirm_forgotten('m_txt')
		            || ',' || unlearn_confirm_forgotten('m_col')" 2>/dev/null)"
	check "capture and guard triggers (ENABLE ALWAYS; replication's row capture ENABLE REPLICA) on the restored training tables" \
		"ul_int:unlearn_capture_apply R,unlearn_capture_delete A,unlearn_capture_update A,unlearn_guard_truncate A;ul_txt:unlearn_capture_apply R,unlearn_capture_delete A,unlearn_capture_update A,unlearn_guard_truncate A" \
		"$(q "$db" "SELECT string_agg(t, ';' ORDER BY t) FROM (
		              SELECT tgrelid::regclass || ':' || string_agg(tgname || ' ' || tgenabled::text, ',' ORDER BY tgname) AS t
		              FROM pg_trigger WHERE tgrelid IN ('ul_int'::regclass, 'ul_txt'::regclass)
		                AND NOT tgisinternal GROUP BY tgrelid) s")"

	echo "==== $label: the restored copy still unlearns ===="
	cv=$(q "$db" "SELECT current_version FROM unlearn.models WHERE name = 'm_int'")
	# versions are numbered 1..n (the reference retrain is n, not current): the new one is n + 1
	nv=$(q "$db" "SELECT count(*) FROM unlearn.versions WHERE model = 'm_int'")
	q "$db" "DELETE FROM ul_int WHERE id IN (40, 41, 42)" >/dev/null
	# the worker may already have picked them up: any state but failed or skipped counts
	check "the DELETE queued one request per row" "3" \
		"$(q "$db" "SELECT count(*) FROM unlearn.requests
		            WHERE model = 'm_int' AND id IN (40, 41, 42) AND enqueued_at > now() - interval '1 min'
		              AND state IN ('pending', 'running', 'done')")"
	check "unlearn_wait: the database's worker drained the queue" t \
		"$(q "$db" "SELECT unlearn_wait('m_int', '60 s')")"
	check "requests done by one new auto-unlearn version" "3|done|$((nv + 1))" \
		"$(q "$db" "SELECT count(*), string_agg(DISTINCT state, ','), string_agg(DISTINCT version::text, ',')
		            FROM unlearn.requests WHERE model = 'm_int' AND id IN (40, 41, 42)")"
	check "new version: current, child of the restored current version, forgot the 3 ids" \
		"$((nv + 1))|$((nv + 1))|auto-unlearn|$cv|{40,41,42}" \
		"$(q "$db" "SELECT m.current_version, (SELECT count(*) FROM unlearn.versions WHERE model = 'm_int'),
		                   v.reason, v.parent, v.forgotten_ids
		            FROM unlearn.models m JOIN unlearn.versions v ON v.model = m.name AND v.version = m.current_version
		            WHERE m.name = 'm_int'")"
	check "the ids are in the ledger with that version and out of the manifest" "3|0" \
		"$(q "$db" "SELECT (SELECT count(*) FROM unlearn.forgotten WHERE model = 'm_int'
		                    AND id IN (40, 41, 42) AND version = $((nv + 1))),
		                   (SELECT count(*) FROM unlearn_manifest('m_int') x WHERE x IN (40, 41, 42))")"
	check "the hash chain still verifies, new link included" "$((links_a + 1))|$((links_a + 1))" \
		"$(q "$db" "SELECT count(*), count(*) FILTER (WHERE valid) FROM unlearn.models m, unlearn_verify_ledger(m.name)")"
	check "unlearn_confirm_forgotten(m_int) after the new run" t \
		"$(q "$db" "SELECT unlearn_confirm_forgotten('m_int')" 2>/dev/null)"
	if out=$(q "$db" "TRUNCATE ul_int" 2>&1); then
		bad "TRUNCATE of a training table was allowed"
	elif [[ $out == *'cannot truncate "ul_int": it is the training table of model '"'m_int'"* ]]; then
		ok "TRUNCATE still refused"
	else
		bad "TRUNCATE failed with an unexpected message: $out"
	fi
	if out=$(q "$db" "DROP TABLE ul_txt" 2>&1); then
		bad "DROP TABLE of a training table was allowed"
	elif [[ $out == *"cannot drop table public.ul_txt: it is the training table of model 'm_txt'"* ]]; then
		ok "DROP TABLE still refused (event trigger)"
	else
		bad "DROP TABLE failed with an unexpected message: $out"
	fi
	# the column model (enum type restored by name): a DELETE is encoded, queued and unlearned
	q "$db" "DELETE FROM ul_col WHERE id IN (60, 61)" >/dev/null
	check "column model m_col: the restored worker unlearned a DELETE (unlearn_wait)" t \
		"$(q "$db" "SELECT unlearn_wait('m_col', '60 s')")"
	check "column model m_col: the ids out of the manifest, in the ledger; confirmed" "0|2|t" \
		"$(q "$db" "SELECT (SELECT count(*) FROM unlearn_manifest('m_col') x WHERE x IN (60, 61)),
		                   (SELECT count(*) FROM unlearn.forgotten WHERE model = 'm_col' AND id IN (60, 61)),
		                   unlearn_confirm_forgotten('m_col')" 2>/dev/null)"
	# the sharded model: an exact delete retrains the shard of the row from the restored weights
	check "sharded model m_sh: an exact delete of id 90 retrains its shard only" \
		"3|t|exact" \
		"$(q "$db" "SELECT version FROM unlearn_rows('m_sh', ARRAY[90], '{\"method\": \"exact\"}')")|$(q "$db" \
			"SELECT metrics->'retrained_shards' = jsonb_build_array(unlearn_shard(90, 3)), guarantee
			 FROM unlearn.versions WHERE model = 'm_sh' AND version = 3")"
	# sharded by partition: the restored manifest maps id 150 to ul_part_b's shard (1)
	check "model m_part sharded by partition: an exact delete of id 150 retrains shard 1 only" \
		"3|[1]|exact" \
		"$(q "$db" "SELECT version FROM unlearn_rows('m_part', ARRAY[150], '{\"method\": \"exact\"}')")|$(q "$db" \
			"SELECT metrics->>'retrained_shards', guarantee FROM unlearn.versions WHERE model = 'm_part' AND version = 3")"
	check "$DB_A untouched (m_int current version, rows 40-42 still there)" "$cv|3" \
		"$(q "$DB_A" "SELECT (SELECT current_version FROM unlearn.models WHERE name = 'm_int'),
		                     (SELECT count(*) FROM ul_int WHERE id IN (40, 41, 42))")"
}

# ---------------------------------------------------------------- setup
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ ! -f "$pkglibdir/unlearn.so" ]; then
	echo "dump: $pkglibdir/unlearn.so is not installed: run 'make install'" >&2
	exit 1
fi
trap check_finish EXIT
unlearn_server_start dump "unlearn.naptime = 1s" "unlearn.threads = 2" "unlearn.exact_when_cheaper = off" "unlearn.consolidate_after = 0" "unlearn.consolidate_drop = 0" "unlearn.consolidate_idle = 0" || exit 1
work="$UNLEARN_SERVER_DIR/work"
mkdir -p "$work"
chmod 777 "$work"	# pg_dump runs as the cluster's OS user and writes here

echo "==== $DB_A: extension, tables ul_int (300 rows), ul_txt (240 rows), ul_col and ul_sh, models m_int, m_txt, m_col and m_sh (3 shards) ===="
q postgres "CREATE DATABASE $DB_A" >/dev/null
q "$DB_A" "CREATE EXTENSION unlearn" >/dev/null
# 3 clusters in 6-D, deterministic md5 noise; ul_txt has text labels
q "$DB_A" "CREATE TABLE ul_int (id bigint PRIMARY KEY, features real[] NOT NULL, label integer NOT NULL);
  INSERT INTO ul_int
  SELECT i, ARRAY(SELECT (CASE WHEN d % 3 = i % 3 THEN 2.0 ELSE 0.0 END
                          + 1.5 * (('x' || substr(md5(i || ':' || d), 1, 8))::bit(32)::int / 2147483648.0))::real
                    FROM generate_series(0, 5) d ORDER BY d),
         i % 3
    FROM generate_series(1, 300) i;
  CREATE TABLE ul_txt (id bigint PRIMARY KEY, features real[] NOT NULL, label text NOT NULL);
  INSERT INTO ul_txt
  SELECT i, ARRAY(SELECT (CASE WHEN d % 3 = i % 3 THEN 2.0 ELSE 0.0 END
                          + 1.5 * (('x' || substr(md5('t' || i || ':' || d), 1, 8))::bit(32)::int / 2147483648.0))::real
                    FROM generate_series(0, 5) d ORDER BY d),
         (ARRAY['setosa', 'versicolor', 'virginica'])[i % 3 + 1]
    FROM generate_series(1, 240) i;
  CREATE TYPE grade AS ENUM ('low', 'mid', 'top');
  CREATE TABLE ul_col (id integer PRIMARY KEY, amount numeric, seen date, region text, level grade,
                       flag boolean, y text NOT NULL);
  INSERT INTO ul_col
  SELECT i, CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 100 END, date '2024-01-01' + i % 90,
         CASE WHEN i % 13 = 0 THEN NULL ELSE (ARRAY['n', 's', 'e', 'w'])[1 + i % 4] END,
         (ARRAY['low', 'mid', 'top'])[1 + (i * 7) % 3]::grade, i % 5 = 0,
         CASE WHEN (i * 37) % 100 > 50 OR i % 4 = 2 THEN 'a' ELSE 'b' END
    FROM generate_series(1, 200) i;
  CREATE TABLE ul_sh AS SELECT * FROM ul_int;
  CREATE TABLE ul_part (id bigint NOT NULL, features real[] NOT NULL, label integer NOT NULL) PARTITION BY RANGE (id);
  CREATE TABLE ul_part_a PARTITION OF ul_part FOR VALUES FROM (MINVALUE) TO (100);
  CREATE TABLE ul_part_b PARTITION OF ul_part FOR VALUES FROM (100) TO (200);
  CREATE TABLE ul_part_c PARTITION OF ul_part FOR VALUES FROM (200) TO (MAXVALUE);
  INSERT INTO ul_part SELECT * FROM ul_int" >/dev/null
info "trained m_int: rows|train accuracy = $(q "$DB_A" "SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train('m_int', 'ul_int', 'id', 'features', 'label', hidden => '{16}', epochs => 20,
                         options => '{\"seed\": 1, \"lr\": 0.01, \"batch_size\": 32}')")"
info "trained m_txt: rows|train accuracy = $(q "$DB_A" "SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train('m_txt', 'ul_txt', 'id', 'features', 'label', hidden => '{12}', epochs => 20,
                         options => '{\"seed\": 2, \"lr\": 0.01, \"batch_size\": 32}')")"
info "trained m_col (columns: numeric, date, text, enum, boolean, NULLs): rows|train accuracy = $(q "$DB_A" \
	"SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train(model => 'm_col', relation => 'ul_col', id_column => 'id', label_column => 'y',
                         hidden => '{16}', epochs => 40, options => '{\"seed\": 3}')")"

info "trained m_sh (3 shards, no capture): rows|train accuracy = $(q "$DB_A" "SELECT rows, round(train_accuracy::numeric, 3)
      FROM unlearn_train('m_sh', 'ul_sh', 'id', 'features', 'label', hidden => '{8}', epochs => 20, auto_unlearn => false,
                         options => '{\"seed\": 4, \"lr\": 0.01, \"batch_size\": 32, \"shards\": 3}')")"

info "trained m_part (sharded by partition, no capture): rows|shards = $(q "$DB_A" "SELECT rows, (SELECT options->>'shards'
      FROM unlearn.models WHERE name = 'm_part') FROM unlearn_train('m_part', 'ul_part', 'id', 'features', 'label',
      hidden => '{8}', epochs => 10, auto_unlearn => false, options => '{\"seed\": 5, \"shards\": \"partition\"}')")"

echo "==== $DB_A: history ===="
info "unlearn_rows(m_sh, {8,9}, exact): version|rows|forgotten = $(q "$DB_A" \
	"SELECT version, rows, forgotten FROM unlearn_rows('m_sh', ARRAY[8, 9], '{\"method\": \"exact\"}')")"
info "unlearn_rows(m_part, {20}, exact): version|retrained shards = $(q "$DB_A" \
	"SELECT version FROM unlearn_rows('m_part', ARRAY[20], '{\"method\": \"exact\"}')")|$(q "$DB_A" \
	"SELECT metrics->>'retrained_shards' FROM unlearn.versions WHERE model = 'm_part' AND version = 2")"
info "unlearn_rows(m_int, {3,4,5}), feature copies kept: version|rows|forgotten = $(q "$DB_A" \
	"SET unlearn.feature_retention = -1; SELECT version, rows, forgotten FROM unlearn_rows('m_int', ARRAY[3, 4, 5])")"
info "unlearn_rows(m_int, {6,7}), copies erased: version|rows|forgotten = $(q "$DB_A" \
	"SELECT version, rows, forgotten FROM unlearn_rows('m_int', ARRAY[6, 7])")"
q "$DB_A" "DELETE FROM ul_int WHERE id IN (10, 11, 12)" >/dev/null
check "$DB_A: worker unlearned DELETE of ul_int ids 10-12 (unlearn_wait)" t \
	"$(q "$DB_A" "SELECT unlearn_wait('m_int', '60 s')")"
info "unlearn_relabel(m_int, {20} -> 0): version|rows = $(q "$DB_A" \
	"SELECT version, rows FROM unlearn_relabel('m_int', ARRAY[20], ARRAY[0])")"
info "reference retrain: version|rows = $(q "$DB_A" \
	"SELECT version, rows FROM unlearn_retrain('m_int', '{\"reference\": true}')")"
q "$DB_A" "DELETE FROM ul_txt WHERE id IN (30, 31)" >/dev/null
check "$DB_A: worker unlearned DELETE of ul_txt ids 30-31 (unlearn_wait)" t \
	"$(q "$DB_A" "SELECT unlearn_wait('m_txt', '60 s')")"
q "$DB_A" "DELETE FROM ul_col WHERE id IN (50, 51)" >/dev/null
check "$DB_A: worker unlearned DELETE of ul_col ids 50-51 (unlearn_wait)" t \
	"$(q "$DB_A" "SELECT unlearn_wait('m_col', '60 s')")"
check "$DB_A: versions of m_int (reason:parent)" \
	"train:,unlearn:1,unlearn:2,auto-unlearn:3,relabel:4,reference:5" \
	"$(q "$DB_A" "SELECT string_agg(reason || ':' || coalesce(parent::text, ''), ',' ORDER BY version)
	              FROM unlearn.versions WHERE model = 'm_int'")"
check "$DB_A: current versions (m_int:5 since the reference is not current, m_txt:2, m_col:2, m_sh:2, m_part:2)" \
	"m_col:2,m_int:5,m_part:2,m_sh:2,m_txt:2" \
	"$(q "$DB_A" "SELECT string_agg(name || ':' || current_version, ',' ORDER BY name) FROM unlearn.models")"
check "$DB_A: ledger rows|with features|requests done" "15|3|7" \
	"$(q "$DB_A" "SELECT (SELECT count(*) FROM unlearn.forgotten), (SELECT count(features) FROM unlearn.forgotten),
	                     (SELECT count(*) FROM unlearn.requests WHERE state = 'done')")"
models_a=$(q "$DB_A" "SELECT string_agg(name || ':' || current_version, ',' ORDER BY name) FROM unlearn.models")
links_a=$(q "$DB_A" "SELECT count(*) FROM unlearn.models m, unlearn_verify_ledger(m.name)")
check "$DB_A: unlearn_verify_ledger all valid" "$links_a" \
	"$(q "$DB_A" "SELECT count(*) FROM unlearn.models m, unlearn_verify_ledger(m.name) WHERE valid")"
confirm_a=$(q "$DB_A" "SELECT unlearn_confirm_forgotten('m_int') || ',' || unlearn_confirm_forgotten('m_txt')
                         || ',' || unlearn_confirm_forgotten('m_col')" 2>/dev/null)
check "$DB_A: unlearn_confirm_forgotten (m_int, m_txt, m_col)" "true,true,true" "$confirm_a"
snapshot "$DB_A" >"$work/snap_a.txt"
if grep -q '^ERROR' "$work/snap_a.txt"; then
	bad "the snapshot queries failed on $DB_A:"
	grep '^ERROR' "$work/snap_a.txt" | sed 's/^/        /'
else
	ok "$DB_A snapshot taken ($(wc -l <"$work/snap_a.txt") lines)"
fi

# ---------------------------------------------------------------- dump
echo
echo "==== pg_dump $DB_A (custom and plain format, as the cluster's OS user) ===="
_unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_dump" -Fc -f "$work/a.dump" "$DB_A" 2>"$work/pg_dump.err"
_unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_dump" -Fp -f "$work/a.sql" "$DB_A" 2>/dev/null
# no foreign keys between the catalog tables: no "circular foreign-key" warning
check "pg_dump printed no warning" "" "$(cat "$work/pg_dump.err")"
check "the dump holds the data of the 6 config tables and the sequence value" "6|1" \
	"$(grep -c '^COPY unlearn\.' "$work/a.sql")|$(grep -c "setval('unlearn.requests_request_id_seq'" "$work/a.sql")"
info "data order in the dump: $(grep -o '^COPY [a-z_.]*' "$work/a.sql" | sed 's/^COPY //' | tr '\n' ' ')"

# ---------------------------------------------------------------- restore
q postgres "CREATE DATABASE $DB_B" >/dev/null
if _unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_restore" --verbose --exit-on-error -d "$DB_B" "$work/a.dump" \
	>"$work/restore_b.log" 2>&1; then
	ok "pg_restore --exit-on-error into $DB_B"
else
	bad "pg_restore into $DB_B failed; its output:"
	grep -v '^pg_restore: creating\|^pg_restore: processing' "$work/restore_b.log" | tail -n 30 | sed 's/^/        /'
fi
q postgres "CREATE DATABASE $DB_C" >/dev/null
if _unlearn_as_owner "$UNLEARN_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -d "$DB_C" -f "$work/a.sql" \
	>"$work/restore_c.log" 2>&1; then
	ok "plain dump replayed with psql -v ON_ERROR_STOP=1 into $DB_C"
else
	bad "psql restore into $DB_C failed; its output:"
	tail -n 30 "$work/restore_c.log" | sed 's/^/        /'
fi

check_restored "$DB_B" "$DB_B (pg_restore of the custom dump)"
check_restored "$DB_C" "$DB_C (psql of the plain dump)"

# ---------------------------------------------------------------- parallel restore
echo
echo "==== parallel restore (pg_restore -j 2 of a directory-format dump) ===="
_unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_dump" -Fd -f "$work/a.dir" "$DB_A" 2>/dev/null
q postgres "CREATE DATABASE $DB_D" >/dev/null
if _unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_restore" -j 2 --exit-on-error -d "$DB_D" "$work/a.dir" \
	>"$work/restore_d.log" 2>&1; then
	ok "pg_restore -j 2 --exit-on-error into $DB_D"
	check_restored "$DB_D" "$DB_D (parallel restore)"
else
	bad "pg_restore -j 2 into $DB_D failed:"
	tail -n 10 "$work/restore_d.log" | sed 's/^/        /'
fi

# ---------------------------------------------------------------- known issue and its workaround
echo
echo "==== pg_restore --clean over an existing database ($DB_C, changed since its restore) ===="
if out=$(_unlearn_as_owner "$UNLEARN_PG_BINDIR/pg_restore" --clean --if-exists --exit-on-error -d "$DB_C" \
	"$work/a.dump" 2>&1); then
	xpass "pg_restore --clean over $DB_C"
else
	# the drop guard (event trigger) refuses DROP TABLE of a training table,
	# and --clean drops the tables before the extension
	xfail "pg_restore --clean over $DB_C: $(grep -m1 -o 'ERROR: .*' <<<"$out" || tail -n1 <<<"$out")"
fi
if _unlearn_as_owner env PGOPTIONS='-c session_replication_role=replica' \
	"$UNLEARN_PG_BINDIR/pg_restore" --clean --if-exists --exit-on-error -d "$DB_C" "$work/a.dump" \
	>"$work/restore_c2.log" 2>&1; then
	ok "workaround: pg_restore --clean --if-exists with session_replication_role = replica over $DB_C"
	snapshot "$DB_C" >"$work/snap_c2.txt"
	if diff -u "$work/snap_a.txt" "$work/snap_c2.txt" >"$work/diff_c2.txt"; then
		ok "$DB_C is back to the snapshot of $DB_A"
	else
		bad "$DB_C differs from $DB_A after the clean restore:"
		head -n 40 "$work/diff_c2.txt" | sed 's/^/        /'
	fi
else
	bad "pg_restore --clean in replica mode over $DB_C failed:"
	tail -n 10 "$work/restore_c2.log" | sed 's/^/        /'
fi
