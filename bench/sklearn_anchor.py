#!/usr/bin/python3
"""bench/sklearn_anchor.py: the scikit-learn anchor for the tabular data sets.

For each data set it reads the fixed split that bench/datasets/load.sh wrote
(WORK/<name>/train.csv, test.csv, meta.json; it runs the preparation itself
when they are missing), encodes it exactly as the array form that unlearn is
trained on (bench/datasets/tabular.py Preprocessor: numbers + one-hot
categories, NULLs imputed by the training mean, standardised by the training
mean / std), and fits with seeds 1, 2, 3:

  lr   LogisticRegression(max_iter=5000)                       (lbfgs, multinomial)
  mlp  MLPClassifier(hidden_layer_sizes=(128,), solver="adam",
                     early_stopping=False, max_iter=200)       (lr 1e-3, batch 200)

It prints test accuracy (mean +- sample standard deviation over the seeds),
training seconds (fit only, mean over seeds) and the better of the two by
mean test accuracy; it writes WORK/anchor.json and WORK/anchor.csv.

    /usr/bin/python3 bench/sklearn_anchor.py [--work DIR] [--seeds 1,2,3]
                                             [--models lr,mlp] [name...]

Environment: TABULAR_WORK (default /tmp/unlearn-tabular-data), like load.sh.
"""

import argparse
import csv
import json
import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "datasets"))
import tabular  # noqa: E402


def make_model(kind, seed):
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    if kind == "lr":
        return LogisticRegression(max_iter=5000, random_state=seed)
    if kind == "mlp":
        return MLPClassifier(hidden_layer_sizes=(128,), solver="adam", early_stopping=False,
                             max_iter=200, random_state=seed)
    raise ValueError(kind)


def summary(xs):
    return dict(mean=statistics.fmean(xs),
                sd=statistics.stdev(xs) if len(xs) > 1 else 0.0,
                min=min(xs), max=max(xs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default=os.environ.get("TABULAR_WORK", "/tmp/unlearn-tabular-data"))
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--models", default="lr,mlp")
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    names = a.names or list(tabular.LOADERS)
    seeds = [int(s) for s in a.seeds.split(",")]
    models = a.models.split(",")

    import numpy as np
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    warnings.simplefilter("ignore", ConvergenceWarning)

    results = []
    for name in names:
        if not os.path.exists(os.path.join(a.work, name, "meta.json")):
            tabular.prepare(a.work, name)
        meta, train, test = tabular.read_split(a.work, name)
        pre = tabular.Preprocessor(meta).fit(train)
        Xtr, Xte = pre.transform(train), pre.transform(test)
        ytr = np.array([r[meta["label"]] for r in train])
        yte = np.array([r[meta["label"]] for r in test])
        for kind in models:
            runs = []
            for seed in seeds:
                m = make_model(kind, seed)
                t0 = time.perf_counter()
                m.fit(Xtr, ytr)
                secs = time.perf_counter() - t0
                runs.append(dict(seed=seed, seconds=secs,
                                 test_accuracy=float((m.predict(Xte) == yte).mean()),
                                 train_accuracy=float((m.predict(Xtr) == ytr).mean()),
                                 iterations=int(np.max(m.n_iter_))))
                print(f"anchor: {name} {kind} seed {seed}: test {runs[-1]['test_accuracy']:.4f} "
                      f"in {secs:.2f} s ({runs[-1]['iterations']} iterations)", file=sys.stderr)
            results.append(dict(
                dataset=name, model=kind, train_rows=len(train), test_rows=len(test),
                features=Xtr.shape[1], classes=len(set(ytr)), runs=runs,
                test_accuracy=summary([r["test_accuracy"] for r in runs]),
                train_accuracy=summary([r["train_accuracy"] for r in runs]),
                seconds=summary([r["seconds"] for r in runs])))

    best = {}
    for r in results:
        b = best.get(r["dataset"])
        if b is None or r["test_accuracy"]["mean"] > b["test_accuracy"]["mean"]:
            best[r["dataset"]] = r

    out = dict(sklearn=sklearn.__version__, numpy=np.__version__, cores=os.cpu_count(),
               seeds=seeds, measured_at=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
               loadavg=open("/proc/loadavg").read().split()[:3],
               results=results, best={k: v["model"] for k, v in best.items()})
    with open(os.path.join(a.work, "anchor.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    with open(os.path.join(a.work, "anchor.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["dataset", "model", "test_acc_mean", "test_acc_sd", "test_acc_min",
                    "test_acc_max", "train_acc_mean", "seconds_mean", "best"])
        for r in results:
            t = r["test_accuracy"]
            w.writerow([r["dataset"], r["model"], f"{t['mean']:.4f}", f"{t['sd']:.4f}",
                        f"{t['min']:.4f}", f"{t['max']:.4f}",
                        f"{r['train_accuracy']['mean']:.4f}", f"{r['seconds']['mean']:.3f}",
                        int(best[r["dataset"]] is r)])

    print(f"scikit-learn {sklearn.__version__}, seeds {a.seeds}, {os.cpu_count()} cores; "
          f"test accuracy mean ± s.d. over seeds; seconds: fit, mean over seeds")
    print(f"{'data set':<10} {'model':<5} {'train':>6} {'test':>6} {'feat':>5} {'cls':>4} "
          f"{'test accuracy':>17} {'train acc':>9} {'seconds':>8}")
    for r in results:
        t = r["test_accuracy"]
        mark = " *" if best[r["dataset"]] is r else ""
        print(f"{r['dataset']:<10} {r['model']:<5} {r['train_rows']:>6} {r['test_rows']:>6} "
              f"{r['features']:>5} {r['classes']:>4} "
              f"{100 * t['mean']:>8.2f} ± {100 * t['sd']:<5.2f} "
              f"{100 * r['train_accuracy']['mean']:>9.2f} {r['seconds']['mean']:>8.2f}{mark}")
    print(f"(* best of the two; written {a.work}/anchor.json and anchor.csv)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
