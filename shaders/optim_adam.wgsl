// optim_adam: torch.optim.Adam (L2 weight decay added to the gradient, amsgrad off) over a
// flat parameter buffer, bias corrections bias1 = 1 - beta1^t, bias2 = 1 - beta2^t from OptimParams:
//   g = grad[i] + weight_decay * w
//   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   w -= (lr / bias1) * m / (sqrt(v) / sqrt(bias2) + eps)
// Bindings: params {count}, optim (OptimParams), param (read_write), grad (read),
//           exp_avg (m, read_write), exp_avg_sq (v, read_write).
// Dispatch: one invocation per element, ceil(count / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/dense_optimizer.ts (denseOptimizerRef "adam").

// #include "optim_params.wgsl"

override WG: u32 = 256;

struct Params { count: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> exp_avg: array<f32>;
@group(0) @binding(5) var<storage, read_write> exp_avg_sq: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.count) { return; }
  let w = param[i];
  let g = grad[i] + optim.weight_decay * w;
  let m = optim.beta1 * exp_avg[i] + (1.0 - optim.beta1) * g;
  let v = optim.beta2 * exp_avg_sq[i] + (1.0 - optim.beta2) * g * g;
  exp_avg[i] = m;
  exp_avg_sq[i] = v;
  let denom = sqrt(v) / sqrt(optim.bias2) + optim.eps;
  param[i] = w - (optim.lr / optim.bias1) * (m / denom);
}
