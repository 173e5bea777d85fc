// interaction_dot_bwd: DLRM dot interaction, backward (fused: dx and every de_i in one kernel).
// Per sample b, with G the flat gradient of Zflat (grad_out[b, d ..]) expanded into the
// symmetric S = G + G^T (S[i][j] = G[i][j] for j < i, G[j][i] for j > i, and 2 G[i][i]
// on the diagonal when self_off = 1, else 0):
//   dT[i][c] = sum_{j=0..n} S[i][j] T[j][c]   (j ascending: deterministic)
//   grad_x[b]         = dT[0] + grad_out[b, 0..d)   (pass-through part of out)
//   grad_emb[b, i-1]  = dT[i], i = 1..n
// Bindings: params, x [B, d], emb [B, n, d], grad_out [B, out_dim], grad_x [B, d], grad_emb [B, n, d].
// Entry points:
//   main_wg     one workgroup per `spw` samples; T and the flat gradient of those samples
//               are staged in workgroup memory (spw * ((n+1) d + pairs) <= TCAP floats),
//               one barrier, then invocations stride over (sample, i, c).
//               Dispatch ceil(B / spw) workgroups, folded by grid().
//   main_global no workgroup memory, no barrier: one invocation per (b, i, c), reading
//               global memory (any n, d). Dispatch ceil(B (n+1) d / WG), folded by grid().
//   main_sample one invocation per sample (see the body; d <= 128). Dispatch ceil(B / WG), folded by grid().
// The code is shared with interaction_dot_bwd_vec4.wgsl: include/interaction_dot_bwd_body.wgsl.
// Reference: src/kernels/reference/interaction.ts (interactionBackwardRef).

// #include "interaction_elem_f32.wgsl"

// T and, after it, the flat gradients share one array of TCAP floats (16 KiB).
const TCAP: u32 = 4096u;
var<workgroup> tile: array<f32, TCAP>;
fn g_base(tv: u32) -> u32 { return tv; }
fn g_get(k: u32) -> f32 { return tile[k]; }
fn g_set(k: u32, v: f32) { tile[k] = v; }
fn pass_through(o: u32) -> V { return grad_out[o]; }

// #include "interaction_dot_bwd_body.wgsl"
