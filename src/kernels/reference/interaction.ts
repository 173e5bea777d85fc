/**
 * float64 references for the DLRM interaction, written from the reference's
 * definition (dlrm_s_pytorch.py interact_features): T = cat(x, e_1..e_n),
 * Z = T T^T, li/lj from `for i in range(ni): for j in range(i + offset)`.
 */

/** The (i, j) list of Zflat, in the reference's order. */
export function interactionPairList(numEmb: number, self: boolean): [number, number][] {
  const offset = self ? 1 : 0;
  const list: [number, number][] = [];
  for (let i = 0; i < numEmb + 1; i++) for (let j = 0; j < i + offset; j++) list.push([i, j]);
  return list;
}

/** T[b] as (n+1) rows of d. */
function tRow(x: ArrayLike<number>, emb: ArrayLike<number>, b: number, n: number, d: number, i: number, c: number): number {
  return i === 0 ? x[b * d + c]! : emb[(b * n + i - 1) * d + c]!;
}

export function interactionForwardRef(
  x: ArrayLike<number>, emb: ArrayLike<number>, B: number, n: number, d: number, op: "dot" | "cat", self = false,
): Float64Array {
  if (op === "cat") {
    const row = (n + 1) * d;
    const out = new Float64Array(B * row);
    for (let b = 0; b < B; b++) for (let i = 0; i <= n; i++) for (let c = 0; c < d; c++) out[b * row + i * d + c] = tRow(x, emb, b, n, d, i, c);
    return out;
  }
  const pairs = interactionPairList(n, self);
  const row = d + pairs.length;
  const out = new Float64Array(B * row);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < d; c++) out[b * row + c] = x[b * d + c]!;
    pairs.forEach(([i, j], k) => {
      let s = 0;
      for (let c = 0; c < d; c++) s += tRow(x, emb, b, n, d, i, c) * tRow(x, emb, b, n, d, j, c);
      out[b * row + d + k] = s;
    });
  }
  return out;
}

/** Sum of |terms| of each forward output (for tolerances). */
export function interactionForwardAbsRef(
  x: ArrayLike<number>, emb: ArrayLike<number>, B: number, n: number, d: number, op: "dot" | "cat", self = false,
): Float64Array {
  const ax = Array.from(x, Math.abs);
  const ae = Array.from(emb, Math.abs);
  return interactionForwardRef(ax, ae, B, n, d, op, self);
}

/**
 * Gradients of sum(out * gradOut) w.r.t. x and emb, by the chain rule applied
 * pair by pair: Z[i][j] = T_i . T_j adds g T_j to dT_i and g T_i to dT_j
 * (2 g T_i once for i == j). Also returns the sums of |terms| for tolerances.
 */
export function interactionBackwardRef(
  x: ArrayLike<number>, emb: ArrayLike<number>, gradOut: ArrayLike<number>, B: number, n: number, d: number,
  op: "dot" | "cat", self = false,
): { gradX: Float64Array; gradEmb: Float64Array; absX: Float64Array; absEmb: Float64Array } {
  const gradX = new Float64Array(B * d);
  const gradEmb = new Float64Array(B * n * d);
  const absX = new Float64Array(B * d);
  const absEmb = new Float64Array(B * n * d);
  const add = (b: number, i: number, c: number, v: number) => {
    if (i === 0) {
      gradX[b * d + c]! += v;
      absX[b * d + c]! += Math.abs(v);
    } else {
      gradEmb[(b * n + i - 1) * d + c]! += v;
      absEmb[(b * n + i - 1) * d + c]! += Math.abs(v);
    }
  };
  if (op === "cat") {
    const row = (n + 1) * d;
    for (let b = 0; b < B; b++) for (let i = 0; i <= n; i++) for (let c = 0; c < d; c++) add(b, i, c, gradOut[b * row + i * d + c]!);
    return { gradX, gradEmb, absX, absEmb };
  }
  const pairs = interactionPairList(n, self);
  const row = d + pairs.length;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < d; c++) add(b, 0, c, gradOut[b * row + c]!);
    pairs.forEach(([i, j], k) => {
      const g = gradOut[b * row + d + k]!;
      for (let c = 0; c < d; c++) {
        add(b, i, c, g * tRow(x, emb, b, n, d, j, c));
        add(b, j, c, g * tRow(x, emb, b, n, d, i, c));
      }
    });
  }
  return { gradX, gradEmb, absX, absEmb };
}
