/**
 * float64 reference of bf16 storage (src/kernels/embedding_tables_bf16.ts and the bf16 kernels),
 * written from the number format, not from the kernels' bit tricks:
 *  - a bf16 value has 8 significant bits (7 stored) and f32's exponent range: for |x| in
 *    [2^e, 2^(e+1)), e >= -126, the step is 2^(e-7); below 2^-126 (subnormal) the step is 2^-133;
 *    the largest finite value is (2 - 2^-7) * 2^127.
 *  - roundBf16Ref: nearest (ties to an even last stored bit) or stochastic: with r the 16 random
 *    bits, the magnitude rounds up when frac * 2^16 + r >= 2^16, frac = (|x| - lower) / step,
 *    i.e. with probability frac (x is an f32, so frac * 2^16 is an integer).
 *  - bf16RandomRef: the random stream of stochastic rounding (PCG hash of seed, step, row, column),
 *    which is part of the format's contract (same bits on every host).
 */

const MAX_BF16 = (2 - 2 ** -7) * 2 ** 127;

/** Spacing of bf16 values around |x| (x finite, non-zero). */
export function bf16Step(x: number): number {
  const a = Math.abs(x);
  if (a < 2 ** -126) return 2 ** -133;
  let e = Math.floor(Math.log2(a));
  while (2 ** e > a) e--;
  while (2 ** (e + 1) <= a) e++;
  return 2 ** (e - 7);
}

/** x (an f32 value) rounded to bf16, as a number. */
export function roundBf16Ref(x: number, mode: "nearest" | "stochastic", r = 0): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const a = Math.abs(x);
  const step = bf16Step(a);
  const q = Math.floor(a / step);
  const lower = q * step;
  const frac = (a - lower) / step;
  let up: boolean;
  if (mode === "nearest") up = frac > 0.5 || (frac === 0.5 && q % 2 === 1);
  else up = frac * 65536 + (r & 0xffff) >= 65536;
  let v = up ? lower + step : lower;
  if (v > MAX_BF16) v = Infinity;
  return x < 0 ? -v : v;
}

function pcg(v: number): number {
  const s = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** 32 random bits of stochastic rounding for element k of global row `row` at optimizer step `step`. */
export function bf16RandomRef(seed: number, step: number, row: number, k: number): number {
  return pcg((pcg((pcg((seed ^ pcg(step)) >>> 0) ^ row) >>> 0) ^ k) >>> 0);
}

/** Decodes rows of ceil(dim/2) u32 words (element 2j: low half of word j, 2j+1: high half) to float64. */
export function decodeBf16Rows(words: Uint32Array, dim: number): Float64Array {
  const per = Math.ceil(dim / 2);
  const rows = words.length / per;
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < dim; k++) {
      const w = words[r * per + (k >> 1)]!;
      const h = k % 2 === 0 ? w & 0xffff : w >>> 16;
      out[r * dim + k] = bf16BitsValue(h);
    }
  }
  return out;
}

/** The value of 16 bf16 bits (sign, 8 exponent bits, 7 mantissa bits), by the format's definition. */
export function bf16BitsValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 7) & 0xff;
  const m = h & 0x7f;
  if (e === 0xff) return m === 0 ? sign * Infinity : NaN;
  if (e === 0) return sign * m * 2 ** -133;
  return sign * (1 + m / 128) * 2 ** (e - 127);
}
