#!/usr/bin/env python3
"""
PyTorch-on-the-CPU peer of bench:peers (benchmark only; never needed by tests).

The network is tools/make_fixtures.py's Dlrm (cross-checked against the
reference's DLRM_Net): EmbeddingBag(mode="sum", sparse=True) tables, the
Linear+ReLU MLPs with a Sigmoid after the last top layer, the dot
interaction, BCELoss, torch.optim.SGD (sparse embedding gradients, as the
reference does). Timed like dlrm_s_pytorch.py times itself: wall clock per
iteration around forward + loss + zero_grad + backward + optimizer step,
excluding data generation; after `warmup` untimed iterations, the mean over
`steps` iterations. Random data as the reference's random generator
(dense ~ U[0,1), fixed-size bags of uniform indices, labels rounded).

Input: one JSON object on argv[1]: {tableRows, dim, bottom, top, bagSize,
batchSize, lr, steps, warmup}. Output: one JSON line on stdout, including the
BLAS library torch's GEMMs ran on (read from this process's memory map) and its
thread count: Debian's python3-torch takes whatever libblas.so.3 the
alternatives system points at, and the reference BLAS (libblas3, netlib) is
several times slower than OpenBLAS (libopenblas0-pthread), so a peer without
OpenBLAS understates PyTorch.
"""
import ctypes
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from make_fixtures import Dlrm  # noqa: E402


def blas_in_use():
    """(library, threads): the BLAS shared object mapped into this process (after a GEMM ran)."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            if "blas" in os.path.basename(path) or "mkl" in os.path.basename(path):
                libs.add(os.path.realpath(path))
    openblas = sorted(p for p in libs if "openblas" in p)
    if openblas:
        try:
            n = ctypes.CDLL(openblas[0]).openblas_get_num_threads()
        except (OSError, AttributeError):
            n = None
        return "OpenBLAS (" + os.path.basename(os.path.dirname(openblas[0])) + ")", n
    if any("mkl" in p for p in libs):
        return "MKL", None
    if libs:
        return "reference BLAS (" + ", ".join(sorted(libs)) + ")", 1
    return "unknown", None


def main():
    a = json.loads(sys.argv[1])
    rows, d, B, L = a["tableRows"], a["dim"], a["batchSize"], a["bagSize"]
    n = len(rows) + 1
    top_in = d + n * (n - 1) // 2
    cfg = dict(
        embeddingDim=d, tableRows=rows, bottomMlp=a["bottom"], topMlp=[top_in] + a["top"], qr=None, md=None,
        interaction="dot", interactionItself=False, lossThreshold=0.0, fixtureQrInitScale=1.0,
    )
    # Threads: torch's default, as the reference leaves it (Debian's 1.13 picks 1 here; 2 threads on the shared,
    # oversubscribed 2 cores measured slower). Set PEERS_TORCH_THREADS to override.
    if os.environ.get("PEERS_TORCH_THREADS"):
        torch.set_num_threads(int(os.environ["PEERS_TORCH_THREADS"]))
    np.random.seed(1)
    torch.manual_seed(1)
    model = Dlrm(cfg)
    opt = torch.optim.SGD(model.parameters(), lr=a["lr"])
    loss_fn = torch.nn.BCELoss(reduction="mean")
    rng = np.random.RandomState(2)

    def batch():
        dense = torch.tensor(rng.uniform(0, 1, size=(B, a["bottom"][0])).astype(np.float32))
        offs = [torch.arange(0, B * L, L, dtype=torch.long) for _ in rows]
        idxs = [torch.tensor(rng.randint(0, r, size=B * L), dtype=torch.long) for r in rows]
        labels = torch.tensor(np.round(rng.uniform(0, 1, size=(B, 1))).astype(np.float32))
        return dense, offs, idxs, labels

    data = [batch() for _ in range(4)]
    total = 0.0
    losses = []
    for it in range(a["warmup"] + a["steps"]):
        dense, offs, idxs, labels = data[it % len(data)]
        t1 = time.time()
        p = model(dense, offs, idxs)
        loss = loss_fn(p, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.time()
        losses.append(float(loss))
        if it >= a["warmup"]:
            total += t2 - t1
    ms = 1000.0 * total / a["steps"]
    blas, blas_threads = blas_in_use()
    print(json.dumps(dict(msPerIt=ms, samplesPerSec=B * 1000.0 / ms, threads=torch.get_num_threads(), torch=torch.__version__, lastLoss=losses[-1], blas=blas, blasThreads=blas_threads)))


if __name__ == "__main__":
    main()
