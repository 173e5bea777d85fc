// interaction_cat_fwd: DLRM "cat" interaction, forward: out[b] = cat(x_b, e_b1, .., e_bn).
// Bindings: params, x [B, d], emb [B, n, d] (compact), out [B, (n+1) d].
// Dispatch: one invocation per output element, ceil(B (n+1) d / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/interaction.ts (interactionForwardRef, op "cat").

override WG: u32 = 256;

struct Params { batch: u32, n: u32, d: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> emb: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d;
  let row = (params.n + 1u) * d;
  let b = idx / row;
  let r = idx - b * row;
  if (r < d) {
    out[idx] = x[b * d + r];
  } else {
    out[idx] = emb[b * params.n * d + (r - d)];
  }
}
