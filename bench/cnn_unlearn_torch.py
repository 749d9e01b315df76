#!/usr/bin/python3
"""bench/cnn_unlearn_torch.py: the faithful adv+imp in PyTorch, on the core's CNN.

The cross-check of issue 14: the paper's method (Cha et al., AAAI 2024; the
spec is ALGORITHM.md, our port src/core/pgd.c, mas.c, unlearn_terms.c and
unlearn_loop.c) written again in PyTorch with the core's faithful settings,
started from the weights the core trained (bench/core_bench.sh --cnn caches
them, bench/cnn_export.c hands them over) and unlearning the same rows
core_bench unlearns.  Run it with Debian's python3-torch (/usr/bin/python3).

Network: conv 32 3, maxpool 2, conv 64 3, maxpool 2, dense 128, 10 logits;
ReLU after each conv and the dense layer; same padding.  The core's layouts:
conv weights c_out x (ky, kx, ci) (im2col columns), dense W fan_out x fan_in
(as nn.Linear), and the flatten after the last pool in HWC order, so the
model flattens a channels-last view.  Inputs are standardised as the core
does it, (x - mean) * (1 / scale); the whole method runs in that space, as
the core's PGD does on a standardised model.

adv+imp, as the core's faithful method:
  - targeted L2 PGD on theta0: per forget row 20 examples, each with a target
    t = (y + 1 + U{0..C-2}) mod C; start uniform in the box, projected into
    the eps ball, clipped; 100 steps x <- x - alpha g / max(|g|, 1e-6) with g
    the gradient of CE(f(x), t), clip to the box, project into the ball;
    eps 4, alpha 0.1 (standardised units);
  - MAS on the forget rows: omega = |grad of mean ||f(x)||_2|, per tensor
    min-max, w = 1 - omega_hat;
  - each step: stop when every forget row is misclassified (checked before the
    step) or at the cap (1000 passes over the adversarial set); else the loss
    (-CE_sum(forget batch) + CE_sum(adversarial batch)) / (nf + na)
    + lambda/2 sum w (theta - theta0)^2, lambda 1; forget batch 32 and
    adversarial batch 256, cyclic and unshuffled; SGD lr 1e-3, momentum 0.9,
    weight decay 1e-4.
The RNG is torch's (seeded per run), so the adversarial examples are drawn
differently from the core's; everything else is the same arithmetic.  With
--core-adv the run takes the core's own adversarial examples and targets for
the same rows and seed (cnn_export --adv-ks) instead of making its own, so
both sides start from identical inputs and only the arithmetic differs (its
MAS weights are still its own, compared with the core's).

Usage: bench/cnn_unlearn_torch.py EXPORT_DIR [--ks 1,8] [--seeds 3]
         [--threads 1] [--max-steps N] [--check-only] [--core-adv] [--set key=value]...
Prints the logit check, then one row per run in core_bench's table format and
a "RESULT {json}" line per run.  A run is the same to the bit for a given thread
count; OPENBLAS_NUM_THREADS defaults to --threads (see below).
"""
import argparse
import json
import math
import os
import sys
import time


def blas_threads(argv):
    """The --threads value (1 if absent): the OpenBLAS thread count to load torch with."""
    return argv[argv.index("--threads") + 1] if "--threads" in argv[:-1] else "1"


# Debian's numpy and torch do their matrix products in OpenBLAS, which reads its thread
# count when it loads; the count changes the order of float sums, so a run's last bits
# depend on it
os.environ.setdefault("OPENBLAS_NUM_THREADS", blas_threads(sys.argv))
import numpy as np  # noqa: E402  (after the thread count is set)
import torch  # noqa: E402
from torch import nn
import torch.nn.functional as F

# the core's faithful defaults (src/core/unlearn_options.c, ul_options_default)
FAITHFUL = {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4, "forget_batch": 32,
            "adv_batch": 256, "adv_per_row": 20, "pgd_eps": 4.0, "pgd_alpha": 0.1,
            "pgd_steps": 100, "imp_lambda": 1.0, "max_passes": 1000}


