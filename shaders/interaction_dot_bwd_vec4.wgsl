// interaction_dot_bwd_vec4: interaction_dot_bwd.wgsl (see its header for what it computes,
// the entry points and their dispatch) for d % 4 == 0: same summation order, with one
// invocation per (b, i, 4 columns) and vec4 loads; main_sample needs d <= 128.
// Bindings: params (d = d / 4, total = B (n+1) d/4), x [B, d/4] vec4, emb [B, n, d/4] vec4,
//           grad_out [B, out_dim] f32, grad_x [B, d/4] vec4, grad_emb [B, n, d/4] vec4.
// main_wg stages T and the flat gradients in separate arrays: spw (n+1) d <= TCAP and
// spw pairs <= TCAP floats.
// Body: include/interaction_dot_bwd_body.wgsl.
// Reference: src/kernels/reference/interaction.ts (interactionBackwardRef).

// #include "interaction_elem_vec4.wgsl"

const TCAP: u32 = 2048u; // floats of T and, separately, of flat gradients (16 KiB in all)
var<workgroup> tile: array<vec4<f32>, TCAP / 4u>;
var<workgroup> gtile: array<f32, TCAP>;
fn g_base(tv: u32) -> u32 { return 0u; }
fn g_get(k: u32) -> f32 { return gtile[k]; }
fn g_set(k: u32, v: f32) { gtile[k] = v; }
// grad_out[o .. o+4) as a vec4 (out rows need not be 16-byte aligned).
fn pass_through(o: u32) -> V {
  return vec4<f32>(grad_out[o], grad_out[o + 1u], grad_out[o + 2u], grad_out[o + 3u]);
}

// #include "interaction_dot_bwd_body.wgsl"
