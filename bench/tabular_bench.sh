#!/usr/bin/env bash
#
# bench/tabular_bench.sh: unlearn's training quality on the tabular data sets
# (bench/datasets/), next to the scikit-learn anchor (bench/sklearn_anchor.py).
#
#   bench/tabular_bench.sh                 all data sets
#   bench/tabular_bench.sh pima votes      only those
#
# Steps:
#   1. outside the lock: writes the data sets' files (bench/datasets/load.sh
#      --prepare-only), runs the scikit-learn anchor if $TABULAR_WORK/anchor.json
#      is missing, and builds the extension (make -s);
#   2. inside flock /tmp/unlearn-pg.lock (the installed extension is shared by
#      everyone on the machine): make -s install from this tree, a throwaway
#      server "tabular" (test/lib_server.sh), CREATE EXTENSION, loads the data
#      sets, checks the hashed splits in SQL, and for each data set and seed
#      trains on NAME_train (the natural columns; NAME_train_arr with
#      BENCH_TABULAR_FORM=array) with unlearn's DEFAULTS (hidden '{128}',
#      epochs derived from the table, weight decay "auto", Adam lr 1e-3,
#      batch 128; only the seed is set, through options '{"seed": N}';
#      auto_unlearn => false) and evaluates on NAME_test with
#      unlearn_evaluate; stops the server, then releases the lock.  The lock
#      is held for about a minute; the training loop stops early (and says so)
#      once it has been held for BENCH_TABULAR_MAX_HOLD seconds;
#   3. prints, per data set, unlearn's test accuracy (mean +- sample s.d. over
#      the seeds) and training seconds next to scikit-learn's best, and writes
#      $TABULAR_WORK/tabular_bench.json and unlearn_runs.csv.
#
# It starts its own server: run it on its own, not through bench/run.sh (which
# would run it inside its server).  It waits at most 15 minutes for the lock.
#
# Environment:
#   TABULAR_WORK            work directory (default /tmp/unlearn-tabular-data)
#   BENCH_SEEDS             seeds (default "1 2 3")
#   BENCH_TABULAR_EPOCHS    extra configurations: for each N listed (e.g. "200"),
#                           also train with epochs => N, everything else at its
#                           default (default: none, only the defaults)
#   BENCH_TABULAR_ANCHOR    0: do not run the anchor even if anchor.json is missing
#   BENCH_TABULAR_MAX_HOLD  seconds (default 270)
#   PYTHON                  default /usr/bin/python3
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
export TABULAR_WORK=${TABULAR_WORK:-/tmp/unlearn-tabular-data}
PYTHON=${PYTHON:-/usr/bin/python3}
SEEDS=${BENCH_SEEDS:-1 2 3}
EXTRA_EPOCHS=${BENCH_TABULAR_EPOCHS:-}
# columns: train on the natural columns (NAME_train, feature_columns from meta.json);
# array: on the encoded array form (NAME_train_arr), as before column models existed
FORM=${BENCH_TABULAR_FORM:-columns}
# 1: after each default training, unlearn_rows of k rows on a copy of the table (k = 1 % of
# the rows for a table of 5 000 rows or more, 8 otherwise), into unlearn_forget.csv
UNLEARN=${BENCH_TABULAR_UNLEARN:-0}
MAX_HOLD=${BENCH_TABULAR_MAX_HOLD:-270}
LOCK=/tmp/unlearn-pg.lock

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
	read -r -a names <<<"$("$PYTHON" "$here/datasets/tabular.py" list)"
fi

now() { date +%s.%N; }

# ---- 1. outside the lock
"$here/datasets/load.sh" --prepare-only "${names[@]}"
if [ ! -f "$TABULAR_WORK/anchor.json" ] && [ "${BENCH_TABULAR_ANCHOR:-1}" != 0 ]; then
	echo "tabular_bench: no $TABULAR_WORK/anchor.json: running bench/sklearn_anchor.py (a few minutes)"
	"$PYTHON" "$here/sklearn_anchor.py" --work "$TABULAR_WORK" "${names[@]}"
fi
make -s -C "$root"

runs="$TABULAR_WORK/unlearn_runs.csv"
echo "dataset,config,seed,rows,classes,train_accuracy,seconds,load_seconds,train_seconds,test_rows,test_accuracy,weight_decay,held_out_right" >"$runs"
forget="$TABULAR_WORK/unlearn_forget.csv"
echo "dataset,seed,k,test_before,test_after,forgotten,reason,guarantee,steps,seconds,train_seconds" >"$forget"

# ---- 2. inside the lock
# shellcheck source=SCRIPTDIR/../test/lib_server.sh
. "$root/test/lib_server.sh"

