// gemm_nt4: register-blocked GEMM for both operands contiguous along K (the
// layer forward Y = X W^T), four K terms per step; no workgroup memory.
//   C(r, s) = act( sum_k A[r*K + k] * B[s*K + k] + bias ),  r < R, s < S
//   C(r, s) -> TC ? c[s*R + r] : c[r*S + s]
// Any K: the main loop takes 4 terms per step (each operand read as 4
// consecutive floats), a scalar loop takes the K % 4 tail. Each workgroup
// owns TM consecutive rows (TM <= 8) and 4*WG columns; invocation `lid`
// holds columns s0 + lid + j*WG (j < 4), so the SIMD lanes of one load read
// 4 different B rows. Row j's partial dot products live in a vec4 per row:
// acc_i += a_i * mat4x4(b0, b1, b2, b3) (a row vector times a matrix whose
// columns are the 4 B vectors). Tiles are written out (no arrays): on
// lavapipe the loops over fixed-size arrays are not unrolled under wgpu's
// loop bounding and the accumulators would live in memory.
// BIAS: 0 none, 1 bias[s], 2 bias[r]. ACT: 0 none, 1 relu, 2 sigmoid.
// Bindings: params {R, S, K}, a, b, bias (read), c (read_write); an unused
// bias is bound to any read-only buffer (never read).
// Dispatch: (ceil(S / (4*WG)), ceil(R / TM)) workgroups.
// Reference: src/kernels/reference/gemm.ts (gemmRef with transB, linearForwardRef).

override WG: u32 = 8;
override TM: u32 = 8;          // rows per invocation, 1..8
override TC: bool = false;
override BIAS: u32 = 0;
override ACT: u32 = 0;

struct Params { R: u32, S: u32, K: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;

fn act(v: f32) -> f32 {
  if (ACT == 1u) { return max(v, 0.0); }
  if (ACT == 2u) { return 1.0 / (1.0 + exp(-v)); }
  return v;
}

fn ld4a(i: u32) -> vec4<f32> { return vec4<f32>(a[i], a[i + 1u], a[i + 2u], a[i + 3u]); }
fn ld4b(i: u32) -> vec4<f32> { return vec4<f32>(b[i], b[i + 1u], b[i + 2u], b[i + 3u]); }

// One output row: bias, activation and store of the 4 columns of this invocation.
fn store_row(r: u32, s0: u32, acc: vec4<f32>) {
  let R = params.R;
  let S = params.S;
  if (r >= R) { return; }
  for (var j = 0u; j < 4u; j++) {
    let s = s0 + j * WG;
    if (s < S) {
      var v = acc[j];
      if (BIAS == 1u) { v += bias[s]; }
      if (BIAS == 2u) { v += bias[r]; }
      c[select(r * S + s, s * R + r, TC)] = act(v);
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let R = params.R;
  let S = params.S;
  let K = params.K;
  let r0 = wid.y * TM;
  let s0 = wid.x * 4u * WG + lid;
  // Clamped row / column offsets: out-of-range ones read valid data that is never stored.
  let o0 = min(r0, R - 1u) * K;
  let o1 = min(r0 + 1u, R - 1u) * K;
  let o2 = min(r0 + 2u, R - 1u) * K;
  let o3 = min(r0 + 3u, R - 1u) * K;
  let o4 = min(r0 + 4u, R - 1u) * K;
  let o5 = min(r0 + 5u, R - 1u) * K;
  let o6 = min(r0 + 6u, R - 1u) * K;
  let o7 = min(r0 + 7u, R - 1u) * K;
  let p0 = min(s0, S - 1u) * K;
  let p1 = min(s0 + WG, S - 1u) * K;
  let p2 = min(s0 + 2u * WG, S - 1u) * K;
  let p3 = min(s0 + 3u * WG, S - 1u) * K;
  var c0 = vec4<f32>(0.0); var c1 = vec4<f32>(0.0); var c2 = vec4<f32>(0.0); var c3 = vec4<f32>(0.0);
  var c4 = vec4<f32>(0.0); var c5 = vec4<f32>(0.0); var c6 = vec4<f32>(0.0); var c7 = vec4<f32>(0.0);
  var k = 0u;
  for (; k + 4u <= K; k += 4u) {
    let m = mat4x4<f32>(ld4b(p0 + k), ld4b(p1 + k), ld4b(p2 + k), ld4b(p3 + k));
    c0 += ld4a(o0 + k) * m;
    if (TM > 1u) { c1 += ld4a(o1 + k) * m; }
    if (TM > 2u) { c2 += ld4a(o2 + k) * m; }
    if (TM > 3u) { c3 += ld4a(o3 + k) * m; }
    if (TM > 4u) { c4 += ld4a(o4 + k) * m; }
    if (TM > 5u) { c5 += ld4a(o5 + k) * m; }
    if (TM > 6u) { c6 += ld4a(o6 + k) * m; }
    if (TM > 7u) { c7 += ld4a(o7 + k) * m; }
  }
  for (; k < K; k++) {
    let v = vec4<f32>(b[p0 + k], b[p1 + k], b[p2 + k], b[p3 + k]);
    c0 += a[o0 + k] * v;
    if (TM > 1u) { c1 += a[o1 + k] * v; }
    if (TM > 2u) { c2 += a[o2 + k] * v; }
    if (TM > 3u) { c3 += a[o3 + k] * v; }
    if (TM > 4u) { c4 += a[o4 + k] * v; }
    if (TM > 5u) { c5 += a[o5 + k] * v; }
    if (TM > 6u) { c6 += a[o6 + k] * v; }
    if (TM > 7u) { c7 += a[o7 + k] * v; }
  }
  store_row(r0, s0, c0);
  if (TM > 1u) { store_row(r0 + 1u, s0, c1); }
  if (TM > 2u) { store_row(r0 + 2u, s0, c2); }
  if (TM > 3u) { store_row(r0 + 3u, s0, c3); }
  if (TM > 4u) { store_row(r0 + 4u, s0, c4); }
  if (TM > 5u) { store_row(r0 + 5u, s0, c5); }
  if (TM > 6u) { store_row(r0 + 6u, s0, c6); }
  if (TM > 7u) { store_row(r0 + 7u, s0, c7); }
}
