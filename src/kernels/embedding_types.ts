/**
 * Shared contracts of the embedding kernels (forward, backward + optimizer)
 * and of the code that feeds them.
 *
 * Tables of one embedding dimension `dim` form an EmbeddingTableSet. Row r of
 * table t has the global row id rowBase[t] + r (rowBase is the prefix sum of
 * rows). Global rows are stored in chunks of consecutive rows, one GPUBuffer
 * each (f32, row-major, rowCount * dim values), every chunk no larger than
 * the device's maxStorageBufferBindingSize (or a smaller cap given by the
 * caller), so a table larger than one binding is split by rows across chunks.
 */

export interface EmbeddingChunk {
  buffer: GPUBuffer;
  /** First global row held by this chunk. */
  rowStart: number;
  rowCount: number;
}

export interface EmbeddingTableSet {
  dim: number;
  /** Rows of each table. */
  rows: readonly number[];
  /** Global id of row 0 of each table. */
  rowBase: readonly number[];
  chunks: readonly EmbeddingChunk[];
  /**
   * Storage of the weights: "fp32" (default: rowCount * dim f32 per chunk) or "bf16" (rowCount *
   * ceil(dim/2) u32 words per chunk, element 2j in the low half of word j: the upper 16 bits of the
   * f32; src/kernels/embedding_tables_bf16.ts). Optimizer state stays f32.
   */
  precision?: "fp32" | "bf16";
}

/** Optimizer state beside an EmbeddingTableSet, chunked exactly like its weights. */
export interface EmbeddingOptimizerState {
  kind: "sgd" | "adagrad" | "rowwise-adagrad";
  /** adagrad: rowCount*dim f32 per chunk; rowwise-adagrad: rowCount f32 per chunk; sgd: empty. */
  chunks: readonly GPUBuffer[];
}

/**
 * One mini-batch of bags for all tables of a set, on the GPU, table-major
 * CSR as in FBGEMM's table-batched embedding:
 * bag (t, b) holds indices[offsets[t*B + b] .. offsets[t*B + b + 1]),
 * indices are table-local row ids (u32), offsets has T*B + 1 entries,
 * offsets[0] = 0 and offsets[T*B] = numIndices.
 */
export interface BagBatch {
  batchSize: number;
  numTables: number;
  numIndices: number;
  offsets: GPUBuffer;
  indices: GPUBuffer;
  /** Optional per-index weights (f32, numIndices). */
  weights?: GPUBuffer;
}

export type Pooling = "sum" | "mean";
