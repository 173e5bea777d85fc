// interaction_dot_bwd_vec4: DLRM dot interaction, backward, for d % 4 == 0: as interaction_dot_bwd.wgsl
// (same entry points, dispatch and summation order) with one invocation per (b, i, 4 columns), vec4 loads.
// Per sample b, with G the flat gradient of Zflat (grad_out[b, d ..]) expanded into the
// symmetric S = G + G^T (S[i][j] = G[i][j] for j < i, G[j][i] for j > i, and 2 G[i][i]
// on the diagonal when self_off = 1, else 0):
//   dT[i][c] = sum_{j=0..n} S[i][j] T[j][c]   (j ascending: deterministic)
//   grad_x[b]         = dT[0] + grad_out[b, 0..d)   (pass-through part of out)
//   grad_emb[b, i-1]  = dT[i], i = 1..n
// Bindings: params (d4 = d / 4, total = B (n+1) d4), x [B, d4] vec4, emb [B, n, d4] vec4,
//           grad_out [B, out_dim] f32, grad_x [B, d4] vec4, grad_emb [B, n, d4] vec4.
// Entry points:
//   main_wg     one workgroup per `spw` samples; T and the flat gradient of those samples
//               are staged in workgroup memory (spw (n+1) d <= TCAP and spw pairs <= TCAP),
//               one barrier, then invocations stride over (sample, i, c).
//               Dispatch ceil(B / spw) workgroups, folded by grid().
//   main_global no workgroup memory, no barrier: one invocation per (b, i, c), reading
//               global memory (any n, d). Dispatch ceil(B (n+1) d / WG), folded by grid().
//   main_sample one invocation per sample (see below; d <= 128). Dispatch ceil(B / WG), folded by grid().
// Reference: src/kernels/reference/interaction.ts (interactionBackwardRef).

// #include "interaction_pairs.wgsl"

override WG: u32 = 128;
const TCAP: u32 = 2048u; // floats of T and, separately, of flat gradients (16 KiB in all)

struct Params {
  batch: u32,
  n: u32,
  d4: u32,       // d / 4
  out_dim: u32,
  pairs: u32,
  self_off: u32,
  spw: u32,      // samples per workgroup (main_wg)
  total: u32,    // batch * (n+1) * d (main_global)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> emb: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_x: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> grad_emb: array<vec4<f32>>;

var<workgroup> tile: array<vec4<f32>, TCAP / 4u>;
var<workgroup> gtile: array<f32, TCAP>;

// T[b][j][c] from global memory: x for j = 0, e_j otherwise.
fn t_row(b: u32, j: u32, c: u32) -> vec4<f32> {
  if (j == 0u) { return x[b * params.d4 + c]; }
  return emb[(b * params.n + j - 1u) * params.d4 + c];
}

// grad_out[o .. o+4) as a vec4 (out rows need not be 16-byte aligned).
fn pass_through(o: u32) -> vec4<f32> {
  return vec4<f32>(grad_out[o], grad_out[o + 1u], grad_out[o + 2u], grad_out[o + 3u]);
}

@compute @workgroup_size(WG)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let d = params.d4;
  let n = params.n;
  let rows = n + 1u;
  let tsize = rows * d;
  let pairs = params.pairs;
  let b0 = (wid.x + wid.y * nwg.x) * params.spw;
  if (b0 >= params.batch) { return; }
  let ns = min(params.spw, params.batch - b0);

  for (var idx = lid; idx < ns * tsize; idx = idx + WG) {
    let s = idx / tsize;
    let r = idx - s * tsize;
    let b = b0 + s;
    if (r < d) { tile[idx] = x[b * d + r]; } else { tile[idx] = emb[b * n * d + (r - d)]; }
  }
  for (var idx = lid; idx < ns * pairs; idx = idx + WG) {
    let s = idx / pairs;
    let k = idx - s * pairs;
    gtile[idx] = grad_out[(b0 + s) * params.out_dim + 4u * d + k];
  }
  workgroupBarrier();

