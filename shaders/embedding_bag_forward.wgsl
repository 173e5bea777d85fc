// embedding_bag_forward: table-batched EmbeddingBag (SparseLengthSum) forward, any d, f32.
//   out[b*out_stride + out_offset + t*d + k] (=|+=) scale(t,b) * sum_{p in bag(t,b)} w[p] * E_t[indices[p]][k]
//   bag(t,b) = offsets[t*B+b] .. offsets[t*B+b+1] (table-major CSR), scale = 1 or 1/|bag| (mean),
//   w = 1 unless WEIGHTED.
// Mapping: a group of LANES invocations per bag covers the d columns (lane l: COLS
//   consecutive columns from l*COLS, then + LANES*COLS...) and walks the bag's indices in
//   order (deterministic sum); BAGS bags per workgroup, WG = LANES * BAGS <= 256; bags of all
//   tables of one chunk in ONE dispatch: linear workgroup = wid.x + wid.y * nwg.x (grid()),
//   bag = workgroup * BAGS + lid / LANES over (tables of the chunk) x B.
// Tables are stored in chunks of consecutive global rows (EmbeddingTableSet); one dispatch
//   per chunk, each adding only the rows it holds; the first chunk of a table writes, later
//   ones accumulate, in chunk order.
// Bad input never reads out of bounds: an index >= rows is skipped and its position recorded
//   (atomicMin) in `errors`; a bag with end < start or end past the buffers is treated as empty
//   and flagged. Entry point finish_errors (1 invocation) then names the first bad lookup.
// This file: scalar (V = f32); embedding_bag_forward_vec4.wgsl is the vec4 fast path.
// Bindings, params: shaders/include/embedding_bag_forward_body.wgsl.
// Wrapper: src/kernels/embedding_bag_forward.ts. Reference: src/kernels/reference/embedding_bag.ts
//   (embeddingBagForwardRef).

alias V = f32;

// #include "embedding_bag_forward_body.wgsl"
