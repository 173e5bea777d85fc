/**
 * Random and synthetic generators: reproducibility, ranges, bag sizes,
 * Zipf frequencies, reuse traces, teacher learnability.
 */
import { describe, expect, it } from "vitest";
import type { Batch } from "../../src/data/batch.ts";
import { randomSource } from "../../src/data/random.ts";
import { syntheticSource } from "../../src/data/synthetic.ts";
import { ZipfSampler } from "../../src/data/zipf.ts";
import { parseStackDistanceDist, parseTraceText, profileTrace, TraceGenerator } from "../../src/data/trace.ts";
import type { DataSource } from "../../src/data/source.ts";
import { Rng } from "../../src/util/rng.ts";

async function collect(src: DataSource, opts: Parameters<DataSource["batches"]>[0]): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of src.batches(opts)) out.push(b);
  return out;
}

/** Checks the CSR contract and index ranges; returns bag sizes per table. */
function checkBatch(b: Batch, tableRows: readonly number[], numDense: number): number[][] {
  const B = b.size, T = tableRows.length;
  expect(b.numTables).toBe(T);
  expect(b.numDense).toBe(numDense);
  expect(b.dense.length).toBe(B * numDense);
  expect(b.labels.length).toBe(B);
  expect(b.offsets.length).toBe(T * B + 1);
  expect(b.offsets[0]).toBe(0);
  expect(b.offsets[T * B]).toBe(b.indices.length);
  const sizes: number[][] = [];
  for (let t = 0; t < T; t++) {
    sizes.push([]);
    for (let i = 0; i < B; i++) {
      const lo = b.offsets[t * B + i], hi = b.offsets[t * B + i + 1];
      expect(hi).toBeGreaterThanOrEqual(lo);
      sizes[t].push(hi - lo);
      for (let k = lo; k < hi; k++) if (b.indices[k] >= tableRows[t]) throw new Error(`index ${b.indices[k]} >= ${tableRows[t]} rows in table ${t}`);
    }
  }
  return sizes;
}

describe("randomSource", () => {
  const tableRows = [1, 7, 1000, 3];
  it("same seed gives the same data, another seed or split other data", async () => {
    const mk = (seed: number) => randomSource({ numDense: 5, tableRows, seed, bagSize: 4, fixedBagSize: false });
    const a = await collect(mk(42), { batchSize: 17, limit: 3 });
    const b = await collect(mk(42), { batchSize: 17, limit: 3 });
    const c = await collect(mk(43), { batchSize: 17, limit: 3 });
    const v = await collect(mk(42), { batchSize: 17, limit: 3, split: "val" });
    expect(a.length).toBe(3);
    expect(b).toEqual(a);
    expect(c[0].dense).not.toEqual(a[0].dense);
    expect(v[0].dense).not.toEqual(a[0].dense);
  });

  it("dense in [0,1), labels in {0,1}, fixed bags exactly k", async () => {
    const src = randomSource({ numDense: 3, tableRows, seed: 1, bagSize: 5 });
    for (const b of await collect(src, { batchSize: 129, limit: 2 })) {
      const sizes = checkBatch(b, tableRows, 3);
      for (const s of sizes.flat()) expect(s).toBe(5);
      for (const x of b.dense) expect(x >= 0 && x < 1).toBe(true);
      for (const y of b.labels) expect(y === 0 || y === 1).toBe(true);
      const ones = b.labels.reduce((s, y) => s + y, 0);
      expect(ones).toBeGreaterThan(129 * 0.3); // Binomial(129, 1/2): mean 64.5, sd 5.7
      expect(ones).toBeLessThan(129 * 0.7);
    }
  });

  it("random bag sizes cover [1, min(rows, k)] and stay in range", async () => {
    const k = 6;
    const src = randomSource({ numDense: 1, tableRows, seed: 3, bagSize: k, fixedBagSize: false });
    const seen = tableRows.map(() => new Set<number>());
    for (const b of await collect(src, { batchSize: 257, limit: 2 })) {
      checkBatch(b, tableRows, 1).forEach((sz, t) => sz.forEach((s) => seen[t].add(s)));
    }
    tableRows.forEach((rows, t) => {
      const max = Math.min(rows, k);
      expect([...seen[t]].sort((a, b) => a - b)).toEqual(Array.from({ length: max }, (_, i) => i + 1));
    });
  });

  it("unique bags are sorted and duplicate-free; unrounded targets in [0,1]", async () => {
    const src = randomSource({ numDense: 2, tableRows: [4], seed: 9, bagSize: 8, unique: true, roundTargets: false });
    const [b] = await collect(src, { batchSize: 33, limit: 1 });
    checkBatch(b, [4], 2);
    for (let i = 0; i < 33; i++) {
      const bag = Array.from(b.indices.subarray(b.offsets[i], b.offsets[i + 1]));
      expect(bag.length).toBeGreaterThanOrEqual(1);
      expect(bag).toEqual([...new Set(bag)].sort((x, y) => x - y));
    }
    expect(b.labels.some((y) => y !== 0 && y !== 1)).toBe(true);
    for (const y of b.labels) expect(y >= 0 && y <= 1).toBe(true);
  });

  it("numSamples bounds a split: last batch smaller, or dropped", async () => {
    const src = randomSource({ numDense: 2, tableRows: [5], numSamples: { train: 10, val: 3 } });
    expect((await collect(src, { batchSize: 4 })).map((b) => b.size)).toEqual([4, 4, 2]);
    expect((await collect(src, { batchSize: 4, dropLast: true })).map((b) => b.size)).toEqual([4, 4]);
    expect((await collect(src, { batchSize: 4, split: "val" })).map((b) => b.size)).toEqual([3]);
  });
});

