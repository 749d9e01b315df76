#!/usr/bin/env bash
#
# bench/delete_ab.sh: bench/delete_bench.sh against two running servers (two
# builds of the extension, e.g. before and after a change to the capture),
# interleaved, on a non-durable and a durable setting, so the machine's load
# falls on both alike.  Each server must have the extension and fashion_train
# (bench/load_fashion.sh).  Each build can run from a private copy of the
# PostgreSQL tree, so neither touches the shared installation (PostgreSQL
# finds $libdir and its share directory relative to its own binary):
#
#   for v in old new; do      # old: a worktree at the base commit, new: this one
#     d=/tmp/pg$v; mkdir -p $d/usr/lib/postgresql $d/usr/share/postgresql
#     cp -a /usr/lib/postgresql/15 $d/usr/lib/postgresql/
#     cp -a /usr/share/postgresql/15 $d/usr/share/postgresql/
#     make -C <that build's tree> install DESTDIR=$d
#     B=$d/usr/lib/postgresql/15/bin
#     UNLEARN_PG_CONFIG=$B/pg_config UNLEARN_PG_BINDIR=$B bash -c \
#       ". test/lib_server.sh; unlearn_server_start ab$v && upsql -c 'CREATE EXTENSION unlearn'
#        && bench/load_fashion.sh"
#   done
#   bench/delete_ab.sh /tmp/unlearn-abold:PORT /tmp/unlearn-abnew:PORT
#
# For each round and each mode (off: fsync = off, synchronous_commit = off;
# durable: fsync, synchronous_commit, full_page_writes on; set with ALTER
# SYSTEM and a reload, reset at the end) one delete_bench.sh round runs on
# each server, the servers' order alternating between rounds.  Prints
# delete_bench's summary line per run, prefixed with round, mode and server,
# and the 1-minute load average before and after each run.
#
# Environment: AB_ROUNDS (3), AB_MODES ("off durable"), and delete_bench's
# BENCH_DELETE_* (here BENCH_DELETE_SETUPS defaults to "plain capture
# auto-on" and BENCH_DELETE_TRANSACTIONS to 50000).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 HOST:PORT HOST:PORT" >&2; exit 2; }
SERVERS=("$1" "$2")
ROUNDS=${AB_ROUNDS:-3}
read -r -a MODES <<<"${AB_MODES:-off durable}"
export BENCH_DELETE_SETUPS=${BENCH_DELETE_SETUPS:-"plain capture auto-on"}
export BENCH_DELETE_TRANSACTIONS=${BENCH_DELETE_TRANSACTIONS:-50000}
export BENCH_DELETE_ROUNDS=1
bindir=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)

# on SERVER (host:port), run psql with the rest of the arguments
on() { local s=$1; shift; PGHOST=${s%:*} PGPORT=${s##*:} "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# sets MODE on SERVER
set_mode() {
	local v=off
	[ "$2" = durable ] && v=on
	on "$1" -c "ALTER SYSTEM SET fsync = $v" -c "ALTER SYSTEM SET synchronous_commit = $v" \
		-c "ALTER SYSTEM SET full_page_writes = $v" -c "SELECT pg_reload_conf()" >/dev/null
}
reset_modes() {
	local s
	for s in "${SERVERS[@]}"; do
		on "$s" -c "ALTER SYSTEM RESET fsync" -c "ALTER SYSTEM RESET synchronous_commit" \
			-c "ALTER SYSTEM RESET full_page_writes" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	done
}
trap reset_modes EXIT

echo "delete_ab: ${SERVERS[0]} (A) vs ${SERVERS[1]} (B), $ROUNDS round(s), modes ${MODES[*]}," \
	"setups $BENCH_DELETE_SETUPS, $BENCH_DELETE_TRANSACTIONS transactions a run"
for ((r = 1; r <= ROUNDS; r++)); do
	for m in "${MODES[@]}"; do
		order=(0 1)
		[ $((r % 2)) -eq 0 ] && order=(1 0)
		for i in "${order[@]}"; do
			s=${SERVERS[i]}
			name=$([ "$i" = 0 ] && echo A || echo B)
			set_mode "$s" "$m"
			sleep 1
			l0=$(cut -d' ' -f1 /proc/loadavg)
			out=$(PGHOST=${s%:*} PGPORT=${s##*:} "$here/delete_bench.sh")
			l1=$(cut -d' ' -f1 /proc/loadavg)
			# the summary lines: setup, tps, lat, ratio, ...
			echo "$out" | awk -v r="$r" -v m="$m" -v n="$name" -v l0="$l0" -v l1="$l1" '
				/^  setup / { s = 1; next }
				s && NF >= 4 && $1 ~ /^(plain|auto-off|capture|auto-on)$/ {
					printf "round %d  %-7s %s  %-9s tps %9s  ratio %5s  load %s -> %s\n", r, m, n, $1, $2, $4, l0, l1 }
				s && NF == 0 { s = 0 }'
		done
	done
done
