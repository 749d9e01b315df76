#!/usr/bin/python3
"""bench/datasets/tabular.py: the tabular benchmark data sets.

One loader function per data set (LOADERS below) reads the data from its
Debian package and returns its rows with their natural columns, the label
column and the fixed train/test split.  `prepare` writes, for one data set,
into WORK/<name>/:

    train.csv, test.csv          the natural columns (id first), NULL = empty field
    train_arr.csv, test_arr.csv  id, features (a real[] literal), label
    meta.json                    columns, kinds, split rule, array-form features
                                 with the training mean/std used
    load.sql                     psql script: drops and recreates the tables
                                 <name>_train, <name>_test, <name>_train_arr,
                                 <name>_test_arr, <name>_arr_spec and \\copy's
                                 the CSV files into them

bench/datasets/load.sh runs `prepare` and then psql -f load.sql; the
scikit-learn anchor (bench/sklearn_anchor.py) reads the CSV files and uses
Preprocessor below, so that it sees exactly the rows and, for the array form,
exactly the encoding that the extension is trained on.

    /usr/bin/python3 bench/datasets/tabular.py list
    /usr/bin/python3 bench/datasets/tabular.py prepare WORKDIR NAME...

Benchmarks only: nothing here is a dependency of the extension.
"""

import csv
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# ---------------------------------------------------------------- split rules

STATLOG = "statlog"        # the split the data set's documentation gives
HASH80 = "hash-stratified-80/20"

HASH_RULE = ("within each class, rows are ordered by md5('<name>:' || id) "
             "(hex text, byte order) and the first floor(0.2 * n_class + 0.5) "
             "go to test, the rest to train")


def hash_split(name, rows, label):
    """Stratified 80/20 split by hashing the id: deterministic, reproducible
    in SQL (md5(text) compares the same hex digits), no RNG involved."""
    by_class = {}
    for r in rows:
        by_class.setdefault(r[label], []).append(r)
    test_ids = set()
    for _cls, rs in sorted(by_class.items()):
        rs = sorted(rs, key=lambda r: hashlib.md5(f"{name}:{r['id']}".encode()).hexdigest())
        k = int(math.floor(0.2 * len(rs) + 0.5))
        test_ids.update(r["id"] for r in rs[:k])
    return test_ids


# ---------------------------------------------------------------- sources

def mlbench(dataset):
    """Rows of an mlbench data set as dicts of strings (None for NA)."""
    with tempfile.TemporaryDirectory(prefix="data-mlbench-") as tmp:
        out = os.path.join(tmp, "d.csv")
        subprocess.run(["Rscript", os.path.join(HERE, "export_mlbench.R"), dataset, out],
                       check=True)
        with open(out, newline="") as f:
            rd = csv.reader(f)
            header = next(rd)
            rows = [[None if v == "" else v for v in rec] for rec in rd]
    return header, rows


def vega_json(name):
    import vega_datasets  # python3-vega-datasets
    path = os.path.join(os.path.dirname(vega_datasets.__file__), "_data", name + ".json")
    with open(path) as f:
        return json.load(f)


def sanitize(col):
    out = "".join(c.lower() if c.isalnum() else "_" for c in col)
    while "__" in out:
        out = out.replace("__", "_")
    return out.strip("_")


def from_mlbench(dataset, rename, label):
    header, raw = mlbench(dataset)
    cols = [rename.get(h, sanitize(h)) for h in header]
    rows = []
    for i, rec in enumerate(raw, start=1):
        r = {"id": i}
        r.update(zip(cols, rec))
        rows.append(r)
    feats = [c for c in cols if c != label]
    return feats, rows


# ---------------------------------------------------------------- loaders
#
# Each returns a dict:
#   rows     list of dicts (id plus every column; values str/int/float/None)
#   columns  natural columns in table order, label excluded
#   label    the label column
#   ignore   columns kept in the table but not used as features
#   split    (rule name, rule text, set of test ids)
#   source   where the data come from

def load_letter():
    feats, rows = from_mlbench("LetterRecognition", {"lettr": "letter"}, "letter")
    test = {r["id"] for r in rows if r["id"] > 16000}
    return dict(rows=rows, columns=feats, label="letter", ignore=[],
                source="r-cran-mlbench: LetterRecognition",
                split=(STATLOG, "the documented one: the first 16 000 rows train, "
                       "the last 4 000 test (ids 16001-20000)", test))


