// embedding_backward_update_bf16_vec4_adagrad: embedding_backward_update_bf16_vec4.wgsl (see its header)
// for adagrad with the f32 state read and written as vec4 (4 accumulators per access instead of 4
// scalar accesses; the same values). Bindings: as that kernel, with state: array<vec4<f32>>
// (rowCount * d / 4 per chunk). Reference: src/kernels/reference/bf16.ts. Driver:
// src/kernels/embedding_bag_backward_bf16.ts.

@group(0) @binding(8) var<storage, read_write> state: array<vec4<f32>>;

fn row_state(r: u32) -> f32 { return state[r / 4u][r % 4u]; }   // unused (OPT 1)
fn set_row_state(r: u32, v: f32) { state[r / 4u][r % 4u] = v; }
fn adagrad_den(g: vec4<f32>, q: u32) -> vec4<f32> {
  let acc = state[q] + g * g;
  state[q] = acc;
  return sqrt(acc) + optim.eps;
}

// #include "embedding_backward_update_bf16_vec4_body.wgsl"
