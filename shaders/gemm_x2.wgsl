// scratch: blend approach, WG = 8 = one SIMD chunk; B loaded uniformly and selected per lane
const MAXTM: u32 = 32u;
const MAXTN: u32 = 8u;
override TM: u32 = 8;
override TN: u32 = 4;   // groups of 8 columns
struct Params { R: u32, S: u32, K: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lane: u32) {
  let R = params.R; let S = params.S; let K = params.K;
  let r0 = wid.y * TM;
  let s0 = wid.x * 8u * TN;
  var aoff: array<u32, MAXTM>;
  for (var i = 0u; i < TM; i++) { aoff[i] = min(r0 + i, R - 1u) * K; }
  var acc: array<array<f32, MAXTN>, MAXTM>;
  for (var k = 0u; k < K; k++) {
    var bv: array<f32, MAXTN>;
    for (var j = 0u; j < TN; j++) {
      let base = k * S + min(s0 + j * 8u, S - 8u);
      var v = b[base];
      for (var q = 1u; q < 8u; q++) { v = select(v, b[base + q], lane == q); }
      bv[j] = v;
    }
    for (var i = 0u; i < TM; i++) {
      let av = a[aoff[i] + k];
      for (var j = 0u; j < TN; j++) { acc[i][j] = fma(av, bv[j], acc[i][j]); }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = r0 + i;
    if (r >= R) { break; }
    for (var j = 0u; j < TN; j++) {
      let s = s0 + j * 8u + lane;
      if (s < S) { c[r * S + s] = acc[i][j]; }
    }
  }
}
