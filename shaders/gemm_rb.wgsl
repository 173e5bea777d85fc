// gemm_rb: register-blocked GEMM without workgroup memory or barriers (the
// fast style on CPU emulators: lavapipe, SwiftShader).
//   C(r, s) = act( sum_k A(r, k) * B(k, s) + bias ),  r < R, s < S
// Each workgroup owns TM consecutive rows and WG*TN columns; invocation
// `lid` computes rows r0..r0+TM-1 x columns s0 + lid + j*WG (j < TN). The
// A operand therefore depends only on the workgroup: its loads are uniform
// (one scalar load broadcast to every SIMD lane), while the B loads are
// per-lane and contiguous across lanes when B is not transposed.
// Layouts (override flags, folded at pipeline creation):
//   A(r, k) = TA ? a[k*R + r] : a[r*K + k]
//   B(k, s) = TB ? b[s*K + k] : b[k*S + s]
//   C(r, s) -> TC ? c[s*R + r] : c[r*S + s]
// MASK_A / MASK_B: the operand is multiplied by (mask > 0) read at the same
// index (ReLU backward: the mask is the forward output Y, the operand dY).
// BIAS: 0 none, 1 bias[s], 2 bias[r]. ACT: 0 none, 1 relu, 2 sigmoid.
// Bindings: params {R, S, K}, a, b, mask, bias (read), c (read_write). Unused
// mask / bias are bound to any read-only buffer (never read).
// Dispatch: (ceil(S / (WG*TN)), ceil(R / TM)) workgroups.
// Reference: src/kernels/reference/gemm.ts (gemmRef, linearForwardRef...).

const MAXT: u32 = 8u;            // register tile capacity per dimension
override WG: u32 = 64;           // invocations per workgroup (along S)
override TM: u32 = 8;            // rows per invocation (<= MAXT)
override TN: u32 = 1;            // columns per invocation (<= MAXT)
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

fn act(v: f32) -> f32 {
  if (ACT == 1u) { return max(v, 0.0); }
  if (ACT == 2u) { return 1.0 / (1.0 + exp(-v)); }
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let R = params.R;
  let S = params.S;
  let K = params.K;
  let r0 = wid.y * TM;
  let s0 = wid.x * WG * TN + lid;

  // Clamped operand indices: rows / columns past the edge read a valid
  // element whose result is never stored, so the inner loop has no branches.
  var aoff: array<u32, MAXT>;   // A(r, 0) offset per row
  var boff: array<u32, MAXT>;   // B(0, s) offset per column
  for (var i = 0u; i < TM; i++) {
    let r = min(r0 + i, R - 1u);
    aoff[i] = select(r * K, r, TA);
  }
  for (var j = 0u; j < TN; j++) {
    let s = min(s0 + j * WG, S - 1u);
    boff[j] = select(s, s * K, TB);
  }
  let astep = select(1u, R, TA);   // A(r, k+1) - A(r, k)
  let bstep = select(S, 1u, TB);   // B(k+1, s) - B(k, s)

  var acc: array<array<f32, MAXT>, MAXT>;
  for (var k = 0u; k < K; k++) {
    var bv: array<f32, MAXT>;
    for (var j = 0u; j < TN; j++) {
      let idx = boff[j] + k * bstep;
      var v = b[idx];
      if (MASK_B) { v = select(0.0, v, mask[idx] > 0.0); }
      bv[j] = v;
    }
    for (var i = 0u; i < TM; i++) {
      let idx = aoff[i] + k * astep;
      var av = a[idx];
      if (MASK_A) { av = select(0.0, av, mask[idx] > 0.0); }
      for (var j = 0u; j < TN; j++) {
        acc[i][j] = fma(av, bv[j], acc[i][j]);
      }
    }
  }

  for (var i = 0u; i < TM; i++) {
    let r = r0 + i;
    if (r >= R) { break; }
    for (var j = 0u; j < TN; j++) {
      let s = s0 + j * WG;
      if (s < S) {
        var v = acc[i][j];
        if (BIAS == 1u) { v += bias[s]; }
        if (BIAS == 2u) { v += bias[r]; }
        c[select(r * S + s, s * R + r, TC)] = act(v);
      }
    }
  }
}
