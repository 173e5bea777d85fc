// gemm_rb_nn4: register-blocked GEMM with vec4 columns, for B stored [K, S]
// (not transposed) and S % 4 == 0; no workgroup memory or barriers.
//   C[r, s] = act( sum_k A(r, k) * B[k, s] + bias[s] ),  C stored [R, S]
//   A(r, k) = TA ? a[k*R + r] : a[r*K + k]    (optionally times (mask > 0), same index)
// Each workgroup owns TM rows (TM <= 8) and WG vec4 columns; invocation
// `lid` holds vec4 column s0 + lid (contiguous across invocations) and one
// vec4 accumulator per row. The tile is written out (no arrays, no loops over
// rows): on the CPU emulators loops over fixed-size arrays stay loops (wgpu
// bounds every loop) and their accumulators live in memory, which measured
// 8x slower on SwiftShader. The K loop takes 4 terms per iteration.
// BIAS: 0 none, 1 bias[s]. ACT: 0 none, 1 relu, 2 sigmoid.
// Bindings: params {R, S, K}, a, b, mask, bias (read), c (read_write).
// Unused mask / bias are bound to any read-only buffer (never read).
// Dispatch: (ceil(S / (4*WG)), ceil(R / TM)) workgroups.
// Reference: src/kernels/reference/gemm.ts.

override WG: u32 = 16;
override TM: u32 = 8;      // rows per invocation, 1..8
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

/** A at flat index `idx`, masked when MASK_A. */
fn aval(idx: u32) -> f32 {
  let v = a[idx];
  if (MASK_A) { return select(0.0, v, mask[idx] > 0.0); }
  return v;
}

/** Row r's offset into a at k = 0 (rows past the edge are clamped: computed, never stored). */
fn aoff(r: u32) -> u32 {
  let rr = min(r, params.R - 1u);
  return select(rr * params.K, rr, TA);
}

// The tile, as module-scope registers so that step() can update it in place.
var<private> o0: u32; var<private> o1: u32; var<private> o2: u32; var<private> o3: u32;
var<private> o4: u32; var<private> o5: u32; var<private> o6: u32; var<private> o7: u32;
var<private> c0: vec4<f32>; var<private> c1: vec4<f32>; var<private> c2: vec4<f32>; var<private> c3: vec4<f32>;
var<private> c4: vec4<f32>; var<private> c5: vec4<f32>; var<private> c6: vec4<f32>; var<private> c7: vec4<f32>;

/** One K term: c_i += A(r0 + i, k) * B[k, col] for the TM rows. */
fn step(k: u32, col: u32, astep: u32) {
  let bv = b[k * (params.S / 4u) + col];
  let ka = k * astep;
  c0 = fma(vec4<f32>(aval(o0 + ka)), bv, c0);
  if (TM > 1u) { c1 = fma(vec4<f32>(aval(o1 + ka)), bv, c1); }
  if (TM > 2u) { c2 = fma(vec4<f32>(aval(o2 + ka)), bv, c2); }
  if (TM > 3u) { c3 = fma(vec4<f32>(aval(o3 + ka)), bv, c3); }
  if (TM > 4u) { c4 = fma(vec4<f32>(aval(o4 + ka)), bv, c4); }
  if (TM > 5u) { c5 = fma(vec4<f32>(aval(o5 + ka)), bv, c5); }
  if (TM > 6u) { c6 = fma(vec4<f32>(aval(o6 + ka)), bv, c6); }
  if (TM > 7u) { c7 = fma(vec4<f32>(aval(o7 + ka)), bv, c7); }
}

fn store_row(r: u32, s: u32, acc: vec4<f32>) {
  if (r >= params.R) { return; }
  var v = acc;
  if (BIAS == 1u) { v += bias[s]; }
  c[r * (params.S / 4u) + s] = act(v);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let S4 = params.S / 4u;
  let K = params.K;
  let r0 = wid.y * TM;
  let s = wid.x * WG + lid;
  let col = min(s, S4 - 1u);
  let astep = select(1u, params.R, TA);   // A(r, k+1) - A(r, k)
  o0 = aoff(r0); o1 = aoff(r0 + 1u); o2 = aoff(r0 + 2u); o3 = aoff(r0 + 3u);
  o4 = aoff(r0 + 4u); o5 = aoff(r0 + 5u); o6 = aoff(r0 + 6u); o7 = aoff(r0 + 7u);
  // 4 K terms per iteration (written out), then the K % 4 tail.
  var k = 0u;
  for (; k + 4u <= K; k += 4u) {
    step(k, col, astep); step(k + 1u, col, astep); step(k + 2u, col, astep); step(k + 3u, col, astep);
  }
  for (; k < K; k++) { step(k, col, astep); }
  if (s >= S4) { return; }
  store_row(r0, s, c0);
  if (TM > 1u) { store_row(r0 + 1u, s, c1); }
  if (TM > 2u) { store_row(r0 + 2u, s, c2); }
  if (TM > 3u) { store_row(r0 + 3u, s, c3); }
  if (TM > 4u) { store_row(r0 + 4u, s, c4); }
  if (TM > 5u) { store_row(r0 + 5u, s, c5); }
  if (TM > 6u) { store_row(r0 + 6u, s, c6); }
  if (TM > 7u) { store_row(r0 + 7u, s, c7); }
}
