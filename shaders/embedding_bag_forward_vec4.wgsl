// embedding_bag_forward_vec4: the vec4 fast path of embedding_bag_forward.wgsl (see its
// header for what it computes, the mapping and the error handling), used when d, the
// output stride and the output offset are multiples of 4: every lane loads and stores
// vec4<f32>, so dim/out_stride/out_offset in params count vec4s.
// Wrapper: src/kernels/embedding_bag_forward.ts. Reference: src/kernels/reference/embedding_bag.ts.

alias V = vec4<f32>;

// #include "embedding_bag_forward_body.wgsl"
