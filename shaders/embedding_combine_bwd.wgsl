// embedding_combine_bwd: gradient of the pooled sub-tables dP [B, W] from dE [B, n, d]
// (compact), the transpose of embedding_combine_fwd. Every column of P belongs to at most
// one logical table t (side 0: columns a.., side 1: columns b'..), so each dP element is
// written by exactly one invocation, no atomics:
//   copy / add           dP[b, a+j] = dE[b,t,j]           (add: also dP[b, b'+j] = dE[b,t,j])
//   mult                 dP[b, a+j] = dE[b,t,j] * P[b, b'+j],  dP[b, b'+j] = dE[b,t,j] * P[b, a+j]
//   concat               dP[b, a+j] = dE[b,t,j],           dP[b, b'+j] = dE[b,t,wa+j]
//   project              dP[b, a+j] = sum_{k < d} dE[b,t,k] * proj[proj_offset + k*wa + j]  (k ascending)
//   padding column       dP[b, c] = 0
// Bindings: params, desc, pooled P (forward values, for mult), proj, grad_out dE, grad_pooled dP.
// Dispatch: one invocation per PER elements of dP, ceil(B W / PER / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/embedding_combine.ts (combineBackwardRef).

override WG: u32 = 256;
// Elements of dP per invocation (1 or 4; W % PER == 0).
override PER: u32 = 1;

// #include "embedding_combine_params.wgsl"

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> desc: array<u32>;
@group(0) @binding(2) var<storage, read> pooled: array<f32>;
@group(0) @binding(3) var<storage, read> proj: array<f32>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad_pooled: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  // Invocation i computes the PER consecutive elements [i*PER, i*PER + PER) of dP (W % PER == 0,
  // so they share one sample b; each column looks up its own owner); total counts invocations.
  let inv = (wid.x + wid.y * nwg.x) * WG + lid;
  if (inv >= params.total) { return; }
  let W = params.width;
  let idx0 = inv * PER;
  let b = idx0 / W;
  let col0 = idx0 - b * W;
  let d = params.d;
  let row = b * W;
  for (var u = 0u; u < PER; u++) {
    let m = params.col_map + 2u * (col0 + u);
    let t = desc[m];
    var v = 0.0;
    if (t != 0xffffffffu) {
      let side = desc[m + 1u] >> 16u;
      let j = desc[m + 1u] & 0xffffu;
      let e = t * 8u;
      let op = desc[e];
      let a = desc[e + 1u];
      let b2 = desc[e + 2u];
      let wa = desc[e + 3u];
      let g = (b * params.n + t) * d;
      switch op {
        case 0u, 1u: { v = grad_out[g + j]; }
        case 2u: {
          if (side == 0u) { v = grad_out[g + j] * pooled[row + b2 + j]; } else { v = grad_out[g + j] * pooled[row + a + j]; }
        }
        case 3u: { v = grad_out[g + side * wa + j]; }
        default: {
          let w = desc[e + 5u] + j;
          for (var k = 0u; k < d; k++) {
            v += grad_out[g + k] * proj[w + k * wa];
          }
        }
      }
    }
    grad_pooled[idx0 + u] = v;
  }
}
