/**
 * The one interface every data source (random, synthetic, Arrow cache of
 * preprocessed Criteo) offers the trainer: an async stream of Batches.
 */
import type { Batch } from "./batch.ts";
import { DlrmError } from "../gpu/errors.ts";

export type SplitName = "train" | "val" | "test";

export interface BatchOptions {
  /** Samples per batch (B). The last batch of a finite split may be smaller unless dropLast. */
  batchSize: number;
  /** Which split to read; default "train". */
  split?: SplitName;
  /** Stop after this many batches. */
  limit?: number;
  /** Drop a final batch smaller than batchSize. */
  dropLast?: boolean;
  /** Epoch number (0-based): sources that shuffle draw a new order per epoch. */
  epoch?: number;
}

export interface DataSource {
  /** Dense features per sample. */
  readonly numDense: number;
  /** Rows of each embedding table (= number of sparse features). */
  readonly tableRows: readonly number[];
  /** Batches of the split, in a reproducible order. */
  batches(opts: BatchOptions): AsyncIterable<Batch>;
}

/** Bad data-pipeline input or options (malformed file, impossible configuration). */
export class DataError extends DlrmError {}

export function checkBatchOptions(opts: BatchOptions): void {
  if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
    throw new DataError(`batchSize must be a positive integer, got ${opts.batchSize}`);
  }
  if (opts.limit !== undefined && (!Number.isInteger(opts.limit) || opts.limit < 0)) {
    throw new DataError(`limit must be a non-negative integer number of batches, got ${opts.limit}`);
  }
  if (opts.split !== undefined && !["train", "val", "test"].includes(opts.split)) {
    throw new DataError(`split must be "train", "val" or "test", got ${JSON.stringify(opts.split)}`);
  }
}

/** A 32-bit seed for a split derived from a base seed, so splits draw independent streams. */
export function splitSeed(seed: number, split: SplitName): number {
  const k = split === "train" ? 0x9e3779b9 : split === "val" ? 0x85ebca6b : 0xc2b2ae35;
  return (Math.imul((seed ^ k) >>> 0, 0x27d4eb2d) ^ (seed >>> 15)) >>> 0;
}

/** Integer hash of (seed, a, b) to a uniform double in [0, 1) (murmur3-style finalizer). */
export function hashUniform(seed: number, a: number, b: number): number {
  let h = (seed ^ 0x5bd1e995) >>> 0;
  for (const v of [a >>> 0, Math.floor(a / 2 ** 32) >>> 0, b >>> 0]) {
    let k = Math.imul(v, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}