def load_shuttle():
    feats, rows = from_mlbench("Shuttle", {"Class": "class"}, "class")
    test = {r["id"] for r in rows if r["id"] > 43500}
    return dict(rows=rows, columns=feats, label="class", ignore=[],
                source="r-cran-mlbench: Shuttle",
                split=(STATLOG, "Statlog's shuttle.trn / shuttle.tst: mlbench's rows "
                       "1-43500 are shuttle.trn and 43501-58000 shuttle.tst "
                       "(checked: the class counts match both files)", test))


def load_satellite():
    feats, rows = from_mlbench("Satellite", {"classes": "class"}, "class")
    test = {r["id"] for r in rows if r["id"] > 4435}
    return dict(rows=rows, columns=feats, label="class", ignore=[],
                source="r-cran-mlbench: Satellite",
                split=(STATLOG, "Statlog's sat.trn / sat.tst: mlbench's rows 1-4435 are "
                       "sat.trn and 4436-6435 sat.tst (checked: the class counts "
                       "match both files)", test))


def load_pima():
    feats, rows = from_mlbench("PimaIndiansDiabetes", {}, "diabetes")
    return dict(rows=rows, columns=feats, label="diabetes", ignore=[],
                source="r-cran-mlbench: PimaIndiansDiabetes (the original, with its "
                       "impossible zeros; PimaIndiansDiabetes2 has them as NA)",
                split=(HASH80, HASH_RULE, hash_split("pima", rows, "diabetes")))


VOTES = ["handicapped_infants", "water_project_cost_sharing",
         "adoption_of_the_budget_resolution", "physician_fee_freeze", "el_salvador_aid",
         "religious_groups_in_schools", "anti_satellite_test_ban",
         "aid_to_nicaraguan_contras", "mx_missile", "immigration",
         "synfuels_corporation_cutback", "education_spending", "superfund_right_to_sue",
         "crime", "duty_free_exports", "export_administration_act_south_africa"]


def load_votes():
    rename = {f"V{i + 1}": v for i, v in enumerate(VOTES)}
    rename["Class"] = "party"
    feats, rows = from_mlbench("HouseVotes84", rename, "party")
    return dict(rows=rows, columns=feats, label="party", ignore=[],
                source="r-cran-mlbench: HouseVotes84 (columns named after the UCI "
                       "attribute list; y/n, NULL where the vote is missing)",
                split=(HASH80, HASH_RULE, hash_split("votes", rows, "party")))


def load_cars():
    data = vega_json("cars")
    rows = []
    for i, d in enumerate(data, start=1):
        rows.append({
            "id": i,
            "name": d["Name"],
            "miles_per_gallon": d["Miles_per_Gallon"],
            "cylinders": d["Cylinders"],
            "displacement": d["Displacement"],
            "horsepower": d["Horsepower"],
            "weight_in_lbs": d["Weight_in_lbs"],
            "acceleration": d["Acceleration"],
            "year": int(d["Year"][:4]),
            "origin": d["Origin"],
        })
    cols = ["name", "miles_per_gallon", "cylinders", "displacement", "horsepower",
            "weight_in_lbs", "acceleration", "year"]
    return dict(rows=rows, columns=cols, label="origin", ignore=["name"],
                source="python3-vega-datasets: cars.json (Year kept as the year "
                       "number; name is kept in the table but not used as a feature)",
                split=(HASH80, HASH_RULE, hash_split("cars", rows, "origin")))


LOADERS = {
    "letter": load_letter,
    "shuttle": load_shuttle,
    "satellite": load_satellite,
    "pima": load_pima,
    "votes": load_votes,
    "cars": load_cars,
}


# ---------------------------------------------------------------- typing

def as_number(v):
    if v is None or isinstance(v, (int, float)):
        return v
    try:
        return float(v)
    except ValueError:
        return "not a number"