describe("ZipfSampler", () => {
  // Bound: every rank's count c_k ~ Binomial(N, p_k); we require
  // |c_k - N p_k| <= 5 sqrt(N p_k (1 - p_k)) for every rank (a 5-sigma band;
  // about 6e-7 chance per rank for a correct sampler), and the chi-square
  // statistic over all ranks below df + 6 sqrt(2 df).
  for (const [n, s] of [[1, 1.2], [50, 0], [50, 1], [200, 1.1], [1000, 0.5], [37, 2.5]] as const) {
    it(`n=${n} s=${s}: counts within 5 sigma of N p_k`, () => {
      const N = 200_000;
      const z = new ZipfSampler(n, s);
      const rng = new Rng(1000 + n);
      const c = new Float64Array(n);
      for (let i = 0; i < N; i++) {
        const k = z.sample(rng);
        if (!(k >= 1 && k <= n && Number.isInteger(k))) throw new Error(`rank ${k} outside [1, ${n}]`);
        c[k - 1]++;
      }
      const p = ZipfSampler.pmf(n, s);
      let chi2 = 0;
      for (let k = 0; k < n; k++) {
        const e = N * p[k];
        const sd = Math.sqrt(N * p[k] * (1 - p[k]));
        if (Math.abs(c[k] - e) > 5 * sd + 1e-9) throw new Error(`rank ${k + 1}: count ${c[k]}, expected ${e.toFixed(1)} +- ${(5 * sd).toFixed(1)}`);
        if (e > 0) chi2 += (c[k] - e) ** 2 / e;
      }
      const df = Math.max(1, n - 1);
      if (n > 1) expect(chi2).toBeLessThan(df + 6 * Math.sqrt(2 * df));
    });
  }
});

describe("syntheticSource", () => {
  const tableRows = [100, 3, 5000];
  it("is reproducible and in range; Zipf popularity puts row 0 first", async () => {
    const mk = () => syntheticSource({ numDense: 4, tableRows, seed: 5, bagSize: 3, distribution: { kind: "zipf", s: 1.2 } });
    const a = await collect(mk(), { batchSize: 100, limit: 4 });
    expect(await collect(mk(), { batchSize: 100, limit: 4 })).toEqual(a);
    const counts = new Map<number, number>();
    for (const b of a) {
      checkBatch(b, tableRows, 4);
      for (let k = b.offsets[0]; k < b.offsets[b.size]; k++) counts.set(b.indices[k], (counts.get(b.indices[k]) ?? 0) + 1);
    }
    const top = [...counts.entries()].sort((x, y) => y[1] - x[1]).slice(0, 3).map((e) => e[0]);
    expect(top).toEqual([0, 1, 2]);
  });

  it("labels follow the teacher: its predictions beat the base rate by far", async () => {
    const src = syntheticSource({ numDense: 13, tableRows: [1000, 1000, 50, 20000], seed: 11, distribution: { kind: "zipf", s: 0.8 } });
    let correct = 0, n = 0, ones = 0, brier = 0;
    for await (const b of src.batches({ batchSize: 1000, limit: 10 })) {
      const p = src.teacher.probabilities(b);
      for (let i = 0; i < b.size; i++) {
        if ((p[i] >= 0.5 ? 1 : 0) === b.labels[i]) correct++;
        ones += b.labels[i];
        brier += (p[i] - b.labels[i]) ** 2;
        n++;
      }
      // logit() of one sample agrees with probabilities()
      const bags = [0, 1, 2, 3].map((t) => Array.from(b.indices.subarray(b.offsets[t * b.size + 7], b.offsets[t * b.size + 8])));
      expect(1 / (1 + Math.exp(-src.teacher.logit(b.dense.subarray(7 * 13, 8 * 13), bags)))).toBeCloseTo(p[7], 12);
    }
    const base = Math.max(ones, n - ones) / n;
    // With logit sd ~3 the Bayes accuracy is ~0.8; the constant predictor gets the base rate (~0.5).
    expect(correct / n).toBeGreaterThan(0.72);
    expect(correct / n).toBeGreaterThan(base + 0.15);
    expect(brier / n).toBeLessThan(0.2); // a constant 0.5 scores 0.25
  });

  it("threshold labels equal the teacher's decision exactly", async () => {
    const src = syntheticSource({ numDense: 2, tableRows: [10, 10], seed: 2, teacher: { labels: "threshold" }, distribution: { kind: "uniform" } });
    for await (const b of src.batches({ batchSize: 64, limit: 2 })) {
      const p = src.teacher.probabilities(b);
      for (let i = 0; i < b.size; i++) expect(b.labels[i]).toBe(p[i] >= 0.5 ? 1 : 0);
    }
  });
});

