// embedding_bag_forward_bf16_vec4: embedding_bag_forward_bf16.wgsl (see its header) reading rows
// as vec4<u32> (8 bf16 elements per access) when d % 8 == 0; unit k of a row holds elements
// 8k .. 8k+7 (word j = 4k + c: element 2j in its low half, 2j+1 in its high half).
// Bindings, params: shaders/include/embedding_bag_forward_bf16_body.wgsl.
// Wrapper: src/kernels/embedding_bag_forward_bf16.ts. Reference: src/kernels/reference/bf16.ts
//   + src/kernels/reference/embedding_bag.ts.

alias W = vec4<u32>;
alias F = vec4<f32>;
const SHIFT: W = vec4<u32>(16u);
const HIGH: W = vec4<u32>(0xffff0000u);

fn store(k: u32, lo: F, hi: F, o: u32, accumulate: bool) {
  let e = o + 8u * k;
  put(e, lo.x, accumulate);
  put(e + 1u, hi.x, accumulate);
  put(e + 2u, lo.y, accumulate);
  put(e + 3u, hi.y, accumulate);
  put(e + 4u, lo.z, accumulate);
  put(e + 5u, hi.z, accumulate);
  put(e + 6u, lo.w, accumulate);
  put(e + 7u, hi.w, accumulate);
}

// #include "embedding_bag_forward_bf16_body.wgsl"
