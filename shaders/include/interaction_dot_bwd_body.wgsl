// Body of interaction_dot_bwd.wgsl and interaction_dot_bwd_vec4.wgsl (see their headers).
// The including kernel defines V and W (interaction_elem_*.wgsl), the workgroup memory
// `tile` (T, elements of V) and
//   g_base(tv):     where the flat gradients start in their workgroup array, given tv
//                   elements of T staged (after T when they share `tile`, else 0),
//   g_get(k), g_set(k, v): flat gradient k in workgroup memory,
//   pass_through(o): grad_out[o .. o+W) as a V.
// d below is params.d (elements of V); grad_out offsets are in floats, hence the W factors.

// #include "interaction_dot_common.wgsl"

@group(0) @binding(3) var<storage, read> grad_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_x: array<V>;
@group(0) @binding(5) var<storage, read_write> grad_emb: array<V>;

// T[b][j][c] from global memory: x for j = 0, e_j otherwise.
fn t_row(b: u32, j: u32, c: u32) -> V {
  if (j == 0u) { return x[b * params.d + c]; }
  return emb[(b * params.n + j - 1u) * params.d + c];
}

@compute @workgroup_size(WG)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let d = params.d;
  let n = params.n;
  let rows = n + 1u;
  let tsize = rows * d;
  let pairs = params.pairs;
  let b0 = (wid.x + wid.y * nwg.x) * params.spw;
  if (b0 >= params.batch) { return; }
  let ns = min(params.spw, params.batch - b0);
  let gbase = g_base(ns * tsize);

  for (var idx = lid; idx < ns * tsize; idx = idx + WG) {
    let s = idx / tsize;
    let r = idx - s * tsize;
    let b = b0 + s;
    if (r < d) { tile[idx] = x[b * d + r]; } else { tile[idx] = emb[b * n * d + (r - d)]; }
  }
  for (var idx = lid; idx < ns * pairs; idx = idx + WG) {
    let s = idx / pairs;
    let k = idx - s * pairs;
    g_set(gbase + idx, grad_out[(b0 + s) * params.out_dim + W * d + k]);
  }
  workgroupBarrier();

  let off = params.self_off;
  for (var idx = lid; idx < ns * tsize; idx = idx + WG) {
    let s = idx / tsize;
    let r = idx - s * tsize;
    let i = r / d;
    let c = r - i * d;
    let t = s * tsize + c;
    let g = gbase + s * pairs;
    // S[i][j], j ascending: G[base(i) + j] for j < i, 2 G[base(i) + i] on the diagonal
    // (self only), G[base(j) + i] for j > i (base(j + 1) = base(j) + j + off).
    let bi = g + pair_base(i, off);
    var acc = V(0.0);
    for (var j = 0u; j < i; j = j + 1u) {
      acc = acc + g_get(bi + j) * tile[t + j * d];
    }
    if (off == 1u) {
      acc = acc + (2.0 * g_get(bi + i)) * tile[t + i * d];
    }
    var bj = g + pair_base(i + 1u, off) + i;
    for (var j = i + 1u; j < rows; j = j + 1u) {
      acc = acc + g_get(bj) * tile[t + j * d];
      bj = bj + j + off;
    }
    let b = b0 + s;
    if (i == 0u) {
      grad_x[b * d + c] = acc + pass_through(b * params.out_dim + W * c);
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
  let d = params.d;
  let n = params.n;
  let rows = n + 1u;
  let tsize = rows * d;
  let b = idx / tsize;
  let r = idx - b * tsize;
  let i = r / d;
  let c = r - i * d;
  let off = params.self_off;
  let g = b * params.out_dim + W * d;
  // S[i][j] T[j][c], j ascending (see main_wg); T[0] is x, T[j] is e_j.
  let bi = g + pair_base(i, off);
  var acc = V(0.0);
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
    grad_x[b * d + c] = acc + pass_through(b * params.out_dim + W * c);
  } else {
    grad_emb[(b * n + i - 1u) * d + c] = acc;
  }
}

// main_sample: one invocation per sample, every invocation running the same loops (no
// divergence). For each row i the S[i][j] are loaded once and applied to the whole row
// T[j] (accumulators in a private array: d <= 128 floats); per element the terms are added
// in the same order as main_global, so the results are bit-identical. The fastest variant
// on SIMD-lane software adapters. Dispatch ceil(B / WG) workgroups, folded by grid().
const SAMPLE_MAX_D: u32 = 128u / W;

@compute @workgroup_size(WG)
fn main_sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let b = (wid.x + wid.y * nwg.x) * WG + lid;
  if (b >= params.batch) { return; }
  let d = params.d;
  let n = params.n;
  let rows = n + 1u;
  let off = params.self_off;
  let g = b * params.out_dim + W * d;
  for (var i = 0u; i < rows; i = i + 1u) {
    var acc: array<V, SAMPLE_MAX_D>;
    for (var c = 0u; c < d; c = c + 1u) { acc[c] = V(0.0); }
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
      for (var c = 0u; c < d; c = c + 1u) { grad_x[b * d + c] = acc[c] + pass_through(b * params.out_dim + W * c); }
    } else {
      let e = (b * n + i - 1u) * d;
      for (var c = 0u; c < d; c = c + 1u) { grad_emb[e + c] = acc[c]; }
    }
  }
}
