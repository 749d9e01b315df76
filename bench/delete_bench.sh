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
#   auto-on@N  the same with unlearn.worker_cpu_share = N (the share of the
#              time the worker computes while sessions write; 100 = never
#              pauses), for comparisons within one run
#
# Fairness: same table contents, primary key, VACUUM ANALYZE and CHECKPOINT
# before every run; the same pgbench script, clients and protocol
# (prepared), and the same work: a fixed number of transactions, each
# deleting exactly one existing row (ids come from a sequence through a
# fixed permutation of 1..N, so every set-up deletes the same rows in the
# same order and no transaction hits an already deleted id); the set-ups run
# interleaved over BENCH_DELETE_ROUNDS rounds (order reversed every other
# round) and the summary gives the mean.  The throwaway server runs with
# fsync = off and synchronous_commit = off: commits cost almost nothing, so
# the trigger's share of a transaction, and the ratios, are worst cases next
# to a durable configuration.  While pgbench runs, pg_stat_activity is
# sampled every 0.5 s for pgbench sessions waiting on a lock (a DELETE
# should never wait for the worker); a run still going after
# BENCH_DELETE_TIMEOUT s is stopped and its rate computed from the rows it
# deleted (marked '*').
#
# Needs: the PG* environment pointing at a database with the extension and
# fashion_train loaded (bench/run.sh does that), and pgbench.
#
# Environment: BENCH_DELETE_ROWS (200000), BENCH_DELETE_TRANSACTIONS (100000,
# split between the clients), BENCH_DELETE_ROUNDS (2), BENCH_DELETE_CLIENTS
# (2), BENCH_DELETE_TIMEOUT (60), BENCH_DELETE_HIDDEN ('{256}'),
# BENCH_DELETE_EPOCHS (2: the model's quality does not matter here, its size
# does), BENCH_DELETE_SETUPS ("plain auto-off capture auto-on"),
# BENCH_DELETE_PREWARM (0; 1 loads each fresh table into shared buffers with
# pg_prewarm before the run, so that the worker's reads of it do not go to
# the disk: give the server shared_buffers above the table's 250 MB).
set -euo pipefail

ROWS=${BENCH_DELETE_ROWS:-200000}
TRANSACTIONS=${BENCH_DELETE_TRANSACTIONS:-100000}
TIMEOUT=${BENCH_DELETE_TIMEOUT:-60}
ROUNDS=${BENCH_DELETE_ROUNDS:-2}
CLIENTS=${BENCH_DELETE_CLIENTS:-2}
PER_CLIENT=$((TRANSACTIONS / CLIENTS))
TRANSACTIONS=$((PER_CLIENT * CLIENTS))
HIDDEN=${BENCH_DELETE_HIDDEN:-'{256}'}
EPOCHS=${BENCH_DELETE_EPOCHS:-2}
PREWARM=${BENCH_DELETE_PREWARM:-0}
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
now() { date +%s.%N; }

# Drops the model even while the worker is in a run on it (the run holds the
# model's row lock for its whole length): cancel the run, retry.
drop_model() {
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		[ "$(q "SELECT count(*) FROM unlearn.models WHERE name = '$MODEL'")" = 0 ] && return 0
		q "SELECT pg_cancel_backend(pid) FROM pg_stat_activity
		    WHERE backend_type = 'unlearn worker' AND datname = current_database() AND state = 'active'" >/dev/null
		"$PSQL" -X -q -At -c "SET lock_timeout = '3s'" \
			-c "SELECT unlearn_drop_model('$MODEL')" >/dev/null 2>&1 && return 0
	done
	echo "delete_bench: could not drop model $MODEL" >&2
	return 1
}

