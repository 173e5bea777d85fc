// interaction_cat_bwd: DLRM "cat" interaction, backward: splits grad_out[b] = cat(dx_b, de_b1..de_bn).
// Bindings: params, grad_out [B, (n+1) d], grad_x [B, d], grad_emb [B, n, d].
// Dispatch: one invocation per grad_out element, ceil(B (n+1) d / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/interaction.ts (interactionBackwardRef, op "cat").

// #include "interaction_cat_common.wgsl"

@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_emb: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d;
  let p = cat_pos(idx);
  if (p.y < d) {
    grad_x[p.x * d + p.y] = grad_out[idx];
  } else {
    grad_emb[p.x * params.n * d + (p.y - d)] = grad_out[idx];
  }
}
