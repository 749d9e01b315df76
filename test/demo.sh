#!/usr/bin/env bash
#
# test/demo.sh: unlearn end to end on Fashion-MNIST, in a throwaway server.
# Run by `make demo` (after deps, build, install); needs the extension
# installed (`make install`).
#
#   1. start a server (/tmp/unlearn-demo) with shared_preload_libraries = 'unlearn'
#   2. CREATE EXTENSION unlearn
#   3. load fashion_train (60 000 rows) and fashion_test (10 000 rows)
#   4. train an MLP (784-256-10) inside the database, 10 epochs
#   5. evaluate on the test set
#   6. predictions for a few test rows, and over the whole test set in SQL
#   7. DELETE a few training rows; the background worker forgets them
#   8. confirm they are forgotten, and compare test accuracy before and after
#
# Environment:
#   UNLEARN_DEMO_KEEP=1          leave the server running at the end
#   UNLEARN_DEMO_EPOCHS=N        epochs (default 10)
#   UNLEARN_DEMO_MIN_ACCURACY=x  fail when test accuracy is below x (default 0.75)
#   FMNIST_TRAIN_LIMIT / FMNIST_TEST_LIMIT   load fewer rows (quick runs)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=SCRIPTDIR/lib_server.sh
. "$root/test/lib_server.sh"

EPOCHS=${UNLEARN_DEMO_EPOCHS:-10}
MIN_ACCURACY=${UNLEARN_DEMO_MIN_ACCURACY:-0.75}
MODEL=fashion

step_no=0
step() {
	step_no=$((step_no + 1))
	printf '\n==== %d. %s ====\n' "$step_no" "$*"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
fail() {
	echo "demo: FAILED: $*" >&2
	exit 1
}

finish() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ]; then
		echo >&2
		echo "demo: FAILED (exit $rc)" >&2
		unlearn_server_log_tail 30
	fi
	if [ -n "$UNLEARN_SERVER_DATA" ] && [ "${UNLEARN_DEMO_KEEP:-0}" = 1 ]; then
		echo
		echo "The server is still running (UNLEARN_DEMO_KEEP=1). Connect with:"
		echo "  $UNLEARN_PG_BINDIR/psql -h $PGHOST -p $PGPORT -U $PGUSER $PGDATABASE"
		echo "Stop it with:"
		if [ "$(id -u)" -eq 0 ]; then
			echo "  runuser -u postgres -- $UNLEARN_PG_BINDIR/pg_ctl -D $UNLEARN_SERVER_DATA stop"
		else
			echo "  $UNLEARN_PG_BINDIR/pg_ctl -D $UNLEARN_SERVER_DATA stop"
		fi
	else
		unlearn_server_stop || rc=1
	fi
	exit "$rc"
}

# ---------------------------------------------------------------- 1. server
step "Start a throwaway PostgreSQL server"
pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ "${UNLEARN_NO_PRELOAD:-0}" != 1 ] && [ ! -f "$pkglibdir/unlearn.so" ]; then
	fail "$pkglibdir/unlearn.so is not installed: run 'make install' (or 'make demo')"
fi
# The ledger keeps a copy of each forgotten row's features for a day here, so
# the demo can re-check the rows; the default (unlearn.feature_retention = 0)
# erases the copy as soon as a run has verified it, keeping only ids and hashes.
unlearn_server_start demo "unlearn.feature_retention = 86400" || fail "could not start the server"
trap finish EXIT
upsql -At -c "SELECT version()"

# ---------------------------------------------------------------- 2. extension
step "CREATE EXTENSION unlearn"
upsql -q -c "CREATE EXTENSION unlearn"
upsql -At -c "SELECT 'unlearn ' || extversion || ' installed' FROM pg_extension WHERE extname = 'unlearn'"

# ---------------------------------------------------------------- 3. data
step "Load Fashion-MNIST (COPY from the idx files)"
t0=$(now)
"$root/bench/load_fashion.sh"
echo "loaded in $(elapsed "$t0") s"
upsql -P footer=off -c "
SELECT 'fashion_train' AS table, count(*) AS rows, pg_size_pretty(pg_total_relation_size('fashion_train')) AS size FROM fashion_train
UNION ALL
SELECT 'fashion_test', count(*), pg_size_pretty(pg_total_relation_size('fashion_test')) FROM fashion_test
ORDER BY 1 DESC"
train_rows=$(upsql -At -c "SELECT count(*) FROM fashion_train")

