// Shared by the dot interaction kernels (interaction_dot_fwd/_bwd and their _vec4 variants):
// pair layout, workgroup size, params and the T inputs x, emb. The including kernel first
// includes interaction_elem_f32.wgsl or interaction_elem_vec4.wgsl, which define the element
// type V (f32 or vec4<f32>) and its float count W.

// #include "interaction_pairs.wgsl"

override WG: u32 = 128;

struct Params {
  batch: u32,
  n: u32,
  d: u32,        // elements of V per row of T (d floats / W)
  out_dim: u32,  // floats
  pairs: u32,
  self_off: u32,
  spw: u32,      // samples per workgroup (main_wg)
  total: u32,    // main_global invocations: batch * out_dim (forward), batch * (n+1) * d (backward)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<V>;
@group(0) @binding(2) var<storage, read> emb: array<V>;
