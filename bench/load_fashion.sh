#!/usr/bin/env bash
#
# bench/load_fashion.sh: load Fashion-MNIST into the database that the PG*
# environment points at (e.g. a server from test/lib_server.sh):
#
#   fashion_train (60 000 rows)  and  fashion_test (10 000 rows),
#   each (id bigint primary key, pixels real[] (784 values in [0,1]), label int)
#
# ids count from 1 in each table, in the order of the idx files.  A table that
# already holds the expected number of rows is left alone; otherwise it is
# dropped and loaded again.  VACUUM ANALYZE at the end (hint bits set, so
# the first reads of the benchmarks do not write).
#
# Environment:
#   FMNIST_DIR          directory of the idx .gz files
#                       (default /usr/share/datasets/fashion-mnist, Debian
#                       package dataset-fashion-mnist)
#   FMNIST_TRAIN_LIMIT  load only the first N training rows (default: all)
#   FMNIST_TEST_LIMIT   load only the first N test rows (default: all)
#   PSQL                psql command (default: psql from pg_config --bindir)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FMNIST_DIR=${FMNIST_DIR:-/usr/share/datasets/fashion-mnist}

if [ -z "${PSQL:-}" ]; then
	bindir=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
	PSQL="$bindir/psql"
fi
psql_() { $PSQL -X -q -v ON_ERROR_STOP=1 "$@"; }

for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \
	t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
	if [ ! -r "$FMNIST_DIR/$f" ]; then
		echo "load_fashion: $FMNIST_DIR/$f not found (apt-get install dataset-fashion-mnist, or set FMNIST_DIR)" >&2
		exit 1
	fi
done

# ---- the converter: build it next to its source, or in a temp dir when the
# checkout is not writable; rebuild when missing or older than the source.
src="$here/fmnist_to_copy.c"
conv="$here/fmnist_to_copy"
if [ ! -w "$here" ]; then
	conv="${TMPDIR:-/tmp}/unlearn-fmnist_to_copy-$(id -u)"
	if [ -e "$conv" ] && [ ! -O "$conv" ]; then
		conv="$(mktemp -d)/fmnist_to_copy"
	fi
fi
if [ ! -x "$conv" ] || [ "$src" -nt "$conv" ]; then
	echo "load_fashion: building $(basename "$conv")"
	${CC:-cc} -std=c99 -O2 -Wall -Wextra -Werror -o "$conv.tmp.$$" "$src"
	mv -f "$conv.tmp.$$" "$conv"
fi

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# load TABLE IMAGES LABELS EXPECTED_ROWS
load() {
	local table=$1 images=$2 labels=$3 expect=$4 have t0
	have=-1
	if [ "$(psql_ -At -c "SELECT to_regclass('$table') IS NOT NULL")" = t ]; then
		have=$(psql_ -At -c "SELECT count(*) FROM $table")
	fi
	if [ "$have" = "$expect" ]; then
		echo "load_fashion: $table already holds $expect rows, skipping"
		return 0
	fi
	if [ "$have" != -1 ]; then
		echo "load_fashion: $table holds $have rows, not $expect: reloading"
	fi
	echo "load_fashion: loading $table ($expect rows) ..."
	t0=$(now)
	psql_ -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS $table" \
		-c "CREATE TABLE $table (id bigint NOT NULL, pixels real[] NOT NULL, label int NOT NULL)"
	FMNIST_TO_COPY_PROGRESS=$(( expect >= 20000 ? 10000 : 0 )) \
		"$conv" "$FMNIST_DIR/$images" "$FMNIST_DIR/$labels" 1 "$expect" |
		psql_ -c "COPY $table (id, pixels, label) FROM STDIN"
	psql_ -c "ALTER TABLE $table ADD PRIMARY KEY (id)"
	have=$(psql_ -At -c "SELECT count(*) FROM $table")
	if [ "$have" != "$expect" ]; then
		echo "load_fashion: $table: loaded $have rows, expected $expect" >&2
		exit 1
	fi
	echo "load_fashion: $table: $have rows in $(elapsed "$t0") s"
}

train_rows=${FMNIST_TRAIN_LIMIT:-60000}
test_rows=${FMNIST_TEST_LIMIT:-10000}
[ "$train_rows" -le 60000 ] || train_rows=60000
[ "$test_rows" -le 10000 ] || test_rows=10000

load fashion_train train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz "$train_rows"
load fashion_test t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz "$test_rows"

t0=$(now)
psql_ -c "VACUUM ANALYZE fashion_train" -c "VACUUM ANALYZE fashion_test"
echo "load_fashion: VACUUM ANALYZE in $(elapsed "$t0") s"
