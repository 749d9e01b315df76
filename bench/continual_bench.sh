#!/usr/bin/env bash
#
# bench/continual_bench.sh: continual unlearning with and without the ledger's
# feature copies.  With unlearn.feature_retention = 0 (the default) the copy
# of a forgotten row is erased once its run has verified it, so later runs
# cannot keep it forgotten; with -1 every later run keeps the earlier rows
# misclassified (prior rows).  The Fashion-MNIST MLP (784-256-10, 10 epochs,
# seed 42) is trained on a copy of fashion_train.  Per seed r =
# 1..BENCH_CONTINUAL_SEEDS and per retention, in a transaction rolled back at
# the end: BENCH_CONTINUAL_REQUESTS requests of BENCH_CONTINUAL_ROWS random rows
# each (unlearn_rows), the rows kept aside by the benchmark; after each request,
# how many rows of the earlier requests the model predicts right again.  At the
# end the ledger's copies are put back from the benchmark's own (their sha256
# unchanged) so that a reference retrain (unlearn_retrain with "reference") and
# unlearn_compare_retrain can measure every forgotten row: the share predicted
# right, the MIA member rate, test accuracy, unlearned against retrained.
# Guard, exact-when-cheaper and consolidation off: every version approximate.
#
# Needs: the PG* environment pointing at a database with the extension and
# fashion_train / fashion_test loaded (bench/run.sh does that), as a superuser.
#
# Environment: BENCH_CONTINUAL_SEEDS (3), BENCH_CONTINUAL_REQUESTS (10),
# BENCH_CONTINUAL_ROWS (16), BENCH_CONTINUAL_RETENTIONS ("0 -1").
set -euo pipefail

SEEDS=${BENCH_CONTINUAL_SEEDS:-3}
REQUESTS=${BENCH_CONTINUAL_REQUESTS:-10}
ROWS=${BENCH_CONTINUAL_ROWS:-16}
read -r -a RETENTIONS <<<"${BENCH_CONTINUAL_RETENTIONS:-0 -1}"
TABLE=continual_train
MODEL=continual_bench
BENCH_NAME=continual_bench
. "$(dirname "${BASH_SOURCE[0]}")/lib_fashion_copy.sh"
fashion_copy
train=$(fashion_train_model '{256}' 10 '{"seed": 42}')
echo "continual_bench: model $MODEL, 784-256-10, 10 epochs: $train;" \
	"test accuracy $(q "SELECT round(accuracy::numeric, 4) FROM unlearn_evaluate('$MODEL', 'fashion_test')")"
echo "  $REQUESTS requests of $ROWS rows, cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# One session per seed and retention; result lines "R|seed|retention|what|value[|value]".
for ((r = 1; r <= SEEDS; r++)); do
	for ret in "${RETENTIONS[@]}"; do
		{
			cat <<SQL
SET client_min_messages = warning;
SET unlearn.max_accuracy_drop = 100;
SET unlearn.exact_when_cheaper = off;
SET unlearn.consolidate_after = 0;
SET unlearn.feature_retention = $ret;
SELECT setseed(0.1 * $r);
BEGIN;
CREATE TEMP TABLE kept (req int, id bigint, pixels real[], label int) ON COMMIT DROP;
SQL
			for ((i = 1; i <= REQUESTS; i++)); do
				cat <<SQL
INSERT INTO kept SELECT $i, id, pixels, label FROM $TABLE WHERE id NOT IN (SELECT id FROM kept)
  ORDER BY random() LIMIT $ROWS;
SELECT steps FROM unlearn_rows('$MODEL', ARRAY(SELECT id FROM kept WHERE req = $i)) \gset
SELECT 'R|$r|$ret|after|$i|' || count(*) FILTER (WHERE unlearn_predict('$MODEL', pixels) = label::text)
       || '|' || count(*) || '|' || :'steps' FROM kept WHERE req < $i;
SQL
			done
			cat <<SQL
UPDATE unlearn.forgotten f SET features = k.pixels FROM kept k
 WHERE f.model = '$MODEL' AND f.id = k.id AND f.features IS NULL;
SELECT version FROM unlearn_retrain('$MODEL', '{"reference": true}') \gset
SELECT 'R|$r|$ret|' || metric || '|' || coalesce(round(unlearned::numeric, 4)::text, 'null') || '|'
       || coalesce(round(retrained::numeric, 4)::text, 'null')
FROM unlearn_compare_retrain('$MODEL', 'fashion_test');
ROLLBACK;
SQL
		} >"$work/run.sql"
		"$PSQL" -X -q -v ON_ERROR_STOP=1 -At -f "$work/run.sql" | grep '^R|' | tee -a "$work/results"
	done
done

echo
echo "  means ± s.d. over $SEEDS seeds (load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
for ret in "${RETENTIONS[@]}"; do
	awk -F'|' -v t="$ret" -v last="$REQUESTS" "$MSD_AWK"'
		$3 == t && $4 == "after" && $5 == last { na++; again[na] = $7 > 0 ? $6 / $7 : 0 }
		$3 == t && $4 != "after" { m = $4; nm[m]++; u[m, nm[m]] = $5; rt[m, nm[m]] = $6; names[m] = 1 }
		END {
			printf "  retention %-3s earlier rows predicted right again after request %s: %s\n", t, last, msd(again, na)
			for (m in names) {
				n = nm[m]; for (i = 1; i <= n; i++) { a[i] = u[m, i]; b[i] = rt[m, i] }
				printf "  retention %-3s %-18s unlearned %s   reference retrain %s\n", t, m, msd(a, n), msd(b, n)
			}
		}' "$work/results"
done
