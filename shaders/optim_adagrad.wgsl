// optim_adagrad: torch.optim.Adagrad (lr_decay 0, initial accumulator in state) over a flat
// parameter buffer; also the dense path of the reference's RWSAdagrad (dlrm optim/rwsadagrad.py),
// which is the same element-wise update:
//   g = grad[i] + weight_decay * w;  s += g * g;  w -= lr * g / (sqrt(s) + eps)
// Bindings: params {count}, optim (OptimParams), param (read_write), grad (read), sum (read_write).
// Dispatch: one invocation per element, ceil(count / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/dense_optimizer.ts (denseOptimizerRef "adagrad").

// #include "optim_params.wgsl"

override WG: u32 = 256;

struct Params { count: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;
@group(0) @binding(4) var<storage, read_write> sum: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.count) { return; }
  let w = param[i];
  let g = grad[i] + optim.weight_decay * w;
  let s = sum[i] + g * g;
  sum[i] = s;
  param[i] = w - optim.lr * (g / (sqrt(s) + optim.eps));
}
