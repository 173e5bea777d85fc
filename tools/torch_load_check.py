#!/usr/bin/env python3
"""Loads a webgpu-dlrm checkpoint into the PyTorch DLRM of tools/make_fixtures.py with
load_state_dict(strict=True) and compares PyTorch's predictions on a fixture's batch 0 with
the ones webgpu-dlrm stored in the checkpoint ("check.prob", see tools/write_torch_check.ts).

    /usr/bin/python3 tools/torch_load_check.py CASE CHECKPOINT
"""
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures as mf  # noqa: E402


def main():
    case, path = sys.argv[1], sys.argv[2]
    fixture, fmeta = mf.read_safetensors(os.path.join(mf.OUT_DIR, case + ".safetensors"))
    cfg = json.loads(fmeta["config"])
    ours, meta = mf.read_safetensors(path)
    print("checkpoint format:", meta.get("format"), "step", meta.get("step"))
    model = mf.Dlrm(cfg)
    state = {k: torch.tensor(np.array(v)) for k, v in ours.items() if not k.startswith("optim.") and not k.startswith("check.")}
    model.load_state_dict(state, strict=True)
    B, T = cfg["batchSize"], len(cfg["tableRows"])
    batch = {k: fixture[f"batch0/{k}"] for k in ["dense", "offsets", "indices", "labels"]}
    offs, idxs = mf.to_torch_inputs(batch, B, T)
    with torch.no_grad():
        p = model(torch.tensor(np.array(batch["dense"])), offs, idxs).view(-1).numpy()
    q = ours["check.prob"]
    err = float(np.max(np.abs(p - q)))
    print("PyTorch:", np.array2string(p, precision=6))
    print("ours:   ", np.array2string(q, precision=6))
    print(f"max |difference| = {err:.3g}")
    sys.exit(0 if err < 1e-5 else 1)


if __name__ == "__main__":
    main()
