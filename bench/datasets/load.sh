#!/usr/bin/env bash
#
# bench/datasets/load.sh: load the tabular benchmark data sets into the
# database that the usual libpq variables (PGHOST PGPORT PGDATABASE PGUSER)
# point at.
#
#   bench/datasets/load.sh                   all: letter shuttle satellite pima votes cars
#   bench/datasets/load.sh pima votes        only those
#   bench/datasets/load.sh --prepare-only    write the CSV files, touch no database
#   bench/datasets/load.sh --load-only       load the files an earlier --prepare-only wrote
#
# For each data set NAME it creates, dropping them first (idempotent):
#   NAME_train, NAME_test          the natural columns: numbers as integer or
#                                  double precision, categories as text, NULL
#                                  where the source has a missing value, plus
#                                  id bigint PRIMARY KEY and the label column (text)
#   NAME_train_arr, NAME_test_arr  (id bigint PRIMARY KEY, features real[], label text):
#                                  the array form for today's unlearn_train
#                                  (numbers + one-hot categories, NULLs imputed
#                                  by the training mean, standardised by the
#                                  training mean / std)
#   NAME_arr_spec                  the array form's features: position, name,
#                                  fill value, mean, std
# The split is fixed (see docs/benchmarks.md, "Tabular data sets and the
# scikit-learn anchor", and bench/datasets/tabular.py): the documented
# Statlog splits for letter, shuttle and satellite, a stratified 80/20 split
# by hashing the id for the others.
#
# The files it loads (train.csv, test.csv, *_arr.csv, meta.json, load.sql) stay
# in $TABULAR_WORK/NAME; bench/sklearn_anchor.py reads them.
#
# Installs its Debian packages when missing (apt-get; needs root): r-cran-mlbench,
# python3-vega-datasets, python3-sklearn, python3-pandas, python3-numpy.  These are
# for the benchmarks only, never dependencies of the extension.
#
# Environment:
#   TABULAR_WORK  work directory (default /tmp/unlearn-tabular-data)
#   PYTHON        python with numpy (default /usr/bin/python3: Debian's, where
#                 the packages above install)
#   PSQL          psql command (default: psql from pg_config --bindir)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TABULAR_WORK=${TABULAR_WORK:-/tmp/unlearn-tabular-data}
PYTHON=${PYTHON:-/usr/bin/python3}
if [ -z "${PSQL:-}" ]; then
	PSQL="$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)/psql"
fi

prepare_only=0
load_only=0
names=()
for a in "$@"; do
	case $a in
		--prepare-only) prepare_only=1 ;;
		--load-only) load_only=1 ;;
		-h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		-*) echo "load: unknown option $a" >&2; exit 2 ;;
		*) names+=("$a") ;;
	esac
done

# ---- Debian packages (like the Makefile's deps target)
APT_PACKAGES="r-cran-mlbench python3-vega-datasets python3-sklearn python3-pandas python3-numpy"
missing=""
for p in $APT_PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "load: installing$missing"
	# shellcheck disable=SC2086  # word splitting wanted: one package a word
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
fi

if [ ${#names[@]} -eq 0 ]; then
	read -r -a names <<<"$("$PYTHON" "$here/tabular.py" list)"
fi

mkdir -p "$TABULAR_WORK"
now() { date +%s.%N; }
todo=()
for n in "${names[@]}"; do
	if [ "$load_only" = 0 ] || [ ! -f "$TABULAR_WORK/$n/load.sql" ]; then todo+=("$n"); fi
done
if [ ${#todo[@]} -gt 0 ]; then
	t0=$(now)
	"$PYTHON" "$here/tabular.py" prepare "$TABULAR_WORK" "${todo[@]}"
	echo "load: prepared in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s, files in $TABULAR_WORK"
fi
[ "$prepare_only" = 1 ] && exit 0

for n in "${names[@]}"; do
	t0=$(now)
	$PSQL -X -q -v ON_ERROR_STOP=1 -f "$TABULAR_WORK/$n/load.sql"
	counts=$($PSQL -X -At -v ON_ERROR_STOP=1 -c \
		"SELECT (SELECT count(*) FROM ${n}_train) || ' + ' || (SELECT count(*) FROM ${n}_test)
		        || ' rows, arrays ' || (SELECT count(*) FROM ${n}_train_arr) || ' + '
		        || (SELECT count(*) FROM ${n}_test_arr)")
	echo "load: $n: $counts, in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s"
done
