// interaction_cat_fwd: DLRM "cat" interaction, forward: out[b] = cat(x_b, e_b1, .., e_bn).
// Bindings: params, x [B, d], emb [B, n, d] (compact), out [B, (n+1) d].
// Dispatch: one invocation per output element, ceil(B (n+1) d / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/interaction.ts (interactionForwardRef, op "cat").

// #include "interaction_cat_common.wgsl"

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> emb: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d;
  let p = cat_pos(idx);
  if (p.y < d) {
    out[idx] = x[p.x * d + p.y];
  } else {
    out[idx] = emb[p.x * params.n * d + (p.y - d)];
  }
}