# ---------------------------------------------------------------- 4. train
step "Train: MLP 784-256-10, $EPOCHS epochs, inside the backend"
cat <<SQL
SELECT * FROM unlearn_train(model => '$MODEL', relation => 'fashion_train',
    id_column => 'id', features_column => 'pixels', label_column => 'label',
    hidden => '{256}', epochs => $EPOCHS, options => '{"seed": 42}');
SQL
echo
# unlearn.progress = on: a NOTICE per epoch, to stderr as it comes; the
# result row goes to stdout.
train_out=$(PGOPTIONS="-c unlearn.progress=on" upsql -At -F '|' -c "
SELECT model, version, rows, classes,
       round(train_accuracy::numeric, 4), round(seconds::numeric, 2),
       round(load_seconds::numeric, 2), round(train_seconds::numeric, 2)
  FROM unlearn_train(model => '$MODEL', relation => 'fashion_train',
                     id_column => 'id', features_column => 'pixels',
                     label_column => 'label', hidden => '{256}',
                     epochs => $EPOCHS, options => '{\"seed\": 42}')")
IFS='|' read -r t_model t_version t_rows t_classes t_acc t_sec t_load t_train <<<"$train_out"
echo
printf '  %-16s %s\n' model "$t_model" version "$t_version" rows "$t_rows" classes "$t_classes" \
	"train accuracy" "$t_acc" "total seconds" "$t_sec" \
	"  reading table" "$t_load" "  training" "$t_train"
printf '  %-16s %s\n' "seconds / epoch" "$(awk -v s="$t_train" -v e="$EPOCHS" 'BEGIN { printf "%.2f", s / e }')"
[ "$t_rows" = "$train_rows" ] || fail "unlearn_train read $t_rows rows, the table has $train_rows"
[ "$t_classes" = 10 ] || fail "unlearn_train found $t_classes classes, expected 10"

# ---------------------------------------------------------------- 5. evaluate
step "Evaluate on fashion_test"
echo "SELECT * FROM unlearn_evaluate('$MODEL', 'fashion_test');"
t0=$(now)
eval_out=$(upsql -At -F '|' -c "SELECT rows, correct, round(accuracy::numeric, 4) FROM unlearn_evaluate('$MODEL', 'fashion_test')")
IFS='|' read -r e_rows e_correct e_acc <<<"$eval_out"
printf '  test rows %s, correct %s, test accuracy %s  (%s s)\n' "$e_rows" "$e_correct" "$e_acc" "$(elapsed "$t0")"
awk -v a="$e_acc" -v m="$MIN_ACCURACY" 'BEGIN { exit !(a >= m) }' ||
	fail "test accuracy $e_acc is below $MIN_ACCURACY"

# ---------------------------------------------------------------- 6. predict
step "Predictions for the first 10 test rows"
names="(VALUES (0, 'T-shirt/top'), (1, 'Trouser'), (2, 'Pullover'), (3, 'Dress'), (4, 'Coat'),
               (5, 'Sandal'), (6, 'Shirt'), (7, 'Sneaker'), (8, 'Bag'), (9, 'Ankle boot'))"
cat <<SQL
SELECT id, label, unlearn_predict('$MODEL', pixels), unlearn_predict_proba('$MODEL', pixels)
  FROM fashion_test ORDER BY id LIMIT 10;   -- with class names and the predicted class's probability
SQL
upsql -P footer=off -c "
WITH names(label, name) AS $names,
     m AS (SELECT classes FROM unlearn.models WHERE name = '$MODEL'),
     p AS (SELECT id, label,
                  unlearn_predict('$MODEL', pixels) AS predicted,
                  unlearn_predict_proba('$MODEL', pixels) AS proba
             FROM fashion_test ORDER BY id LIMIT 10)
SELECT p.id,
       tn.name AS \"true label\",
       pn.name AS predicted,
       round(p.proba[array_position(m.classes::text[], p.predicted::text)]::numeric, 3) AS probability,
       CASE WHEN p.predicted = p.label THEN 'yes' ELSE 'NO' END AS correct
  FROM p CROSS JOIN m
  LEFT JOIN names tn ON tn.label = p.label
  LEFT JOIN names pn ON pn.label = p.predicted
 ORDER BY p.id"

