/** Shared pieces of the sharded-model tests: a small model, seeded batches, plans of every kind. */
import type { Batch } from "../../src/data/batch.ts";
import { type DlrmConfig, interactionWidth, resolveConfig } from "../../src/model/config.ts";
import { type ShardingPlan, uniformPlan } from "../../src/shard/plan.ts";
import { Rng } from "../helpers/random.ts";
import { U32 } from "../helpers/assert.ts";
import { expect } from "vitest";

export function smallConfig(over: Partial<DlrmConfig> = {}): DlrmConfig {
  const tableRows = over.tableRows ?? [37, 50, 23, 64, 11];
  const d = over.embeddingDim ?? 8;
  return resolveConfig({
    embeddingDim: d,
    tableRows,
    bottomMlp: [5, 16, d],
    topMlp: [interactionWidth(tableRows.length, d, "dot", false), 16, 1],
    loss: "bce",
    optimizer: "adagrad",
    learningRate: 0.1,
    seed: 11,
    ...over,
  });
}

/** Seeded random batches: dense U[0,1), bags of 0..3 rows (empty bags included), labels {0,1}. */
export function randomBatches(c: DlrmConfig, count: number, size: number, seed = 3): Batch[] {
  const rng = new Rng(seed);
  const T = c.tableRows.length;
  const m = c.bottomMlp[0]!;
  return Array.from({ length: count }, () => {
    const offsets = new Uint32Array(T * size + 1);
    const idx: number[] = [];
    for (let t = 0; t < T; t++) {
      for (let b = 0; b < size; b++) {
        const len = rng.int(4);
        for (let k = 0; k < len; k++) idx.push(rng.int(c.tableRows[t]!));
        offsets[t * size + b + 1] = idx.length;
      }
    }
    const dense = new Float32Array(size * m);
    for (let i = 0; i < dense.length; i++) dense[i] = rng.uniform();
    const labels = new Float32Array(size);
    for (let i = 0; i < size; i++) labels[i] = rng.uniform() < 0.5 ? 1 : 0;
    return { size, numDense: m, numTables: T, dense, offsets, indices: Uint32Array.from(idx), labels };
  });
}

/**
 * A plan mixing every kind on N >= 2 devices, with uneven batch shares:
 * table 0 table-wise on the last device, table 1 row-wise over all devices,
 * table 2 column-wise over two devices (3 + 5 columns of d = 8: the scalar
 * kernels), table 3 data-parallel, table 4 row-wise over two devices.
 */
export function mixedPlan(tableRows: readonly number[], dim: number, n: number): ShardingPlan {
  const rowsSplit = (rows: number, parts: number[]) => {
    const out: [number, number][] = [];
    let at = 0;
    parts.forEach((p, k) => {
      const end = k === parts.length - 1 ? rows : at + Math.floor((rows * p) / parts.reduce((a, b) => a + b, 0));
      out.push([at, end]);
      at = end;
    });
    return out;
  };
  const all = Array.from({ length: n }, (_, k) => k);
  const shares = all.map((k) => k + 1);
  const total = shares.reduce((a, b) => a + b, 0);
  return {
    devices: n,
    tables: [
      { table: 0, kind: "table", shards: [{ device: n - 1, rowStart: 0, rowEnd: tableRows[0]!, colStart: 0, colEnd: dim }] },
      { table: 1, kind: "row", shards: rowsSplit(tableRows[1]!, all.map((k) => k + 2)).map(([a, b], k) => ({ device: (k + 1) % n, rowStart: a, rowEnd: b, colStart: 0, colEnd: dim })) },
      { table: 2, kind: "column", shards: [{ device: 0, rowStart: 0, rowEnd: tableRows[2]!, colStart: 0, colEnd: 3 }, { device: 1, rowStart: 0, rowEnd: tableRows[2]!, colStart: 3, colEnd: dim }] },
      { table: 3, kind: "data", shards: all.map((k) => ({ device: k, rowStart: 0, rowEnd: tableRows[3]!, colStart: 0, colEnd: dim })) },
      { table: 4, kind: "row", shards: rowsSplit(tableRows[4]!, [1, 1]).map(([a, b], k) => ({ device: n - 1 - k, rowStart: a, rowEnd: b, colStart: 0, colEnd: dim })) },
    ],
    // Uneven: device k takes (k + 1) / total of the batch.
    batchShare: shares.map((s) => s / total),
  };
}

export const PLAN_KINDS = ["table", "row", "column", "data", "mixed"] as const;
export type PlanKind = (typeof PLAN_KINDS)[number];

/** A plan of one kind for every table (uniformPlan), or the mixed plan. */
export function makePlan(kind: PlanKind, tableRows: readonly number[], dim: number, n: number): ShardingPlan {
  return kind === "mixed" ? mixedPlan(tableRows, dim, n) : uniformPlan(kind, tableRows, dim, n);
}

/**
 * Largest |actual - expected| / tol over all elements, with where it is (> 1 fails), for the bound of
 * the reordered sums derived in equivalence.ts: tol_i = factor·u·(|e_i| + mean|e|). NaN counts as Infinity.
 */
export function worstOverBound(actual: ArrayLike<number>, expected: ArrayLike<number>, factor: number): { ratio: number; at: number; tol: number } {
  let mean = 0;
  for (let i = 0; i < expected.length; i++) mean += Math.abs(expected[i]!);
  mean /= Math.max(1, expected.length);
  let r = { ratio: 0, at: -1, tol: 0 };
  for (let i = 0; i < expected.length; i++) {
    const tol = factor * U32 * (Math.abs(expected[i]!) + mean) + 1e-30;
    const e = Math.abs(actual[i]! - expected[i]!);
    const ratio = Number.isNaN(e) ? Infinity : e / tol;
    if (ratio > r.ratio) r = { ratio, at: i, tol };
  }
  return r;
}

/** Fails naming the worst element when `actual` is not within the reordered-sum bound of the one-device `expected`. */
export function expectNearOneDevice(actual: ArrayLike<number>, expected: ArrayLike<number>, factor: number, what: string): void {
  const w = worstOverBound(actual, expected, factor);
  if (w.ratio > 1) expect.fail(`${what}[${w.at}] = ${actual[w.at]}, one device ${expected[w.at]} (tolerance ${w.tol.toExponential(2)})`);
}