class CoreCNN(nn.Module):
    """The core's CNN on standardised N x 1 x 28 x 28 input; the flatten is channels-last."""

    def __init__(self, meta):
        super().__init__()
        convs = [s for s in meta["stages"] if s["kind"] == "conv"]
        self.pool = meta["stages"][1]["size"]
        self.conv1 = nn.Conv2d(convs[0]["c_in"], convs[0]["c_out"], convs[0]["size"], padding=convs[0]["size"] // 2)
        self.conv2 = nn.Conv2d(convs[1]["c_in"], convs[1]["c_out"], convs[1]["size"], padding=convs[1]["size"] // 2)
        self.fc1 = nn.Linear(meta["dims"][0], meta["dims"][1])
        self.fc2 = nn.Linear(meta["dims"][1], meta["dims"][2])

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), self.pool)
        x = F.max_pool2d(F.relu(self.conv2(x)), self.pool)
        x = x.permute(0, 2, 3, 1).flatten(1)       # HWC, as the core's stages write it
        return self.fc2(F.relu(self.fc1(x)))


def load_export(d):
    """The exported model, standardisation, box and test set (see bench/cnn_export.c)."""
    with open(os.path.join(d, "meta.json")) as f:
        meta = json.load(f)

    def raw(name, dtype=np.float32):
        return np.fromfile(os.path.join(d, name), dtype=dtype)
    ex = {"meta": meta, "params": raw("params.f32"), "mean": raw("mean.f32"), "scale": raw("scale.f32"),
          "lo": raw("lo.f32"), "hi": raw("hi.f32"), "test_x": raw("test_x.f32").reshape(-1, meta["n_features"]),
          "test_y": raw("test_y.i32", np.int32).astype(np.int64), "logits": raw("logits.f32").reshape(-1, meta["dims"][-1])}
    assert ex["params"].size == meta["n_params"]
    return ex


def build_model(ex):
    """A CoreCNN holding the core's parameters, mapped from the core's layouts."""
    meta, p = ex["meta"], ex["params"]
    m = CoreCNN(meta)
    convs = [s for s in meta["stages"] if s["kind"] == "conv"]
    with torch.no_grad():
        for layer, s in zip((m.conv1, m.conv2), convs):
            k, ci, co = s["size"], s["c_in"], s["c_out"]
            w = p[s["w_off"]:s["w_off"] + co * k * k * ci].reshape(co, k, k, ci).transpose(0, 3, 1, 2)
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(p[s["b_off"]:s["b_off"] + co]))
        for layer, d, (fi, fo) in zip((m.fc1, m.fc2), meta["dense"], zip(meta["dims"][:-1], meta["dims"][1:])):
            layer.weight.copy_(torch.from_numpy(p[d["w_off"]:d["w_off"] + fo * fi].reshape(fo, fi)))
            layer.bias.copy_(torch.from_numpy(p[d["b_off"]:d["b_off"] + fo]))
    return m


def standardize(ex, X):
    """Raw rows (n x F) into the model's space as the core maps them, shaped n x C x H x W."""
    inv = (np.float32(1.0) / ex["scale"]).astype(np.float32)
    xs = ((X.astype(np.float32) - ex["mean"]) * inv).astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(xs)).reshape(-1, *ex["meta"]["in_shape"])


def logits_of(model, X, batch=1000):
    """Logits of standardised rows X, in batches, without gradients."""
    with torch.no_grad():
        return torch.cat([model(X[i:i + batch]) for i in range(0, X.shape[0], batch)])


def accuracy(model, X, y):
    """Share of rows whose argmax is the label."""
    return (logits_of(model, X).argmax(1) == y).double().mean().item()


def check_logits(model, ex, Xte):
    """Max |logit difference| to the core's on the exported test images, and agreement of predictions."""
    n = ex["logits"].shape[0]
    z = logits_of(model, Xte[:n]).numpy()
    diff = np.abs(z - ex["logits"])
    same = (z.argmax(1) == ex["logits"].argmax(1)).mean()
    return float(diff.max()), float(diff.mean()), float(same), n


def project_ball(xa, x, eps):
    """Rescales xa so that ||xa - x||_2 <= eps, row by row."""
    d = (xa - x).flatten(1)
    nrm = d.double().norm(dim=1)
    s = torch.where(nrm > eps, eps / nrm, torch.ones_like(nrm)).float()
    return x + (xa - x) * s.view(-1, 1, 1, 1)


