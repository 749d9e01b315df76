#!/usr/bin/env bash
#
# bench/run.sh: the benchmarks (`make bench`, after build and install).
# Starts a throwaway server "bench" (/tmp/unlearn-bench) with the extension
# preloaded, creates the extension, loads Fashion-MNIST, runs each benchmark
# script against it, and stops the server.
#
#   bench/run.sh            all benchmarks
#   bench/run.sh train      only those named (train -> bench/train_bench.sh)
#
# Environment: UNLEARN_KEEP_DATA=1 keeps the cluster's data directory after
# the run; BENCH_SERVER_CONF: extra postgresql.conf lines for the bench
# server, one a line, written after test/lib_server.sh's defaults so they
# override them; e.g. a durable server (lib_server runs with fsync = off,
# synchronous_commit = off):
#   BENCH_SERVER_CONF=$'fsync = on\nsynchronous_commit = on\nfull_page_writes = on' bench/run.sh delete
# BENCH_* variables are read by the benchmark scripts.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=SCRIPTDIR/../test/lib_server.sh
. "$root/test/lib_server.sh"

# Benchmarks in the order they run: name -> bench/NAME_bench.sh.
# Add new ones here.
BENCHMARKS=(train delete latency)

if [ $# -gt 0 ]; then
	BENCHMARKS=("$@")
fi
for b in "${BENCHMARKS[@]}"; do
	[ -x "$here/${b}_bench.sh" ] || { echo "bench: no benchmark '$b' ($here/${b}_bench.sh)" >&2; exit 2; }
done

pkglibdir=$("$UNLEARN_PG_CONFIG" --pkglibdir)
if [ ! -f "$pkglibdir/unlearn.so" ]; then
	echo "bench: $pkglibdir/unlearn.so is not installed: run 'make install' (or 'make bench')" >&2
	exit 1
fi

finish() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ]; then
		echo "bench: FAILED (exit $rc)" >&2
		unlearn_server_log_tail 30
	fi
	unlearn_server_stop || rc=1
	exit "$rc"
}

# BENCH_SERVER_CONF (see the header): extra conf lines, one a line.
extra_conf=()
if [ -n "${BENCH_SERVER_CONF:-}" ]; then mapfile -t extra_conf <<<"$BENCH_SERVER_CONF"; fi
unlearn_server_start bench "${extra_conf[@]}" || exit 1
trap finish EXIT
# memory_bench.sh reads the worker's memory context totals from the log
export UNLEARN_SERVER_LOG

upsql -q -c "CREATE EXTENSION unlearn"
"$here/load_fashion.sh"

for b in "${BENCHMARKS[@]}"; do
	echo
	echo "==== bench: $b ===="
	"$here/${b}_bench.sh"
done
echo
echo "bench: done"
