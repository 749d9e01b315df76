#!/usr/bin/env bash
#
# bench/unseen_bench.sh: the two unlearning targets against a reference
# retrain, by the membership-inference attack of the audits.  The
# Fashion-MNIST MLP (784-256-10, 10 epochs, seed 42) is trained on a copy of
# fashion_train with 10 % of its rows held out ({"validation": 0.1}: the loss
# reference of the target "unseen").  Then, per seed r = 1..BENCH_UNSEEN_SEEDS
# (ids drawn with setseed(0.1 r)) and per target (misclassify, unseen), in a
# transaction that is rolled back:
#
#   unlearn_rows(model, k random ids, '{"target": T}')
#   unlearn_retrain(model, '{"reference": true}')    the exact reference, without the rows
#   unlearn_compare_retrain(model, 'fashion_test')   both versions on the same rows
#
# and prints, for the unlearned version and the reference: the MIA member rate
# of the k forgotten rows (the attack: a logistic regression on a row's loss,
# fit on a sample of remaining rows against the test rows), the share of them
# still predicted right, and test accuracy; then means and sample s.d. over
# the seeds.  The runs keep feature copies (unlearn.feature_retention = -1,
# which the comparison needs), with the accuracy guard, exact-when-cheaper and
# consolidation off so that every version is the approximate method's.
#
# Needs: the PG* environment pointing at a database with the extension and
# fashion_train / fashion_test loaded (bench/run.sh does that), as a superuser.
#
# Environment: BENCH_UNSEEN_SEEDS (3), BENCH_UNSEEN_K (128), BENCH_UNSEEN_EPOCHS (10),
# BENCH_UNSEEN_TARGETS ("misclassify unseen"), BENCH_UNSEEN_OPTIONS (more unlearning
# options as JSON object keys, e.g. '"margin": 0.05').
set -euo pipefail

SEEDS=${BENCH_UNSEEN_SEEDS:-3}
K=${BENCH_UNSEEN_K:-128}
EPOCHS=${BENCH_UNSEEN_EPOCHS:-10}
read -r -a TARGETS <<<"${BENCH_UNSEEN_TARGETS:-misclassify unseen}"
MORE=${BENCH_UNSEEN_OPTIONS:+, $BENCH_UNSEEN_OPTIONS}
TABLE=unseen_train
MODEL=unseen_bench
BENCH_NAME=unseen_bench
. "$(dirname "${BASH_SOURCE[0]}")/lib_fashion_copy.sh"
fashion_copy
train=$(fashion_train_model '{256}' "$EPOCHS" '{"seed": 42, "validation": 0.1}')
echo "unseen_bench: model $MODEL, 784-256-10, $EPOCHS epochs, 10 % held out: $train"
echo "  test accuracy $(q "SELECT round(accuracy::numeric, 4) FROM unlearn_evaluate('$MODEL', 'fashion_test')");" \
	"loss reference (quantiles 0, 0.25, 0.5, 0.75, 1): $(q "SELECT concat_ws(', ', metrics->'unseen_loss'->>0,
	   metrics->'unseen_loss'->>8, metrics->'unseen_loss'->>16, metrics->'unseen_loss'->>24, metrics->'unseen_loss'->>32)
	   FROM unlearn.versions WHERE model = '$MODEL' AND version = 1")"
echo "  unlearning options: {\"target\": T$MORE}"
echo "  k = $K, cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# One session per seed and target; result lines "R|seed|target|metric|unlearned|retrained|steps".
for ((r = 1; r <= SEEDS; r++)); do
	for t in "${TARGETS[@]}"; do
		"$PSQL" -X -q -v ON_ERROR_STOP=1 -At <<SQL | grep '^R|' | tee -a "$work/results"
SET client_min_messages = warning;
SET unlearn.feature_retention = -1;
SET unlearn.max_accuracy_drop = 100;
SET unlearn.exact_when_cheaper = off;
SET unlearn.consolidate_after = 0;
SELECT setseed(0.1 * $r);
BEGIN;
SELECT steps FROM unlearn_rows('$MODEL', ARRAY(SELECT id FROM $TABLE ORDER BY random() LIMIT $K),
                               options => '{"target": "$t"$MORE}') \gset
SELECT 'R|$r|$t|' || x.m || '|' || round(x.v::numeric, 3) || '|null|' || :'steps'
FROM (SELECT percentile_cont(ARRAY[0.1, 0.5, 0.9]) WITHIN GROUP
               (ORDER BY -ln(greatest(u.true_class_probability, 1e-30)) / f.target_loss) AS p
      FROM unlearn_forgotten('$MODEL') u JOIN unlearn.forgotten f ON f.model = '$MODEL' AND f.id = u.id
      WHERE f.target_loss > 0 HAVING count(*) > 0) s,
     unnest(ARRAY['loss_target_p10', 'loss_target_p50', 'loss_target_p90'], s.p) AS x(m, v);
SELECT version FROM unlearn_retrain('$MODEL', '{"reference": true}') \gset
SELECT 'R|$r|$t|' || metric || '|' || coalesce(round(unlearned::numeric, 4)::text, 'null') || '|'
       || coalesce(round(retrained::numeric, 4)::text, 'null') || '|' || :'steps'
FROM unlearn_compare_retrain('$MODEL', 'fashion_test');
ROLLBACK;
SQL
	done
done

echo
echo "  means ± s.d. over $SEEDS seeds (load average now $(cut -d' ' -f1-3 /proc/loadavg)):"
for t in "${TARGETS[@]}"; do
	for m in mia_member_rate forget_accuracy test_accuracy; do
		awk -F'|' -v t="$t" -v m="$m" "$MSD_AWK"'
			$3 == t && $4 == m { n++; u[n] = $5; rt[n] = $6; st[n] = $7 }
			END { if (n == 0) { print "  " t " " m ": no data"; exit }
				printf "  %-11s %-16s unlearned %s   reference retrain %s   (steps %s)\n", t, m, msd(u, n), msd(rt, n), msd(st, n) }
		' "$work/results"
	done
	# the forgotten rows' loss over their target loss (target unseen): its quantiles 0.1, 0.5, 0.9
	for m in loss_target_p10 loss_target_p50 loss_target_p90; do
		awk -F'|' -v t="$t" -v m="$m" "$MSD_AWK"'
			$3 == t && $4 == m { n++; u[n] = $5 }
			END { if (n > 0) printf "  %-11s %-16s %s\n", t, m, msd(u, n) }
		' "$work/results"
	done
done
