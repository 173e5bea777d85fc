/**
 * Random data (DLRM paper 4.1; reference dlrm_data_pytorch.py RandomDataset
 * with generate_dist_input_batch / generate_random_output_batch):
 * dense ~ U[0, 1); each bag a fixed count k or a uniform count in
 * [1, min(rows, k)] of indices uniform in [0, rows); labels U[0, 1), rounded
 * to {0, 1} by default (the reference's --round-targets).
 *
 * Draw order per batch (so a seed replays exactly): all dense values
 * (sample-major), then for each table t and sample b the bag size and its
 * indices, then the labels. Each split uses its own stream derived from seed.
 */
import type { Batch } from "./batch.ts";
import { Rng } from "../util/rng.ts";
import { assembleBatch, batchSizes, checkBagOptions, checkTables, splitLength, type BagOptions } from "./bags.ts";
import { checkBatchOptions, splitSeed, type BatchOptions, type DataSource, type SplitName } from "./source.ts";

export interface RandomSourceOptions extends BagOptions {
  numDense: number;
  tableRows: readonly number[];
  seed?: number;
  /** Round labels to {0, 1} (default true); false gives targets in [0, 1). */
  roundTargets?: boolean;
  /** Samples per split (a number applies to every split); default unbounded (use `limit`). */
  numSamples?: number | Partial<Record<SplitName, number>>;
}

export function randomSource(opts: RandomSourceOptions): DataSource {
  checkTables(opts.numDense, opts.tableRows);
  checkBagOptions(opts);
  const tableRows = [...opts.tableRows];
  const seed = opts.seed ?? 0;
  const round = opts.roundTargets ?? true;
  return {
    numDense: opts.numDense,
    tableRows,
    async *batches(b: BatchOptions): AsyncGenerator<Batch> {
      checkBatchOptions(b);
      const split = b.split ?? "train";
      const rng = new Rng(splitSeed(seed, split));
      for (const B of batchSizes(splitLength(opts.numSamples, split), b.batchSize, b.limit, b.dropLast)) {
        yield assembleBatch(
          rng, B, opts.numDense, tableRows, opts,
          (dense) => { for (let i = 0; i < dense.length; i++) dense[i] = rng.uniform(); },
          (t) => rng.int(tableRows[t]),
          (batch) => {
            for (let i = 0; i < B; i++) {
              const u = Math.fround(rng.uniform());
              batch.labels[i] = round ? Math.round(u) : u;
            }
          },
        );
      }
    },
  };
}
