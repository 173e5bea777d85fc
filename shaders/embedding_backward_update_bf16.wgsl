// embedding_backward_update_bf16: per unique row, sum its f32 gradient and apply the optimizer in
// place to a bf16 table (rows of ceil(d/2) u32 words: element 2j in the low half of word j, 2j+1
// in the high half). The same walk and summation order as embedding_backward_update_vec4.wgsl:
// thread per sorted position i of chunk c's range [run_ranges[1+2c], run_ranges[2+2c])
// (embedding_backward_key_ranges), grid-stride; the position that starts a run of equal keys owns
// the row keys[i], finds the run's end and walks the row in blocks of CB words (2*CB elements):
//   g_k = sum_{j in run} f_j * grad_out[base_j + k],  (base_j, f_j) = pos_info[vals[j]], j in order.
// The weight is decoded (exact), updated in f32, and rounded back to bf16 (round_bf16: nearest-even,
// or stochastic with bits bf16_random(seed, optim.step, global row, k): deterministic per step).
// Optimizers (OPT): 0 sgd       w -= lr * g
//                   1 adagrad   s += g*g (f32 state per element); w -= lr * (g / (sqrt(s) + eps))
//                   2 rowwise   s += mean_k(g_k^2) (f32 state per row, summed k = 0..d-1 in order);
//                               w -= lr * (g / (sqrt(s) + eps)); g recomputed in a second sweep
// Bindings: params {chunk, row_start, dim (floats), words (per row), threads, seed, rounding},
//           optim (OptimParams) (uniform); keys, vals, run_ranges, pos_info, grad_out (read);
//           table (u32 words), state (f32; unused by sgd) (read_write).
// Dispatch: fixed workgroup count (grid-stride), one dispatch per weight chunk.
// Reference: src/kernels/reference/bf16.ts (bf16 update on embeddingBackwardStepRef's gradients).
// Driver: src/kernels/embedding_bag_backward_bf16.ts.

// #include "optim_params.wgsl"
// #include "bf16_round.wgsl"

override WG: u32 = 64;
override OPT: u32 = 0;
const CB: u32 = 4u;        // words per block
const CE: u32 = 8u;        // elements per block (2 * CB)

struct Params { chunk: u32, row_start: u32, dim: u32, words: u32, threads: u32, seed: u32, rounding: u32, pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(4) var<storage, read> pos_info: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> vals: array<u32>;
@group(0) @binding(6) var<storage, read> grad_out: array<f32>;
@group(0) @binding(7) var<storage, read_write> table: array<u32>;
@group(0) @binding(8) var<storage, read_write> state: array<f32>;

// Gradient of elements k0 .. k0+CE of the run of sorted positions [start, end), summed in order.
fn block_grad(start: u32, end: u32, k0: u32) -> array<f32, CE> {
  var g: array<f32, CE>;
  let n = min(CE, params.dim - k0);
  for (var i = start; i < end; i++) {
    let info = pos_info[vals[i]];
    let f = bitcast<f32>(info.y);
    let base = info.x + k0;
    for (var j = 0u; j < CE; j++) {
      if (j < n) { g[j] += f * grad_out[base + j]; }
    }
  }
  return g;
}

// New value of element (row, k) with weight w, gradient g and (rowwise) denominator den.
fn updated(w: f32, g: f32, den: f32, local: u32, k: u32) -> f32 {
  if (OPT == 1u) {
    let si = local * params.dim + k;
    let acc = state[si] + g * g;
    state[si] = acc;
    return w - optim.lr * (g / (sqrt(acc) + optim.eps));
  }
  if (OPT == 2u) { return w - optim.lr * (g / den); }
  return w - optim.lr * g;
}

// rh: bf16_row_hash of the row (stochastic rounding's bits are pcg_hash(rh ^ k) = bf16_random(..., k)).
fn rounded(x: f32, rh: u32, k: u32) -> u32 {
  var r = 0u;
  if (params.rounding == 1u) { r = pcg_hash(rh ^ k); }
  return round_bf16(x, params.rounding, r);
}

// Applies the update to the words of block k0 (elements k0 .. k0+CE) of row `local`.
fn update_block(g: array<f32, CE>, den: f32, rh: u32, local: u32, k0: u32) {
  let dim = params.dim;
  let wbase = local * params.words + k0 / 2u;
  for (var j = 0u; j < CB; j++) {
    let k = k0 + 2u * j;
    if (k < dim) {
      let word = table[wbase + j];
      let lo = rounded(updated(bitcast<f32>(word << 16u), g[2u * j], den, local, k), rh, k);
      var hi = word >> 16u;   // the padding half of an odd d stays as it is (0)
      if (k + 1u < dim) {
        hi = rounded(updated(bitcast<f32>(word & 0xffff0000u), g[2u * j + 1u], den, local, k + 1u), rh, k + 1u);
      }
      table[wbase + j] = (hi << 16u) | lo;
    }
  }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + wid.y * nwg.x) * WG + lid;
  let c = params.chunk;
  let first = run_ranges[1u + 2u * c];
  let last = run_ranges[2u + 2u * c];
  let dim = params.dim;
  for (var start = first + gid; start < last; start += params.threads) {
    let key = keys[start];
    if (start > first && keys[start - 1u] == key) { continue; }   // inside a run: its head owns it
    var end = start + 1u;
    while (end < last && keys[end] == key) { end++; }
    let local = key - params.row_start;
    var den = 1.0;
    if (OPT == 2u) {
      var ss = 0.0;
      for (var k0 = 0u; k0 < dim; k0 += CE) {
        let g = block_grad(start, end, k0);
        for (var j = 0u; j < CE; j++) {
          if (k0 + j < dim) { ss += g[j] * g[j]; }
        }
      }
      let m = state[local] + ss / f32(dim);
      state[local] = m;
      den = sqrt(m) + optim.eps;
    }
    let rh = bf16_row_hash(params.seed, optim.step, key);
    for (var k0 = 0u; k0 < dim; k0 += CE) {
      update_block(block_grad(start, end, k0), den, rh, local, k0);
    }
  }
}
