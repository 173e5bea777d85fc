// gemm_tiled: classic workgroup-memory tiled GEMM (the fast style on real
// GPUs). Same contract, bindings and override flags as gemm_rb.wgsl:
//   C(r, s) = act( sum_k A(r, k) * B(k, s) + bias ),  r < R, s < S
//   A(r, k) = TA ? a[k*R + r] : a[r*K + k]
//   B(k, s) = TB ? b[s*K + k] : b[k*S + s]
//   C(r, s) -> TC ? c[s*R + r] : c[r*S + s]
// MASK_A / MASK_B multiply the operand by (mask > 0) at the same index;
// BIAS: 0 none, 1 bias[s], 2 bias[r]; ACT: 0 none, 1 relu, 2 sigmoid.
// Workgroup 16x16 invocations, each a 4x4 register tile -> a 64x64 tile of C;
// k advances in steps of BK = 16 through workgroup memory. Loads are mapped
// so that consecutive invocations read consecutive addresses for every layout.
// Bindings: params {R, S, K}, a, b, mask, bias (read), c (read_write).
// Dispatch: (ceil(S / 64), ceil(R / 64)) workgroups.
// Reference: src/kernels/reference/gemm.ts.

const TS: u32 = 16u;      // invocations per side
const RT: u32 = 4u;       // register tile per side
const BT: u32 = 64u;      // TS * RT: tile of C per side
const BK: u32 = 16u;      // k-tile
const LOADS: u32 = 4u;    // BT * BK / (TS * TS) loads per operand per invocation

override TA: bool = false;
override TB: bool = false;
override TC: bool = false;
override MASK_A: bool = false;
override MASK_B: bool = false;
override BIAS: u32 = 0;
override ACT: u32 = 0;

struct Params { R: u32, S: u32, K: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

var<workgroup> As: array<f32, 1024>;   // [BK][BT], k-major
var<workgroup> Bs: array<f32, 1024>;   // [BK][BT], k-major

fn act(v: f32) -> f32 {
  if (ACT == 1u) { return max(v, 0.0); }
  if (ACT == 2u) { return 1.0 / (1.0 + exp(-v)); }
  return v;
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let R = params.R;
  let S = params.S;
  let K = params.K;
  let r0 = wid.y * BT;
  let c0 = wid.x * BT;
  var acc: array<array<f32, RT>, RT>;

  for (var k0 = 0u; k0 < K; k0 += BK) {
    for (var q = 0u; q < LOADS; q++) {
      let e = lid + q * TS * TS;
      // A tile: consecutive invocations walk the contiguous dimension.
      var ar: u32; var ak: u32;
      if (TA) { ak = e / BT; ar = e % BT; } else { ar = e / BK; ak = e % BK; }
      let gr = r0 + ar;
      let gk = k0 + ak;
      var av = 0.0;
      if (gr < R && gk < K) {
        let idx = select(gr * K + gk, gk * R + gr, TA);
        av = a[idx];
        if (MASK_A) { av = select(0.0, av, mask[idx] > 0.0); }
      }
      As[ak * BT + ar] = av;
      // B tile.
      var bs: u32; var bk: u32;
      if (TB) { bs = e / BK; bk = e % BK; } else { bk = e / BT; bs = e % BT; }
      let gs = c0 + bs;
      let gk2 = k0 + bk;
      var bv = 0.0;
      if (gs < S && gk2 < K) {
        let idx = select(gk2 * S + gs, gs * K + gk2, TB);
        bv = b[idx];
        if (MASK_B) { bv = select(0.0, bv, mask[idx] > 0.0); }
      }
      Bs[bk * BT + bs] = bv;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      var ra: array<f32, RT>;
      var rb: array<f32, RT>;
      for (var i = 0u; i < RT; i++) { ra[i] = As[kk * BT + lid3.y + i * TS]; }
      for (var j = 0u; j < RT; j++) { rb[j] = Bs[kk * BT + lid3.x + j * TS]; }
      for (var i = 0u; i < RT; i++) {
        for (var j = 0u; j < RT; j++) { acc[i][j] = fma(ra[i], rb[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }

  // Rows lid3.y + i*TS and columns lid3.x + j*TS: adjacent invocations store adjacent columns.
  for (var i = 0u; i < RT; i++) {
    let r = r0 + lid3.y + i * TS;
    for (var j = 0u; j < RT; j++) {
      let s = c0 + lid3.x + j * TS;
      if (r < R && s < S) {
        var v = acc[i][j];
        if (BIAS == 1u) { v += bias[s]; }
        if (BIAS == 2u) { v += bias[r]; }
        c[select(r * S + s, s * R + r, TC)] = act(v);
      }
    }
  }
}
