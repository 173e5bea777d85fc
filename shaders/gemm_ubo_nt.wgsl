// gemm_ubo_nt: register-blocked GEMM whose lane-varying operand comes from a
// uniform buffer, for one chunk of SC = WG*TN output columns:
//   C(r, s) = act( sum_k A(r, k) * P(s, k) + bias[s] ),  r < R, s0 <= s < min(s0 + SC, S)
// A(r, k) = a[r*K + k] (optionally times (mask > 0) at the same index: the
// ReLU backward); P = the packed operand written by shaders/gemm_pack.wgsl:
// rows of KP floats (KP >= K, zero padded), rows s0.. of this chunk bound as
// the uniform buffer `w` (one bind group per chunk, at offset s0*KP*4).
// Why a uniform buffer: lavapipe (llvmpipe) loads a storage-buffer element
// that differs across SIMD lanes one lane at a time, with a bounds-check
// branch per lane and component, while a lane-varying uniform-buffer load is
// a branch-free gather (seen in its LLVM IR: GALLIVM_DEBUG=ir; Mesa's
// lp_bld_nir_soa.c emit_load_mem vs emit_load_ubo). A-loads here are the same
// for every lane of a workgroup (uniform, one scalar load broadcast).
// Invocation `lid` holds columns s0 + lid + j*WG (j < TN) and TM rows from
// r0 = wid.y*TM: per 4 K terms it reads TN vec4s of P, 4*TM scalars of A and
// does 4*TM*TN FMAs (vec4 accumulators, tile written out: lavapipe does not
// unroll loops over fixed arrays). A's K % 4 tail is read with clamped indices
// and zeroed by select (P's padding is zero too).
// TN: 1, 2 or 4 (SC*KP <= 16384 floats: one 64 KiB binding), or 8 with TM <= 4 ("wide":
// columns j < 4 of row i in c_i, columns 4..7 in c_(i+4); per 4 K terms 4*TM uniform A loads
// and 8 W vec4s for 32*TM FMAs: on lavapipe every A load is a per-lane scalar load with a
// bounds check (its address is not a constant), so fewer rows and more columns per invocation
// halve that cost per FMA for the same 32 accumulators). BIAS: 0 none,
// 1 bias[s]. ACT: 0 none, 1 relu, 2 sigmoid.
// K split into slices (a long reduction, e.g. dW over a batch of 2048, keeps
// TN = 4): this pass sums k in [k0, k0 + KL) (A(r, k) = a[r*K + k0 + k], P
// packed per slice) and with ACCUM adds its sum to C (passes in slice order:
// a fixed summation order); bias and activation are applied by the last
// slice only: C = act(C + sum + bias).
// Bindings: params {R, S, K, KP, s0, k0, KL}, a and a4 (the same buffer), w (uniform), mask, bias (read),
// c (read_write); unused mask / bias bound to any read-only buffer (never read).
// Dispatch per chunk: (1, ceil(R / TM)) workgroups.
// Reference: src/kernels/reference/gemm.ts (gemmRef with transB, linearForwardRef).

override WG: u32 = 8;
override TM: u32 = 8;          // rows per invocation, 1..8 (1..4 with TN = 8)
override TN: u32 = 4;          // columns per invocation: 1, 2, 4, or 8 (TM <= 4)
override MASK_A: bool = false;
override BIAS: u32 = 0;
override ACT: u32 = 0;
override ACCUM: bool = false;
// A4: A's whole-vec4 steps read as one vec4 (binding a4 = the same buffer as a; K % 4 == 0 and
// k0 % 4 == 0, no mask): on lavapipe one lane-varying vec4 storage load costs about 2/3 of four
// scalar ones (each storage load is per SIMD lane with a bounds check).
override A4: bool = false;

