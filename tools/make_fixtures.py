#!/usr/bin/env python3
"""
PyTorch reference fixtures for webgpu-dlrm (run: /usr/bin/python3 tools/make_fixtures.py).

A small re-implementation, written for this project, of the DLRM network of
facebookresearch/dlrm (dlrm_s_pytorch.py, tricks/qr_embedding_bag.py,
tricks/md_embedding_bag.py, optim/rwsadagrad.py): same modules, same
parameter names (state_dict), same initialisation order and RNG use, same
losses, optimizers and learning-rate policy. For each case it writes
test/fixtures/dlrm/<case>.safetensors holding the configuration (JSON in the
__metadata__ entry "config"), the initial parameters, 10 batches, the forward
outputs and every gradient on batch 0, and the parameters after 1 and 10
optimizer steps. docs/fixtures.md lists the tensors and the semantics.

The safetensors files are written by hand (the `safetensors` package is not
needed): 8-byte little-endian header size, JSON header padded with spaces to a
multiple of 8, then the tensors back to back.

Needs torch (tested with Debian's python3-torch 1.13) and numpy.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "dlrm")
NUM_BATCHES = 10
FORMAT = "webgpu-dlrm-fixture-v1"

# --------------------------------------------------------------------------
# Model (re-implementation of the reference's DLRM_Net, single device)
# --------------------------------------------------------------------------


def make_mlp(ln, sigmoid_layer):
    """Linear + ReLU per layer, Sigmoid after layer `sigmoid_layer` (reference create_mlp).
    nn.Linear's own init draws from torch's RNG first; the weights are then
    replaced by numpy draws: W ~ N(0, sqrt(2/(in+out))) [out,in], b ~ N(0, sqrt(1/out))."""
    layers = []
    for i in range(len(ln) - 1):
        n, m = int(ln[i]), int(ln[i + 1])
        lin = nn.Linear(n, m, bias=True)
        w = np.random.normal(0.0, np.sqrt(2 / (m + n)), size=(m, n)).astype(np.float32)
        b = np.random.normal(0.0, np.sqrt(1 / m), size=m).astype(np.float32)
        lin.weight.data = torch.tensor(w)
        lin.bias.data = torch.tensor(b)
        layers.append(lin)
        layers.append(nn.Sigmoid() if i == sigmoid_layer else nn.ReLU())
    # Sequential: parameters are named "<2k>.weight" / "<2k>.bias".
    return nn.Sequential(*layers)


class QREmb(nn.Module):
    """Quotient-remainder embedding bag (reference QREmbeddingBag, mode="sum", sparse=True).
    weight_q [ceil(n/c), dq], weight_r [c, dr]; each bag is pooled (summed)
    separately in both tables, THEN combined: concat / add / mult of the two
    pooled vectors. Init: torch uniform_(w, sqrt(1/n)) i.e. U(a=sqrt(1/n), b=1)."""

    def __init__(self, n, dim, collisions, operation):
        super().__init__()
        self.c = collisions
        self.op = operation
        self.weight_q = nn.Parameter(torch.Tensor(int(np.ceil(n / collisions)), dim))
        self.weight_r = nn.Parameter(torch.Tensor(collisions, dim))
        nn.init.uniform_(self.weight_q, np.sqrt(1 / n))
        nn.init.uniform_(self.weight_r, np.sqrt(1 / n))

    def forward(self, idx, off):
        q = torch.div(idx, self.c, rounding_mode="floor")
        r = torch.remainder(idx, self.c)
        eq = F.embedding_bag(q, self.weight_q, off, mode="sum", sparse=True)
        er = F.embedding_bag(r, self.weight_r, off, mode="sum", sparse=True)
        if self.op == "concat":
            return torch.cat((eq, er), dim=1)
        if self.op == "add":
            return eq + er
        return eq * er


class MDEmb(nn.Module):
    """Mixed-dimension embedding (reference PrEmbeddingBag): embs = EmbeddingBag(n, dim)
    then proj = Linear(dim, base, bias=False) when dim < base, identity when equal."""

    def __init__(self, n, dim, base):
        super().__init__()
        self.embs = nn.EmbeddingBag(n, dim, mode="sum", sparse=True)
        nn.init.xavier_uniform_(self.embs.weight)
        if dim < base:
            self.proj = nn.Linear(dim, base, bias=False)
            nn.init.xavier_uniform_(self.proj.weight)
        elif dim == base:
            self.proj = nn.Identity()
        else:
            raise ValueError("md dim > base")
        # The reference then overwrites embs.weight with numpy U(-sqrt(1/n), sqrt(1/n)).
        w = np.random.uniform(-np.sqrt(1 / n), np.sqrt(1 / n), size=(n, dim)).astype(np.float32)
        self.embs.weight.data = torch.tensor(w)

    def forward(self, idx, off):
        return self.proj(self.embs(idx, offsets=off))


def md_solver(rows, alpha, d0, round_dim):
    """Reference md_solver / alpha_power_rule with d0 given (no budget, k = 1):
    sort tables by rows; the smallest gets d0, the others round(d0 * (n0/n)^alpha),
    at least 1; optional rounding to the nearest power of two."""
    n = np.array(rows, dtype=np.float64)
    order = np.argsort(n, kind="stable")
    ns = n[order].astype(np.float32)
    lamb = np.float32(d0) * ns[0] ** np.float32(alpha)
    d = (lamb * ns ** np.float32(-alpha)).astype(np.float32)
    d[0] = d0
    d = np.maximum(d, 1)
    d = np.round(d)
    if round_dim:
        d = 2 ** np.round(np.log2(d))
    out = np.zeros(len(rows), dtype=np.int64)
    out[order] = d.astype(np.int64)
    return [int(v) for v in out]


class Dlrm(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        d = cfg["embeddingDim"]
        qr, md = cfg["qr"], cfg["md"]
        emb = []
        # Creation order matters for the RNG streams: tables, then bottom, then top (as the reference).
        for t, n in enumerate(cfg["tableRows"]):
            if qr is not None and n > qr["threshold"]:
                dim = d // 2 if qr["operation"] == "concat" else d
                emb.append(QREmb(n, dim, qr["collisions"], qr["operation"]))
            elif md is not None and n > md["threshold"]:
                emb.append(MDEmb(n, md["dims"][t], max(md["dims"])))
            else:
                e = nn.EmbeddingBag(n, d, mode="sum", sparse=True)
                w = np.random.uniform(-np.sqrt(1 / n), np.sqrt(1 / n), size=(n, d)).astype(np.float32)
                e.weight.data = torch.tensor(w)
                emb.append(e)
        self.emb_l = nn.ModuleList(emb)
        # Fixture-only (not in the reference): the reference's QR init U(sqrt(1/n), 1) is all
        # positive and saturates the sigmoid on multi-hot bags; scale it down so gradients mean something.
        with torch.no_grad():
            for e in emb:
                if isinstance(e, QREmb):
                    e.weight_q.mul_(cfg["fixtureQrInitScale"])
                    e.weight_r.mul_(cfg["fixtureQrInitScale"])
        self.bot_l = make_mlp(cfg["bottomMlp"], -1)
        self.top_l = make_mlp(cfg["topMlp"], len(cfg["topMlp"]) - 2)

    def interact(self, x, ly):
        if self.cfg["interaction"] == "dot":
            b, d = x.shape
            T = torch.cat([x] + ly, dim=1).view((b, -1, d))
            Z = torch.bmm(T, torch.transpose(T, 1, 2))
            off = 1 if self.cfg["interactionItself"] else 0
            n = Z.shape[1]
            li = torch.tensor([i for i in range(n) for j in range(i + off)], dtype=torch.long)
            lj = torch.tensor([j for i in range(n) for j in range(i + off)], dtype=torch.long)
            return torch.cat([x, Z[:, li, lj]], dim=1)
        return torch.cat([x] + ly, dim=1)

    def forward(self, dense, offs, idxs, acts=None):
        x = self.bot_l(dense)
        ly = [e(i, o) for e, i, o in zip(self.emb_l, idxs, offs)]
        z = self.interact(x, ly)
        h = z
        for k, layer in enumerate(self.top_l):
            if k == len(self.top_l) - 1 and acts is not None:
                acts["act/top_logit"] = h.detach().clone().view(-1)
            h = layer(h)
        if acts is not None:
            acts["act/x"] = x.detach().clone()
            for t, y in enumerate(ly):
                acts[f"act/ly.{t}"] = y.detach().clone()
            acts["act/z"] = z.detach().clone()
        thr = self.cfg["lossThreshold"]
        if 0.0 < thr < 1.0:
            h = torch.clamp(h, min=thr, max=1.0 - thr)
        return h


def loss_fn(cfg, p, t):
    """Reference losses: MSELoss(mean), BCELoss(mean), wbce = mean(w[label] * bce_none)
    with the weights a float64 tensor (so the wbce loss is computed in float64)."""
    if cfg["loss"] == "mse":
        return F.mse_loss(p, t, reduction="mean")
    if cfg["loss"] == "bce":
        return F.binary_cross_entropy(p, t, reduction="mean")
    ws = torch.tensor(np.array(cfg["lossWeights"], dtype=np.float64))
    w = ws[t.view(-1).long()].view_as(t)
    return (w * F.binary_cross_entropy(p, t, reduction="none")).mean()


# --------------------------------------------------------------------------
# Optimizers and LR policy
# --------------------------------------------------------------------------


class RowWiseAdagrad(torch.optim.Optimizer):
    """Reference RWSAdagrad (lr_decay = weight_decay = initial accumulator = 0, eps 1e-10).
    Sparse-gradient params (embeddings): one accumulator per row,
    acc[r] += mean_j(g[r,j]^2); w[r] -= lr * g[r] / (sqrt(acc[r]) + eps), only on
    rows present in the (coalesced) gradient. Dense params (MLPs, MD projections):
    plain element-wise Adagrad."""

    def __init__(self, params, lr, eps=1e-10):
        super().__init__(params, dict(lr=lr, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state[p]
                g = p.grad
                if g.is_sparse:
                    if "momentum" not in st:
                        st["momentum"] = torch.zeros(p.shape[0], dtype=torch.float32)
                    g = g.coalesce()
                    rows, vals = g._indices()[0], g._values()
                    if vals.numel() == 0:
                        continue
                    st["momentum"].index_add_(0, rows, vals.pow(2).mean(dim=1))
                    std = st["momentum"][rows].sqrt().add_(group["eps"])
                    p.index_add_(0, rows, -group["lr"] * (vals / std.view(-1, 1)))
                else:
                    if "sum" not in st:
                        st["sum"] = torch.zeros_like(p)
                    st["sum"].addcmul_(g, g, value=1.0)
                    p.addcdiv_(g, st["sum"].sqrt().add_(group["eps"]), value=-group["lr"])


class LRPolicy(torch.optim.lr_scheduler._LRScheduler):
    """Reference LRPolicyScheduler (linear warmup, then quadratic decay, frozen in between/after)."""

    def __init__(self, opt, warmup, decay_start, decay_steps):
        assert decay_start >= warmup, "warmup must finish before the decay starts"
        self.w, self.s, self.n = warmup, decay_start, decay_steps
        super().__init__(opt)

    def get_lr(self):
        t = self._step_count
        if t < self.w:
            self.frozen = [b * (1.0 - (self.w - t) / self.w) for b in self.base_lrs]
            return self.frozen
        if self.s <= t < self.s + self.n:
            sc = ((self.n - (t - self.s)) / self.n) ** 2
            self.frozen = [max(1e-7, b * sc) for b in self.base_lrs]
            return self.frozen
        if self.n > 0:
            return self.frozen  # the reference raises AttributeError if nothing was set yet
        return list(self.base_lrs)


def lr_closed_form(base, t, w, s, n):
    """Independent closed form of the LR used by optimizer step t (1-based)."""
    last = None
    for u in range(1, t + 1):
        if u < w:
            last = base * u / w
        elif s <= u < s + n:
            last = max(1e-7, base * ((n - (u - s)) / n) ** 2)
        elif n == 0:
            last = base
    return last


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def make_batches(cfg, rng):
    """NUM_BATCHES batches in our layout: table-major CSR offsets [T*B+1] over
    table-local indices. Bags of 0..4 indices; batch 0 forces empty bags and duplicates."""
    B, T = cfg["batchSize"], len(cfg["tableRows"])
    out = []
    for k in range(NUM_BATCHES):
        dense = rng.uniform(0.0, 1.0, size=(B, cfg["bottomMlp"][0])).astype(np.float32)
        labels = rng.randint(0, 2, size=B).astype(np.float32)
        bags = []
        for t, rows in enumerate(cfg["tableRows"]):
            for b in range(B):
                bag = list(rng.randint(0, rows, size=rng.randint(0, 5)))
                if k == 0 and b == (t + 1) % B:
                    bag = []  # an empty bag per table
                if k == 0 and b == (t + 3) % B:
                    r = int(rng.randint(0, rows))
                    bag = [r, rows - 1, r]  # duplicate index, and the last row
                bags.append(bag)
        offsets = np.zeros(T * B + 1, dtype=np.uint32)
        offsets[1:] = np.cumsum([len(x) for x in bags])
        indices = np.array([i for x in bags for i in x], dtype=np.uint32)
        out.append(dict(dense=dense, offsets=offsets, indices=indices, labels=labels))
    return out


def to_torch_inputs(batch, B, T):
    """Our CSR -> the reference's per-table (offsets [B] of bag starts, indices)."""
    o, ind = batch["offsets"].astype(np.int64), batch["indices"].astype(np.int64)
    offs, idxs = [], []
    for t in range(T):
        base = o[t * B]
        offs.append(torch.tensor(o[t * B : t * B + B] - base))
        idxs.append(torch.tensor(ind[base : o[t * B + B]]))
    return offs, idxs


