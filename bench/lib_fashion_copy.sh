# bench/lib_fashion_copy.sh: sourced by the benchmarks that train on a copy
# of fashion_train (latency_bench.sh, ratio_bench.sh, unseen_bench.sh,
# continual_bench.sh).  Before sourcing, set TABLE, MODEL and BENCH_NAME.
# Defines q (one psql statement, unaligned), a work directory $work, an EXIT
# trap that drops the model and the table, fashion_copy, which makes $TABLE
# from fashion_train (primary key, VACUUM ANALYZE), dropping an earlier $MODEL
# first, fashion_train_model, and MSD_AWK (an awk function for mean ± s.d.).
PSQL=${PSQL:-$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)/psql}

q() { "$PSQL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }

work=$(mktemp -d)
fashion_copy_cleanup() {
	q "SELECT unlearn_drop_model('$MODEL') FROM unlearn.models WHERE name = '$MODEL'" >/dev/null 2>&1 || true
	q "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap fashion_copy_cleanup EXIT

# fashion_copy: $TABLE as a fresh copy of fashion_train.
fashion_copy() {
	[ "$(q "SELECT to_regclass('fashion_train') IS NOT NULL")" = t ] ||
		{ echo "$BENCH_NAME: fashion_train is missing (bench/load_fashion.sh)" >&2; exit 1; }
	q "SELECT unlearn_drop_model('$MODEL') FROM unlearn.models WHERE name = '$MODEL'" >/dev/null
	q "SET client_min_messages = warning; DROP TABLE IF EXISTS $TABLE" >/dev/null
	q "CREATE TABLE $TABLE AS SELECT * FROM fashion_train" >/dev/null
	q "ALTER TABLE $TABLE ADD PRIMARY KEY (id)" >/dev/null
	q "VACUUM ANALYZE $TABLE" >/dev/null
}

# fashion_train_model HIDDEN EPOCHS OPTIONS: trains $MODEL on $TABLE (pixels,
# label; automatic unlearning off); prints "<seconds> s, train accuracy <a>".
fashion_train_model() {
	q "SELECT round(seconds::numeric, 2) || ' s, train accuracy ' || round(train_accuracy::numeric, 4)
	   FROM unlearn_train('$MODEL', '$TABLE', 'id', 'pixels', 'label', hidden => '$1',
	                      epochs => $2, options => '$3', auto_unlearn => false)"
}

# msd(a, n): "mean ± sample s.d." of a[1..n], for the benchmarks' awk summaries.
# shellcheck disable=SC2034
MSD_AWK='function msd(a, n,   i, s, v) { s = 0; for (i = 1; i <= n; i++) s += a[i]; s /= n
	v = 0; for (i = 1; i <= n; i++) v += (a[i] - s) ^ 2
	return sprintf("%.4f ± %.4f", s, n > 1 ? sqrt(v / (n - 1)) : 0) }'
