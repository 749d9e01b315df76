#!/usr/bin/env bash
#
# test/upgrade/run.sh: ALTER EXTENSION unlearn UPDATE from 0.1 to the
# default version.  Run by `make test` (and `make upgrade-test`) after the
# other layers; needs the extension installed (make install).
#
# A throwaway server "upgrade" (/tmp/unlearn-upgrade, test/lib_server.sh),
# the library preloaded as in test/regress.conf.  In database upg_old:
#   1. CREATE EXTENSION unlearn VERSION '0.1'; a table of 300 synthetic rows
#      (3 clusters in 6-D, deterministic md5 noise); a model trained on it;
#      its predictions and probabilities on every row (an md5 of them).
#   2. ALTER EXTENSION unlearn UPDATE: the version is the default one, the
#      0.2 objects exist (the DDL guard event triggers, ENABLE ALWAYS), the
#      feature copies have no statistics, the model predicts exactly as
#      before (same md5), unlearn_verify still passes, the capture triggers
#      are on the table.
#   3. unlearn_rows on two ids; a DELETE of three more, unlearned by the
#      background worker (unlearn_wait); the hash chain verifies
#      (unlearn_verify_ledger) and the rows are forgotten
#      (unlearn_confirm_forgotten, with ledger copies kept); a column model
#      trains; the 0.1 model forgets a row with the method "exact"; a sharded
#      model trains and an exact delete retrains only its row's shard.
# In database upg_new: CREATE EXTENSION unlearn (the default version).  The
# extension's members (pg_describe_object over pg_depend) and their
# definitions (function definitions and ACLs, table columns with their
# compression, storage and statistics targets, event triggers with their
# enabling) must be identical in both databases.
#
# Prints "N passed, M failed" last; exits non-zero if anything failed.
# Environment: UNLEARN_KEEP_DATA=1 keeps the cluster's data directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=SCRIPTDIR/../lib_server.sh
. "$root/test/lib_server.sh"
# shellcheck source=SCRIPTDIR/../lib_check.sh
. "$root/test/lib_check.sh"

OLD=upg_old
NEW=upg_new
check_start upgrade

# q DB SQL: values from database DB, unaligned; fails (set -e) on error.
q() { upsql -d "$1" -At -q -c "$2"; }

# predictions DB: md5 of every row's prediction and probabilities.
predictions() {
	q "$1" "SELECT md5(string_agg(format('%s %s %s', id, unlearn_predict('m', features),
	                                      unlearn_predict_proba('m', features)), ',' ORDER BY id))
	        FROM ul_rows"
}

# members DB: the extension's objects and their definitions, as sorted text.
members() {
	upsql -d "$1" -At -q <<'SQL'
SELECT 'member ' || pg_describe_object(classid, objid, objsubid)
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'unlearn')
 ORDER BY 1;
SELECT 'function ' || p.oid::regprocedure || ' acl=' || coalesce(p.proacl::text, '-')
       || ' md5=' || md5(pg_get_functiondef(p.oid))
  FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'unlearn')
 ORDER BY 1;
SELECT 'column ' || c.oid::regclass || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
       || coalesce(' compression ' || nullif(a.attcompression::text, ''), '')
       || ' storage ' || a.attstorage::text
       || ' statistics ' || a.attstattarget::text
       || ' acl=' || coalesce(c.relacl::text, '-')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'unlearn'
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
 ORDER BY 1;
SELECT 'event trigger ' || evtname || ' ' || evtevent || ' ' || evtfoid::regproc || ' '
       || evtenabled::text || ' ' || coalesce(evttags::text, '-')
  FROM pg_event_trigger ORDER BY 1;
SQL
}

# ---------------------------------------------------------------- setup
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ ! -f "$pkglibdir/unlearn.so" ]; then
	echo "upgrade: $pkglibdir/unlearn.so is not installed: run 'make install'" >&2
	exit 1
fi
trap check_finish EXIT
# as test/regress.conf: fast worker, ledger copies kept so rows can be re-checked
unlearn_server_start upgrade "unlearn.naptime = 1s" "unlearn.threads = 1" \
	"unlearn.feature_retention = 3600" "unlearn.exact_when_cheaper = off" "unlearn.consolidate_after = 0" "unlearn.consolidate_drop = 0" "unlearn.consolidate_idle = 0" || exit 1
