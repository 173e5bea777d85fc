/**
 * Zipf(s) sampler over ranks 1..n, P(k) proportional to k^-s, for any s >= 0,
 * in O(1) memory and expected O(1) time per draw: rejection-inversion
 * (W. Hormann, G. Derflinger, "Rejection-inversion to generate variates from
 * monotone discrete distributions", 1996). No per-row table, so it scales to
 * tables of any size.
 */
import type { Rng } from "../util/rng.ts";
import { DataError } from "./source.ts";

export class ZipfSampler {
  private readonly hX1: number;
  private readonly hN: number;
  private readonly sParam: number;

  constructor(readonly n: number, readonly s: number) {
    if (!Number.isInteger(n) || n < 1) throw new DataError(`Zipf needs n >= 1 elements, got ${n}`);
    if (!(s >= 0) || !Number.isFinite(s)) throw new DataError(`Zipf exponent must be finite and >= 0, got ${s}`);
    this.hX1 = this.hIntegral(1.5) - 1;
    this.hN = this.hIntegral(n + 0.5);
    this.sParam = 2 - this.hIntegralInverse(this.hIntegral(2.5) - this.h(2));
  }

  /** A rank in [1, n]; rank 1 is the most popular. */
  sample(rng: Rng): number {
    for (;;) {
      const u = this.hN + rng.uniform() * (this.hX1 - this.hN);
      const x = this.hIntegralInverse(u);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > this.n) k = this.n;
      if (k - x <= this.sParam || u >= this.hIntegral(k + 0.5) - this.h(k)) return k;
    }
  }

  /** Exact probability of rank k (O(n) normalisation; for tests). */
  static pmf(n: number, s: number): Float64Array {
    const p = new Float64Array(n);
    let z = 0;
    for (let k = 1; k <= n; k++) z += (p[k - 1] = Math.pow(k, -s));
    for (let k = 0; k < n; k++) p[k] /= z;
    return p;
  }

  private h(x: number): number {
    return Math.exp(-this.s * Math.log(x));
  }

  /** Antiderivative of h: (x^(1-s) - 1) / (1 - s), continuous at s = 1 (log x). */
  private hIntegral(x: number): number {
    const logX = Math.log(x);
    return helper2((1 - this.s) * logX) * logX;
  }

  private hIntegralInverse(x: number): number {
    let t = x * (1 - this.s);
    if (t < -1) t = -1; // numerical guard
    return Math.exp(helper1(t) * x);
  }
}

/** log1p(x) / x, stable near 0. */
function helper1(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x));
}

/** expm1(x) / x, stable near 0. */
function helper2(x: number): number {
  return Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + (x / 3) * (1 + 0.25 * x));
}
