#!/usr/bin/env bash
#
# bench/delete_bench.sh: what automatic unlearning costs a DELETE workload.
# pgbench, 2 clients, single-row DELETEs on a Fashion-MNIST-wide training
# table (BENCH_DELETE_ROWS rows, 784 real features, pixels cycled from
# fashion_train), in four set-ups, each on a fresh copy of the table:
#
#   plain      no unlearn triggers at all (no model)                baseline
#   auto-off   model trained, unlearn_auto(model, false): the capture
#              trigger still fires per statement but queues nothing
#   capture    auto on, worker held back (unlearn.batch_window = 60 s, so it
#              waits while deletes keep coming): the cost of the trigger
#              queueing each row (INSERT of a request with a feature copy)
#   auto-on    auto on, worker at its defaults: capture, and the worker
#              unlearning in the background, competing for the same cores
#
# Fairness: same table contents, primary key, VACUUM ANALYZE and CHECKPOINT
# before every run; same pgbench script, clients, duration and protocol
# (prepared); every transaction deletes exactly one existing row (ids
# come from a sequence through a fixed permutation of 1..N, so no
# transaction hits an already deleted id, whatever the TPS); the set-ups
# run interleaved over BENCH_DELETE_ROUNDS rounds (order reversed every
# other round) and the table gives the mean.  The throwaway server runs with
# fsync = off and synchronous_commit = off: commits cost almost nothing, so
# the trigger's share of a transaction, and the ratios, are worst cases next
# to a durable configuration.
#
# Needs: the PG* environment pointing at a database with the extension and
# fashion_train loaded (bench/run.sh does that), and pgbench.
#
# Environment: BENCH_DELETE_ROWS (200000), BENCH_DELETE_SECONDS (15),
# BENCH_DELETE_ROUNDS (2), BENCH_DELETE_CLIENTS (2), BENCH_DELETE_HIDDEN
# ('{256}'), BENCH_DELETE_EPOCHS (2: the model's quality does not matter
# here, its size does), BENCH_DELETE_SETUPS ("plain auto-off capture auto-on").
set -euo pipefail

ROWS=${BENCH_DELETE_ROWS:-200000}
DURATION=${BENCH_DELETE_SECONDS:-15}
ROUNDS=${BENCH_DELETE_ROUNDS:-2}
CLIENTS=${BENCH_DELETE_CLIENTS:-2}
HIDDEN=${BENCH_DELETE_HIDDEN:-'{256}'}
EPOCHS=${BENCH_DELETE_EPOCHS:-2}
read -r -a SETUPS <<<"${BENCH_DELETE_SETUPS:-plain auto-off capture auto-on}"
TABLE=delete_bench
MODEL=delete_bench
bindir=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
PSQL=${PSQL:-$bindir/psql}
PGBENCH=${PGBENCH:-$bindir/pgbench}

# a multiplier coprime with ROWS: id = (n * MULT) % ROWS + 1 visits every id once
MULT=7919
while [ $((ROWS % MULT)) -eq 0 ] || [ "$(awk -v a="$ROWS" -v b="$MULT" 'function g(x, y) { return y ? g(y, x % y) : x } BEGIN { print g(a, b) }')" != 1 ]; do
	MULT=$((MULT + 2))
done

q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }

work=$(mktemp -d)
cleanup() {
	q "SELECT unlearn_drop_model('$MODEL') FROM unlearn.models WHERE name = '$MODEL'" >/dev/null 2>&1 || true
	q "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1 || true
	q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null 2>&1 || true
	q "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/delete.sql" <<SQL
DELETE FROM $TABLE WHERE id = (SELECT (nextval('${TABLE}_seq') * $MULT) % $ROWS + 1);
SQL

[ "$(q "SELECT to_regclass('fashion_train') IS NOT NULL")" = t ] ||
	{ echo "delete_bench: fashion_train is missing (bench/load_fashion.sh)" >&2; exit 1; }

echo "delete_bench: $ROWS rows x 784 real features, pgbench -c $CLIENTS -j $CLIENTS -T $DURATION -M prepared," \
	"$ROUNDS round(s), model hidden $HIDDEN (cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "  each transaction: $(cat "$work/delete.sql")"

# prepare SETUP: a fresh table (and model) for one run
prepare() {
	local setup=$1
	q "SELECT unlearn_drop_model('$MODEL') FROM unlearn.models WHERE name = '$MODEL'" >/dev/null
	q "DROP TABLE IF EXISTS $TABLE; DROP SEQUENCE IF EXISTS ${TABLE}_seq" >/dev/null
	q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null
	q "CREATE TABLE $TABLE AS
	   SELECT g::bigint AS id, f.pixels, f.label
	     FROM generate_series(1, $ROWS) g
	     JOIN fashion_train f ON f.id = (g - 1) % (SELECT count(*) FROM fashion_train) + 1" >/dev/null
	q "ALTER TABLE $TABLE ADD PRIMARY KEY (id)" >/dev/null
	q "CREATE SEQUENCE ${TABLE}_seq" >/dev/null
	if [ "$setup" != plain ]; then
		q "SELECT unlearn_train('$MODEL', '$TABLE', 'id', 'pixels', 'label', hidden => '$HIDDEN',
		                       epochs => $EPOCHS, options => '{\"seed\": 42}')" >/dev/null
	fi
	case $setup in
		auto-off) q "SELECT unlearn_auto('$MODEL', false)" >/dev/null ;;
		capture) q "ALTER SYSTEM SET unlearn.batch_window = '60s'" >/dev/null ;;
	esac
	q "SELECT pg_reload_conf()" >/dev/null
	q "VACUUM ANALYZE $TABLE" >/dev/null
	q "CHECKPOINT" >/dev/null
	sleep 1
}

