// embedding_bag_forward_bf16: table-batched EmbeddingBag forward over bf16 tables, f32 sums.
//   out[b*out_stride + out_offset + t*d + k] (=|+=) scale(t,b) * sum_{p in bag(t,b)} w[p] * bf16(E_t[indices[p]][k])
// as embedding_bag_forward.wgsl (same CSR bags, mean / weights, chunks, error handling, summation
// order), but each table row is ceil(d/2) u32 words: element 2j is the low half of word j, element
// 2j+1 the high half (the upper 16 bits of the f32, "bf16"; an odd d leaves the last high half 0).
// Decoding is exact (a shift or a mask, then bitcast); sums are f32 in bag order.
// Mapping: LANES lanes per bag, lane l covers words l, l+LANES, ... (two accumulators per word);
//   BAGS bags per workgroup; linear workgroup = wid.x + wid.y * nwg.x (grid()).
// This file: one u32 word per access (any d); embedding_bag_forward_bf16_vec4.wgsl reads vec4<u32>
// (8 elements per access) when d % 8 == 0.
// Bindings, params: shaders/include/embedding_bag_forward_bf16_body.wgsl.
// Wrapper: src/kernels/embedding_bag_forward_bf16.ts. Reference: src/kernels/reference/bf16.ts
//   (decodeBf16Rows) + src/kernels/reference/embedding_bag.ts (embeddingBagForwardRef).

alias W = u32;
alias F = f32;
const SHIFT: W = 16u;
const HIGH: W = 0xffff0000u;

fn store(k: u32, lo: F, hi: F, o: u32, accumulate: bool) {
  put(o + 2u * k, lo, accumulate);
  if (2u * k + 1u < params.dim) { put(o + 2u * k + 1u, hi, accumulate); }
}

// #include "embedding_bag_forward_bf16_body.wgsl"
