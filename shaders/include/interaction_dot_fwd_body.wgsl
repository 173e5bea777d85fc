// Body of interaction_dot_fwd.wgsl and interaction_dot_fwd_vec4.wgsl (see their headers).
// The including kernel defines V, W and hsum (interaction_elem_*.wgsl) and
//   put_x(o, v):   writes the W floats of v to out[o .. o+W),
//   x_float(b, r): float r (< W d) of x_b.
// d below is params.d (elements of V); out offsets are in floats, hence the W factors.

// #include "interaction_dot_common.wgsl"

// Elements of V in workgroup memory holding T (16 KiB, the WebGPU default limit).
const TCAP: u32 = 4096u / W;

@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> tile: array<V, TCAP>;

@compute @workgroup_size(WG)
fn main_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
  let d = params.d;
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
    var v: V;
    if (r < d) {
      v = x[b * d + r];
      put_x(b * params.out_dim + W * r, v);
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
    var acc = V(0.0);
    for (var c = 0u; c < d; c = c + 1u) {
      acc = acc + tile[ti + c] * tile[tj + c];
    }
    out[(b0 + s) * params.out_dim + W * d + k] = hsum(acc);
  }
}

@compute @workgroup_size(WG)
fn main_global(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.x + wid.y * nwg.x) * WG + lid;
  if (idx >= params.total) { return; }
  let d = params.d;
  let n = params.n;
  let b = idx / params.out_dim;
  let r = idx - b * params.out_dim;
  if (r < W * d) {
    out[idx] = x_float(b, r);
    return;
  }
  let ij = pair_of(r - W * d, params.self_off);
  let xb = b * d;
  var acc = V(0.0);
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
  out[idx] = hsum(acc);
}

// main_sample: one invocation per sample, every invocation running the same (i, j) loops
// (no divergence, no pair index arithmetic); the fastest on SIMD-lane software adapters.
// Dispatch ceil(B / WG) workgroups, folded by grid().
@compute @workgroup_size(WG)
fn main_sample(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
  let b = (wid.x + wid.y * nwg.x) * WG + lid;
  if (b >= params.batch) { return; }
  let d = params.d;
  let n = params.n;
  let off = params.self_off;
  let o = b * params.out_dim;
  let xb = b * d;
  for (var c = 0u; c < d; c = c + 1u) { put_x(o + W * c, x[xb + c]); }
  var k = o + W * d;
  if (off == 1u) {
    var acc = V(0.0);
    for (var c = 0u; c < d; c = c + 1u) { acc = acc + x[xb + c] * x[xb + c]; }
    out[k] = hsum(acc);
    k = k + 1u;
  }
  for (var i = 1u; i <= n; i = i + 1u) {
    let ei = (b * n + i - 1u) * d;
    var acc = V(0.0);
    for (var c = 0u; c < d; c = c + 1u) { acc = acc + emb[ei + c] * x[xb + c]; }
    out[k] = hsum(acc);
    k = k + 1u;
    for (var j = 1u; j < i + off; j = j + 1u) {
      let ej = (b * n + j - 1u) * d;
      var a2 = V(0.0);
      for (var c = 0u; c < d; c = c + 1u) { a2 = a2 + emb[ei + c] * emb[ej + c]; }
      out[k] = hsum(a2);
      k = k + 1u;
    }
  }
}