def infer_types(ds):
    """Per column: ('integer'|'double precision', 'num') or ('text', 'cat')."""
    types = {}
    for c in ds["columns"] + [ds["label"]]:
        vals = [as_number(r[c]) for r in ds["rows"]]
        if c != ds["label"] and all(v is None or isinstance(v, (int, float)) for v in vals):
            nn = [v for v in vals if v is not None]
            if all(float(v).is_integer() and abs(v) < 2 ** 31 for v in nn):
                types[c] = ("integer", "num")
                for r in ds["rows"]:
                    r[c] = None if r[c] is None else int(float(r[c]))
            else:
                types[c] = ("double precision", "num")
                for r in ds["rows"]:
                    r[c] = None if r[c] is None else float(r[c])
        else:
            types[c] = ("text", "cat")
    for c in ds["ignore"]:
        types[c] = (types[c][0], "ignored")
    types[ds["label"]] = ("text", "label")
    return types


# ---------------------------------------------------------------- array form

class Preprocessor:
    """The array form's encoding, fitted on the training rows only.

    Features, in this order: every numeric column (table order), then for each
    categorical column (table order) one 0/1 indicator per category seen in
    training (categories in byte order).  A NULL numeric value, and every
    indicator of a NULL category, is replaced by the training mean of that
    feature; a category not seen in training gives 0 in every indicator.
    Every feature is then standardised with the training mean and population
    standard deviation (a constant feature: std taken as 1)."""

    def __init__(self, meta):
        self.num = [c["name"] for c in meta["columns"] if c["kind"] == "num"]
        self.cat = [c["name"] for c in meta["columns"] if c["kind"] == "cat"]
        self.label = meta["label"]

    def _raw(self, rows):
        import numpy as np
        X = []
        for r in rows:
            x = [np.nan if r[c] is None else float(r[c]) for c in self.num]
            for c in self.cat:
                v = r[c]
                x.extend(np.nan if v is None else (1.0 if v == k else 0.0)
                         for k in self.categories[c])
            X.append(x)
        return np.array(X, dtype=np.float64).reshape(len(rows), len(self.names))

    def fit(self, rows):
        import numpy as np
        self.categories = {c: sorted({r[c] for r in rows if r[c] is not None},
                                     key=lambda s: s.encode()) for c in self.cat}
        self.names = list(self.num) + [f"{c}={k}" for c in self.cat
                                       for k in self.categories[c]]
        X = self._raw(rows)
        self.fill = np.nanmean(X, axis=0)
        X = np.where(np.isnan(X), self.fill, X)
        self.mean = X.mean(axis=0)
        std = X.std(axis=0)
        self.std = np.where(std > 0, std, 1.0)
        return self

    def transform(self, rows):
        import numpy as np
        X = self._raw(rows)
        X = np.where(np.isnan(X), self.fill, X)
        return (X - self.mean) / self.std

    def spec(self):
        return [dict(position=i + 1, feature=n, fill=float(self.fill[i]),
                     mean=float(self.mean[i]), std=float(self.std[i]))
                for i, n in enumerate(self.names)]


# ---------------------------------------------------------------- reading back

def read_split(workdir, name):
    """(meta, train rows, test rows) as written by prepare, values typed."""
    d = os.path.join(workdir, name)
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)
    conv = {c["name"]: (int if c["type"] == "integer" else
                        float if c["type"] == "double precision" else str)
            for c in meta["columns"]}
    conv["id"] = int
    conv[meta["label"]] = str

    def read(fn):
        with open(os.path.join(d, fn), newline="") as f:
            rd = csv.DictReader(f)
            return [{k: (None if v == "" else conv[k](v)) for k, v in rec.items()} for rec in rd]
    return meta, read("train.csv"), read("test.csv")


# ---------------------------------------------------------------- prepare

def qi(name):
    return '"' + name.replace('"', '""') + '"'


def fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    return str(v)