# --------------------------------------------------------------------------
# safetensors writer (by hand)
# --------------------------------------------------------------------------

DTYPES = {np.dtype(np.float32): "F32", np.dtype(np.uint32): "U32", np.dtype(np.int32): "I32", np.dtype(np.float64): "F64"}


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    chunks, pos = [], 0
    for name, arr in tensors.items():  # all dtypes used are 4 bytes wide: with the 8-aligned header, every tensor is aligned
        arr = np.ascontiguousarray(arr)
        b = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": DTYPES[arr.dtype], "shape": list(arr.shape), "data_offsets": [pos, pos + len(b)]}
        chunks.append(b)
        pos += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for c in chunks:
            f.write(c)
    os.replace(path + ".tmp", path)


def read_safetensors(path):
    """Minimal reader used to check what was written."""
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__")
    inv = {v: k for k, v in DTYPES.items()}
    out = {}
    for name, h in header.items():
        a, b = h["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a : 8 + n + b], dtype=inv[h["dtype"]]).reshape(h["shape"])
    return out, meta


# --------------------------------------------------------------------------
# Independent checks (float64 numpy loops) of the subtle parts
# --------------------------------------------------------------------------


def check_interaction(model, acts, cfg):
    """z = [x, Z[i][j] for i in 0..n, j < i (j <= i with itself)] row-major; cat: [x, e_1..e_n]."""
    x = acts["act/x"].double().numpy()
    ly = [acts[f"act/ly.{t}"].double().numpy() for t in range(len(cfg["tableRows"]))]
    z = acts["act/z"].double().numpy()
    for b in range(x.shape[0]):
        feats = [x[b]] + [y[b] for y in ly]
        if cfg["interaction"] == "dot":
            ref = list(x[b])
            for i in range(len(feats)):
                for j in range(i + (1 if cfg["interactionItself"] else 0)):
                    ref.append(float(np.dot(feats[i], feats[j])))
        else:
            ref = [v for f in feats for v in f]
        assert np.allclose(z[b], ref, rtol=1e-5, atol=1e-6), "interaction order mismatch"


def check_embeddings(model, batch, acts, cfg):
    """Pooled embeddings from our CSR with plain loops (QR: pool q and r separately, then combine)."""
    B = cfg["batchSize"]
    o, ind = batch["offsets"], batch["indices"]
    for t, e in enumerate(model.emb_l):
        got = acts[f"act/ly.{t}"].double().numpy()
        for b in range(B):
            bag = ind[o[t * B + b] : o[t * B + b + 1]]
            if isinstance(e, QREmb):
                wq, wr = e.weight_q.detach().double().numpy(), e.weight_r.detach().double().numpy()
                sq = sum((wq[i // e.c] for i in bag), np.zeros(wq.shape[1]))
                sr = sum((wr[i % e.c] for i in bag), np.zeros(wr.shape[1]))
                ref = np.concatenate([sq, sr]) if e.op == "concat" else (sq + sr if e.op == "add" else sq * sr)
            elif isinstance(e, MDEmb):
                w = e.embs.weight.detach().double().numpy()
                s = sum((w[i] for i in bag), np.zeros(w.shape[1]))
                ref = s if isinstance(e.proj, nn.Identity) else e.proj.weight.detach().double().numpy() @ s
            else:
                w = e.weight.detach().double().numpy()
                ref = sum((w[i] for i in bag), np.zeros(w.shape[1]))
            assert np.allclose(got[b], ref, rtol=1e-5, atol=1e-6), f"pooled embedding mismatch t={t} b={b}"


def check_step1(cfg, init, grads, step1, lr):
    """One optimizer step recomputed from init + grad with numpy float64."""
    for name, g in grads.items():
        w0, g = init[name].astype(np.float64), g.astype(np.float64)
        if cfg["optimizer"] == "sgd":
            ref = w0 - lr * g
        elif cfg["optimizer"] == "adagrad":
            ref = w0 - lr * g / (np.sqrt(g * g) + 1e-10)
        else:
            sparse = name.startswith("emb_l.") and not name.endswith("proj.weight")
            if sparse:
                acc = np.mean(g * g, axis=1, keepdims=True)
                ref = w0 - lr * g / (np.sqrt(acc) + 1e-10)
            else:
                ref = w0 - lr * g / (np.sqrt(g * g) + 1e-10)
        assert np.allclose(step1[name], ref, rtol=1e-5, atol=1e-6), f"step 1 mismatch for {name}"


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def base_cfg(**kw):
    cfg = dict(
        embeddingDim=4,
        numDense=5,
        tableRows=[7, 13, 5],
        bottomMlp=[5, 8, 4],
        topMlp=None,  # computed
        topHidden=[8],
        interaction="dot",
        interactionItself=False,
        loss="mse",
        lossWeights=None,
        lossThreshold=0.0,
        optimizer="sgd",
        learningRate=0.1,
        lrSchedule=dict(warmupSteps=0, decayStartStep=0, numDecaySteps=0),
        qr=None,
        md=None,
        fixtureQrInitScale=1.0,
        batchSize=6,
        numBatches=NUM_BATCHES,
        seed=123,
    )
    cfg.update(kw)
    d, n = cfg["embeddingDim"], len(cfg["tableRows"])
    if cfg["interaction"] == "dot":
        top_in = d + (n + 1) * (n + 2) // 2 - (0 if cfg["interactionItself"] else n + 1)
    else:
        top_in = (n + 1) * d
    cfg["topMlp"] = [top_in] + cfg.pop("topHidden") + [1]
    return cfg


CASES = {
    # plain tables; dot; the reference's default loss (mse) and optimizer (sgd)
    "dot_mse_sgd": base_cfg(seed=1),
    # dot with the diagonal; bce; Adagrad; the LR policy (warmup, frozen gap, decay, frozen tail)
    "dot_itself_bce_adagrad_lrsched": base_cfg(
        seed=2, interactionItself=True, loss="bce", optimizer="adagrad", learningRate=0.05,
        lrSchedule=dict(warmupSteps=3, decayStartStep=5, numDecaySteps=4),
    ),
    # cat; weighted bce; row-wise sparse Adagrad
    "cat_wbce_rwsadagrad": base_cfg(
        seed=3, interaction="cat", loss="wbce", lossWeights=[0.5, 2.0], optimizer="rwsadagrad", learningRate=0.05,
    ),
    # QR mult on tables with rows > 6 (table 2, 5 rows, stays plain); bce with the output clamp
    "qr_mult_dot_bce_sgd_clamp": base_cfg(
        seed=4, loss="bce", learningRate=0.1, lossThreshold=0.16, fixtureQrInitScale=0.3,
        qr=dict(operation="mult", collisions=4, threshold=6),
    ),
    # QR concat (each half d/2 wide) on every table; mse; Adagrad
    "qr_concat_dot_mse_adagrad": base_cfg(
        seed=5, optimizer="adagrad", learningRate=0.05, tableRows=[7, 13, 9], fixtureQrInitScale=0.3,
        qr=dict(operation="concat", collisions=4, threshold=0),
    ),
    # QR add, 3 collisions, mixed with a plain table; cat; bce; row-wise Adagrad
    "qr_add_cat_bce_rwsadagrad": base_cfg(
        seed=6, interaction="cat", loss="bce", optimizer="rwsadagrad", learningRate=0.05, fixtureQrInitScale=0.3,
        qr=dict(operation="add", collisions=3, threshold=6),
    ),
    # mixed dimensions from md_solver (temperature 1): projections 3->4, 2->4 and identity 4
    "md_dot_bce_rwsadagrad": base_cfg(
        seed=7, loss="bce", optimizer="rwsadagrad", learningRate=0.05,
        md=dict(temperature=1.0, roundDims=False, threshold=0, dims=None),
    ),
    # mixed dimensions with cat, itself ignored, mse, sgd
    "md_cat_mse_sgd": base_cfg(
        seed=8, interaction="cat", loss="mse", learningRate=0.2, tableRows=[40, 9, 3],
        md=dict(temperature=0.5, roundDims=True, threshold=0, dims=None),
    ),
}


def run_case(name, cfg):
    if cfg["md"] is not None and cfg["md"]["dims"] is None:
        cfg["md"]["dims"] = md_solver(cfg["tableRows"], cfg["md"]["temperature"], cfg["embeddingDim"], cfg["md"]["roundDims"])
    np.random.seed(cfg["seed"])
    torch.manual_seed(cfg["seed"])
    model = Dlrm(cfg)
    B, T = cfg["batchSize"], len(cfg["tableRows"])
    batches = make_batches(cfg, np.random.RandomState(cfg["seed"] + 1000))

    tensors = {}
    init = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    for k, v in init.items():
        tensors[f"init/{k}"] = v
    for k, bt in enumerate(batches):
        for f in ("dense", "offsets", "indices", "labels"):
            tensors[f"batch{k}/{f}"] = bt[f]

    params = list(model.parameters())
    lr = cfg["learningRate"]
    opt = {"sgd": lambda: torch.optim.SGD(params, lr=lr),
           "adagrad": lambda: torch.optim.Adagrad(params, lr=lr),
           "rwsadagrad": lambda: RowWiseAdagrad(params, lr=lr)}[cfg["optimizer"]]()
    s = cfg["lrSchedule"]
    sched = LRPolicy(opt, s["warmupSteps"], s["decayStartStep"], s["numDecaySteps"])

    losses, lrs = [], []
    named = dict(model.named_parameters())
    for k, bt in enumerate(batches):
        offs, idxs = to_torch_inputs(bt, B, T)
        acts = {} if k == 0 else None
        opt.zero_grad()
        p = model(torch.tensor(bt["dense"]), offs, idxs, acts)
        loss = loss_fn(cfg, p, torch.tensor(bt["labels"]).view(-1, 1))
        loss.backward()
        losses.append(float(loss))
        lrs.append(opt.param_groups[0]["lr"])
        assert abs(lrs[-1] - lr_closed_form(lr, k + 1, s["warmupSteps"], s["decayStartStep"], s["numDecaySteps"])) < 1e-12
        if k == 0:
            check_interaction(model, acts, cfg)
            check_embeddings(model, bt, acts, cfg)
            tensors["out/prob"] = p.detach().numpy().reshape(-1).copy()
            tensors["out/loss"] = np.array([float(loss)], dtype=np.float32)
            for a, v in acts.items():
                tensors[a] = v.numpy()
            grads = {}
            for pn, prm in named.items():
                g = prm.grad.to_dense() if prm.grad.is_sparse else prm.grad
                grads[pn] = g.detach().numpy().copy()
                tensors[f"grad/{pn}"] = grads[pn]
        opt.step()
        sched.step()
        if k == 0 or k == NUM_BATCHES - 1:
            sd = {kk: v.detach().numpy().copy() for kk, v in model.state_dict().items()}
            for kk, v in sd.items():
                tensors[f"step{k + 1}/{kk}"] = v
            if k == 0:
                check_step1(cfg, init, grads, sd, lrs[0])
            for pn, prm in named.items():  # optimizer accumulators
                st = opt.state.get(prm, {})
                for key in ("sum", "momentum"):
                    if key in st:
                        tensors[f"opt{k + 1}/{pn}"] = st[key].detach().numpy().copy()
    tensors["losses"] = np.array(losses, dtype=np.float32)
    tensors["lrs"] = np.array(lrs, dtype=np.float32)

    cfg_out = dict(cfg)
    cfg_out["name"] = name
    cfg_out["emb"] = emb_layout(model)
    meta = {"format": FORMAT, "config": json.dumps(cfg_out), "torch": torch.__version__}
    path = os.path.join(OUT_DIR, name + ".safetensors")
    write_safetensors(path, tensors, meta)
    back, meta2 = read_safetensors(path)
    assert meta2 == meta and all(np.array_equal(back[k], v) for k, v in tensors.items())
    prob = tensors["out/prob"]
    print(f"{name}: {os.path.getsize(path)} bytes, loss0 {losses[0]:.6f} loss9 {losses[-1]:.6f}, "
          f"prob [{prob.min():.3f}, {prob.max():.3f}], params {sorted(init)}")
    return cfg_out


def emb_layout(model):
    """Per table: kind and parameter names with shapes (the names the reference's modules produce)."""
    out = []
    for t, e in enumerate(model.emb_l):
        ps = {f"emb_l.{t}.{k}": list(v.shape) for k, v in e.state_dict().items()}
        kind = "qr" if isinstance(e, QREmb) else "md" if isinstance(e, MDEmb) else "plain"
        out.append(dict(kind=kind, params=ps))
    return out


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    only = sys.argv[1:]
    for name, cfg in CASES.items():
        if not only or name in only:
            run_case(name, json.loads(json.dumps(cfg)))


if __name__ == "__main__":
    main()