default_version=$(q postgres "SELECT default_version FROM pg_available_extensions WHERE name = 'unlearn'")

echo "==== $OLD: CREATE EXTENSION unlearn VERSION '0.1', train ===="
q postgres "CREATE DATABASE $OLD" >/dev/null
q "$OLD" "CREATE EXTENSION unlearn VERSION '0.1'"
check "installed version" "0.1" "$(q "$OLD" "SELECT extversion FROM pg_extension WHERE extname = 'unlearn'")"
check "update path 0.1 -> $default_version" "0.1--$default_version" \
	"$(q "$OLD" "SELECT source || '--' || target FROM pg_extension_update_paths('unlearn')
	             WHERE source = '0.1' AND target = '$default_version' AND path IS NOT NULL")"
q "$OLD" "CREATE TABLE ul_rows (id bigint PRIMARY KEY, features real[] NOT NULL, label integer NOT NULL);
  INSERT INTO ul_rows
  SELECT i, ARRAY(SELECT (CASE WHEN d % 3 = i % 3 THEN 2.0 ELSE 0.0 END
                          + 1.5 * (('x' || substr(md5(i || ':' || d), 1, 8))::bit(32)::int / 2147483648.0))::real
                    FROM generate_series(0, 5) d ORDER BY d),
         i % 3
    FROM generate_series(1, 300) i" >/dev/null
check "model trained (version|rows|fits)" "1|300|t" \
	"$(q "$OLD" "SELECT version, rows, train_accuracy > 0.9
	             FROM unlearn_train('m', 'ul_rows', 'id', 'features', 'label', hidden => '{16}', epochs => 20,
	                                options => '{\"seed\": 1, \"lr\": 0.01, \"batch_size\": 32}')")"
check "predictions agree with unlearn_evaluate" \
	"$(q "$OLD" "SELECT correct FROM unlearn_evaluate('m', 'ul_rows')")" \
	"$(q "$OLD" "SELECT count(*) FROM ul_rows WHERE unlearn_predict('m', features) = label")"
pred_before=$(predictions "$OLD")
check "no DDL guard before the update (a 0.2 object)" "0" \
	"$(q "$OLD" "SELECT count(*) FROM pg_event_trigger WHERE evtname = 'unlearn_guard_ddl'")"

echo "==== $OLD: ALTER EXTENSION unlearn UPDATE ===="
q "$OLD" "ALTER EXTENSION unlearn UPDATE"
check "installed version" "$default_version" \
	"$(q "$OLD" "SELECT extversion FROM pg_extension WHERE extname = 'unlearn'")"
check "the DDL guard event triggers exist" "unlearn_guard_ddl,unlearn_guard_ddl_end" \
	"$(q "$OLD" "SELECT string_agg(evtname, ',' ORDER BY evtname) FROM pg_event_trigger
	             WHERE evtname LIKE 'unlearn_guard_ddl%'")"
check "the guard's event triggers fire in replica mode too (ENABLE ALWAYS)" \
	"unlearn_guard_ddl:A,unlearn_guard_ddl_end:A,unlearn_guard_drop:A" \
	"$(q "$OLD" "SELECT string_agg(evtname || ':' || evtenabled::text, ',' ORDER BY evtname) FROM pg_event_trigger
	             WHERE evtname LIKE 'unlearn_guard%'")"
check "no statistics on the queue's and the ledger's feature copies" "unlearn.forgotten:0,unlearn.requests:0" \
	"$(q "$OLD" "SELECT string_agg(attrelid::regclass::text || ':' || attstattarget, ',' ORDER BY 1)
	             FROM pg_attribute WHERE attrelid IN ('unlearn.requests'::regclass, 'unlearn.forgotten'::regclass)
	               AND attname = 'features'")"
check "same predictions and probabilities on every row" "$pred_before" "$(predictions "$OLD")"
check "unlearn_verify_ledger of the trained version" "t" \
	"$(q "$OLD" "SELECT bool_and(valid) FROM unlearn_verify_ledger('m')")"
