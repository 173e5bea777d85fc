// scratch: nn4 with large TM
const MAXTM: u32 = 32u;
const MAXTN: u32 = 4u;
override WG: u32 = 8;
override TM: u32 = 16;
override TN4: u32 = 1;
override DIAG: u32 = 0;
struct Params { R: u32, S: u32, K: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> c: array<vec4<f32>>;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let R = params.R; let S4 = params.S / 4u; let K = params.K;
  let r0 = wid.y * TM;
  let s0 = wid.x * WG * TN4 + lid;
  var aoff: array<u32, MAXTM>;
  for (var i = 0u; i < TM; i++) { aoff[i] = min(r0 + i, R - 1u) * K; }
  var scol: array<u32, MAXTN>;
  for (var j = 0u; j < TN4; j++) { scol[j] = min(select(s0, wid.x * WG * TN4, DIAG == 1u) + j * WG, S4 - 1u); }
  var acc: array<array<vec4<f32>, MAXTN>, MAXTM>;
  for (var k = 0u; k < K; k++) {
    var bv: array<vec4<f32>, MAXTN>;
    for (var j = 0u; j < TN4; j++) { bv[j] = b[k * S4 + scol[j]]; }
    for (var i = 0u; i < TM; i++) {
      let av = a[aoff[i] + k];
      for (var j = 0u; j < TN4; j++) { acc[i][j] = acc[i][j] + vec4<f32>(av) * bv[j]; }
    }
  }
  for (var i = 0u; i < TM; i++) {
    let r = r0 + i;
    if (r >= R) { break; }
    for (var j = 0u; j < TN4; j++) {
      let s = s0 + j * WG;
      if (s < S4) { c[r * S4 + s] = acc[i][j]; }
    }
  }
}
