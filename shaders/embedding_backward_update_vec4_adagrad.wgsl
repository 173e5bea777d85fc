// embedding_backward_update_vec4_adagrad: embedding_backward_update_vec4.wgsl (see its header: what
// it computes, mapping, summation order) for Adagrad only (built with OPT = 1): the per-element
// accumulators are read and written as vec4<f32> like the table (one vec4 access instead of four
// scalar ones: on lavapipe each lane-varying access is a per-lane loop, so this is what costs).
// Bindings: as embedding_backward_update_vec4.wgsl, state = array<vec4<f32>> (same layout as the table).
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

@group(0) @binding(8) var<storage, read_write> state: array<vec4<f32>>;

// Row-wise state is never used with OPT = 1 (the wrapper builds this kernel for adagrad only).
fn row_state(r: u32) -> f32 { return 0.0; }
fn set_row_state(r: u32, v: f32) {}
fn elem_state(w: u32) -> vec4<f32> { return state[w]; }
fn set_elem_state(w: u32, v: vec4<f32>) { state[w] = v; }

// #include "embedding_backward_update_vec4_body.wgsl"
