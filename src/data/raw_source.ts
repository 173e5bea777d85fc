/**
 * A raw Criteo file scored with a trained model's dictionaries (no cache, no
 * day split): every row of the file, in file order, dense features as
 * preprocessing does them (log(1 + max(x, 0))) and categoricals mapped
 * through the model's dictionaries (dictionaries.ts: unseen values take the
 * rare id or an empty bag). Rows without a label (Kaggle's test.txt) are
 * accepted when `labels` is "optional" (label NaN). The 1-based input line of
 * every row of the last batch is in `lastLines`, so predictions line up with
 * the input lines.
 */
import type { Batch } from "./batch.ts";
import { CRITEO_NUM_CAT, CRITEO_NUM_DENSE, parseCriteo, type ParseStats, type RowBlock } from "./criteo_parse.ts";
import type { CategoricalMapper } from "./dictionaries.ts";
import { type ByteSource, hostFs } from "./fs.ts";
import { checkBatchOptions, type BatchOptions, type DataSource } from "./source.ts";

export interface RawScoringSource extends DataSource {
  /** Input line numbers of the rows of the batch most recently yielded. */
  lastLines: Float64Array;
  /** Parse statistics of each input, filled as it is read. */
  stats: ParseStats[];
}

export function rawScoringSource(inputs: (string | ByteSource)[], mapper: CategoricalMapper, opts: { labels?: "required" | "optional" } = {}): RawScoringSource {
  const T = CRITEO_NUM_CAT, D = CRITEO_NUM_DENSE;
  const src: RawScoringSource = {
    numDense: D,
    tableRows: mapper.dicts.tableRows,
    lastLines: new Float64Array(0),
    stats: [],
    async *batches(b: BatchOptions): AsyncGenerator<Batch> {
      checkBatchOptions(b);
      const B = b.batchSize;
      const limit = b.limit ?? Infinity;
      const fs = await hostFs();
      let made = 0;
      // Rows pending for the next batch (copied out of the parser's reused block).
      let n = 0;
      const labels = new Float32Array(B), dense = new Float32Array(B * D), ids = new Int32Array(B * T), lines = new Float64Array(B);
      const queue: Batch[] = [];
      const take = (blk: RowBlock) => {
        for (let i = 0; i < blk.n; i++) {
          labels[n] = blk.labels[i]!;
          lines[n] = blk.lines[i]!;
          for (let j = 0; j < D; j++) {
            const x = blk.ints[i * D + j]!;
            dense[n * D + j] = Math.log1p(x > 0 ? x : 0);
          }
          for (let t = 0; t < T; t++) ids[n * T + t] = mapper.id(t, blk.cats[i * T + t]!);
          if (++n === B) {
            queue.push(assemble(n));
            n = 0;
          }
        }
      };
      const lineQueue: Float64Array[] = [];
      const assemble = (m: number): Batch => {
        const offsets = new Uint32Array(T * m + 1);
        const idx: number[] = [];
        for (let t = 0; t < T; t++) {
          for (let s = 0; s < m; s++) {
            offsets[t * m + s] = idx.length;
            const id = ids[s * T + t]!;
            if (id >= 0) idx.push(id);
          }
        }
        offsets[T * m] = idx.length;
        lineQueue.push(lines.slice(0, m));
        return { size: m, numDense: D, numTables: T, dense: dense.slice(0, m * D), offsets, indices: Uint32Array.from(idx), labels: labels.slice(0, m) };
      };
      for (const input of inputs) {
        const source = typeof input === "string" ? await fs.source(input) : input;
        // The parser calls back per block and waits (bounded memory) until the batches made from it are consumed.
        let wake: (() => void) | null = null;
        let drained: (() => void) | null = null;
        let done = false;
        let failure: unknown;
        let stopped = false;
        const parsing = parseCriteo(source, { labels: opts.labels ?? "required" }, async (blk) => {
          if (stopped) throw new Error("stopped");
          take(blk);
          if (queue.length === 0) return;
          const w = wake;
          wake = null;
          w?.();
          await new Promise<void>((r) => (drained = r));
        }).then(
          (st) => { src.stats.push(st); },
          (e) => { failure = e; },
        ).finally(() => {
          done = true;
          const w = wake;
          wake = null;
          w?.();
        });
        try {
          for (;;) {
            while (queue.length) {
              src.lastLines = lineQueue.shift()!;
              yield queue.shift()!;
              if (++made >= limit) return;
            }
            const d = drained as (() => void) | null;
            drained = null;
            d?.();
            if (done) break;
            await new Promise<void>((r) => (wake = r));
            if (queue.length === 0 && done) break;
          }
          if (failure && !stopped) throw failure;
        } finally {
          stopped = true;
          const d = drained as (() => void) | null;
          d?.();
          await parsing.catch(() => {});
        }
      }
      if (n > 0 && !b.dropLast && made < limit) {
        const last = assemble(n);
        src.lastLines = lineQueue.shift()!;
        yield last;
      }
    },
  };
  return src;
}
