// f32 -> bf16 rounding (the upper 16 bits of an f32) for the bf16 embedding updates.
// round_bf16(x, mode, r): mode 0 = round to nearest even; mode 1 = stochastic: add the 16 random
// bits r to the f32 bits and truncate, so the magnitude rounds up with probability
// (dropped bits) / 2^16 (FBGEMM's stochastic rounding for low-precision tables; unbiased).
// Inf and NaN keep their class (a NaN stays a NaN). The result is in the low 16 bits.
// Reference: src/kernels/reference/bf16.ts (roundBf16Ref, bf16Random).

fn round_bf16(x: f32, mode: u32, r: u32) -> u32 {
  let b = bitcast<u32>(x);
  if ((b & 0x7f800000u) == 0x7f800000u) {
    return (b >> 16u) | select(0u, 0x40u, (b & 0x7fffffu) != 0u);
  }
  if (mode == 1u) { return (b + (r & 0xffffu)) >> 16u; }
  return (b + 0x7fffu + ((b >> 16u) & 1u)) >> 16u;
}

// PCG hash (Jarzynski & Olano 2020), the random stream of stochastic rounding.
fn pcg_hash(v: u32) -> u32 {
  let s = v * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

// 32 random bits for element k of global row `row` at optimizer step `step` with seed `seed`:
// deterministic, so a rerun of the same step rounds the same way.
fn bf16_random(seed: u32, step: u32, row: u32, k: u32) -> u32 {
  return pcg_hash(pcg_hash(pcg_hash(seed ^ pcg_hash(step)) ^ row) ^ k);
}

// The random bits of row `row` at a step, hashed once per row: bf16_random(seed, step, row, k) ==
// pcg_hash(bf16_row_hash(seed, step, row) ^ k).
fn bf16_row_hash(seed: u32, step: u32, row: u32) -> u32 {
  return pcg_hash(pcg_hash(seed ^ pcg_hash(step)) ^ row);
}

// Four lanes of round_bf16 / pcg_hash (the vec4 update).
fn round_bf16_4(x: vec4<f32>, mode: u32, r: vec4<u32>) -> vec4<u32> {
  let b = bitcast<vec4<u32>>(x);
  let special = (b & vec4<u32>(0x7f800000u)) == vec4<u32>(0x7f800000u);
  let kept = (b >> vec4<u32>(16u)) | select(vec4<u32>(0u), vec4<u32>(0x40u), (b & vec4<u32>(0x7fffffu)) != vec4<u32>(0u));
  var n: vec4<u32>;
  if (mode == 1u) {
    n = (b + (r & vec4<u32>(0xffffu))) >> vec4<u32>(16u);
  } else {
    n = (b + vec4<u32>(0x7fffu) + ((b >> vec4<u32>(16u)) & vec4<u32>(1u))) >> vec4<u32>(16u);
  }
  return select(n, kept, special);
}

fn pcg_hash4(v: vec4<u32>) -> vec4<u32> {
  let s = v * 747796405u + vec4<u32>(2891336453u);
  let w = ((s >> ((s >> vec4<u32>(28u)) + vec4<u32>(4u))) ^ s) * 277803737u;
  return (w >> vec4<u32>(22u)) ^ w;
}
