#!/usr/bin/env bash
#
# test/sanitize.sh SAN_SO PRELOAD_SO UNIT_RUNNER: the tests under
# AddressSanitizer and UndefinedBehaviorSanitizer.  `make sanitize` builds the
# arguments (SAN_SO and UNIT_RUNNER with -fsanitize=address,undefined
# -fno-sanitize-recover=undefined; PRELOAD_SO from test/asan_preload.c),
# installs the normal build, then runs this script.
#
#   1. UNIT_RUNNER: the numeric core's unit tests, with leak detection.
#   2. SAN_SO replaces the installed unlearn.so.  postgres is not built with
#      ASan, and the ASan runtime must be the first library of a process, so
#      the server runs with LD_PRELOAD="libasan PRELOAD_SO" (UNLEARN_SERVER_ENV,
#      see test/lib_server.sh) and ASAN_OPTIONS detect_leaks=0: PostgreSQL leaves
#      memory to the exit of a process on purpose, so leak reports would be
#      noise.  Then: every pg_regress suite (sql/*.sql), the crash tests, the
#      dump tests and the hot standby test.
#   3. On exit, whatever happened, the normal unlearn.so is installed again.
#
# Every sanitizer report, from any process (backend, background worker, unit
# runner), goes to a file DIR/asan.PID or DIR/ubsan.PID.  Fails if a suite
# failed or a report file appeared; prints the reports.
#
# Environment:
#   UNLEARN_SANITIZE_DIR   DIR: reports, the pg_regress instance and the
#                          throwaway servers (default /tmp/asan-sanitize;
#                          emptied first)
#   SANITIZE_STEPS         run only these of "unit regress crash dump standby"
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
usage="usage: test/sanitize.sh SAN_SO PRELOAD_SO UNIT_RUNNER"
san_so=$(realpath "${1:?$usage}")
preload_so=$(realpath "${2:?$usage}")
unit=$(realpath "${3:?$usage}")
dir=$(realpath -m "${UNLEARN_SANITIZE_DIR:-/tmp/asan-sanitize}")
steps=${SANITIZE_STEPS:-"unit regress crash dump standby"}
# shellcheck source=SCRIPTDIR/lib_server.sh
. "$top/test/lib_server.sh"
installed=$("$UNLEARN_PG_CONFIG" --pkglibdir)/unlearn.so

rm -rf "$dir"
mkdir -p "$dir"
# the server side loads the preload library: a copy where postgres can read it
# (the clone itself may not be readable, e.g. in /root)
install -m 755 "$preload_so" "$dir/asan_preload.so"
preload_so=$dir/asan_preload.so
[ "$(id -u)" -ne 0 ] || chown -R postgres: "$dir"

failed=""
t_start=$(date +%s)
# step NAME COMMAND...: runs the step if wanted, records a failure.
step() {
	local name=$1 t0
	shift
	[[ " $steps " == *" $name "* ]] || return 0
	echo "==== sanitize: $name ===="
	t0=$(date +%s)
	# a sanitizer runtime that cannot start hangs its process: bound every step
	timeout --kill-after=10 "${SANITIZE_STEP_TIMEOUT:-900}" "$@" || failed="$failed $name"
	echo "==== sanitize: $name: $(($(date +%s) - t0)) s"
}

restore() {
	install -m 755 "$top/unlearn.so" "$installed" &&
		echo "sanitize: normal unlearn.so installed again"
}
trap restore EXIT

ubsan="print_stacktrace=1:abort_on_error=1:log_path=$dir/ubsan"
step unit env OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS="detect_leaks=1:log_path=$dir/asan" \
	UBSAN_OPTIONS="$ubsan" "$unit"

install -m 755 "$san_so" "$installed" || exit 1
# the two libraries of LD_PRELOAD are separated by a colon (ld.so takes it as
# well as a space), because lib_server.sh splits UNLEARN_SERVER_ENV at spaces
libasan=$("${CC:-gcc}" -print-file-name=libasan.so)
export UNLEARN_SERVER_ENV="LD_PRELOAD=$libasan:$preload_so
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$dir/asan UBSAN_OPTIONS=$ubsan"
export UNLEARN_SERVER_ROOT=$dir
step regress env UNLEARN_REGRESS_DIR="$dir/regress" "$top/test/run_regress.sh"
step crash "$top/test/crash/run.sh"
step dump "$top/test/dump/run.sh"
step standby "$top/test/standby/run.sh"

reports=$(find "$dir" -maxdepth 1 \( -name 'asan.*' -o -name 'ubsan.*' \) | sort)
for f in $reports; do
	echo "==== sanitizer report $f ===="
	cat "$f"
done
echo "sanitize: $(($(date +%s) - t_start)) s, $(wc -w <<<"$reports") report(s), failed steps:${failed:- none}"
[ -z "$reports" ] && [ -z "$failed" ]