declare -A TPS_SUM LAT_SUM DELETED_SUM QUEUED_SUM DONE_SUM N
for s in "${SETUPS[@]}"; do TPS_SUM[$s]=0 LAT_SUM[$s]=0 DELETED_SUM[$s]=0 QUEUED_SUM[$s]=0 DONE_SUM[$s]=0 N[$s]=0; done

echo
printf '  %-6s %-9s %10s %10s %9s %9s %12s\n' round setup tps "lat (ms)" deleted queued "unlearned"
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${SETUPS[@]}")
	if [ $((r % 2)) -eq 0 ]; then
		order=()
		for ((i = ${#SETUPS[@]} - 1; i >= 0; i--)); do order+=("${SETUPS[i]}"); done
	fi
	for s in "${order[@]}"; do
		prepare "$s"
		"$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$DURATION" -f "$work/delete.sql" \
			>"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
		tps=$(awk '/^tps = / { print $3; exit }' "$work/out")
		lat=$(awk '/^latency average = / { print $4; exit }' "$work/out")
		deleted=$(q "SELECT $ROWS - count(*) FROM $TABLE")
		queued=0 ndone=0
		if [ "$s" != plain ]; then
			# requests the capture queued, and those the worker had unlearned by the end of the run
			read -r queued ndone < <(q "SELECT count(*), count(*) FILTER (WHERE state = 'done')
			                            FROM unlearn.requests WHERE model = '$MODEL'" | tr '|' ' ')
		fi
		printf '  %-6s %-9s %10.1f %10.3f %9d %9d %12d\n' "$r" "$s" "$tps" "$lat" "$deleted" "$queued" "$ndone"
		TPS_SUM[$s]=$(awk -v a="${TPS_SUM[$s]}" -v b="$tps" 'BEGIN { print a + b }')
		LAT_SUM[$s]=$(awk -v a="${LAT_SUM[$s]}" -v b="$lat" 'BEGIN { print a + b }')
		DELETED_SUM[$s]=$((DELETED_SUM[$s] + deleted))
		QUEUED_SUM[$s]=$((QUEUED_SUM[$s] + queued))
		DONE_SUM[$s]=$((DONE_SUM[$s] + ndone))
		N[$s]=$((N[$s] + 1))
	done
done
q "SELECT unlearn_drop_model('$MODEL') FROM unlearn.models WHERE name = '$MODEL'" >/dev/null
q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null

mean() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", a / n }'; }
base=
for s in "${SETUPS[@]}"; do
	if [ "$s" = plain ]; then base=$(mean "${TPS_SUM[plain]}" "${N[plain]}"); fi
done
echo
echo "  mean over $ROUNDS round(s); ratio = tps / tps of 'plain' (target >= 0.80 for the trigger set-ups)"
printf '  %-9s %10s %10s %8s %16s  %s\n' setup tps "lat (ms)" ratio "unlearned/s" "what runs"
for s in "${SETUPS[@]}"; do
	tps=$(mean "${TPS_SUM[$s]}" "${N[$s]}")
	lat=$(awk -v a="${LAT_SUM[$s]}" -v n="${N[$s]}" 'BEGIN { printf "%.3f", a / n }')
	ratio=-
	[ -n "$base" ] && ratio=$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
	ups=$(awk -v d="${DONE_SUM[$s]}" -v n="${N[$s]}" -v t="$DURATION" 'BEGIN { printf "%.0f", d / n / t }')
	case $s in
		plain) what="no unlearn triggers" ;;
		auto-off) what="trigger fires, auto off: queues nothing" ;;
		capture) what="trigger queues every row, worker held back" ;;
		auto-on) what="trigger queues, worker unlearns meanwhile" ;;
	esac
	printf '  %-9s %10s %10s %8s %16s  %s\n' "$s" "$tps" "$lat" "$ratio" "$ups" "$what"
done
echo
echo "  unlearned/s: requests the worker had finished by the end of a run, per second of the run"
echo "  (auto-on: the worker takes up to unlearn.max_batch rows a run and shares the cores with pgbench;"
echo "  whatever it had not reached when the run ended is dropped with the model, not waited for)."
