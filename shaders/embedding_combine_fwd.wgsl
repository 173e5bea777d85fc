// embedding_combine_fwd: builds the embeddings E [B, n, d] (compact) of the logical
// tables from the pooled sub-tables P [B, W] (QR / MD / plain combine), per table t:
//   copy    E[b,t,k] = P[b, a+k]
//   add     E[b,t,k] = P[b, a+k] + P[b, b'+k]
//   mult    E[b,t,k] = P[b, a+k] * P[b, b'+k]
//   concat  E[b,t,k] = k < wa ? P[b, a+k] : P[b, b'+k-wa]
//   project E[b,t,k] = sum_{j < wa} P[b, a+j] * proj[proj_offset + k*wa + j]   (j ascending)
// Bindings: params, desc (u32, see include), pooled P, proj (packed [d, dim_t] blocks), out E.
// Dispatch: one invocation per PER elements of E, ceil(B n d / PER / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/embedding_combine.ts (combineForwardRef).

override WG: u32 = 256;
// Elements of E per invocation (1 or 4; d % PER == 0).
override PER: u32 = 1;

// #include "embedding_combine_params.wgsl"

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> desc: array<u32>;
@group(0) @binding(2) var<storage, read> pooled: array<f32>;
@group(0) @binding(3) var<storage, read> proj: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  // Invocation i computes the PER consecutive elements [i*PER, i*PER + PER) of E (d % PER == 0,
  // so they share one (b, t)); total counts invocations.
  let inv = (wid.x + wid.y * nwg.x) * WG + lid;
  if (inv >= params.total) { return; }
  let d = params.d;
  let idx0 = inv * PER;
  let bt = idx0 / d;
  let k0 = idx0 - bt * d;
  let b = bt / params.n;
  let t = bt - b * params.n;
  let e = t * 8u;
  let op = desc[e];
  let a = desc[e + 1u];
  let b2 = desc[e + 2u];
  let wa = desc[e + 3u];
  let row = b * params.width;
  for (var u = 0u; u < PER; u++) {
    let k = k0 + u;
    var v = 0.0;
    switch op {
      case 0u: { v = pooled[row + a + k]; }
      case 1u: { v = pooled[row + a + k] + pooled[row + b2 + k]; }
      case 2u: { v = pooled[row + a + k] * pooled[row + b2 + k]; }
      case 3u: {
        if (k < wa) { v = pooled[row + a + k]; } else { v = pooled[row + b2 + k - wa]; }
      }
      default: {
        let w = desc[e + 5u] + k * wa;
        for (var j = 0u; j < wa; j++) {
          v += pooled[row + a + j] * proj[w + j];
        }
      }
    }
    out[idx0 + u] = v;
  }
}
