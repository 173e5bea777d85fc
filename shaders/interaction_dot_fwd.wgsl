// interaction_dot_fwd: DLRM dot interaction, forward.
// Per sample b: T = [x_b, e_b1 .. e_bn] ((n+1) x d), Z = T T^T,
// out[b] = cat(x_b, Zflat) with Zflat[pair_base(i) + j] = Z[i][j], j < i (j <= i when self_off = 1).
// Bindings: params, x [B, d], emb [B, n, d] (compact), out [B, out_dim] (out_dim = d + pairs).
// Entry points:
//   main_wg     one workgroup per `spw` samples: T of those samples is staged in
//               workgroup memory (spw * (n+1) * d <= TCAP floats), one barrier, then
//               invocations stride over (sample, pair) outputs. Dispatch ceil(B / spw)
//               workgroups, folded by grid().
//   main_global no workgroup memory, no barrier: one invocation per output element
//               (B * out_dim), T read from global memory (any n, d). Dispatch
//               ceil(B * out_dim / WG) workgroups, folded by grid().
//   main_sample one invocation per sample (see below). Dispatch ceil(B / WG), folded by grid().
// Each dot product is summed over c = 0..d-1 in order (deterministic).
// The code is shared with interaction_dot_fwd_vec4.wgsl: include/interaction_dot_fwd_body.wgsl.
// Reference: src/kernels/reference/interaction.ts (interactionForwardRef).

// #include "interaction_elem_f32.wgsl"

fn put_x(o: u32, v: V) { out[o] = v; }
fn x_float(b: u32, r: u32) -> f32 { return x[b * params.d + r]; }

// #include "interaction_dot_fwd_body.wgsl"
