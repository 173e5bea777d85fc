// interaction_dot_fwd_vec4: DLRM dot interaction, forward, for d % 4 == 0 (vec4 loads;
// each dot product accumulates 4 lanes of c and adds them at the end: fixed order).
// Per sample b: T = [x_b, e_b1 .. e_bn] ((n+1) x d), Z = T T^T,
// out[b] = cat(x_b, Zflat) with Zflat[pair_base(i) + j] = Z[i][j], j < i (j <= i when self_off = 1).
// Bindings: params (d4 = d / 4), x [B, d4] vec4, emb [B, n, d4] vec4, out [B, out_dim] f32 (out_dim = d + pairs).
// Entry points:
//   main_wg     one workgroup per `spw` samples: T of those samples is staged in
//               workgroup memory (spw * (n+1) * d <= TCAP floats), one barrier, then
//               invocations stride over (sample, pair) outputs. Dispatch ceil(B / spw)
//               workgroups, folded by grid().
//   main_global no workgroup memory, no barrier: one invocation per output element
//               (B * out_dim), T read from global memory (any n, d). Dispatch
//               ceil(B * out_dim / WG) workgroups, folded by grid().
//   main_sample one invocation per sample (see below). Dispatch ceil(B / WG), folded by grid().
// Each dot product is summed over c = 0..d-1 in order (deterministic).
// Reference: src/kernels/reference/interaction.ts (interactionForwardRef).
// Same entry points and dispatch as interaction_dot_fwd.wgsl, with d4 in place of d.

// #include "interaction_pairs.wgsl"

override WG: u32 = 128;
// Floats of workgroup memory holding T (16 KiB, the WebGPU default limit).
const TCAP: u32 = 1024u; // vec4s (16 KiB)

struct Params {
  batch: u32,
  n: u32,
  d4: u32,       // d / 4
  out_dim: u32,
  pairs: u32,
  self_off: u32,
  spw: u32,      // samples per workgroup (main_wg)
  total: u32,    // batch * out_dim (main_global)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> emb: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> tile: array<vec4<f32>, TCAP>;

@compute @workgroup_size(WG)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let d = params.d4;
  let n = params.n;
  let rows = n + 1u;
  let tsize = rows * d;
  let b0 = (wid.x + wid.y * nwg.x) * params.spw;
  if (b0 >= params.batch) { return; }
  let ns = min(params.spw, params.batch - b0);

  // Stage T of the ns samples; write the pass-through x part of out on the way.
  for (var idx = lid; idx < ns * tsize; idx = idx + WG) {
    let s = idx / tsize;
    let r = idx - s * tsize;
    let b = b0 + s;
    var v: vec4<f32>;
    if (r < d) {
      v = x[b * d + r];
      let o = b * params.out_dim + 4u * r;
      out[o] = v.x; out[o + 1u] = v.y; out[o + 2u] = v.z; out[o + 3u] = v.w;
    } else {
      v = emb[b * n * d + (r - d)];
    }
    tile[idx] = v;
  }
  workgroupBarrier();

  let pairs = params.pairs;
  for (var idx = lid; idx < ns * pairs; idx = idx + WG) {
    let s = idx / pairs;
    let k = idx - s * pairs;
    let ij = pair_of(k, params.self_off);
    let ti = s * tsize + ij.x * d;
    let tj = s * tsize + ij.y * d;
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < d; c = c + 1u) {
      acc = acc + tile[ti + c] * tile[tj + c];
    }
    out[(b0 + s) * params.out_dim + 4u * d + k] = (acc.x + acc.y) + (acc.z + acc.w);
  }
}

@compute @workgroup_size(WG)
fn main_global(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d4;
  let n = params.n;
  let b = idx / params.out_dim;
  let r = idx - b * params.out_dim;
  if (r < 4u * d) {
    out[idx] = x[b * d + r / 4u][r % 4u];
    return;
  }
  let ij = pair_of(r - 4u * d, params.self_off);
  let xb = b * d;
  var acc = vec4<f32>(0.0);
  if (ij.x == 0u) {
    // (0, 0): x . x (only with self interaction)
    for (var c = 0u; c < d; c = c + 1u) { acc = acc + x[xb + c] * x[xb + c]; }
  } else if (ij.y == 0u) {
    let ei = (b * n + ij.x - 1u) * d;
    for (var c = 0u; c < d; c = c + 1u) { acc = acc + emb[ei + c] * x[xb + c]; }
  } else {
    let ei = (b * n + ij.x - 1u) * d;
    let ej = (b * n + ij.y - 1u) * d;
    for (var c = 0u; c < d; c = c + 1u) { acc = acc + emb[ei + c] * emb[ej + c]; }
  }
  out[idx] = (acc.x + acc.y) + (acc.z + acc.w);
}

// main_sample: one invocation per sample, every invocation running the same (i, j) loops
// (no divergence, no pair index arithmetic). Dispatch ceil(B / WG) workgroups, folded by grid().
@compute @workgroup_size(WG)
fn main_sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let b = (wid.x + wid.y * nwg.x) * WG + lid;
  if (b >= params.batch) { return; }
  let d = params.d4;
  let n = params.n;
  let off = params.self_off;
  let o = b * params.out_dim;
  for (var c = 0u; c < d; c = c + 1u) {
    let v = x[b * d + c];
    out[o + 4u * c] = v.x; out[o + 4u * c + 1u] = v.y; out[o + 4u * c + 2u] = v.z; out[o + 4u * c + 3u] = v.w;
  }
  var k = o + 4u * d;
  if (off == 1u) {
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < d; c = c + 1u) { let v = x[b * d + c]; acc = acc + v * v; }
    out[k] = (acc.x + acc.y) + (acc.z + acc.w);
    k = k + 1u;
  }
  for (var i = 1u; i <= n; i = i + 1u) {
    let ei = (b * n + i - 1u) * d;
    var acc = vec4<f32>(0.0);
    for (var c = 0u; c < d; c = c + 1u) { acc = acc + emb[ei + c] * x[b * d + c]; }
    out[k] = (acc.x + acc.y) + (acc.z + acc.w);
    k = k + 1u;
    for (var j = 1u; j < i + off; j = j + 1u) {
      let ej = (b * n + j - 1u) * d;
      var a2 = vec4<f32>(0.0);
      for (var c = 0u; c < d; c = c + 1u) { a2 = a2 + emb[ei + c] * emb[ej + c]; }
      out[k] = (a2.x + a2.y) + (a2.z + a2.w);
      k = k + 1u;
    }
  }
}
