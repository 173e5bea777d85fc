/** Numeric assertions with tolerances derived from float32 rounding. */
import { expect } from "vitest";

/** Unit roundoff of float32. */
export const U32 = 2 ** -24;

/**
 * Error bound for a K-term float32 sum whose terms have absolute sum `sumAbs`
 * (the classical (K-1)·u·Σ|x| bound, plus one rounding of the result), with a
 * floor of a few ulps of the magnitude.
 */
export function sumTolerance(terms: number, sumAbs: number): number {
  return (Math.max(terms, 1) + 1) * U32 * sumAbs + 2 * U32 * Math.abs(sumAbs) + 1e-30;
}

/**
 * Every actual[i] within tol(i) of expected[i]; reports the worst offender.
 * NaN in actual (an unwritten, NaN-prefilled element) always fails.
 */
export function expectAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number | ((i: number) => number),
  what = "value",
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let worst = -1;
  let worstRatio = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const t = typeof tol === "number" ? tol : tol(i);
    const err = Math.abs(a - e);
    if (Number.isNaN(a) || Number.isNaN(err) || err > t) {
      const ratio = Number.isNaN(err) ? Infinity : err / t;
      if (worst < 0 || ratio > worstRatio) {
        worst = i;
        worstRatio = ratio;
      }
    }
  }
  if (worst >= 0) {
    const t = typeof tol === "number" ? tol : tol(worst);
    expect.fail(`${what}[${worst}] = ${actual[worst]}, expected ${expected[worst]} (tolerance ${t.toExponential(2)})`);
  }
}

/** Bit-identical arrays. */
export function expectBitIdentical(a: Float32Array | Uint32Array, b: Float32Array | Uint32Array, what = "value"): void {
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  expect(ua.length, `${what}: length`).toBe(ub.length);
  for (let i = 0; i < ua.length; i++) {
    if (ua[i] !== ub[i]) expect.fail(`${what}[${i}] differs: ${a[i]} vs ${b[i]}`);
  }
}
