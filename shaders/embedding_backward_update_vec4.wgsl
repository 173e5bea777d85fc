// embedding_backward_update_vec4: per unique row, sum its gradient and apply the optimizer in place
// (same result and fixed summation order as embedding_backward_update.wgsl), for d, the gradient
// stride and the gradient offset multiples of 4: grad_out and table are vec4<f32>, params.dim counts
// vec4s, pos_info's gradient addresses (in floats) are divided by 4 here.
// It walks the SORTED KEYS directly: no run-length encoding (heads / scan / segments passes) and no
// gathered copy of the per-position info. Thread per sorted position i of chunk c's range
// [run_ranges[1+2c], run_ranges[2+2c]) (embedding_backward_key_ranges), grid-stride; the position
// that starts a run of equal keys (i == first or keys[i-1] != keys[i]) owns the row keys[i]: it
// finds the run's end (keys equal) and walks the row in blocks of CB vec4s (unrolled accumulators):
//   g_k = sum_{j in run} f_j * grad_out[base_j + k],  (base_j, f_j) = pos_info[vals[j]], j in order
// (vals = original positions: the stable sort keeps them ascending within a run).
// Why: on lavapipe every lane-varying storage access is a per-lane branchy scalar loop, so passes
// and accesses are what costs; bench/embedding_profile.ts measures both paths in one process.
// Optimizers (OPT): 0 sgd       w -= lr * g
//                   1 adagrad   s += g*g (per element); w -= lr * (g / (sqrt(s) + eps))
//                   2 rowwise   s += mean_k(g_k^2) (per row, summed k = 0..d-1 in order);
//                               w -= lr * (g / (sqrt(s) + eps)); rows longer than one block
//                               recompute g in a second sweep (same order, bit-identical).
// Bindings: params {chunk, row_start, dim (vec4s), threads}, optim (OptimParams) (uniform);
//           keys, vals, run_ranges, pos_info, grad_out (read); table, state (read_write; state unused
//           by sgd; f32 per element for adagrad, per row for rowwise).
// Dispatch: fixed workgroup count (grid-stride), one dispatch per weight chunk.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

// #include "optim_params.wgsl"

override WG: u32 = 64;
override OPT: u32 = 0;
const CB: u32 = 4u;

struct Params { chunk: u32, row_start: u32, dim: u32, threads: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(4) var<storage, read> pos_info: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> vals: array<u32>;
@group(0) @binding(6) var<storage, read> grad_out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> table: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> state: array<f32>;

// Gradient of vec4 columns k0 .. k0+CB of the run of sorted positions [start, end), summed in order.
fn block_grad(start: u32, end: u32, k0: u32) -> array<vec4<f32>, CB> {
  var g: array<vec4<f32>, CB>;
  let n = min(CB, params.dim - k0);
  if (n == CB) {
    for (var i = start; i < end; i++) {
      let info = pos_info[vals[i]];
      let f = bitcast<f32>(info.y);
      let base = (info.x >> 2u) + k0;
      for (var j = 0u; j < CB; j++) { g[j] += f * grad_out[base + j]; }
    }
  } else {
    for (var i = start; i < end; i++) {
      let info = pos_info[vals[i]];
      let f = bitcast<f32>(info.y);
      let base = (info.x >> 2u) + k0;
      for (var j = 0u; j < CB; j++) {
        if (j < n) { g[j] += f * grad_out[base + j]; }
      }
    }
  }
  return g;
}

// Sum of squares of the block's columns, in column order, added to ss.
fn add_squares(ss: f32, g: array<vec4<f32>, CB>, n: u32) -> f32 {
  var acc = ss;
  for (var j = 0u; j < CB; j++) {
    if (j < n) {
      acc += g[j].x * g[j].x;
      acc += g[j].y * g[j].y;
      acc += g[j].z * g[j].z;
      acc += g[j].w * g[j].w;
    }
  }
  return acc;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + wid.y * nwg.x) * WG + lid;
  let c = params.chunk;
  let first = run_ranges[1u + 2u * c];
  let last = run_ranges[2u + 2u * c];
  let dim = params.dim;
  let lr = optim.lr;
  let eps = optim.eps;
  for (var start = first + gid; start < last; start += params.threads) {
    let key = keys[start];
    if (start > first && keys[start - 1u] == key) { continue; }   // inside a run: its head owns it
    var end = start + 1u;
    while (end < last && keys[end] == key) { end++; }
    let local = key - params.row_start;
    let wbase = local * dim;
    if (OPT == 2u) {
      var den = 0.0;
      if (dim <= CB) {
        // One block: g computed once.
        let g = block_grad(start, end, 0u);
        let m = state[local] + add_squares(0.0, g, dim) / f32(4u * dim);
        state[local] = m;
        den = sqrt(m) + eps;
        for (var j = 0u; j < CB; j++) {
          if (j < dim) { table[wbase + j] = table[wbase + j] - lr * (g[j] / den); }
        }
        continue;
      }
      var ss = 0.0;
      for (var k0 = 0u; k0 < dim; k0 += CB) {
        ss = add_squares(ss, block_grad(start, end, k0), dim - k0);
      }
      let m = state[local] + ss / f32(4u * dim);
      state[local] = m;
      den = sqrt(m) + eps;
      for (var k0 = 0u; k0 < dim; k0 += CB) {
        let g = block_grad(start, end, k0);
        for (var j = 0u; j < CB; j++) {
          let w = wbase + k0 + j;
          if (k0 + j < dim) { table[w] = table[w] - lr * (g[j] / den); }
        }
      }
      continue;
    }
    for (var k0 = 0u; k0 < dim; k0 += CB) {
      let g = block_grad(start, end, k0);
      for (var j = 0u; j < CB; j++) {
        let w = wbase + k0 + j;
        if (k0 + j < dim) {
          if (OPT == 1u) {
            let e = 4u * w;
            let acc = vec4<f32>(state[e], state[e + 1u], state[e + 2u], state[e + 3u]) + g[j] * g[j];
            state[e] = acc.x;
            state[e + 1u] = acc.y;
            state[e + 2u] = acc.z;
            state[e + 3u] = acc.w;
            table[w] = table[w] - lr * (g[j] / (sqrt(acc) + eps));
          } else {
            table[w] = table[w] - lr * g[j];
          }
        }
      }
    }
  }
}