def prepare(workdir, name):
    ds = LOADERS[name]()
    types = infer_types(ds)
    rule, rule_text, test_ids = ds["split"]
    label = ds["label"]
    cols = ds["columns"]
    d = os.path.join(workdir, name)
    os.makedirs(d, exist_ok=True)

    rows = sorted(ds["rows"], key=lambda r: r["id"])
    train = [r for r in rows if r["id"] not in test_ids]
    test = [r for r in rows if r["id"] in test_ids]

    def write(fn, rs):
        with open(os.path.join(d, fn), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["id"] + cols + [label])
            for r in rs:
                w.writerow([r["id"]] + [fmt(r[c]) for c in cols] + [r[label]])
    write("train.csv", train)
    write("test.csv", test)

    def counts(rs):
        out = {}
        for r in rs:
            out[r[label]] = out.get(r[label], 0) + 1
        return dict(sorted(out.items()))

    meta = dict(
        name=name, source=ds["source"], label=label,
        columns=[dict(name=c, type=types[c][0], kind=types[c][1]) for c in cols],
        split=dict(rule=rule, text=rule_text, train_rows=len(train), test_rows=len(test)),
        classes=dict(train=counts(train), test=counts(test)),
        nulls={c: sum(r[c] is None for r in rows) for c in cols if any(r[c] is None for r in rows)},
    )
    pre = Preprocessor(meta).fit(train)
    meta["array_form"] = dict(features=len(pre.names), spec=pre.spec())

    import numpy as np
    for fn, rs in (("train_arr.csv", train), ("test_arr.csv", test)):
        X = pre.transform(rs).astype(np.float32)
        with open(os.path.join(d, fn), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            for r, x in zip(rs, X):
                w.writerow([r["id"], "{" + ",".join("%.9g" % v for v in x) + "}", r[label]])

    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")

    # ---- the psql script
    coldefs = ",\n  ".join(f"{qi(c)} {types[c][0]}" for c in cols)
    sql = [f"-- {name}: generated by bench/datasets/tabular.py prepare; {ds['source']}",
           "\\set ON_ERROR_STOP 1",
           "SET client_min_messages = warning;",
           "BEGIN;"]
    for part in ("train", "test"):
        t = f"{name}_{part}"
        sql += [f"DROP TABLE IF EXISTS {qi(t)}, {qi(t + '_arr')} CASCADE;",
                f"CREATE TABLE {qi(t)} (\n  id bigint PRIMARY KEY,\n  {coldefs},\n"
                f"  {qi(label)} text NOT NULL\n);",
                f"\\copy {qi(t)} FROM '{os.path.join(d, part + '.csv')}' WITH (FORMAT csv, HEADER true)",
                f"CREATE TABLE {qi(t + '_arr')} (id bigint PRIMARY KEY, features real[] NOT NULL, "
                f"label text NOT NULL);",
                f"\\copy {qi(t + '_arr')} FROM '{os.path.join(d, part + '_arr.csv')}' WITH (FORMAT csv)"]
    sp = f"{name}_arr_spec"
    sql += [f"DROP TABLE IF EXISTS {qi(sp)};",
            f"CREATE TABLE {qi(sp)} (position integer PRIMARY KEY, feature text NOT NULL, "
            f"fill double precision NOT NULL, mean double precision NOT NULL, "
            f"std double precision NOT NULL);"]
    vals = ",\n  ".join(f"({s['position']}, '{s['feature'].replace(chr(39), chr(39) * 2)}', "
                        f"{s['fill']!r}, {s['mean']!r}, {s['std']!r})" for s in pre.spec())
    sql += [f"INSERT INTO {qi(sp)} VALUES\n  {vals};",
            f"COMMENT ON TABLE {qi(name + '_train')} IS "
            f"'{ds['source'].replace(chr(39), chr(39) * 2)}; split: {rule}';",
            "COMMIT;",
            f"VACUUM ANALYZE {qi(name + '_train')}, {qi(name + '_test')}, "
            f"{qi(name + '_train_arr')}, {qi(name + '_test_arr')}, {qi(sp)};"]
    with open(os.path.join(d, "load.sql"), "w") as f:
        f.write("\n".join(sql) + "\n")
    print(f"tabular: {name}: {len(train)} train + {len(test)} test rows, "
          f"{len(cols)} columns ({len(pre.names)} array features), "
          f"{len(meta['classes']['train'])} classes, split {rule}")
    return meta


def main(argv):
    if len(argv) >= 2 and argv[1] == "list":
        print(" ".join(LOADERS))
        return 0
    if len(argv) >= 3 and argv[1] == "prepare":
        names = argv[3:] or list(LOADERS)
        for n in names:
            if n not in LOADERS:
                print(f"tabular: no data set '{n}' (have: {' '.join(LOADERS)})", file=sys.stderr)
                return 2
        for n in names:
            prepare(argv[2], n)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