work=$(mktemp -d)
bench_pid=
cleanup() {
	[ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'" >/dev/null 2>&1 || true
	drop_model >/dev/null 2>&1 || true
	q "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1 || true
	q "DROP SEQUENCE IF EXISTS ${TABLE}_seq" >/dev/null 2>&1 || true
	q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null 2>&1 || true
	q "ALTER SYSTEM RESET unlearn.worker_cpu_share" >/dev/null 2>&1 || true
	q "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/delete.sql" <<SQL
DELETE FROM $TABLE WHERE id = (SELECT (nextval('${TABLE}_seq') * $MULT) % $ROWS + 1);
SQL

[ "$(q "SELECT to_regclass('fashion_train') IS NOT NULL")" = t ] ||
	{ echo "delete_bench: fashion_train is missing (bench/load_fashion.sh)" >&2; exit 1; }

echo "delete_bench: $ROWS rows x 784 real features; pgbench -c $CLIENTS -j $CLIENTS -t $PER_CLIENT -M prepared" \
	"($TRANSACTIONS single-row DELETEs a run), $ROUNDS round(s), model hidden $HIDDEN, $EPOCHS epochs"
echo "  cores: $(nproc), load average: $(cut -d' ' -f1-3 /proc/loadavg);" \
	"unlearn.max_batch $(q "SHOW unlearn.max_batch"), unlearn.batch_window $(q "SHOW unlearn.batch_window")," \
	"synchronous_commit $(q "SHOW synchronous_commit"), fsync $(q "SHOW fsync")"
echo "  each transaction: $(cat "$work/delete.sql")"

# prepare SETUP: a fresh table (and model) for one run
prepare() {
	local setup=$1
	drop_model
	q "SET client_min_messages = warning; DROP TABLE IF EXISTS $TABLE; DROP SEQUENCE IF EXISTS ${TABLE}_seq" >/dev/null
	q "ALTER SYSTEM RESET unlearn.batch_window" >/dev/null
	q "ALTER SYSTEM RESET unlearn.worker_cpu_share" >/dev/null
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
		auto-on@*) q "ALTER SYSTEM SET unlearn.worker_cpu_share = ${setup#auto-on@}" >/dev/null ;;
	esac
	q "SELECT pg_reload_conf()" >/dev/null
	q "VACUUM ANALYZE $TABLE" >/dev/null
	if [ "$PREWARM" = 1 ]; then
		q "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_prewarm" >/dev/null
		q "SELECT pg_prewarm('$TABLE')" >/dev/null
	fi
	q "CHECKPOINT" >/dev/null
	sleep 1
}

declare -A TPS_SUM LAT_SUM DELETED_SUM DONE_SUM SECS_SUM WAIT_SUM N
for s in "${SETUPS[@]}"; do
	TPS_SUM[$s]=0 LAT_SUM[$s]=0 DELETED_SUM[$s]=0 DONE_SUM[$s]=0 SECS_SUM[$s]=0 WAIT_SUM[$s]=0 N[$s]=0
done

echo
printf '  %-5s %-9s %9s %9s %9s %8s %9s %10s %12s\n' round setup tps "lat (ms)" seconds deleted queued unlearned "lock waits"
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${SETUPS[@]}")
	if [ $((r % 2)) -eq 0 ]; then
		order=()
		for ((i = ${#SETUPS[@]} - 1; i >= 0; i--)); do order+=("${SETUPS[i]}"); done
	fi
	for s in "${order[@]}"; do
		prepare "$s"
		t0=$(now)
		"$PGBENCH" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -t "$PER_CLIENT" -f "$work/delete.sql" \
			>"$work/out" 2>&1 &
		bench_pid=$!
		samples=0 waits=0 timed_out=0
		while kill -0 "$bench_pid" 2>/dev/null; do
			sleep 0.5
			samples=$((samples + 1))
			# what the pgbench sessions wait on (CPU: running), kept per set-up
			ev=$(q "SELECT string_agg(coalesce(wait_event_type || ':' || wait_event, 'CPU'), ' ')
			          FROM pg_stat_activity WHERE application_name = 'pgbench' AND state = 'active'" || echo)
			[ -z "$ev" ] || tr ' ' '\n' <<<"$ev" >>"$work/events.$s"
			# and the worker (Timeout:PgSleep while it pauses: unlearn.worker_cpu_share)
			q "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
			    WHERE backend_type = 'unlearn worker' AND state = 'active'" >>"$work/worker.$s" || true
			w=$(grep -c '^Lock:' <<<"${ev// /$'\n'}" || true)
			[ "$w" -gt 0 ] && waits=$((waits + 1))
			if awk -v a="$t0" -v b="$(now)" -v l="$TIMEOUT" 'BEGIN { exit !(b - a > l) }'; then
				timed_out=1
				kill "$bench_pid" 2>/dev/null || true
				break
			fi
		done
		rc=0
		wait "$bench_pid" || rc=$?
		bench_pid=
		secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
		deleted=$(q "SELECT $ROWS - count(*) FROM $TABLE")
		if [ "$timed_out" = 1 ]; then
			q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'" >/dev/null
			tps=$(awk -v d="$deleted" -v s="$secs" 'BEGIN { printf "%.1f", d / s }')
			lat=$(awk -v t="$tps" -v c="$CLIENTS" 'BEGIN { printf "%.3f", (t > 0 ? 1000 * c / t : 0) }')
			mark='*'
		else
			if [ "$rc" -ne 0 ]; then cat "$work/out" >&2; exit 1; fi
			tps=$(awk '/^tps = / { print $3; exit }' "$work/out")
			lat=$(awk '/^latency average = / { print $4; exit }' "$work/out")
			mark=
		fi
		queued=0 ndone=0
		if [ "$s" != plain ]; then
			# requests queued, and those the worker had unlearned by the end of the run
			read -r queued ndone < <(q "SELECT count(*), count(*) FILTER (WHERE state = 'done')
			                            FROM unlearn.requests WHERE model = '$MODEL'" | tr '|' ' ')
		fi
		printf '  %-5s %-9s %9.1f%1s %8.3f %9s %8d %9d %10d %6d of %3d\n' "$r" "$s" "$tps" "$mark" "$lat" "$secs" \
			"$deleted" "$queued" "$ndone" "$waits" "$samples"
		TPS_SUM[$s]=$(awk -v a="${TPS_SUM[$s]}" -v b="$tps" 'BEGIN { print a + b }')
		LAT_SUM[$s]=$(awk -v a="${LAT_SUM[$s]}" -v b="$lat" 'BEGIN { print a + b }')
		SECS_SUM[$s]=$(awk -v a="${SECS_SUM[$s]}" -v b="$secs" 'BEGIN { print a + b }')
		DELETED_SUM[$s]=$((DELETED_SUM[$s] + deleted))
		DONE_SUM[$s]=$((DONE_SUM[$s] + ndone))
		WAIT_SUM[$s]=$((WAIT_SUM[$s] + waits))
		N[$s]=$((N[$s] + 1))
	done
done
drop_model

mean() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f", a / n }'; }
base=
for s in "${SETUPS[@]}"; do
	if [ "$s" = plain ]; then base=$(mean "${TPS_SUM[plain]}" "${N[plain]}"); fi
done
echo
echo "  mean over $ROUNDS round(s); ratio = tps / tps of 'plain' (target >= 0.80 with the trigger)"
printf '  %-9s %9s %9s %7s %12s %11s  %s\n' setup tps "lat (ms)" ratio "unlearned/s" "lock waits" "what runs"
for s in "${SETUPS[@]}"; do
	tps=$(mean "${TPS_SUM[$s]}" "${N[$s]}")
	lat=$(awk -v a="${LAT_SUM[$s]}" -v n="${N[$s]}" 'BEGIN { printf "%.3f", a / n }')
	ratio=-
	[ -n "$base" ] && ratio=$(awk -v a="$tps" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
	ups=$(awk -v d="${DONE_SUM[$s]}" -v t="${SECS_SUM[$s]}" 'BEGIN { printf "%.0f", (t > 0 ? d / t : 0) }')
	case $s in
		plain) what="no unlearn triggers" ;;
		auto-off) what="trigger fires, auto off: queues nothing" ;;
		capture) what="trigger queues every row, worker held back" ;;
		auto-on) what="trigger queues, worker unlearns meanwhile" ;;
		auto-on@*) what="the same, unlearn.worker_cpu_share = ${s#auto-on@}" ;;
		*) what=? ;;
	esac
	printf '  %-9s %9s %9s %7s %12s %11s  %s\n' "$s" "$tps" "$lat" "$ratio" "$ups" "${WAIT_SUM[$s]}" "$what"
done
echo
# shares PREFIX TOP: per set-up, the TOP most frequent wait events sampled into $work/PREFIX.SETUP
shares() {
	local s
	for s in "${SETUPS[@]}"; do
		[ -s "$work/$1.$s" ] || continue
		printf '  %-9s %s\n' "$s" "$(sort "$work/$1.$s" | uniq -c | sort -rn | head -"$2" |
			awk -v n="$(wc -l <"$work/$1.$s")" '{ printf "%s %.0f%%  ", $2, 100 * $1 / n }')"
	done
}
echo "  what the pgbench sessions were doing (0.5 s samples of pg_stat_activity; CPU = not waiting):"
shares events 5
echo "  what the worker was doing while it ran (same samples; Timeout:PgSleep = pausing for the sessions):"
shares worker 4
echo
echo "  lock waits: 0.5 s samples of pg_stat_activity with a pgbench session waiting on a lock."
echo "  unlearned/s: requests the worker had finished by the end of a run, per second of the run"
echo "  (the worker shares the cores with pgbench; what it had not reached is dropped with the model)."
