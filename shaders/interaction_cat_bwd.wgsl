// interaction_cat_bwd: DLRM "cat" interaction, backward: splits grad_out[b] = cat(dx_b, de_b1..de_bn).
// Bindings: params, grad_out [B, (n+1) d], grad_x [B, d], grad_emb [B, n, d].
// Dispatch: one invocation per grad_out element, ceil(B (n+1) d / WG) workgroups, folded by grid().
// Reference: src/kernels/reference/interaction.ts (interactionBackwardRef, op "cat").

override WG: u32 = 256;

struct Params { batch: u32, n: u32, d: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad_out: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad_x: array<f32>;
@group(0) @binding(3) var<storage, read_write> grad_emb: array<f32>;

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
    grad_x[b * d + r] = grad_out[idx];
  } else {
    grad_emb[b * params.n * d + (r - d)] = grad_out[idx];
  }
}
