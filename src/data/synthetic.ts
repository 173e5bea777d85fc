/**
 * Synthetic data (DLRM paper 4.2): indices drawn from a popularity
 * distribution per table (uniform, Zipf(s), or a reuse trace, see trace.ts),
 * dense ~ U[0, 1), bags as in random.ts, and labels from a hidden "teacher"
 * (a fixed random model) so a trained model has a signal to learn:
 *
 *   logit = bias + sum_j w_j (x_j - 1/2) + sum_t mean_{r in bag t} score_t(r)
 *   w_j ~ N(0, denseScale^2 / numDense), score_t(r) ~ U(-a, a) with
 *   a = embScale * sqrt(3 / T) (hashed from (seed, t, r): no per-row storage),
 *   label ~ Bernoulli(sigmoid(logit)) (or sigmoid(logit) >= 1/2 with labels: "threshold").
 *
 * Zipf ranks map to rows directly: row 0 is the most popular.
 * Draw order per batch: dense, then bag sizes and indices (t outer, b inner),
 * then one uniform per label. Each split draws its own stream.
 */
import type { Batch } from "./batch.ts";
import { Rng } from "../util/rng.ts";
import { assembleBatch, batchSizes, checkBagOptions, checkTables, splitLength, type BagOptions } from "./bags.ts";
import { checkBatchOptions, DataError, hashUniform, splitSeed, type BatchOptions, type DataSource, type SplitName } from "./source.ts";
import { TraceGenerator, type StackDistanceDist } from "./trace.ts";
import { ZipfSampler } from "./zipf.ts";

export type IndexDistribution =
  | { kind: "uniform" }
  | { kind: "zipf"; s: number }
  /** Reuse trace (reference dist format); ids >= rows wrap modulo rows, as in the reference. */
  | { kind: "trace"; dist: StackDistanceDist; enablePadding?: boolean };

export interface TeacherOptions {
  /** Standard deviation scale of the dense weights (default 2). */
  denseScale?: number;
  /** Standard deviation of the summed per-table scores (default 3). */
  embScale?: number;
  bias?: number;
  /** "bernoulli" (default): label ~ Bernoulli(p); "threshold": label = p >= 1/2 (noise-free). */
  labels?: "bernoulli" | "threshold";
}

export interface SyntheticSourceOptions extends BagOptions {
  numDense: number;
  tableRows: readonly number[];
  seed?: number;
  /** One for all tables or one per table; default Zipf(1.05). */
  distribution?: IndexDistribution | readonly IndexDistribution[];
  teacher?: TeacherOptions;
  /** Samples per split; default unbounded (use `limit`). */
  numSamples?: number | Partial<Record<SplitName, number>>;
  /**
   * Labels U[0, 1) (rounded to 0/1 with round) instead of the teacher's, as the
   * reference's generate_random_output_batch for its trace-based synthetic data.
   */
  randomLabels?: { round: boolean };
}

/** The hidden model that labels synthetic data. */
export interface Teacher {
  /** Logit of one sample: dense [numDense], bags[t] = row ids of table t. */
  logit(dense: ArrayLike<number>, bags: readonly (readonly number[])[]): number;
  /** Click probability of every sample of a batch. */
  probabilities(batch: Batch): Float64Array;
}

export function makeTeacher(numDense: number, numTables: number, seed: number, o: TeacherOptions = {}): Teacher {
  const rng = new Rng((seed ^ 0x7eac4e12) >>> 0);
  const denseScale = o.denseScale ?? 2;
  const w = Array.from({ length: numDense }, () => (rng.normal() * denseScale) / Math.sqrt(Math.max(1, numDense)));
  const a = (o.embScale ?? 3) * Math.sqrt(3 / Math.max(1, numTables));
  const bias = o.bias ?? 0;
  const scoreSeed = (seed ^ 0x5c0de) >>> 0;
  const score = (t: number, r: number) => a * (2 * hashUniform(scoreSeed, r, t) - 1);
  const denseLogit = (x: ArrayLike<number>, base: number) => {
    let z = 0;
    for (let j = 0; j < numDense; j++) z += w[j] * (x[base + j] - 0.5);
    return z;
  };
  return {
    logit(dense, bags) {
      let z = bias + denseLogit(dense, 0);
      bags.forEach((bag, t) => {
        if (bag.length === 0) return;
        let s = 0;
        for (const r of bag) s += score(t, r);
        z += s / bag.length;
      });
      return z;
    },
    probabilities(batch) {
      const B = batch.size;
      const z = new Float64Array(B);
      for (let b = 0; b < B; b++) z[b] = bias + denseLogit(batch.dense, b * numDense);
      for (let t = 0; t < batch.numTables; t++) {
        for (let b = 0; b < B; b++) {
          const lo = batch.offsets[t * B + b], hi = batch.offsets[t * B + b + 1];
          if (hi === lo) continue;
          let s = 0;
          for (let i = lo; i < hi; i++) s += score(t, batch.indices[i]);
          z[b] += s / (hi - lo);
        }
      }
      for (let b = 0; b < B; b++) z[b] = 1 / (1 + Math.exp(-z[b]));
      return z;
    },
  };
}

export function syntheticSource(opts: SyntheticSourceOptions): DataSource & { teacher: Teacher } {
  checkTables(opts.numDense, opts.tableRows);
  checkBagOptions(opts);
  const tableRows = [...opts.tableRows];
  const T = tableRows.length;
  const seed = opts.seed ?? 0;
  const dists: IndexDistribution[] = Array.isArray(opts.distribution)
    ? [...opts.distribution]
    : Array.from({ length: T }, () => (opts.distribution as IndexDistribution | undefined) ?? { kind: "zipf", s: 1.05 });
  if (dists.length !== T) throw new DataError(`distribution: ${dists.length} given for ${T} tables`);
  const zipfs = dists.map((d, t) => (d.kind === "zipf" ? new ZipfSampler(tableRows[t], d.s) : undefined));
  const teacher = makeTeacher(opts.numDense, T, seed, opts.teacher);
  const threshold = opts.teacher?.labels === "threshold";
  return {
    numDense: opts.numDense,
    tableRows,
    teacher,
    async *batches(b: BatchOptions): AsyncGenerator<Batch> {
      checkBatchOptions(b);
      const split = b.split ?? "train";
      const rng = new Rng(splitSeed(seed, split));
      // Trace state (LRU stacks) lives per table for the whole stream of this split.
      const traces = dists.map((d) => (d.kind === "trace" ? new TraceGenerator(d.dist, d.enablePadding) : undefined));
      const draw = (t: number): number => {
        const d = dists[t];
        if (d.kind === "zipf") return zipfs[t]!.sample(rng) - 1;
        if (d.kind === "trace") return traces[t]!.next(rng) % tableRows[t];
        return rng.int(tableRows[t]);
      };
      for (const B of batchSizes(splitLength(opts.numSamples, split), b.batchSize, b.limit, b.dropLast)) {
        yield assembleBatch(
          rng, B, opts.numDense, tableRows, opts,
          (dense) => { for (let i = 0; i < dense.length; i++) dense[i] = rng.uniform(); },
          draw,
          (batch) => {
            if (opts.randomLabels) {
              for (let i = 0; i < B; i++) {
                const u = Math.fround(rng.uniform());
                batch.labels[i] = opts.randomLabels.round ? Math.round(u) : u;
              }
              return;
            }
            const p = teacher.probabilities(batch);
            for (let i = 0; i < B; i++) {
              const u = rng.uniform();
              batch.labels[i] = (threshold ? p[i] >= 0.5 : u < p[i]) ? 1 : 0;
            }
          },
        );
      }
    },
  };
}
