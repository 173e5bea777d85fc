/**
 * The CPU-side mini-batch every data source produces (random, synthetic,
 * Criteo, Arrow cache). Sparse features use the table-major CSR layout of
 * BagBatch (src/kernels/embedding_types.ts), so uploading is a plain copy.
 */
export interface Batch {
  /** Samples in the batch (B). */
  size: number;
  /** Dense features per sample. */
  numDense: number;
  /** Sparse features (= embedding tables). */
  numTables: number;
  /** [B * numDense] f32, row-major by sample. */
  dense: Float32Array;
  /** [T * B + 1] u32: bag (t, b) = indices[offsets[t*B+b] .. offsets[t*B+b+1]). */
  offsets: Uint32Array;
  /** Table-local row ids, u32. */
  indices: Uint32Array;
  /** [B] f32 click labels in {0, 1} (or targets in [0, 1]). */
  labels: Float32Array;
}
