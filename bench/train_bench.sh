#!/usr/bin/env bash
#
# bench/train_bench.sh: the training benchmark.  Fashion-MNIST, MLP with one
# hidden layer of 256, 10 epochs, seed 42, trained by unlearn_train in one
# backend; then unlearn_evaluate on fashion_test.  Prints:
#   - load seconds: reading the rows from the table (reported apart),
#   - training seconds and seconds per epoch inside the extension,
#   - train and test accuracy,
#   - the backend's peak memory (VmHWM of /proc/<backend pid>/status, read
#     while the session that trained is still open).
#
# Needs: the PG* environment pointing at a database with the extension
# created and fashion_train / fashion_test loaded (bench/run.sh does all
# that), and /proc of the server's processes readable (same machine; root,
# or the server's OS user).
#
# Environment: BENCH_EPOCHS (10), BENCH_HIDDEN ('{256}'), BENCH_MODEL
# (train_bench), BENCH_SEED (42), PSQL (psql from pg_config --bindir).
set -euo pipefail

EPOCHS=${BENCH_EPOCHS:-10}
HIDDEN=${BENCH_HIDDEN:-'{256}'}
MODEL=${BENCH_MODEL:-train_bench}
SEED=${BENCH_SEED:-42}
if [ -z "${PSQL:-}" ]; then
	PSQL="$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)/psql"
fi

echo "train_bench: Fashion-MNIST, hidden $HIDDEN, $EPOCHS epochs, seed $SEED" \
	"(cores: $(nproc), OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-unset})"

out=$(mktemp)
trap 'rm -f "$out"' EXIT

# One session: train, read /proc/<its pid>/status while it is alive, evaluate.
# Result lines are tagged "R|key|value"; NOTICEs (epoch progress) go to stderr.
"$PSQL" -X -q -v ON_ERROR_STOP=1 -At -F '|' >"$out" <<SQL
SET unlearn.progress = on;
SELECT unlearn_drop_model(name) FROM unlearn.models WHERE name = '$MODEL';
SELECT 'R|threads|' || current_setting('unlearn.threads', true);
SELECT pg_backend_pid() AS pid \gset
\setenv UNLEARN_BENCH_PID :pid
\! awk '/^VmHWM:/ { print "R|hwm_before_kb|" \$2 }' /proc/\$UNLEARN_BENCH_PID/status
SELECT 'R|train_rows|' || count(*) FROM fashion_train;
SELECT 'R|test_rows|' || count(*) FROM fashion_test;
SELECT clock_timestamp() AS t0 \gset
SELECT 'R|rows|' || rows, 'R|classes|' || classes,
       'R|train_accuracy|' || train_accuracy, 'R|seconds|' || seconds,
       'R|load_seconds|' || load_seconds, 'R|train_seconds|' || train_seconds
  FROM unlearn_train(model => '$MODEL', relation => 'fashion_train',
                     id_column => 'id', features_column => 'pixels',
                     label_column => 'label', hidden => '$HIDDEN',
                     epochs => $EPOCHS, options => '{"seed": $SEED}');
SELECT 'R|wall_seconds|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
\! awk '/^(VmHWM|VmRSS|RssShmem):/ { print "R|" \$1 "kb|" \$2 }' /proc/\$UNLEARN_BENCH_PID/status
SELECT clock_timestamp() AS t0 \gset
SELECT 'R|test_accuracy|' || accuracy, 'R|eval_rows|' || rows, 'R|eval_correct|' || correct
  FROM unlearn_evaluate('$MODEL', 'fashion_test');
SELECT 'R|eval_seconds|' || extract(epoch FROM clock_timestamp() - :'t0'::timestamptz);
SQL

# psql prints each column of a row on one line separated by '|': split them.
declare -A R
while IFS= read -r line; do
	while [[ $line == R\|* ]]; do
		rest=${line#R|}
		key=${rest%%|*}
		rest=${rest#*|}
		val=${rest%%|R|*}
		R[$key]=$val
		if [[ $rest == *"|R|"* ]]; then line="R|${rest#*|R|}"; else line=; fi
	done
done <"$out"

for k in rows train_seconds load_seconds seconds test_accuracy VmHWM:kb; do
	if [ -z "${R[$k]:-}" ]; then
		echo "train_bench: missing result '$k' in the psql output:" >&2
		cat "$out" >&2
		exit 1
	fi
done

f() { awk -v x="$1" "BEGIN { printf \"$2\", x }"; }
mib() { awk -v x="${1:-0}" 'BEGIN { printf "%.0f", x / 1024 }'; }
per_epoch=$(awk -v s="${R[train_seconds]}" -v e="$EPOCHS" 'BEGIN { printf "%.2f", s / e }')

echo
printf '  %-44s %s\n' "metric" "value"
printf '  %-44s %s\n' "--------------------------------------------" "----------"
row() { printf '  %-44s %s\n' "$1" "$2"; }
row "training rows (table)" "${R[rows]} (${R[train_rows]:-?})"
row "unlearn.threads" "${R[threads]:-?}"
row "load: reading the table (s)" "$(f "${R[load_seconds]}" %.2f)"
row "training (s)" "$(f "${R[train_seconds]}" %.2f)"
row "seconds per epoch" "$per_epoch"
row "unlearn_train total (s)" "$(f "${R[seconds]}" %.2f)"
row "unlearn_train wall clock (s)" "$(f "${R[wall_seconds]:-0}" %.2f)"
row "train accuracy" "$(f "${R[train_accuracy]:-0}" %.4f)"
row "test accuracy (${R[eval_correct]:-?} of ${R[eval_rows]:-?} rows)" "$(f "${R[test_accuracy]}" %.4f)"
row "unlearn_evaluate (s)" "$(f "${R[eval_seconds]:-0}" %.2f)"
row "backend peak RSS, VmHWM (MiB)" "$(mib "${R[VmHWM:kb]}")"
row "  before training (MiB)" "$(mib "${R[hwm_before_kb]:-0}")"
row "  shared memory in RSS after training (MiB)" "$(mib "${R[RssShmem:kb]:-0}")"
