#!/usr/bin/python3
"""bench/cnn_torch.py: the PyTorch side of bench/cnn_bench.sh.

Trains the issue-14 network on Fashion-MNIST with Debian's python3-torch:
conv 32 3, maxpool 2, conv 64 3, maxpool 2, dense 128 (ReLU after each conv
and the dense layer), 10 logits; batch 128, Adam lr 1e-3, shuffled each
epoch, per-pixel standardisation learned from the training images (as
unlearn's default).  Prints one line per epoch (seconds, mean loss) and the
test accuracy, then a JSON summary line starting with "RESULT ".

Usage: bench/cnn_torch.py [--epochs 5] [--threads 2] [--seed 42] [--dir DIR]
"""
import argparse
import gzip
import json
import struct
import time

import numpy as np
import torch
from torch import nn


def read_idx(path):
    """An idx file (gzip) as a numpy array."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(directory):
    """Training and test images in [0, 1] (N x 1 x 28 x 28) and labels."""
    def images(name):
        return read_idx(f"{directory}/{name}").astype(np.float32).reshape(-1, 1, 28, 28) / 255.0

    def labels(name):
        return read_idx(f"{directory}/{name}").astype(np.int64)
    return (images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz"),
            images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz"))


def network():
    """The benchmark's CNN, same padding, flatten implied."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    xtr, ytr, xte, yte = load(args.dir)
    mean = xtr.mean(axis=0)
    std = xtr.std(axis=0)
    std[~(std > 0)] = 1.0
    xtr = torch.from_numpy((xtr - mean) / std)
    xte = torch.from_numpy((xte - mean) / std)
    ytr = torch.from_numpy(ytr)
    yte = torch.from_numpy(yte)

    model = network()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    epoch_seconds = []
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(xtr))
        total = 0.0
        t0 = time.perf_counter()
        for start in range(0, len(xtr), args.batch):
            idx = order[start:start + args.batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        epoch_seconds.append(time.perf_counter() - t0)
        print(f"epoch {epoch + 1}: {epoch_seconds[-1]:.2f} s, mean loss {total / len(xtr):.4f}", flush=True)

    model.eval()
    with torch.no_grad():
        correct = sum(int((model(xte[s:s + 1000]).argmax(1) == yte[s:s + 1000]).sum())
                      for s in range(0, len(xte), 1000))
    acc = correct / len(xte)
    print(f"test accuracy {acc:.4f}")
    print("RESULT " + json.dumps({"framework": "pytorch", "torch": torch.__version__,
                                  "threads": args.threads, "epochs": args.epochs,
                                  "epoch_seconds": epoch_seconds, "test_accuracy": acc}))


if __name__ == "__main__":
    main()
