// optim_sgd: torch.optim.SGD (momentum 0) over a flat parameter buffer:
//   g = grad[i] + weight_decay * w;  w -= lr * g
// Bindings: params {count}, optim (OptimParams), param (read_write), grad (read).
// Dispatch: one invocation per element, ceil(count / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/dense_optimizer.ts (denseOptimizerRef "sgd").

// #include "optim_params.wgsl"

override WG: u32 = 256;

struct Params { count: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read_write> param: array<f32>;
@group(0) @binding(3) var<storage, read> grad: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.count) { return; }
  let w = param[i];
  let g = grad[i] + optim.weight_decay * w;
  param[i] = w - optim.lr * g;
}