def pgd_targeted(model, Xf, yf, o, lo, hi, gen, C):
    """The adversarial examples and their targets (targeted L2 PGD on theta0)."""
    per = o["adv_per_row"]
    x = Xf.repeat_interleave(per, 0)
    y = yf.repeat_interleave(per, 0)
    t = (y + 1 + torch.randint(0, C - 1, y.shape, generator=gen)) % C
    xa = lo + torch.rand(x.shape, generator=gen) * (hi - lo)
    xa = torch.max(torch.min(project_ball(xa, x, o["pgd_eps"]), hi), lo)
    for p in model.parameters():
        p.requires_grad_(False)
    for _ in range(o["pgd_steps"]):
        xa.requires_grad_(True)
        loss = F.cross_entropy(model(xa), t, reduction="sum")
        g, = torch.autograd.grad(loss, xa)
        gn = g.flatten(1).double().norm(dim=1).clamp_min(1e-6).float().view(-1, 1, 1, 1)
        xa = (xa.detach() - o["pgd_alpha"] * g / gn)
        xa = project_ball(torch.max(torch.min(xa, hi), lo), x, o["pgd_eps"])
    for p in model.parameters():
        p.requires_grad_(True)
    return xa.detach(), t


def mas_weights(model, Xf):
    """w = 1 - per-tensor min-max of |grad of mean ||f(x)||_2| over the forget rows."""
    model.zero_grad()
    model(Xf).norm(dim=1).mean().backward()
    ws = []
    for p in model.parameters():
        om = p.grad.detach().abs()
        lo, hi = om.min(), om.max()
        ws.append(1.0 - (om - lo) / (hi - lo) if hi > lo else torch.ones_like(om))
    model.zero_grad()
    return ws


def take_cyclic(n, pos, nb):
    """Indices of the next nb rows of n from pos, cycling; and the new position."""
    idx = (pos + torch.arange(nb)) % n
    return idx, (pos + nb) % n


def adv_imp(model, Xf, yf, o, lo, hi, seed, C, given_adv=None):
    """Unlearns the forget rows in place; returns steps, success, seconds (set-up included), MAS weights."""
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)
    k = Xf.shape[0]
    Xa, ta = given_adv if given_adv is not None else pgd_targeted(model, Xf, yf, o, lo, hi, gen, C)
    wimp = mas_weights(model, Xf) if o["imp_lambda"] > 0 else None
    theta0 = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"], weight_decay=o["weight_decay"])
    nadv = Xa.shape[0]
    nf, na = min(o["forget_batch"], k), min(o["adv_batch"], nadv)
    cap = o["max_passes"] * math.ceil(nadv / o["adv_batch"])
    if o.get("max_steps", 0) > 0:
        cap = min(cap, o["max_steps"])
    f_pos = a_pos = step = 0
    success = False
    while True:
        # the stop rule: every forget row misclassified, checked before the step
        with torch.no_grad():
            if (model(Xf).argmax(1) != yf).all():
                success = True
                break
        if step >= cap:
            break
        fi, f_pos = take_cyclic(k, f_pos, nf)
        ai, a_pos = take_cyclic(nadv, a_pos, na)
        z = model(torch.cat([Xf[fi], Xa[ai]]))
        loss = (-F.cross_entropy(z[:nf], yf[fi], reduction="sum") +
                F.cross_entropy(z[nf:], ta[ai], reduction="sum")) / (nf + na)
        if wimp is not None:
            loss = loss + o["imp_lambda"] / 2 * sum((w * (p - p0) ** 2).sum()
                                                    for w, p, p0 in zip(wimp, model.parameters(), theta0))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
    return step, success, time.perf_counter() - t0, wimp


def mas_diff(ex, wimp, path):
    """Max |torch MAS weight - core MAS weight| over all tensors, in the core's layout."""
    w = build_model(dict(ex, params=np.fromfile(path, dtype=np.float32)))
    return max((a - b).abs().max().item() for a, b in zip(wimp, w.parameters()))


def parse_args():
    """The command line; the faithful options with --max-steps and --set applied."""
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("--ks", default="1,8")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--check-only", action="store_true")
    ap.add_argument("--core-adv", action="store_true", help="use the core's adversarial examples (cnn_export --adv-ks)")
    ap.add_argument("--set", action="append", default=[], help="key=value: a faithful option")
    args = ap.parse_args()
    o = dict(FAITHFUL, max_steps=args.max_steps)
    for kv in args.set:
        key, val = kv.split("=", 1)
        o[key] = type(FAITHFUL[key])(float(val)) if key in FAITHFUL else float(val)
    return args, o


