// interaction_dot_fwd_vec4: interaction_dot_fwd.wgsl (see its header for what it computes,
// the entry points and their dispatch) for d % 4 == 0, with vec4 loads; each dot product
// accumulates 4 lanes of c and adds them at the end ((x + y) + (z + w): fixed order).
// Bindings: params (d = d / 4, TCAP = 1024 vec4s), x [B, d/4] vec4, emb [B, n, d/4] vec4,
// out [B, out_dim] f32 (out_dim = d + pairs).
// Body: include/interaction_dot_fwd_body.wgsl.
// Reference: src/kernels/reference/interaction.ts (interactionForwardRef).

// #include "interaction_elem_vec4.wgsl"

fn put_x(o: u32, v: V) { out[o] = v.x; out[o + 1u] = v.y; out[o + 2u] = v.z; out[o + 3u] = v.w; }
fn x_float(b: u32, r: u32) -> f32 { return x[b * params.d + r / 4u][r % 4u]; }

// #include "interaction_dot_fwd_body.wgsl"
