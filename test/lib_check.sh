# shellcheck shell=bash
# test/lib_check.sh: what the test scripts share: counting checks, and the
# EXIT trap that stops the server and prints "N passed, M failed" last.
# Source it after test/lib_server.sh, call check_start NAME, and install
# `trap check_finish EXIT` once there is something to clean up.  A script
# may define check_cleanup (run before the server stops) and
# check_after_stop (run after it).

# check_start NAME: the counters, the clock and the name of the closing lines.
check_start() {
	CHECK_NAME=$1
	passed=0
	failed=0
	CHECK_T0=$(date +%s%N)
}

ok() { passed=$((passed + 1)); echo "  ok    $*"; }
bad() { failed=$((failed + 1)); echo "  FAIL  $*"; }
# check DESCRIPTION EXPECTED ACTUAL
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi
}
info() { echo "        $*"; }

# The EXIT trap: an abort counts as a failure; the server log's tail after a
# failure; the script's cleanups around stopping the server; the closing lines.
check_finish() {
	local rc=$? ds
	trap - EXIT
	if [ "$rc" -ne 0 ]; then
		echo "$CHECK_NAME: aborted (exit $rc)" >&2
		failed=$((failed + 1))
	fi
	if [ "$failed" -gt 0 ]; then unlearn_server_log_tail 40; fi
	if declare -F check_cleanup >/dev/null; then check_cleanup || true; fi
	unlearn_server_stop || true
	if declare -F check_after_stop >/dev/null; then check_after_stop || true; fi
	ds=$((($(date +%s%N) - CHECK_T0) / 100000000))
	echo
	echo "$CHECK_NAME: $((ds / 10)).$((ds % 10)) s"
	echo "$passed passed, $failed failed"
	if [ "$failed" -gt 0 ]; then exit 1; fi
	exit 0
}