def load_request(ex, d, k, s, core_adv):
    """Seed s's forget rows for k (standardised), their labels and indices, and the core's adversarial examples if asked."""
    def raw(name, dtype):
        return np.fromfile(os.path.join(d, f"{name}_k{k}_s{s}.{'f32' if dtype == np.float32 else 'i32'}"), dtype=dtype)
    Xf = standardize(ex, raw("forget", np.float32).reshape(k, -1))
    yf = torch.from_numpy(raw("labels", np.int32).astype(np.int64))
    given = None
    if core_adv:
        ta = raw("tadv", np.int32)
        given = (standardize(ex, raw("adv", np.float32).reshape(ta.size, -1)), torch.from_numpy(ta.astype(np.int64)))
    return Xf, yf, raw("rows", np.int32), given


def run_one(args, o, ex, k, s, test, box, acc0):
    """One adv+imp run on a fresh copy of the core's model; prints its table row and RESULT line."""
    C = ex["meta"]["dims"][-1]
    Xf, yf, rows, given = load_request(ex, args.export_dir, k, s, args.core_adv)
    model = build_model(ex)
    steps, ok, sec, wimp = adv_imp(model, Xf, yf, o, box[0], box[1], 1000 + s, C, given)
    extra = {}
    if args.core_adv and wimp is not None:
        extra["mas_max_abs_diff"] = mas_diff(ex, wimp, os.path.join(args.export_dir, f"mas_k{k}_s{s}.f32"))
    acc = accuracy(model, *test)
    forg = (logits_of(model, Xf).argmax(1) != yf).double().mean().item()
    print(f"| {'adv+imp':<8} | {k:4d} | {s:4d} | {100 * forg:6.1f} | {100 * acc0:6.2f} | {100 * acc:6.2f} | "
          f"{100 * (acc - acc0):+6.2f} | {'-':>6} | {steps if ok else -1:6d} | {steps:6d} | {sec:7.2f} | "
          f"{'yes' if ok else 'NO'}", flush=True)
    print("RESULT " + json.dumps({"k": k, "seed": s, "rows": rows.tolist()[:8], "forgotten": forg, "acc0": acc0,
                                  "acc": acc, "steps": steps, "success": ok, "seconds": sec,
                                  "load": open("/proc/loadavg").read().split()[:3], "core_adv": args.core_adv,
                                  **extra}), flush=True)


def main():
    args, o = parse_args()
    torch.set_num_threads(args.threads)

    # the port, checked against the core's logits before any unlearning
    ex = load_export(args.export_dir)
    meta = ex["meta"]
    test = (standardize(ex, ex["test_x"]), torch.from_numpy(ex["test_y"]))
    box = (standardize(ex, ex["lo"][None, :]), standardize(ex, ex["hi"][None, :]))
    model0 = build_model(ex)
    dmax, dmean, same, n = check_logits(model0, ex, test[0])
    acc0 = accuracy(model0, *test)
    print(f"logit check on {n} test images: max |diff| {dmax:.3g}, mean {dmean:.3g}, same argmax {100 * same:.1f} %; "
          f"test accuracy {100 * acc0:.2f} % (core {100 * meta['test_accuracy']:.2f} %)")
    print("RESULT " + json.dumps({"check": True, "max_abs_diff": dmax, "mean_abs_diff": dmean, "n": n,
                                  "test_accuracy": acc0, "core_test_accuracy": meta["test_accuracy"]}))
    if args.check_only:
        return

    # the runs, in core_bench's table format
    print(f"adv+imp (PyTorch {torch.__version__}, {args.threads} thread(s)): {o}")
    print("\n| method   |    k | seed | forgot | acc0   | acc    | delta  | remain | fsteps |  steps | seconds | success")
    print("|----------|------|------|--------|--------|--------|--------|--------|--------|--------|---------|--------")
    for k in [int(v) for v in args.ks.split(",")]:
        for s in range(1, args.seeds + 1):
            run_one(args, o, ex, k, s, test, box, acc0)


if __name__ == "__main__":
    main()