struct Params { R: u32, S: u32, K: u32, KP: u32, s0: u32, k0: u32, KL: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<uniform> w: array<vec4<f32>, 4096>;
@group(0) @binding(3) var<storage, read> mask: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read> a4: array<vec4<f32>>;

fn act(v: f32) -> f32 {
  if (ACT == 1u) { return max(v, 0.0); }
  if (ACT == 2u) { return 1.0 / (1.0 + exp(-v)); }
  return v;
}

fn aval(i: u32) -> f32 {
  let v = a[i];
  if (MASK_A) { return select(0.0, v, mask[i] > 0.0); }
  return v;
}

/** A(r, k..k+3) for row offset o: whole vec4 when k + 4 <= KL, else the tail with zeros. */
fn lda(o: u32, k: u32) -> vec4<f32> {
  let K = params.KL;
  if (A4 && k + 4u <= K) { return a4[(o + k) / 4u]; }
  if (k + 4u <= K) { return vec4<f32>(aval(o + k), aval(o + k + 1u), aval(o + k + 2u), aval(o + k + 3u)); }
  let l = K - 1u;
  return vec4<f32>(
    select(0.0, aval(o + min(k, l)), k < K),
    select(0.0, aval(o + min(k + 1u, l)), k + 1u < K),
    select(0.0, aval(o + min(k + 2u, l)), k + 2u < K),
    select(0.0, aval(o + min(k + 3u, l)), k + 3u < K));
}

var<private> c0: vec4<f32>; var<private> c1: vec4<f32>; var<private> c2: vec4<f32>; var<private> c3: vec4<f32>;
var<private> c4: vec4<f32>; var<private> c5: vec4<f32>; var<private> c6: vec4<f32>; var<private> c7: vec4<f32>;

/** acc += av * [w0 w1 w2 w3] restricted to the TN columns in use. */
fn mac(acc: vec4<f32>, av: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>) -> vec4<f32> {
  if (TN >= 4u) { return acc + av * mat4x4<f32>(w0, w1, w2, w3); }
  if (TN == 2u) { return acc + vec4<f32>(av * mat2x4<f32>(w0, w1), 0.0, 0.0); }
  return acc + vec4<f32>(dot(av, w0), 0.0, 0.0, 0.0);
}

fn store_row(r: u32, lid: u32, acc: vec4<f32>) { store_cols(r, lid, 0u, min(TN, 4u), acc); }

/** Columns s0 + lid + (j0 + j)*WG, j < n, of row r from acc[j]. */
fn store_cols(r: u32, lid: u32, j0: u32, n: u32, acc: vec4<f32>) {
  let R = params.R;
  let S = params.S;
  if (r >= R) { return; }
  for (var j = 0u; j < n; j++) {
    let s = params.s0 + lid + (j0 + j) * WG;
    if (s < S) {
      var v = acc[j];
      if (BIAS == 1u) { v += bias[s]; }
      if (ACCUM) { c[r * S + s] = act(c[r * S + s] + v); } else { c[r * S + s] = act(v); }
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let R = params.R;
  let K = params.K;
  let KL = params.KL;
  let k0 = params.k0;
  let KP4 = params.KP / 4u;
  let r0 = wid.y * TM;
  // Rows past R are clamped (computed, never stored).
  let o0 = min(r0, R - 1u) * K + k0; let o1 = min(r0 + 1u, R - 1u) * K + k0;
  let o2 = min(r0 + 2u, R - 1u) * K + k0; let o3 = min(r0 + 3u, R - 1u) * K + k0;
  let o4 = min(r0 + 4u, R - 1u) * K + k0; let o5 = min(r0 + 5u, R - 1u) * K + k0;
  let o6 = min(r0 + 6u, R - 1u) * K + k0; let o7 = min(r0 + 7u, R - 1u) * K + k0;
  // Chunk-local rows of P (the binding always holds SC full rows).
  let p0 = lid * KP4;
  let p1 = (lid + WG) * KP4;
  let p2 = (lid + 2u * WG) * KP4;
  let p3 = (lid + 3u * WG) * KP4;
  let zero = vec4<f32>(0.0);
  if (TN == 8u) {
    let p4 = (lid + 4u * WG) * KP4; let p5 = (lid + 5u * WG) * KP4;
    let p6 = (lid + 6u * WG) * KP4; let p7 = (lid + 7u * WG) * KP4;
    for (var k4 = 0u; k4 * 4u < KL; k4++) {
      let w0 = w[p0 + k4]; let w1 = w[p1 + k4]; let w2 = w[p2 + k4]; let w3 = w[p3 + k4];
      let w4 = w[p4 + k4]; let w5 = w[p5 + k4]; let w6 = w[p6 + k4]; let w7 = w[p7 + k4];
      let k = k4 * 4u;
      let a0 = lda(o0, k);
      c0 = mac(c0, a0, w0, w1, w2, w3); c4 = mac(c4, a0, w4, w5, w6, w7);
      if (TM > 1u) { let a1 = lda(o1, k); c1 = mac(c1, a1, w0, w1, w2, w3); c5 = mac(c5, a1, w4, w5, w6, w7); }
      if (TM > 2u) { let a2 = lda(o2, k); c2 = mac(c2, a2, w0, w1, w2, w3); c6 = mac(c6, a2, w4, w5, w6, w7); }
      if (TM > 3u) { let a3 = lda(o3, k); c3 = mac(c3, a3, w0, w1, w2, w3); c7 = mac(c7, a3, w4, w5, w6, w7); }
    }
    store_cols(r0, lid, 0u, 4u, c0); store_cols(r0, lid, 4u, 4u, c4);
    if (TM > 1u) { store_cols(r0 + 1u, lid, 0u, 4u, c1); store_cols(r0 + 1u, lid, 4u, 4u, c5); }
    if (TM > 2u) { store_cols(r0 + 2u, lid, 0u, 4u, c2); store_cols(r0 + 2u, lid, 4u, 4u, c6); }
    if (TM > 3u) { store_cols(r0 + 3u, lid, 0u, 4u, c3); store_cols(r0 + 3u, lid, 4u, 4u, c7); }
    return;
  }
  for (var k4 = 0u; k4 * 4u < KL; k4++) {
    let w0 = w[p0 + k4];
    var w1 = zero; var w2 = zero; var w3 = zero;
    if (TN > 1u) { w1 = w[p1 + k4]; }
    if (TN > 2u) { w2 = w[p2 + k4]; w3 = w[p3 + k4]; }
    let k = k4 * 4u;
    c0 = mac(c0, lda(o0, k), w0, w1, w2, w3);
    if (TM > 1u) { c1 = mac(c1, lda(o1, k), w0, w1, w2, w3); }
    if (TM > 2u) { c2 = mac(c2, lda(o2, k), w0, w1, w2, w3); }
    if (TM > 3u) { c3 = mac(c3, lda(o3, k), w0, w1, w2, w3); }
    if (TM > 4u) { c4 = mac(c4, lda(o4, k), w0, w1, w2, w3); }
    if (TM > 5u) { c5 = mac(c5, lda(o5, k), w0, w1, w2, w3); }
    if (TM > 6u) { c6 = mac(c6, lda(o6, k), w0, w1, w2, w3); }
    if (TM > 7u) { c7 = mac(c7, lda(o7, k), w0, w1, w2, w3); }
  }
  store_row(r0, lid, c0);
  if (TM > 1u) { store_row(r0 + 1u, lid, c1); }
  if (TM > 2u) { store_row(r0 + 2u, lid, c2); }
  if (TM > 3u) { store_row(r0 + 3u, lid, c3); }
  if (TM > 4u) { store_row(r0 + 4u, lid, c4); }
  if (TM > 5u) { store_row(r0 + 5u, lid, c5); }
  if (TM > 6u) { store_row(r0 + 6u, lid, c6); }
  if (TM > 7u) { store_row(r0 + 7u, lid, c7); }
}