check "capture triggers on the training table, reinstalled ENABLE ALWAYS with the row capture of replication (ENABLE REPLICA)" \
	"unlearn_capture_apply:R,unlearn_capture_delete:A,unlearn_capture_update:A,unlearn_guard_truncate:A" \
	"$(q "$OLD" "SELECT string_agg(tgname || ':' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger
	             WHERE tgrelid = 'ul_rows'::regclass AND NOT tgisinternal")"

echo "==== $OLD: unlearn after the update ===="
check "unlearn_rows(m, {3,4}): version|forgotten" "2|2" \
	"$(q "$OLD" "SELECT version, forgotten FROM unlearn_rows('m', ARRAY[3, 4])")"
q "$OLD" "DELETE FROM ul_rows WHERE id IN (10, 11, 12)" >/dev/null
check "the worker unlearned a DELETE (unlearn_wait)" "t" "$(q "$OLD" "SELECT unlearn_wait('m', '60 s')")"
check "versions (reason:parent)" "train:,unlearn:1,auto-unlearn:2" \
	"$(q "$OLD" "SELECT string_agg(reason || ':' || coalesce(parent::text, ''), ',' ORDER BY version)
	             FROM unlearn.versions WHERE model = 'm'")"
check "ledger rows|out of the manifest" "5|0" \
	"$(q "$OLD" "SELECT (SELECT count(*) FROM unlearn.forgotten WHERE model = 'm'),
	                    (SELECT count(*) FROM unlearn_manifest('m') x WHERE x IN (3, 4, 10, 11, 12))")"
check "unlearn_verify_ledger: links|valid" "3|3" \
	"$(q "$OLD" "SELECT count(*), count(*) FILTER (WHERE valid) FROM unlearn_verify_ledger('m')")"
check "unlearn_confirm_forgotten" "t" "$(q "$OLD" "SELECT unlearn_confirm_forgotten('m')")"
check "the 0.1 model keeps its array form (features_column|feature_columns|encoding rows)" "features|<none>|0" \
	"$(q "$OLD" "SELECT features_column, coalesce(feature_columns::text, '<none>'),
	                    (SELECT count(*) FROM unlearn.encodings) FROM unlearn.models WHERE name = 'm'")"
check "the ledger gains target_loss, NULL for the 0.1 rows (rows|with a target)" "5|0" \
	"$(q "$OLD" "SELECT count(*), count(target_loss) FROM unlearn.forgotten WHERE model = 'm'")"
check "the 0.1 model predicts on a row that has its features column" \
	"$(q "$OLD" "SELECT count(*) FROM ul_rows WHERE unlearn_predict('m', features) = label")" \
	"$(q "$OLD" "SELECT count(*) FROM ul_rows r WHERE unlearn_predict('m', r) = label")"
q "$OLD" "CREATE TABLE ul_cols AS SELECT id, features[1] AS a, features[2] AS b,
            CASE WHEN id % 4 = 0 THEN NULL ELSE (ARRAY['x', 'y', 'z'])[1 + id % 3] END AS c, label
          FROM ul_rows; ALTER TABLE ul_cols ADD PRIMARY KEY (id)" >/dev/null
check "a column model trains after the update (rows)" "$(q "$OLD" "SELECT count(*) FROM ul_cols")" \
	"$(q "$OLD" "SELECT rows FROM unlearn_train(model => 'mc', relation => 'ul_cols', id_column => 'id',
	                                            label_column => 'label', hidden => '{8}', epochs => 5)")"
check "its inputs and encoding recorded (inputs|encoding)" "6|t" \
	"$(q "$OLD" "SELECT m.features, e.inputs IS NOT NULL FROM unlearn.models m
	             JOIN unlearn.encodings e ON e.model = m.name WHERE m.name = 'mc'")"
check "the 0.1 model forgets exactly ({\"method\": \"exact\"}): version|method|guarantee" "4|exact|exact" \
	"$(q "$OLD" "SELECT version, method FROM unlearn_rows('m', ARRAY[20], '{\"method\": \"exact\"}')")|$(q "$OLD" \
		"SELECT guarantee FROM unlearn.versions WHERE model = 'm' AND version = 4")"
q "$OLD" "CREATE TABLE ul_sh AS SELECT * FROM ul_rows; ALTER TABLE ul_sh ADD PRIMARY KEY (id)" >/dev/null
check "a sharded model trains after the update (rows|shards)" "$(q "$OLD" "SELECT count(*) FROM ul_sh")|3" \
	"$(q "$OLD" "SELECT rows FROM unlearn_train('ms', 'ul_sh', 'id', 'features', 'label', hidden => '{8}',
	                                            epochs => 5, options => '{\"shards\": 3}')")|$(q "$OLD" \
		"SELECT options->>'shards' FROM unlearn.models WHERE name = 'ms'")"
check "an exact delete retrains only the shard of its row (unlearn_shard)" "t" \
	"$(q "$OLD" "SELECT 1 FROM unlearn_rows('ms', ARRAY[30], '{\"method\": \"exact\"}')" >/dev/null
	   q "$OLD" "SELECT metrics->'retrained_shards' = jsonb_build_array(unlearn_shard(30, 3))
	             FROM unlearn.versions WHERE model = 'ms' AND version = 2")"
check "the manifests gain shards, NULL for every version so far (versions|with shards)" \
	"$(q "$OLD" "SELECT count(*) FROM unlearn.versions")|0" \
	"$(q "$OLD" "SELECT count(*), count(shards) FROM unlearn.manifests")"
check "the manifests' ids and shards are compressed with lz4 after the update (ids|shards)" "l|l" \
	"$(q "$OLD" "SELECT string_agg(attcompression::text, '|' ORDER BY attname) FROM pg_attribute
	             WHERE attrelid = 'unlearn.manifests'::regclass AND attname IN ('ids', 'shards')")"
check "the versions' weights are stored out of line, uncompressed, after the update" "e" \
	"$(q "$OLD" "SELECT attstorage FROM pg_attribute
	             WHERE attrelid = 'unlearn.versions'::regclass AND attname = 'weights'")"
q "$OLD" "CREATE TABLE ul_parts (id bigint, features real[], label int) PARTITION BY RANGE (id);
          CREATE TABLE ul_parts_a PARTITION OF ul_parts FOR VALUES FROM (MINVALUE) TO (100);
          CREATE TABLE ul_parts_b PARTITION OF ul_parts FOR VALUES FROM (100) TO (MAXVALUE);
          INSERT INTO ul_parts SELECT * FROM ul_rows" >/dev/null
check "a model sharded by partition trains after the update (shards|ids with a shard)" \
	"2|$(q "$OLD" "SELECT count(*) FROM ul_parts")" \
	"$(q "$OLD" "SELECT 1 FROM unlearn_train('mp', 'ul_parts', 'id', 'features', 'label', hidden => '{8}',
	                                         epochs => 5, options => '{\"shards\": \"partition\"}')" >/dev/null
	   q "$OLD" "SELECT (SELECT options->>'shards' FROM unlearn.models WHERE name = 'mp'),
	                    (SELECT cardinality(shards) FROM unlearn.manifests WHERE model = 'mp')")"

echo "==== $NEW: CREATE EXTENSION unlearn; same objects as the updated $OLD ===="
q postgres "CREATE DATABASE $NEW" >/dev/null
q "$NEW" "CREATE EXTENSION unlearn"
check "installed version" "$default_version" \
	"$(q "$NEW" "SELECT extversion FROM pg_extension WHERE extname = 'unlearn'")"
members "$OLD" >"$UNLEARN_SERVER_DIR/members_old.txt"
members "$NEW" >"$UNLEARN_SERVER_DIR/members_new.txt"
if diff -u "$UNLEARN_SERVER_DIR/members_new.txt" "$UNLEARN_SERVER_DIR/members_old.txt" \
	>"$UNLEARN_SERVER_DIR/members.diff"; then
	ok "members and definitions identical ($(grep -c '^member ' "$UNLEARN_SERVER_DIR/members_new.txt") members," \
		"$(wc -l <"$UNLEARN_SERVER_DIR/members_new.txt") lines)"
else
	bad "the updated extension differs from a fresh one (- fresh, + updated):"
	sed 's/^/        /' "$UNLEARN_SERVER_DIR/members.diff" | head -n 60
fi
check "\\dx+ unlearn identical" "$(upsql -d "$NEW" -c '\dx+ unlearn' | md5sum)" \
	"$(upsql -d "$OLD" -c '\dx+ unlearn' | md5sum)"
