/**
 * float64 reference for the embedding-bag forward (shaders/embedding_bag_forward.wgsl),
 * written as plain loops, independent of the kernel: PyTorch's
 * EmbeddingBag(mode="sum"|"mean", per_sample_weights) applied table by table.
 */

export interface EmbeddingBagRefInput {
  /** Per table: rows[t] * dim values, row-major. */
  tables: readonly ArrayLike<number>[];
  dim: number;
  batchSize: number;
  /** Table-major CSR: bag (t, b) = indices[offsets[t*B+b] .. offsets[t*B+b+1]). */
  offsets: ArrayLike<number>;
  indices: ArrayLike<number>;
  weights?: ArrayLike<number>;
  pooling?: "sum" | "mean";
}

/** Pooled embeddings, compact [B, T, dim]: out[(b*T + t)*dim + k]. */
export function embeddingBagForwardRef(x: EmbeddingBagRefInput): Float64Array {
  const T = x.tables.length;
  const B = x.batchSize;
  const d = x.dim;
  const out = new Float64Array(B * T * d);
  for (let t = 0; t < T; t++) {
    const table = x.tables[t]!;
    for (let b = 0; b < B; b++) {
      const start = x.offsets[t * B + b]!;
      const end = x.offsets[t * B + b + 1]!;
      for (let k = 0; k < d; k++) {
        let sum = 0;
        for (let p = start; p < end; p++) {
          const w = x.weights ? x.weights[p]! : 1;
          sum += w * table[x.indices[p]! * d + k]!;
        }
        if (x.pooling === "mean" && end > start) sum /= end - start;
        out[(b * T + t) * d + k] = sum;
      }
    }
  }
  return out;
}
