// gemm_rb_nn4: register-blocked GEMM with vec4 columns, for B stored [K, S]
// (not transposed) and S % 4 == 0; no workgroup memory or barriers.
//   C[r, s] = act( sum_k A(r, k) * B[k, s] + bias[s] ),  C stored [R, S]
//   A(r, k) = TA ? a[k*R + r] : a[r*K + k]    (optionally times (mask > 0), same index)
// Each workgroup owns TM rows (so A loads are uniform across the workgroup)
// and WG*TN4 vec4 columns; invocation `lid` holds column vectors
// lid + j*WG (j < TN4), contiguous across invocations.
// BIAS: 0 none, 1 bias[s]. ACT: 0 none, 1 relu, 2 sigmoid.
// Bindings: params {R, S, K}, a, b, mask, bias (read), c (read_write).
// Unused mask / bias are bound to any read-only buffer (never read).
// Dispatch: (ceil(S / (4*WG*TN4)), ceil(R / TM)) workgroups.
// Reference: src/kernels/reference/gemm.ts.

const MAXT: u32 = 8u;
override WG: u32 = 16;
override TM: u32 = 4;      // rows per invocation (<= MAXT)
override TN4: u32 = 1;     // vec4 columns per invocation (<= MAXT)
override TA: bool = false;
override MASK_A: bool = false;
override BIAS: u32 = 0;
override ACT: u32 = 0;

struct Params { R: u32, S: u32, K: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> c: array<vec4<f32>>;

fn act(v: vec4<f32>) -> vec4<f32> {
  if (ACT == 1u) { return max(v, vec4<f32>(0.0)); }
  if (ACT == 2u) { return 1.0 / (1.0 + exp(-v)); }
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let R = params.R;
  let S4 = params.S / 4u;
  let K = params.K;
  let r0 = wid.y * TM;
  let s0 = wid.x * WG * TN4 + lid;

  var aoff: array<u32, MAXT>;
  for (var i = 0u; i < TM; i++) {
    let r = min(r0 + i, R - 1u);   // rows past the edge are computed, never stored
    aoff[i] = select(r * K, r, TA);
  }
  var scol: array<u32, MAXT>;
  for (var j = 0u; j < TN4; j++) { scol[j] = min(s0 + j * WG, S4 - 1u); }
  let astep = select(1u, R, TA);

  var acc: array<array<vec4<f32>, MAXT>, MAXT>;
  for (var k = 0u; k < K; k++) {
    var bv: array<vec4<f32>, MAXT>;
    for (var j = 0u; j < TN4; j++) { bv[j] = b[k * S4 + scol[j]]; }
    for (var i = 0u; i < TM; i++) {
      let idx = aoff[i] + k * astep;
      var av = a[idx];
      if (MASK_A) { av = select(0.0, av, mask[idx] > 0.0); }
      for (var j = 0u; j < TN4; j++) { acc[i][j] = fma(vec4<f32>(av), bv[j], acc[i][j]); }
    }
  }

  for (var i = 0u; i < TM; i++) {
    let r = r0 + i;
    if (r >= R) { break; }
    for (var j = 0u; j < TN4; j++) {
      let s = s0 + j * WG;
      if (s < S4) {
        var v = acc[i][j];
        if (BIAS == 1u) { v += bias[s]; }
        c[r * S4 + s] = act(v);
      }
    }
  }
}
