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
