#!/usr/bin/env python3
"""
A checkpoint exactly as the reference's --save-model writes it
(dlrm_s_pytorch.py: torch.save(model_metrics_dict, args.save_model)), for the
test of our PyTorch zip reader (test/io/torch_checkpoint.test.ts):

    /usr/bin/python3 tools/make_torch_checkpoint.py

writes test/fixtures/torch/reference_save_model.pt (torch.save's zip format)
and reference_save_model.expected.safetensors (every state_dict tensor, the
scalars, a batch and the model's probabilities on it, to compare with).

The model is tools/make_fixtures.py's re-implementation of DLRM_Net (same
state_dict names), trained 3 steps with torch.optim.Adagrad on BCELoss, so
opt_state_dict holds tensors too; the scalars have the types the reference
gives them (train_loss and total_loss numpy float32 from E.detach().numpy(),
test_acc a numpy float64 from sklearn, iter/epoch/nbatches Python ints).
Needs Debian's python3-torch.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import make_fixtures as mf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "torch")


def main():
    os.makedirs(OUT, exist_ok=True)
    np.random.seed(5)
    torch.manual_seed(5)
    cfg = mf.base_cfg(seed=5, loss="bce", optimizer="adagrad", tableRows=[7, 13, 5], embeddingDim=4, bottomMlp=[5, 8, 4], topHidden=[8])
    model = mf.Dlrm(cfg)
    opt = torch.optim.Adagrad(model.parameters(), lr=0.05)
    batches = mf.make_batches(cfg, np.random.RandomState(7))
    B, T = cfg["batchSize"], len(cfg["tableRows"])
    total_loss, total_samp = 0, 0
    for k in range(3):
        b = batches[k]
        offs, idxs = mf.to_torch_inputs(b, B, T)
        p = model(torch.tensor(b["dense"]), offs, idxs)
        E = torch.nn.BCELoss()(p, torch.tensor(b["labels"]).view(-1, 1))
        opt.zero_grad()
        E.backward()
        opt.step()
        L = E.detach().cpu().numpy()  # as the reference: a numpy value
        total_loss += L * B
        total_samp += B
    train_loss = total_loss / total_samp
    metrics = {
        "nepochs": 1,
        "nbatches": 10,
        "nbatches_test": 4,
        "state_dict": model.state_dict(),
        "test_acc": np.float64(0.75),
        "epoch": 0,
        "iter": 3,
        "train_loss": train_loss,
        "total_loss": total_loss,
        "opt_state_dict": opt.state_dict(),
    }
    torch.save(metrics, os.path.join(OUT, "reference_save_model.pt"))
    b = batches[5]
    offs, idxs = mf.to_torch_inputs(b, B, T)
    with torch.no_grad():
        prob = model(torch.tensor(b["dense"]), offs, idxs).view(-1).numpy().astype(np.float32)
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    tensors.update({f"batch/{k}": b[k] for k in ["dense", "offsets", "indices", "labels"]})
    tensors["batch/prob"] = prob
    meta = {
        "iter": "3", "epoch": "0", "nepochs": "1", "nbatches": "10", "nbatches_test": "4",
        "train_loss": repr(float(train_loss)), "total_loss": repr(float(total_loss)), "test_acc": "0.75",
        "batchSize": str(B), "torch": torch.__version__,
    }
    mf.write_safetensors(os.path.join(OUT, "reference_save_model.expected.safetensors"), tensors, meta)
    print("wrote", OUT, "train_loss", float(train_loss))


if __name__ == "__main__":
    main()
