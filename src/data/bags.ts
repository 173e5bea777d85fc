/**
 * Shared pieces of the generated sources (random, synthetic): bag sizes as in
 * the reference (dlrm_data_pytorch.py generate_*_input_batch: a fixed count or
 * a random count in [1, min(rows, k)]), optional per-bag dedup (the reference
 * keeps np.unique of each bag), and assembly of the table-major CSR Batch.
 */
import type { Batch } from "./batch.ts";
import type { Rng } from "../util/rng.ts";
import { DataError, type SplitName } from "./source.ts";

export interface BagOptions {
  /** Indices per bag (k). Default 1 (one-hot). */
  bagSize?: number;
  /** true (default): every bag has exactly k indices; false: each bag has a uniform count in [1, min(rows, k)]. */
  fixedBagSize?: boolean;
  /** Sort and remove duplicate indices within each bag, as the reference does (np.unique); bags may then be shorter. Default false. */
  unique?: boolean;
}

export function checkTables(numDense: number, tableRows: readonly number[]): void {
  if (!Number.isInteger(numDense) || numDense < 0) throw new DataError(`numDense must be a non-negative integer, got ${numDense}`);
  tableRows.forEach((r, t) => {
    if (!Number.isInteger(r) || r < 1 || r > 2 ** 32) throw new DataError(`table ${t} must have 1..2^32 rows, got ${r}`);
  });
}

export function checkBagOptions(o: BagOptions): void {
  const k = o.bagSize ?? 1;
  if (!Number.isInteger(k) || k < 1) throw new DataError(`bagSize must be a positive integer, got ${k}`);
}

/** Number of indices in the next bag of a table with `rows` rows. */
export function drawBagSize(rng: Rng, rows: number, o: BagOptions): number {
  const k = o.bagSize ?? 1;
  if (o.fixedBagSize ?? true) return k;
  return 1 + rng.int(Math.min(rows, k));
}

/**
 * Builds one batch: dense from `fillDense`, bags table by table (t outer, b
 * inner: the CSR order) with indices from `drawIndex(t, b)`, then labels
 * from `fillLabels` (which sees the finished dense and bags).
 */
export function assembleBatch(
  rng: Rng,
  B: number,
  numDense: number,
  tableRows: readonly number[],
  bag: BagOptions,
  fillDense: (dense: Float32Array) => void,
  drawIndex: (t: number, b: number) => number,
  fillLabels: (batch: Batch) => void,
): Batch {
  const T = tableRows.length;
  const dense = new Float32Array(B * numDense);
  fillDense(dense);
  const offsets = new Uint32Array(T * B + 1);
  let cap = Math.max(16, T * B * (bag.fixedBagSize === false ? Math.ceil((bag.bagSize ?? 1) / 2) : bag.bagSize ?? 1));
  let indices = new Uint32Array(cap);
  let n = 0;
  for (let t = 0; t < T; t++) {
    const rows = tableRows[t];
    for (let b = 0; b < B; b++) {
      const count = drawBagSize(rng, rows, bag);
      if (n + count > cap) {
        cap = Math.max(cap * 2, n + count);
        const grown = new Uint32Array(cap);
        grown.set(indices.subarray(0, n));
        indices = grown;
      }
      const start = n;
      for (let i = 0; i < count; i++) indices[n++] = drawIndex(t, b);
      if (bag.unique && count > 1) n = start + sortUnique(indices.subarray(start, n));
      offsets[t * B + b + 1] = n;
    }
  }
  const batch: Batch = { size: B, numDense, numTables: T, dense, offsets, indices: indices.slice(0, n), labels: new Float32Array(B) };
  fillLabels(batch);
  return batch;
}

/** Sorts a bag in place and moves its distinct values to the front; returns how many. */
function sortUnique(a: Uint32Array): number {
  a.sort();
  let m = 1;
  for (let i = 1; i < a.length; i++) if (a[i] !== a[m - 1]) a[m++] = a[i];
  return m;
}

/** Samples of a split for a finite generated source, or Infinity. */
export function splitLength(numSamples: number | Partial<Record<SplitName, number>> | undefined, split: SplitName): number {
  if (numSamples === undefined) return Infinity;
  if (typeof numSamples === "number") return numSamples;
  return numSamples[split] ?? Infinity;
}

/** Yields batch sizes for `total` samples (Infinity allowed) honouring limit and dropLast. */
export function* batchSizes(total: number, batchSize: number, limit = Infinity, dropLast = false): Generator<number> {
  let left = total;
  for (let i = 0; i < limit && left > 0; i++) {
    const B = Math.min(batchSize, left);
    if (B < batchSize && dropLast) return;
    left -= B;
    yield B;
  }
}
