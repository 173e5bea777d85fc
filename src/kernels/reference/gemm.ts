/**
 * float64 references for the GEMM kernels (plain loops, written
 * independently of the shaders). Each returns the value and, per element,
 * the sum of |terms| that tolerances are derived from.
 */

export interface RefResult {
  value: Float64Array;
  /** Σ |a_i b_i| over the terms of each element (including a bias). */
  absSum: Float64Array;
}

/** C[m, n] = op(A) · op(B); A stored [m, k] (or [k, m] with transA), B stored [k, n] (or [n, k] with transB). */
export function gemmRef(
  a: ArrayLike<number>, b: ArrayLike<number>, m: number, n: number, k: number, transA = false, transB = false,
): RefResult {
  const value = new Float64Array(m * n);
  const absSum = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      let t = 0;
      for (let p = 0; p < k; p++) {
        const av = transA ? a[p * m + i]! : a[i * k + p]!;
        const bv = transB ? b[j * k + p]! : b[p * n + j]!;
        s += av * bv;
        t += Math.abs(av * bv);
      }
      value[i * n + j] = s;
      absSum[i * n + j] = t;
    }
  }
  return { value, absSum };
}

/** Y = act(X · W^T + b), W [n, k]; `pre` is the pre-activation. */
export function linearForwardRef(
  x: ArrayLike<number>, w: ArrayLike<number>, bias: ArrayLike<number>, m: number, n: number, k: number,
  activation: "none" | "relu" | "sigmoid",
): RefResult & { pre: Float64Array } {
  const pre = new Float64Array(m * n);
  const value = new Float64Array(m * n);
  const absSum = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = bias[j]!;
      let t = Math.abs(bias[j]!);
      for (let p = 0; p < k; p++) {
        s += x[i * k + p]! * w[j * k + p]!;
        t += Math.abs(x[i * k + p]! * w[j * k + p]!);
      }
      pre[i * n + j] = s;
      absSum[i * n + j] = t;
      value[i * n + j] = activation === "relu" ? Math.max(s, 0) : activation === "sigmoid" ? 1 / (1 + Math.exp(-s)) : s;
    }
  }
  return { value, absSum, pre };
}

/** Gradients of Y = act(X · W^T + b) for act none / relu (mask y > 0). */
export function linearBackwardRef(
  x: ArrayLike<number>, w: ArrayLike<number>, y: ArrayLike<number>, dy: ArrayLike<number>,
  m: number, n: number, k: number, activation: "none" | "relu",
): { dx: RefResult; dw: RefResult; db: RefResult } {
  const dz = new Float64Array(m * n);
  for (let i = 0; i < m * n; i++) dz[i] = activation === "relu" && !(y[i]! > 0) ? 0 : dy[i]!;
  const dx = { value: new Float64Array(m * k), absSum: new Float64Array(m * k) };
  for (let i = 0; i < m; i++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      let t = 0;
      for (let j = 0; j < n; j++) {
        s += dz[i * n + j]! * w[j * k + p]!;
        t += Math.abs(dz[i * n + j]! * w[j * k + p]!);
      }
      dx.value[i * k + p] = s;
      dx.absSum[i * k + p] = t;
    }
  }
  const dw = { value: new Float64Array(n * k), absSum: new Float64Array(n * k) };
  for (let j = 0; j < n; j++) {
    for (let p = 0; p < k; p++) {
      let s = 0;
      let t = 0;
      for (let i = 0; i < m; i++) {
        s += dz[i * n + j]! * x[i * k + p]!;
        t += Math.abs(dz[i * n + j]! * x[i * k + p]!);
      }
      dw.value[j * k + p] = s;
      dw.absSum[j * k + p] = t;
    }
  }
  const db = { value: new Float64Array(n), absSum: new Float64Array(n) };
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      db.value[j]! += dz[i * n + j]!;
      db.absSum[j]! += Math.abs(dz[i * n + j]!);
    }
  }
  return { dx, dw, db };
}
