#!/usr/bin/env python3
"""ablation_verdict.py: reads ablation_bench's RUN lines (stdin or a file) and
judges each part of the default method the way issue 11 asks: a part earns its
place if, on some measure, the configuration with it beats the one without it
by more than the seed spread, and loses on no measure by more than it.

Pairs compared (with vs without): pgd vs replay and full vs mas (the PGD
part), mas vs replay and full vs pgd (the MAS part).  Measures (per data
set and k; per seed): test change (higher is better), continual drift (test
change after 10 requests, higher is better), gap to retrain |test - retrain
test| (lower), agreement with the retrain on the forgotten rows (higher), MIA
gap |member rate - retrain's| (lower), steps (lower).  "Spread" is the larger
of the two configurations' sample s.d. over seeds.
"""
import statistics as st
import sys
from collections import defaultdict

runs = defaultdict(dict)  # (set, k, cont) -> cfg -> seed -> fields
for line in (open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin):
    if not line.startswith("RUN\t"):
        continue
    f = line.rstrip("\n").split("\t")
    s, cfg, k, seed, mode = f[1], f[2], int(f[3][2:]), int(f[4][5:]), f[5]
    kv = {a.split("=")[0]: float(a.split("=")[1]) for a in f[6:]}
    runs[(s, k, mode == "continual")].setdefault(cfg, {})[seed] = kv

def measures(group, cfg, seed):
    """The measures of one run (None where not measured), oriented so higher is better."""
    r = group[cfg][seed]
    out = {}
    out["test"] = r["dtest"]
    out["steps"] = -r["steps"]
    ret = group.get("retrain", {}).get(seed)
    if ret is not None:
        out["|gap|"] = -abs(r["gap"])
        out["agree"] = r["agree"]
        out["MIA gap"] = -abs(r["mia"] - ret["mia"])
    return out

pairs = [("PGD", "pgd", "replay"), ("PGD", "full", "mas"),
         ("MAS", "mas", "replay"), ("MAS", "full", "pgd")]
verdict = defaultdict(lambda: {"wins": [], "losses": []})
print("| part | with vs without | set | k | measure | with | without | diff | spread | |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (s, k, cont), group in sorted(runs.items()):
    for part, a, b in pairs:
        if a not in group or b not in group:
            continue
        seeds = sorted(set(group[a]) & set(group[b]))
        if len(seeds) < 2:
            continue
        ma = [measures(group, a, x) for x in seeds]
        mb = [measures(group, b, x) for x in seeds]
        for name in ma[0]:
            va = [m[name] for m in ma]
            vb = [m[name] for m in mb]
            if cont and name != "test":
                continue
            label = "drift" if cont else name
            d = st.mean(va) - st.mean(vb)
            spread = max(st.stdev(va), st.stdev(vb))
            mark = ""
            if d > spread:
                mark = "win"
                verdict[part]["wins"].append(f"{s} k={k} {label} {d:+.2f} (spread {spread:.2f})")
            elif -d > spread:
                mark = "LOSS"
                verdict[part]["losses"].append(f"{s} k={k} {label} {d:+.2f} (spread {spread:.2f})")
            if mark:
                sign = -1 if name in ("steps", "|gap|", "MIA gap") else 1
                print(f"| {part} | {a} vs {b} | {s} | {k} | {label} | {sign*st.mean(va):.2f} | "
                      f"{sign*st.mean(vb):.2f} | {d:+.2f} | {spread:.2f} | {mark} |")
print()
for part in ("PGD", "MAS"):
    v = verdict[part]
    ok = bool(v["wins"]) and not v["losses"]
    print(f"{part}: {len(v['wins'])} wins, {len(v['losses'])} losses beyond the seed spread -> "
          f"{'earns its place' if ok else 'does not earn its place'}")
