// Shared by embedding_combine_{fwd,bwd}.wgsl and embedding_proj_grad.wgsl (one uniform layout).
// batch B, n logical tables, d embedding dim, width W of the pooled buffer P [B, W],
// total invocations, col_map / proj_list: word offsets into `desc`, num_proj projected tables.
// desc (u32, packCombine() in src/model/embedding_layout.ts):
//   [8 t .. 8 t + 8): {op, a, b, wa, wb, proj_offset, 0, 0} of logical table t
//     op 0 copy, 1 add, 2 mult, 3 concat, 4 project
//   [col_map + 2 c ..): owner of P column c: {t (0xffffffff = padding), side << 16 | j}
//   [proj_list + 4 p ..): projected table p: {t, a, wa, proj_offset}
struct Params {
  batch: u32,
  n: u32,
  d: u32,
  width: u32,
  total: u32,
  col_map: u32,
  proj_list: u32,
  num_proj: u32,
}
