#!/usr/bin/env python3
"""The PyTorch anchors of `steplens bench`, measured on this machine so that the ratios compare
two programs run side by side rather than a figure taken elsewhere.

    python3 scripts/anchors.py --mnist DIR --json anchors.json
    steplens bench --anchors anchors.json

DIR holds MNIST's four idx .gz files (the ones `steplens` downloads into its cache). Measured,
each the median of --repeats after one warm-up, on torch's CPU device with --threads threads:

- train_epoch_ms: the notebook's training loop (nn.Linear, softmax in forward, CrossEntropyLoss,
  autograd, the manual SGD update), one epoch of MNIST 0/1 at b = 64: 197 steps, no evaluation
  (what `bench`'s epoch times).
- analysis_ms: the analysis vectorised by hand as `bench` runs it: 395 batches of b = 32, for each
  K = 100 copies of θ perturbed by 0.01·U[0,1), the gradients of row 0 of W in closed form, the
  principal singular vector of the 784 × 100 matrix they form, and a second set of K copies
  projected on it; batches in chunks of 64 (as steplens does).
"""

import argparse
import gzip
import json
import os
import platform
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4 : 4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist01(folder):
    x = idx(os.path.join(folder, "train-images-idx3-ubyte.gz")).reshape(-1, 784)
    y = idx(os.path.join(folder, "train-labels-idx1-ubyte.gz"))
    keep = y <= 1
    return torch.tensor(x[keep], dtype=torch.float32) / 255.0, torch.tensor(y[keep], dtype=torch.int64)


class LogisticRegression(nn.Module):
    """The notebook's model: a linear layer with a softmax in forward (and CrossEntropyLoss on top)."""

    def __init__(self, input_dim, output_dim):
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x):
        return F.softmax(self.linear(x), dim=1)


def notebook_epoch(model, xs, ys, h):
    criterion = nn.CrossEntropyLoss()
    for images, labels in zip(xs, ys):
        loss = criterion(model(images), labels)
        model.zero_grad()
        loss.backward()
        for parameter in model.parameters():
            parameter.data = parameter.data - h * parameter.grad.data


def row_gradients(w, b, x, y, normi):
    """Gradients of row 0 of W for K parameter sets on one batch: (chunk, K, 784)."""
    z = torch.einsum("gbf,gkcf->gkbc", x, w) + b[:, :, None, :]
    r = torch.softmax(z, dim=-1)
    r[..., 0] -= (y == 0).to(r.dtype)[:, None, :]
    r[..., 1] -= (y == 1).to(r.dtype)[:, None, :]
    r *= normi / x.shape[1]
    return torch.einsum("gkb,gbf->gkf", r[..., 0], x)


def analysis(w, b, xs, ys, n, points=100, chunk=64):
    out = []
    for start in range(0, xs.shape[0], chunk):
        x, y = xs[start : start + chunk], ys[start : start + chunk]
        g = x.shape[0]
        normi = -x.shape[1] / n
        perturbed = lambda: (
            w[None, None] + 1e-2 * torch.rand(g, points, *w.shape),
            b[None, None] + 1e-2 * torch.rand(g, points, *b.shape),
        )
        wk, bk = perturbed()
        grads = row_gradients(wk, bk, x, y, normi)
        u, s, v = torch.linalg.svd(grads.transpose(1, 2), full_matrices=False)
        q = u[:, :, 0]
        wk, bk = perturbed()
        grads = row_gradients(wk, bk, x, y, normi)
        theta_q = torch.einsum("gkf,gf->gk", wk[:, :, 0, :], q)
        grad_q = torch.einsum("gkf,gf->gk", grads, q)
        out.append((theta_q, grad_q, s))
    return out


def timed(f, repeats):
    f()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mnist", required=True, help="folder with MNIST's idx .gz files")
    ap.add_argument("--json", help="write the anchors here (for `steplens bench --anchors`)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x, y = mnist01(a.mnist)
    n = x.shape[0]

    steps = n // 64
    xs, ys = x[: steps * 64].reshape(steps, 64, 784), y[: steps * 64].reshape(steps, 64)
    model = LogisticRegression(784, 2)
    nn.init.xavier_uniform_(model.linear.weight.data)
    train_ms, train_all = timed(lambda: notebook_epoch(model, xs, ys, 0.005), a.repeats)

    batches = n // 32
    xa, ya = x[: batches * 32].reshape(batches, 32, 784), y[: batches * 32].reshape(batches, 32)
    w, b = model.linear.weight.data.clone(), model.linear.bias.data.clone()
    with torch.no_grad():
        analysis_ms, analysis_all = timed(lambda: analysis(w, b, xa, ya, n), a.repeats)

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    report = {
        "source": "scripts/anchors.py",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "threads": a.threads,
        "machine": platform.machine(),
        "load_average": load,
        "train_steps": steps,
        "train_epoch_ms": train_ms,
        "train_epoch_runs_ms": train_all,
        "analysis_batches": batches,
        "analysis_ms": analysis_ms,
        "analysis_runs_ms": analysis_all,
    }
    print(f"torch {torch.__version__}, {a.threads} threads, load {load}")
    print(f"the notebook's training loop, {steps} steps of 64: {train_ms:.1f} ms (median of {a.repeats})")
    print(f"the analysis vectorised, {batches} batches, K = 100: {analysis_ms:.0f} ms (median of {a.repeats})")
    if a.json:
        tmp = a.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, a.json)


if __name__ == "__main__":
    sys.exit(main())