describe("reuse traces", () => {
  it("profiles the reference's sample trace into its dist file", () => {
    // dlrm/input/trace.log and input/dist_emb_0.log-style output for it.
    const trace = parseTraceText("1, 2, 3, 4, 5, 3, 4, 1, 1, 6, 3");
    const d = profileTrace(trace);
    expect(d.lineAccesses).toEqual([1, 2, 3, 4, 5, 6]);
    // distances: 1,2,3,4,5 new (0); 3 -> depth 3; 4 -> 3; 1 -> 5; 1 -> 1; 6 new; 3 -> 4
    expect(d.distances).toEqual([0, 1, 3, 4, 5]);
    const cnt = [6, 1, 2, 1, 1];
    let acc = 0;
    d.cdf.forEach((c, i) => expect(c).toBeCloseTo((acc += cnt[i] / 11), 12));
  });

  it("parses the dist format and generates ids by LRU reuse", async () => {
    const dist = parseStackDistanceDist("1, 2, 3, 4, 5, 6\n0, 1, 3, 4, 5\n0.55, 0.64, 0.82, 0.91, 1.0\n");
    expect(dist.distances).toEqual([0, 1, 3, 4, 5]);
    const g = new TraceGenerator(dist);
    const rng = new Rng(4);
    const ids = Array.from({ length: 2000 }, () => g.next(rng));
    expect(ids[0]).toBe(1); // the first access must bring in the first unseen id
    for (const id of ids) expect([1, 2, 3, 4, 5, 6]).toContain(id);
    // Replaying: each id is either the next unseen one or at a drawable depth of the LRU stack;
    // as in the reference, a "new" draw once every id is in re-uses the least recently used id (depth 6).
    const stack: number[] = [];
    let unseen = 0;
    const depths = new Map<number, number>();
    for (const id of ids) {
      const i = stack.lastIndexOf(id);
      const sd = i < 0 ? 0 : stack.length - i;
      if (i < 0) { expect(id).toBe(dist.lineAccesses[unseen++]); } else { stack.splice(i, 1); }
      stack.push(id);
      depths.set(sd, (depths.get(sd) ?? 0) + 1);
    }
    expect(unseen).toBe(6);
    expect([...depths.keys()].every((k) => dist.distances.includes(k) || k === 6)).toBe(true);
    // Once all ids are in (after a handful of draws), reuse at depth 1 has probability 0.09: 5-sigma band.
    const p1 = 0.09, N = ids.length;
    expect(Math.abs(depths.get(1)! - N * p1)).toBeLessThan(5 * Math.sqrt(N * p1 * (1 - p1)) + 10);
  });

  it("drives a synthetic table; ids wrap modulo rows", async () => {
    const dist = profileTrace([10, 11, 12, 10, 11, 12, 13, 10]);
    const src = syntheticSource({ numDense: 1, tableRows: [12], seed: 1, distribution: [{ kind: "trace", dist }] });
    const [b] = await collect(src, { batchSize: 50, limit: 1 });
    checkBatch(b, [12], 1);
    for (const i of b.indices) expect([10, 11, 0, 1]).toContain(i); // 12 % 12 = 0, 13 % 12 = 1
  });

  it("rejects malformed dist files", () => {
    expect(() => parseStackDistanceDist("1, 2\n1, 2\n0.5, 1")).toThrow(/first stack distance must be 0/);
    expect(() => parseStackDistanceDist("1, 2\n0, 1\n0.5")).toThrow(/2 stack distances but 1/);
    expect(() => parseStackDistanceDist("1, 2\n0, 1")).toThrow(/expected 3 lines/);
  });
});