  let off = params.self_off;
  for (var idx = lid; idx < ns * tsize; idx = idx + WG) {
    let s = idx / tsize;
    let r = idx - s * tsize;
    let i = r / d;
    let c = r - i * d;
    let t = s * tsize + c;
    let g = s * pairs;
    // S[i][j], j ascending: G[base(i) + j] for j < i, 2 G[base(i) + i] on the diagonal
    // (self only), G[base(j) + i] for j > i (base(j + 1) = base(j) + j + off).
    let bi = g + pair_base(i, off);
    var acc = vec4<f32>(0.0);
    for (var j = 0u; j < i; j = j + 1u) {
      acc = acc + gtile[bi + j] * tile[t + j * d];
    }
    if (off == 1u) {
      acc = acc + (2.0 * gtile[bi + i]) * tile[t + i * d];
    }
    var bj = g + pair_base(i + 1u, off) + i;
    for (var j = i + 1u; j < rows; j = j + 1u) {
      acc = acc + gtile[bj] * tile[t + j * d];
      bj = bj + j + off;
    }
    let b = b0 + s;
    if (i == 0u) {
      grad_x[b * d + c] = acc + pass_through(b * params.out_dim + 4u * c);
    } else {
      grad_emb[(b * n + i - 1u) * d + c] = acc;
    }
  }
}

@compute @workgroup_size(WG)
fn main_global(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d4;
  let n = params.n;
  let rows = n + 1u;
  let tsize = rows * d;
  let b = idx / tsize;
  let r = idx - b * tsize;
  let i = r / d;
  let c = r - i * d;
  let off = params.self_off;
  let g = b * params.out_dim + 4u * d;
  // S[i][j] T[j][c], j ascending (see main_wg); T[0] is x, T[j] is e_j.
  let bi = g + pair_base(i, off);
  var acc = vec4<f32>(0.0);
  for (var j = 0u; j < i; j = j + 1u) {
    acc = acc + grad_out[bi + j] * t_row(b, j, c);
  }
  if (off == 1u) {
    acc = acc + (2.0 * grad_out[bi + i]) * t_row(b, i, c);
  }
  var bj = g + pair_base(i + 1u, off) + i;
  for (var j = i + 1u; j < rows; j = j + 1u) {
    acc = acc + grad_out[bj] * t_row(b, j, c);
    bj = bj + j + off;
  }
  if (i == 0u) {
    grad_x[b * d + c] = acc + pass_through(b * params.out_dim + 4u * c);
  } else {
    grad_emb[(b * n + i - 1u) * d + c] = acc;
  }
}

// main_sample: one invocation per sample, every invocation running the same loops (no
// divergence). For each row i the S[i][j] are loaded once and applied to the whole row
// T[j] (accumulators in a private array: d <= 128); per element the terms are added in the
// same order as main_global, so the results are bit-identical. The fastest variant on
// SIMD-lane software adapters. Dispatch ceil(B / WG) workgroups, folded by grid().
const SAMPLE_MAX_D: u32 = 32u;

@compute @workgroup_size(WG)
fn main_sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let b = (wid.x + wid.y * nwg.x) * WG + lid;
  if (b >= params.batch) { return; }
  let d = params.d4;
  let n = params.n;
  let rows = n + 1u;
  let off = params.self_off;
  let g = b * params.out_dim + 4u * d;
  for (var i = 0u; i < rows; i = i + 1u) {
    var acc: array<vec4<f32>, SAMPLE_MAX_D>;
    for (var c = 0u; c < d; c = c + 1u) { acc[c] = vec4<f32>(0.0); }
    let bi = g + pair_base(i, off);
    for (var j = 0u; j < i; j = j + 1u) {
      let sij = grad_out[bi + j];
      for (var c = 0u; c < d; c = c + 1u) { acc[c] = acc[c] + sij * t_row(b, j, c); }
    }
    if (off == 1u) {
      let sii = 2.0 * grad_out[bi + i];
      for (var c = 0u; c < d; c = c + 1u) { acc[c] = acc[c] + sii * t_row(b, i, c); }
    }
    var bj = g + pair_base(i + 1u, off) + i;
    for (var j = i + 1u; j < rows; j = j + 1u) {
      let sij = grad_out[bj];
      for (var c = 0u; c < d; c = c + 1u) { acc[c] = acc[c] + sij * t_row(b, j, c); }
      bj = bj + j + off;
    }
    if (i == 0u) {
      for (var c = 0u; c < d; c = c + 1u) { grad_x[b * d + c] = acc[c] + pass_through(b * params.out_dim + 4u * c); }
    } else {
      let e = (b * n + i - 1u) * d;
      for (var c = 0u; c < d; c = c + 1u) { grad_emb[e + c] = acc[c]; }
    }
  }
}
