#!/usr/bin/env bash
# Runs the pg_regress suites (sql/*.sql against expected/*.out) on a throwaway
# server started by pg_regress itself (--temp-instance) with the library
# preloaded (test/regress.conf).  initdb refuses root, so as root it runs as
# the postgres user in a directory that user owns.  Everything the server
# side reads (sql/, expected/, test/regress.conf) is copied there first, so
# the clone itself need not be readable by postgres (e.g. a clone in /root,
# mode 0700).  pg_regress, and so the server, runs with UNLEARN_SERVER_ENV in
# its environment (test/lib_server.sh).  Prints the diffs and exits non-zero
# on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=SCRIPTDIR/lib_server.sh
. "$top/test/lib_server.sh"
regress=$(dirname "$("$UNLEARN_PG_CONFIG" --pgxs)")/../test/regress/pg_regress
work=$(realpath -m "${UNLEARN_REGRESS_DIR:-/tmp/unlearn-regress}")

# A fresh work directory with a copy of the inputs: input/{sql,expected},
# regress.conf.
rm -rf "$work"
mkdir -p "$work/input"
cp -R "$top/sql" "$top/expected" "$work/input/"
cp "$top/test/regress.conf" "$work/"
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"

[ $# -gt 0 ] || set -- $(cd "$top/sql" && ls *.sql | sed 's/\.sql$//')
status=0
_unlearn_as_owner "$regress" --inputdir="$work/input" --outputdir="$work" --bindir="$UNLEARN_PG_BINDIR" \
	--temp-instance="$work/instance" --temp-config="$work/regress.conf" \
	--dbname=contrib_regression "$@" || status=$?
if [ $status -ne 0 ]; then
	[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
	echo "pg_regress failed; server log: $work/log/postmaster.log" >&2
	exit $status
fi
