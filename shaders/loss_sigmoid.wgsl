// loss_sigmoid: sigmoid of the top MLP's logits fused with the loss, its per-sample value
// and dL/dz of the MEAN loss (the mean itself is reduced by reduce_sum).
//   p = sigmoid(z) (stable: e = exp(-|z|), p = 1/(1+e) or e/(1+e))
//   KIND 0 "bce":      loss = max(z,0) - z y + log1p(e)                  grad = (p - y) / B
//   KIND 1 "bce-prob": torch.nn.BCELoss on p: loss = -(y max(log p, -100) + (1-y) max(log1p(-p), -100)),
//                      grad = BCELoss backward (p - y) / max(p(1-p), 1e-12), times sigmoid' p(1-p), / B
//   KIND 2 "wbce":     w[y] * (KIND 1), w = (w0, w1) picked by the label (label >= 1 takes w1)
//   KIND 3 "mse":      loss = (p - y)^2                                   grad = 2 (p - y) p (1 - p) / B
// Output clamp (the reference's --loss-threshold t, 0 < t < 1; kinds 1-3): p is clamped to
// [t, 1-t] before the loss, prob holds the clamped value, and the gradient passes only where
// t <= p <= 1-t (torch.clamp's backward), so grad = dL/dp(p_clamped) * mask * p(1-p) / B.
// Bindings: params {batch, inv_batch, w0, w1, thr}, logits [B], labels [B], prob [B] (out),
//           grad [B] (out), loss [B] (out).
// Dispatch: one invocation per sample, ceil(B / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/loss.ts (lossRef); dlrm_s_pytorch.py loss_fn / loss_ws.

override WG: u32 = 256;
override KIND: u32 = 0;

struct Params { batch: u32, inv_batch: f32, w0: f32, w1: f32, thr: f32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> prob: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> loss: array<f32>;

// log(1 + a) for a > -1, accurate for small |a| (WGSL has no log1p):
// log(u) * a / (u - 1) with u = fl(1 + a) cancels the rounding of 1 + a.
fn log1p_(a: f32) -> f32 {
  let u = 1.0 + a;
  if (u == 1.0) { return a; }
  return log(u) * (a / (u - 1.0));
}

// max(log(v), -100) for v in [0, 1], without relying on log(0) = -inf.
fn clamped_log(v: f32) -> f32 {
  if (v <= 0.0) { return -100.0; }
  return max(log(v), -100.0);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.batch) { return; }
  let z = logits[i];
  let y = labels[i];
  let e = exp(-abs(z));
  let p = select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
  // sigmoid'(z) = p (1 - p), zeroed where the output clamp holds p.
  var dsig = p * (1.0 - p);
  var pc = p;
  if (params.thr > 0.0) {
    pc = clamp(p, params.thr, 1.0 - params.thr);
    if (p < params.thr || p > 1.0 - params.thr) { dsig = 0.0; }
  }
  prob[i] = pc;
  var l: f32;
  var g: f32;
  if (KIND == 0u) {
    l = max(z, 0.0) - z * y + log1p_(e);
    g = (p - y) * params.inv_batch;
  } else if (KIND == 3u) {
    let r = pc - y;
    l = r * r;
    g = 2.0 * r * dsig * params.inv_batch;
  } else {
    let q = 1.0 - pc;
    let lp = clamped_log(pc);
    var lq = -100.0;
    if (q > 0.0) { lq = max(log1p_(-pc), -100.0); }
    var w = 1.0;
    if (KIND == 2u) { w = select(params.w0, params.w1, y >= 1.0); }
    l = w * ((y - 1.0) * lq - y * lp);
    g = w * ((pc - y) / max(pc * q, 1e-12)) * dsig * params.inv_batch;
  }
  loss[i] = l;
  grad[i] = g;
}
