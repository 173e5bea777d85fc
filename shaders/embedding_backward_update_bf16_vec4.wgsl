// embedding_backward_update_bf16_vec4: embedding_backward_update_bf16.wgsl (see its header: the walk
// over the sorted keys, the f32 gradient sum in position order, the optimizers, the rounding) for
// d % 8 == 0 and the gradient stride and offset multiples of 4: the table is read and written as
// vec4<u32> units (8 bf16: word j of the unit holds elements 2j (low half) and 2j+1 (high half)),
// the gradient as vec4<f32> (pos_info's addresses, in floats, divided by 4), and the update, the
// rounding and the random bits run on vec4s. Blocks of CB units (16 elements) per gradient sweep.
// Why: on lavapipe every lane-varying access is a per-lane scalar loop; vec4 accesses cost ~1.6x
// less per float than scalar ones (embed's profile), and the scalar kernel makes 16 grad and 8 word
// accesses per 8 elements where this one makes 2 and 1.
// Bindings and params: as embedding_backward_update_bf16.wgsl (params.words unused), with
// grad_out: array<vec4<f32>> and table: array<vec4<u32>>; here state: array<f32> (per row for
// rowwise, per element read as scalars for adagrad); embedding_backward_update_bf16_vec4_adagrad.wgsl
// holds adagrad's state as vec4.
// Reference: src/kernels/reference/bf16.ts. Driver: src/kernels/embedding_bag_backward_bf16.ts.

@group(0) @binding(8) var<storage, read_write> state: array<f32>;

fn row_state(r: u32) -> f32 { return state[r]; }
fn set_row_state(r: u32, v: f32) { state[r] = v; }
fn adagrad_den(g: vec4<f32>, q: u32) -> vec4<f32> {
  let e = 4u * q;
  let acc = vec4<f32>(state[e], state[e + 1u], state[e + 2u], state[e + 3u]) + g * g;
  state[e] = acc.x;
  state[e + 1u] = acc.y;
  state[e + 2u] = acc.z;
  state[e + 3u] = acc.w;
  return sqrt(acc) + optim.eps;
}

// #include "embedding_backward_update_bf16_vec4_body.wgsl"
