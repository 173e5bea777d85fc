// embedding_backward_update_vec4: per unique row, sum its gradient and apply the optimizer in place
// (same result and fixed summation order as embedding_backward_update.wgsl), for d, the gradient
// stride and the gradient offset multiples of 4: grad_out and table are vec4<f32>, params.dim counts
// vec4s, pos_info's gradient addresses (in floats) are divided by 4 here.
// It walks the SORTED KEYS directly: no run-length encoding (heads / scan / segments passes) and no
// gathered copy of the per-position info. Thread per segment of ceil(n / threads) consecutive sorted
// positions of chunk c's n = range [run_ranges[1+2c], run_ranges[2+2c]) (embedding_backward_key_ranges),
// walked in order (each key loaded once); the position that starts a run of equal keys (i == first or
// keys[i-1] != keys[i]) owns the row keys[i] (a run starting in an earlier segment is skipped): it
// finds the run's end (keys equal) and walks the row in blocks of CB vec4s (unrolled accumulators):
//   g_k = sum_{j in run} f_j * grad_out[base_j + k],  (base_j, f_j) = pos_info[vals[j]], j in order
// (vals = original positions: the stable sort keeps them ascending within a run; with DIRECT, vals
// holds the gradient address itself and f_j = 1: sum pooling without weights).
// Why: on lavapipe every lane-varying storage access is a per-lane branchy scalar loop, so passes
// and accesses are what costs; bench/embedding_profile.ts measures both paths in one process.
// Optimizers (OPT): 0 sgd       w -= lr * g
//                   1 adagrad   s += g*g (per element); w -= lr * (g / (sqrt(s) + eps))
//                   2 rowwise   s += mean_k(g_k^2) (per row, summed k = 0..d-1 in order);
//                               w -= lr * (g / (sqrt(s) + eps)); rows longer than one block
//                               recompute g in a second sweep (same order, bit-identical).
// Bindings: params {chunk, row_start, dim (vec4s), threads}, optim (OptimParams) (uniform);
//           keys, vals, run_ranges, pos_info, grad_out (read); table, state (read_write; state unused
//           by sgd; here f32: per row for rowwise, per element (4 scalars per vec4) for adagrad;
//           embedding_backward_update_vec4_adagrad.wgsl holds adagrad's state as vec4).
// Dispatch: fixed workgroup count (every chunk spread over all of it), one dispatch per weight chunk.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

@group(0) @binding(8) var<storage, read_write> state: array<f32>;

fn row_state(r: u32) -> f32 { return state[r]; }
fn set_row_state(r: u32, v: f32) { state[r] = v; }
fn elem_state(w: u32) -> vec4<f32> {
  let e = 4u * w;
  return vec4<f32>(state[e], state[e + 1u], state[e + 2u], state[e + 3u]);
}
fn set_elem_state(w: u32, v: vec4<f32>) {
  let e = 4u * w;
  state[e] = v.x;
  state[e + 1u] = v.y;
  state[e + 2u] = v.z;
  state[e + 3u] = v.w;
}

// #include "embedding_backward_update_vec4_body.wgsl"
