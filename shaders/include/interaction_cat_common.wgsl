// Shared by interaction_cat_fwd.wgsl and interaction_cat_bwd.wgsl: workgroup size, params
// and the position of flat element idx of the [B, (n+1) d] concatenated rows.

override WG: u32 = 256;

struct Params { batch: u32, n: u32, d: u32, total: u32 }

@group(0) @binding(0) var<uniform> params: Params;

// (b, r) of flat element idx: sample b, column r of its row (r < d: x / grad_x part).
fn cat_pos(idx: u32) -> vec2<u32> {
  let row = (params.n + 1u) * params.d;
  let b = idx / row;
  return vec2<u32>(b, idx - b * row);
}
