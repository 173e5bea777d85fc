// gemm_pack: packs a GEMM operand into rows of KP floats (zero padded) for
// shaders/gemm_ubo_nt.wgsl, which binds chunks of these rows as uniform buffers:
//   dst[s*KP + k] = k0 + k < K ? (TRANS ? src[(k0+k)*S + s] : src[s*K + k0 + k]) : 0,  s < S, k < KP
// (k0 > 0: one slice of the reduction, for a GEMM split along K into accumulating passes)
// TRANS = 0: W [S, K] (the layer forward); TRANS = 1: W [K, S] read transposed
// (dX = dZ W: P(s, k) = W[k, s]).
// Bindings: params {S, K, KP, k0}, src (read), dst (read_write).
// Dispatch: ceil(S*KP / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/gemm.ts (the packed operand is checked through gemm_ubo_nt's results).

override WG: u32 = 256;
override TRANS: bool = false;

struct Params { S: u32, K: u32, KP: u32, k0: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let S = params.S;
  let K = params.K;
  let KP = params.KP;
  if (i >= S * KP) { return; }
  let s = i / KP;
  let k = i % KP;
  var v = 0.0;
  let kk = params.k0 + k;
  if (kk < K) { v = src[select(s * K + kk, kk * S + s, TRANS)]; }
  dst[i] = v;
}