step "unlearn_predict over the whole test set, in SQL"
echo "SELECT count(*) FILTER (WHERE unlearn_predict('$MODEL', pixels) = label) AS correct, count(*) FROM fashion_test;"
t0=$(now)
pred_out=$(upsql -At -F '|' -c "SELECT count(*) FILTER (WHERE unlearn_predict('$MODEL', pixels) = label), count(*) FROM fashion_test")
IFS='|' read -r correct total <<<"$pred_out"
printf '  %s of %s correct (%s %%), %s s\n' "$correct" "$total" \
	"$(awk -v c="$correct" -v t="$total" 'BEGIN { printf "%.2f", 100 * c / t }')" "$(elapsed "$t0")"
# unlearn_predict row by row must agree with unlearn_evaluate
if [ "$total" != "$e_rows" ] || [ "$correct" != "$e_correct" ]; then
	fail "unlearn_predict: $correct/$total correct, unlearn_evaluate: $e_correct/$e_rows"
fi

# ---------------------------------------------------------------- 7. unlearn
step "Erasure requests: DELETE training rows, the background worker forgets them"
# Five rows the model classifies correctly today, one per class 0..4.
ids=$(upsql -At -c "
SELECT string_agg(id::text, ',' ORDER BY id) FROM (
  SELECT DISTINCT ON (label) id FROM fashion_train
   WHERE label < 5 AND unlearn_predict('$MODEL', pixels) = label
   ORDER BY label, id) s")
[ -n "$ids" ] || fail "found no correctly classified rows to delete"
version_before=$(upsql -At -c "SELECT current_version FROM unlearn.models WHERE name = '$MODEL'")
upsql -q -c "CREATE TABLE demo_deleted AS SELECT * FROM fashion_train WHERE id IN ($ids)"
echo "Before: version $version_before predicts these rows correctly"
upsql -P footer=off -c "
SELECT id, label, unlearn_predict('$MODEL', pixels) AS predicted,
       round((unlearn_predict_proba('$MODEL', pixels))[label + 1]::numeric, 3) AS true_class_probability
  FROM demo_deleted ORDER BY id"
echo "DELETE FROM fashion_train WHERE id IN ($ids);   -- autocommit"
t0=$(now)
upsql -q -c "DELETE FROM fashion_train WHERE id IN ($ids)"
upsql -P footer=off -c "SELECT id, kind, state, enqueued_at::time(0) AS enqueued FROM unlearn.requests
  WHERE model = '$MODEL' AND id IN ($ids) ORDER BY id"
echo "SELECT unlearn_wait('$MODEL', '120 s');"
[ "$(upsql -At -c "SELECT unlearn_wait('$MODEL', '120 s')")" = t ] || fail "the worker did not finish in 120 s"
echo "  drained after $(elapsed "$t0") s"
upsql -P footer=off -c "SELECT model, pending, running, done, failed, last_latency FROM unlearn.status WHERE model = '$MODEL'"
upsql -P footer=off -c "
SELECT version, parent, reason, method, rows AS manifest_rows,
       metrics->>'forgotten' AS forgotten, metrics->>'steps' AS steps, metrics->>'seconds' AS seconds
  FROM unlearn.versions WHERE model = '$MODEL' ORDER BY version"

step "Confirm: the deleted rows are forgotten"
echo "After: the new version misclassifies every deleted row"
upsql -P footer=off -c "
SELECT id, label, unlearn_predict('$MODEL', pixels) AS predicted,
       round((unlearn_predict_proba('$MODEL', pixels))[label + 1]::numeric, 3) AS true_class_probability
  FROM demo_deleted ORDER BY id"
echo "SELECT unlearn_confirm_forgotten('$MODEL');"
confirmed=$(upsql -At -c "SELECT unlearn_confirm_forgotten('$MODEL')")
echo "  $confirmed"
[ "$confirmed" = t ] || fail "unlearn_confirm_forgotten is not true"
after_out=$(upsql -At -F '|' -c "SELECT correct, round(accuracy::numeric, 4) FROM unlearn_evaluate('$MODEL', 'fashion_test')")
IFS='|' read -r a_correct a_acc <<<"$after_out"
printf '  test accuracy before %s, after %s (%s of %s correct)\n' "$e_acc" "$a_acc" "$a_correct" "$e_rows"
upsql -q -c "DROP TABLE demo_deleted"
echo
echo "demo: OK"
