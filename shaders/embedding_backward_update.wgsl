// embedding_backward_update: per unique row, sum its gradient and apply the optimizer in place.
// Runs s in [run_ranges[1+2c], run_ranges[2+2c]) of chunk c are handled grid-stride (threads = WG * workgroups):
// sgd / adagrad one item per (run, block of CB columns), rowwise-adagrad one item per run.
// Run s covers sorted positions i in [segs[s].x, segs[s+1].x), all of global row segs[s].y;
// its gradient, summed in sorted (= original position) order, is
//   g_k = sum_i f_i * grad_out[base_i + k],   (base_i, f_i) = sorted_info[i] (= pos_info[vals[i]]).
// Optimizers (OPT): 0 sgd       w -= lr * g
//                   1 adagrad   s += g*g (per element); w -= lr * (g / (sqrt(s) + eps))
//                   2 rowwise   s += mean_k(g_k^2) (per row); w -= lr * (g / (sqrt(s) + eps))
// Columns go in blocks of CB (unrolled, registers); rowwise recomputes g in a second sweep
// (same order, bit-identical) instead of keeping a whole row.
// Bindings: params {chunk, row_start, dim, threads}, optim (OptimParams) (uniform);
//           segs, run_ranges, sorted_info, grad_out (read); table, state (read_write; state unused by sgd).
// Dispatch: fixed workgroup count (grid-stride), one dispatch per weight chunk.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

// #include "optim_params.wgsl"

override WG: u32 = 64;
override OPT: u32 = 0;
const CB: u32 = 8u;

struct Params { chunk: u32, row_start: u32, dim: u32, threads: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read> segs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(4) var<storage, read> sorted_info: array<vec2<u32>>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> table: array<f32>;
@group(0) @binding(8) var<storage, read_write> state: array<f32>;

// Gradient of columns k0 .. k0+CB of the run [start, end), summed in position order.
// Full blocks skip the per-column bounds test (dim % CB == 0 is the common case).
fn block_grad(start: u32, end: u32, k0: u32) -> array<f32, CB> {
  var g: array<f32, CB>;
  let dim = params.dim;
  if (k0 + CB <= dim) {
    for (var i = start; i < end; i++) {
      let info = sorted_info[i];
      let f = bitcast<f32>(info.y);
      let base = info.x + k0;
      for (var j = 0u; j < CB; j++) { g[j] += f * grad_out[base + j]; }
    }
  } else {
    for (var i = start; i < end; i++) {
      let info = sorted_info[i];
      let f = bitcast<f32>(info.y);
      let base = info.x + k0;
      for (var j = 0u; j < CB; j++) {
        if (k0 + j < dim) { g[j] += f * grad_out[base + j]; }
      }
    }
  }
  return g;
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
  if (OPT == 2u) {
    // Row-wise: one thread per run (the row's accumulator needs every column).
    for (var s = first + gid; s < last; s += params.threads) {
      let seg = segs[s];
      let start = seg.x;
      let end = segs[s + 1u].x;
      let local = seg.y - params.row_start;
      let wbase = local * dim;
      var ss = 0.0;
      for (var k0 = 0u; k0 < dim; k0 += CB) {
        let g = block_grad(start, end, k0);
        for (var j = 0u; j < CB; j++) {
          if (k0 + j < dim) { ss += g[j] * g[j]; }
        }
      }
      let m = state[local] + ss / f32(dim);
      state[local] = m;
      let den = sqrt(m) + eps;
      for (var k0 = 0u; k0 < dim; k0 += CB) {
        let g = block_grad(start, end, k0);
        for (var j = 0u; j < CB; j++) {
          let k = k0 + j;
          if (k < dim) { table[wbase + k] = table[wbase + k] - lr * (g[j] / den); }
        }
      }
    }
    return;
  }
  // sgd / adagrad: one thread per (run, column block); neighbouring lanes share a run.
  let nb = (dim + CB - 1u) / CB;
  let items = (last - first) * nb;
  for (var it = gid; it < items; it += params.threads) {
    let s = first + it / nb;
    let k0 = (it % nb) * CB;
    let seg = segs[s];
    let start = seg.x;
    let end = segs[s + 1u].x;
    let wbase = (seg.y - params.row_start) * dim;
    let g = block_grad(start, end, k0);
    for (var j = 0u; j < CB; j++) {
      let k = k0 + j;
      if (k < dim) {
        let w = wbase + k;
        if (OPT == 1u) {
          let acc = state[w] + g[j] * g[j];
          state[w] = acc;
          table[w] = table[w] - lr * (g[j] / (sqrt(acc) + eps));
        } else {
          table[w] = table[w] - lr * g[j];
        }
      }
    }
  }
}
