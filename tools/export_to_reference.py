#!/usr/bin/env python3
"""
Turns a webgpu-dlrm checkpoint into a file the reference's --load-model accepts,
so training continues in PyTorch (facebookresearch/dlrm dlrm_s_pytorch.py on
GPUs or with torch.distributed):

    python3 tools/export_to_reference.py runs/model.safetensors runs/model.pt [--nbatches N]
    python dlrm_s_pytorch.py <the run's flags> --load-model runs/model.pt

The reference's loader reads ld_model["state_dict"], "iter", "epoch",
"nepochs", "nbatches", "nbatches_test", "train_loss", "total_loss",
"test_acc" (and "test_auc" with --mlperf-logging), and unless
--inference-only "opt_state_dict" for optimizer.load_state_dict; it then
skips epochs < epoch and, in that epoch, batches < iter. This script writes
all of them: the state_dict in DLRM_Net's parameter order (emb_l, bot_l,
top_l), epoch/iter from our step (epoch = step // N, iter = step % N with
N = --nbatches, default: the step itself, i.e. epoch 0), and the optimizer
state in torch's layout for the checkpoint's optimizer: sgd (no state),
adagrad (torch.optim.Adagrad "step"/"sum" from our accumulators in the
.optim.safetensors sidecar), rwsadagrad (the reference's RWSAdagrad param
groups; its state starts empty: row-wise accumulators are not carried over).
Needs PyTorch (Debian: python3-torch) and numpy.
"""
import argparse
import json
import os
import re
import struct
from collections import OrderedDict

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    dtypes = {"F32": np.float32, "F64": np.float64, "U32": np.uint32, "I32": np.int32}
    out = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[base + a : base + b], dtype=dtypes[e["dtype"]]).reshape(e["shape"]).copy()
    return out, meta


def param_order(names):
    """DLRM_Net.parameters() order: emb_l.<t>..., bot_l.<k>.weight/bias..., top_l.<k>.weight/bias..."""

    def key(n):
        part = n.split(".")
        group = {"emb_l": 0, "bot_l": 1, "top_l": 2}.get(part[0], 3)
        nums = [int(p) for p in part[1:] if p.isdigit()]
        return (group, nums, 0 if part[-1] == "weight" else 1, n)

    return sorted(names, key=key)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="webgpu-dlrm checkpoint (.safetensors)")
    ap.add_argument("out", help="file for the reference's --load-model (.pt)")
    ap.add_argument("--nbatches", type=int, default=0, help="batches per epoch of the run (default: the checkpoint's step)")
    args = ap.parse_args()

    tensors, meta = read_safetensors(args.checkpoint)
    if meta.get("format") != "webgpu-dlrm/1":
        raise SystemExit(f"{args.checkpoint}: not a webgpu-dlrm checkpoint (format {meta.get('format')!r})")
    config = json.loads(meta["config"])
    step = int(meta.get("step", "0"))
    optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
    if meta.get("optimizer_file"):
        side = os.path.join(os.path.dirname(os.path.abspath(args.checkpoint)), meta["optimizer_file"])
        if os.path.exists(side):
            optim.update(read_safetensors(side)[0])
    params = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    order = param_order(params.keys())
    state_dict = OrderedDict((k, torch.from_numpy(params[k].astype(np.float32))) for k in order)

    lr = float(config.get("learningRate", 0.01))
    opt_name = config.get("optimizer", "sgd")
    plist = [torch.nn.Parameter(t.clone()) for t in state_dict.values()]
    if opt_name == "adagrad":
        opt = torch.optim.Adagrad(plist, lr=lr)
        for i, name in enumerate(order):
            acc = optim.get(f"optim.{name}.sum", optim.get(f"optim.{name}.0"))
            if acc is None:
                continue
            acc = acc.astype(np.float32)
            if acc.shape != tuple(plist[i].shape):
                acc = np.broadcast_to(acc.reshape(-1, *([1] * (plist[i].dim() - 1))), plist[i].shape).copy()
            opt.state[plist[i]] = {"step": torch.tensor(float(step)), "sum": torch.from_numpy(acc)}
        opt_state = opt.state_dict()
    elif opt_name == "rwsadagrad":
        groups = [dict(lr=lr, lr_decay=0.0, eps=1e-10, weight_decay=0.0, initial_accumulator_value=0.0, params=list(range(len(plist))))]
        opt_state = {"state": {}, "param_groups": groups}
    else:
        opt_state = torch.optim.SGD(plist, lr=lr).state_dict()

    nb = args.nbatches if args.nbatches > 0 else max(step, 1)
    out = {
        "nepochs": max(1, -(-step // nb)),
        "nbatches": nb,
        "nbatches_test": 0,
        "state_dict": state_dict,
        "test_acc": 0.0,
        "test_auc": 0.0,
        "epoch": step // nb,
        "iter": step % nb if args.nbatches > 0 else step,
        "train_loss": 0.0,
        "total_loss": 0.0,
        "opt_state_dict": opt_state,
    }
    if args.nbatches <= 0:
        out["epoch"] = 0
    torch.save(out, args.out)
    print(f"wrote {args.out}: {len(state_dict)} tensors, optimizer {opt_name}, epoch {out['epoch']} iter {out['iter']} of {nb} batches")


if __name__ == "__main__":
    main()
