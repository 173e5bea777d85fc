// scratch: NT, vec4 along K for both operands (K % 4 == 0). C[r,s] = sum_k A[r,k] B[s,k]
const MAXTM: u32 = 32u;
const MAXTN: u32 = 8u;
override WG: u32 = 8;
override TM: u32 = 8;
override TN: u32 = 2;
struct Params { R: u32, S: u32, K: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let R = params.R; let S = params.S; let K4 = params.K / 4u;
  let r0 = wid.y * TM;
  let s0 = wid.x * WG * TN + lid;
  var aoff: array<u32, MAXTM>;
  for (var i = 0u; i < TM; i++) { aoff[i] = min(r0 + i, R - 1u) * K4; }
  var boff: array<u32, MAXTN>;
  for (var j = 0u; j < TN; j++) { boff[j] = min(s0 + j * WG, S - 1u) * K4; }
  var acc: array<array<f32, MAXTN>, MAXTM>;
  for (var k = 0u; k < K4; k++) {
    var bv: array<vec4<f32>, MAXTN>;
    for (var j = 0u; j < TN; j++) { bv[j] = b[boff[j] + k]; }
    for (var i = 0u; i < TM; i++) {
      let av = a[aoff[i] + k];
      for (var j = 0u; j < TN; j++) {
        acc[i][j] = fma(av.x, bv[j].x, fma(av.y, bv[j].y, fma(av.z, bv[j].z, fma(av.w, bv[j].w, acc[i][j]))));
      }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = r0 + i;
    if (r >= R) { break; }
    for (var j = 0u; j < TN; j++) {
      let s = s0 + j * WG;
      if (s < S) { c[r * S + s] = acc[i][j]; }
    }
  }
}