exec 9>>"$LOCK"
echo "tabular_bench: waiting for $LOCK ..."
if ! flock -w 900 9; then echo "tabular_bench: $LOCK still taken after 15 minutes" >&2; exit 1; fi
t_lock=$(now)
echo "tabular_bench: lock taken at $(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
release() {
	local rc=$?
	trap - EXIT
	if [ "$rc" -ne 0 ]; then unlearn_server_log_tail 30; fi
	unlearn_server_stop || rc=1
	flock -u 9
	echo "tabular_bench: lock released after $(awk -v a="$t_lock" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s"
	exit "$rc"
}
trap release EXIT

make -s -C "$root" install >/dev/null
unlearn_server_start tabular
upsql -q -c "CREATE EXTENSION unlearn"
upsql -At -c "SELECT 'tabular_bench: unlearn ' || extversion FROM pg_extension WHERE extname = 'unlearn'"
"$here/datasets/load.sh" --load-only "${names[@]}"

# The hashed splits, recomputed in SQL from the rule documented in tabular.py.
for n in "${names[@]}"; do
	read -r rule label <<<"$("$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['split']['rule'], m['label'])" "$TABULAR_WORK/$n/meta.json")"
	[ "$rule" = hash-stratified-80/20 ] || continue
	bad=$(upsql -At -c "
		WITH a AS (SELECT id, \"$label\" AS y, false AS in_test FROM ${n}_train
		           UNION ALL SELECT id, \"$label\", true FROM ${n}_test),
		     r AS (SELECT *, row_number() OVER w AS rn, count(*) OVER (PARTITION BY y) AS k
		           FROM a WINDOW w AS (PARTITION BY y ORDER BY md5('$n:' || id) COLLATE \"C\"))
		SELECT count(*) FROM r WHERE (rn <= floor(0.2 * k + 0.5)) <> in_test")
	if [ "$bad" != 0 ]; then echo "tabular_bench: $n: $bad rows disagree with the split rule" >&2; exit 1; fi
	echo "tabular_bench: $n: the split matches its rule recomputed in SQL"
done

configs=(default)
for e in $EXTRA_EPOCHS; do configs+=("epochs=$e"); done
stopped_early=0
for cfg in "${configs[@]}"; do
	for n in "${names[@]}"; do
		for seed in $SEEDS; do
			held=$(awk -v a="$t_lock" -v b="$(now)" 'BEGIN { printf "%d", b - a }')
			if [ "$held" -ge "$MAX_HOLD" ]; then stopped_early=1; break 3; fi
			if [ "$cfg" = default ]; then ep=""; else ep="epochs => ${cfg#epochs=},"; fi
			m="tab_${n}_s${seed}"
			if [ "$FORM" = columns ]; then
				read -r label cols <<<"$("$PYTHON" -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['label'], '{' + ','.join(c['name'] for c in m['columns'] if c['kind'] != 'ignored') + '}')" "$TABULAR_WORK/$n/meta.json")"
				train="relation => '${n}_train', id_column => 'id', label_column => '$label', feature_columns => '$cols',"
				test="${n}_test"
			else
				train="relation => '${n}_train_arr', id_column => 'id', features_column => 'features', label_column => 'label',"
				test="${n}_test_arr"
			fi
			line=$(upsql -q -At -F ',' <<SQL
SELECT unlearn_drop_model(name) FROM unlearn.models WHERE name = '$m';
SELECT t.rows, t.classes, t.train_accuracy, t.seconds, t.load_seconds, t.train_seconds
  FROM unlearn_train(model => '$m', $train $ep
                     options => '{"seed": $seed}', auto_unlearn => false) t \gset t_
SELECT '$n', '$cfg', $seed, :t_rows, :t_classes, :t_train_accuracy, :t_seconds, :t_load_seconds,
       :t_train_seconds, e.rows, e.accuracy,
       coalesce(v.metrics->'weight_decay'->>'chosen', v.options->>'weight_decay'),
       coalesce(translate(v.metrics->'weight_decay'->>'held_out_right', ',', ' '), '-')
  FROM unlearn_evaluate('$m', '$test') e, unlearn.versions v WHERE v.model = '$m' AND v.version = 1;
SELECT unlearn_drop_model('$m');
SQL
)
			line=$(grep "^$n,$cfg," <<<"$line")
			echo "$line" >>"$runs"
			echo "tabular_bench: $line"
			if [ "$UNLEARN" = 1 ] && [ "$cfg" = default ] && [ "$FORM" = columns ]; then
				train_t=${train/"'${n}_train'"/"'${m}_t'"}
				line=$(upsql -q -At -F ',' <<SQL
DROP TABLE IF EXISTS ${m}_t;
CREATE TABLE ${m}_t AS SELECT * FROM ${n}_train;
ALTER TABLE ${m}_t ADD PRIMARY KEY (id);
SELECT unlearn_drop_model(name) FROM unlearn.models WHERE name = '$m';
SELECT t.train_seconds FROM unlearn_train(model => '$m', $train_t
                     options => '{"seed": $seed}', auto_unlearn => false) t \gset t_
SELECT accuracy AS before FROM unlearn_evaluate('$m', '$test') \gset
SELECT CASE WHEN count(*) >= 5000 THEN round(0.01 * count(*))::int ELSE 8 END AS k FROM ${m}_t \gset
SELECT r.forgotten, r.steps, r.seconds FROM unlearn_rows('$m',
  (SELECT array_agg(id) FROM (SELECT id FROM ${m}_t ORDER BY md5('$seed:' || id) LIMIT :k) s)) r \gset r_
SELECT '$n', $seed, :k, :before, e.accuracy, :r_forgotten, v.reason, v.guarantee, :r_steps, :r_seconds,
       :t_train_seconds
  FROM unlearn_evaluate('$m', '$test') e, unlearn.models mo
  JOIN unlearn.versions v ON v.model = mo.name AND v.version = mo.current_version WHERE mo.name = '$m';
SELECT unlearn_drop_model('$m');
DROP TABLE ${m}_t;
SQL
)
				line=$(grep "^$n,$seed," <<<"$line")
				echo "$line" >>"$forget"
				echo "tabular_bench: forget: $line"
			fi
		done
	done
done
if [ "$stopped_early" = 1 ]; then
	echo "tabular_bench: stopped early: the lock was held ${MAX_HOLD} s (BENCH_TABULAR_MAX_HOLD)" >&2
fi
unlearn_server_stop
flock -u 9
trap - EXIT
echo "tabular_bench: lock released after $(awk -v a="$t_lock" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s"

# ---- 3. the table
"$PYTHON" - "$TABULAR_WORK" <<'PY'
import csv, json, os, statistics, sys, time
work = sys.argv[1]
runs = list(csv.DictReader(open(os.path.join(work, "unlearn_runs.csv"))))
anchor = {}
if os.path.exists(os.path.join(work, "anchor.json")):
    a = json.load(open(os.path.join(work, "anchor.json")))
    for r in a["results"]:
        anchor[(r["dataset"], r["model"])] = r
    best = a["best"]
else:
    best = {}

def ms(xs):
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)

out = []
order = []
for r in runs:
    k = (r["dataset"], r["config"])
    if k not in order:
        order.append(k)
print()
print("test accuracy in %, mean ± sample s.d. over seeds; seconds: training only, mean over seeds")
print(f"{'data set':<10} {'unlearn config':<14} {'n':>2} {'unlearn test acc':>17} {'train acc':>9} "
      f"{'s':>6}   {'sklearn best':<5} {'test acc':>15} {'s':>6}  {'gap (pts)':>9}")
for ds, cfg in order:
    rs = [r for r in runs if r["dataset"] == ds and r["config"] == cfg]
    acc = ms([float(r["test_accuracy"]) for r in rs])
    tra = ms([float(r["train_accuracy"]) for r in rs])
    sec = ms([float(r["train_seconds"]) for r in rs])
    tot = ms([float(r["seconds"]) for r in rs])
    row = dict(dataset=ds, config=cfg, seeds=[int(r["seed"]) for r in rs],
               test_accuracy=dict(mean=acc[0], sd=acc[1]), train_accuracy=dict(mean=tra[0], sd=tra[1]),
               train_seconds=sec[0], seconds=tot[0])
    b = best.get(ds)
    if b:
        ar = anchor[(ds, b)]
        row["sklearn_best"] = dict(model=b, test_accuracy=ar["test_accuracy"], seconds=ar["seconds"]["mean"])
        bs = f"{b:<5} {100 * ar['test_accuracy']['mean']:>7.2f} ± {100 * ar['test_accuracy']['sd']:<5.2f} {ar['seconds']['mean']:>6.2f}  {100 * (acc[0] - ar['test_accuracy']['mean']):>+9.2f}"
    else:
        bs = "(no anchor)"
    out.append(row)
    print(f"{ds:<10} {cfg:<14} {len(rs):>2} {100 * acc[0]:>8.2f} ± {100 * acc[1]:<6.2f} {100 * tra[0]:>9.2f} "
          f"{sec[0]:>6.2f}   {bs}")
json.dump(dict(measured_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               cores=os.cpu_count(), rows=out), open(os.path.join(work, "tabular_bench.json"), "w"), indent=1)
print(f"(written {work}/tabular_bench.json, unlearn_runs.csv; anchor from anchor.json)")
PY
