#!/usr/bin/env bash
# Runs the pg_regress suites (sql/*.sql against expected/*.out) on a throwaway
# server started by pg_regress itself (--temp-instance) with the library
# preloaded (test/regress.conf).  initdb refuses root, so as root it runs as
# the postgres user in a directory that user owns.  Everything the server
# side reads (sql/, expected/, test/regress.conf) is copied there first, so
# the clone itself need not be readable by postgres (e.g. a clone in /root,
# mode 0700).  Prints the diffs and exits non-zero on any failure.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}
bindir=$("$PG_CONFIG" --bindir)
regress=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress
work=${UNLEARN_REGRESS_DIR:-/tmp/unlearn-regress}

run_as_pg() {
	if [ "$(id -u)" = 0 ]; then (cd "$work" && runuser -u postgres -- "$@"); else "$@"; fi
}

# A fresh work directory with a copy of the inputs: input/{sql,expected},
# regress.conf.
rm -rf "$work"
mkdir -p "$work/input"
cp -R "$top/sql" "$top/expected" "$work/input/"
cp "$top/test/regress.conf" "$work/"
[ "$(id -u)" = 0 ] && chown -R postgres: "$work"

[ $# -gt 0 ] || set -- $(cd "$top/sql" && ls *.sql | sed 's/\.sql$//')
status=0
run_as_pg "$regress" --inputdir="$work/input" --outputdir="$work" --bindir="$bindir" \
	--temp-instance="$work/instance" --temp-config="$work/regress.conf" \
	--dbname=contrib_regression "$@" || status=$?
if [ $status -ne 0 ]; then
	[ -f "$work/regression.diffs" ] && cat "$work/regression.diffs"
	echo "pg_regress failed; server log: $work/log/postmaster.log" >&2
	exit $status
fi
