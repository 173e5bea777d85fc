/**
 * float64 reference of the embedding-bag backward + optimizer step
 * (src/kernels/embedding_bag_backward.ts), plain loops over bags:
 *   g_row = sum over positions p with global row `row` of f_p * gradOut[bag(p)],
 *   f_p = (weight_p or 1) * (1 / bag length for mean pooling),
 * then per touched row (duplicates coalesced first, as torch's sparse optimizers do):
 *   sgd:             w -= lr * g
 *   adagrad:         s += g^2 (elementwise);  w -= lr * g / (sqrt(s) + eps)
 *   rowwise-adagrad: s_row += mean_k g_k^2;  w -= lr * g / (sqrt(s_row) + eps)
 *     (dlrm tricks/rwsadagrad.py RWSAdagrad, sparse branch, lr_decay 0)
 * Rows outside the batch are untouched.
 */

export interface EmbeddingBackwardRefArgs {
  dim: number;
  rows: readonly number[];
  batchSize: number;
  offsets: ArrayLike<number>;
  indices: ArrayLike<number>;
  weights?: ArrayLike<number>;
  pooling: "sum" | "mean";
  gradOut: ArrayLike<number>;
  gradStride: number;
  gradOffset: number;
  kind: "sgd" | "adagrad" | "rowwise-adagrad";
  lr: number;
  eps: number;
  /** Global rows x dim, updated copy returned. */
  table: ArrayLike<number>;
  /** adagrad: rows x dim; rowwise-adagrad: rows; sgd: empty. */
  state: ArrayLike<number>;
}

export interface RowGradient {
  /** Exact (float64) gradient of the row. */
  g: Float64Array;
  /** Sum of |terms| per column (for rounding-error bounds). */
  absSum: Float64Array;
  /** Number of terms summed. */
  terms: number;
}

export function embeddingBackwardStepRef(a: EmbeddingBackwardRefArgs): { table: Float64Array; state: Float64Array; grads: Map<number, RowGradient> } {
  const { dim, rows, batchSize: B } = a;
  const T = rows.length;
  const rowBase: number[] = [];
  let total = 0;
  for (const r of rows) {
    rowBase.push(total);
    total += r;
  }
  const grads = new Map<number, RowGradient>();
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < B; b++) {
      const start = a.offsets[t * B + b]!;
      const end = a.offsets[t * B + b + 1]!;
      for (let p = start; p < end; p++) {
        const idx = a.indices[p]!;
        if (idx >= rows[t]!) throw new RangeError(`index ${idx} out of range for table ${t} (${rows[t]} rows) at sample ${b}`);
        const row = rowBase[t]! + idx;
        let rg = grads.get(row);
        if (!rg) grads.set(row, (rg = { g: new Float64Array(dim), absSum: new Float64Array(dim), terms: 0 }));
        let f = a.weights ? a.weights[p]! : 1;
        if (a.pooling === "mean") f /= end - start;
        for (let k = 0; k < dim; k++) {
          const term = f * a.gradOut[b * a.gradStride + a.gradOffset + t * dim + k]!;
          rg.g[k]! += term;
          rg.absSum[k]! += Math.abs(term);
        }
        rg.terms++;
      }
    }
  }
  const table = Float64Array.from(a.table);
  const state = Float64Array.from(a.state);
  for (const [row, { g }] of grads) {
    const w0 = row * dim;
    if (a.kind === "sgd") {
      for (let k = 0; k < dim; k++) table[w0 + k]! -= a.lr * g[k]!;
    } else if (a.kind === "adagrad") {
      for (let k = 0; k < dim; k++) {
        state[w0 + k]! += g[k]! * g[k]!;
        table[w0 + k]! -= (a.lr * g[k]!) / (Math.sqrt(state[w0 + k]!) + a.eps);
      }
    } else {
      let sq = 0;
      for (let k = 0; k < dim; k++) sq += g[k]! * g[k]!;
      state[row]! += sq / dim;
      const den = Math.sqrt(state[row]!) + a.eps;
      for (let k = 0; k < dim; k++) table[w0 + k]! -= (a.lr * g[k]!) / den;
    }
  }
  return { table, state, grads };
}
