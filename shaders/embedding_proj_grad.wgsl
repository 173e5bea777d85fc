// embedding_proj_grad: gradient of the MD projections, packed like proj:
//   dproj[proj_offset + k*wa + j] = sum_{b < B} dE[b,t,k] * P[b, a+j]   (b ascending; deterministic)
// for every projected table {t, a, wa, proj_offset} of desc's projection list. Overwrites.
// Bindings: params, desc, pooled P, grad_out dE [B, n, d] (compact), grad_proj.
// Dispatch: one invocation per element of grad_proj, ceil(total / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/embedding_combine.ts (projGradRef).

override WG: u32 = 256;

// #include "embedding_combine_params.wgsl"

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> desc: array<u32>;
@group(0) @binding(2) var<storage, read> pooled: array<f32>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_proj: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d;
  // The projected table holding element idx (few tables: linear scan).
  var p = 0u;
  for (var q = 1u; q < params.num_proj; q++) {
    if (desc[params.proj_list + 4u * q + 3u] <= idx) { p = q; }
  }
  let e = params.proj_list + 4u * p;
  let t = desc[e];
  let a = desc[e + 1u];
  let wa = desc[e + 2u];
  let r = idx - desc[e + 3u];
  let k = r / wa;
  let j = r - k * wa;
  var s = 0.0;
  var g = t * d + k;
  var x = a + j;
  let gs = params.n * d;
  for (var b = 0u; b < params.batch; b++) {
    s += grad_out[g] * pooled[x];
    g += gs;
    x += params.width;
  }
  grad_proj[idx] = s;
}
