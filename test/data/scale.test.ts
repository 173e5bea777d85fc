/**
 * Full-scale data pipeline pieces, checked against straightforward in-memory
 * implementations on small generated files: the typed-array dictionaries
 * (ids, frequency threshold at exactly minFreq and minFreq - 1), sub-sampling,
 * the bounded-memory shuffle (identical to an in-memory reimplementation of
 * its definition, deterministic per seed and epoch), and peak memory that stays
 * flat as rows grow (child processes on generated files).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { arrowCacheSource, readManifest, readPart, type CacheManifest } from "../../src/data/arrow_cache.ts";
import { criteoGenerator, criteoStream, KAGGLE_CARDINALITIES } from "../../src/data/criteo_gen.ts";
import { criteoStreamInWorker } from "../../src/data/gen_parallel.ts";
import { CategoryCounter } from "../../src/data/dictionary.ts";
import { preprocessCriteo } from "../../src/data/preprocess.ts";
import { mixSeed, type Randomize } from "../../src/data/shuffle.ts";
import { Rng } from "../../src/util/rng.ts";

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), "dlrm-scale-test-")); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

function generate(rows: number, seed = 7): string {
  const g = criteoGenerator({ shape: "kaggle", rows, seed });
  const buf = new Uint8Array(rows * 400 + 1024);
  const n = g.fill(buf);
  return new TextDecoder().decode(buf.subarray(0, n));
}

/** In-memory reference: parse with split, count with Maps, ids by first appearance. */
function referenceDictionaries(text: string, minFreq: number, range = 0, keep?: (line: number, label: number) => boolean) {
  const lines = text.trimEnd().split("\n").map((l) => l.split("\t"));
  const kept = lines.filter((f, i) => !keep || keep(i, Number(f[0])));
  const dicts: Map<number, number>[] = [];
  const counts: Map<number, number>[] = [];
  for (let j = 0; j < 26; j++) {
    const c = new Map<number, number>();
    for (const f of kept) {
      const v = f[14 + j] === "" ? 0 : parseInt(f[14 + j], 16);
      const k = range > 0 ? v % range : v;
      c.set(k, (c.get(k) ?? 0) + 1);
    }
    const ids = new Map<number, number>();
    let next = minFreq > 1 ? 1 : 0;
    for (const [k, n] of c) ids.set(k, n >= minFreq ? next++ : 0);
    dicts.push(ids);
    counts.push(c);
  }
  const ids = kept.map((f) => Array.from({ length: 26 }, (_, j) => {
    const v = f[14 + j] === "" ? 0 : parseInt(f[14 + j], 16);
    return dicts[j].get(range > 0 ? v % range : v)!;
  }));
  return { dicts, counts, ids, labels: kept.map((f) => Number(f[0])), tableRows: dicts.map((d) => Math.max(1, [...d.values()].reduce((a, b) => Math.max(a, b + 1), minFreq > 1 ? 1 : 0))) };
}

/** All rows of a cache in file order: label and the 26 ids. */
async function cacheRows(out: string, m: CacheManifest): Promise<{ labels: number[]; ids: number[][]; i1: number[] }> {
  const fs = (await import("../../src/data/fs_node.ts")).nodeFs();
  const labels: number[] = [], ids: number[][] = [], i1: number[] = [];
  for (const p of m.parts) {
    for await (const c of readPart(fs, out, p.file)) {
      for (let r = 0; r < c.n; r++) {
        labels.push(c.label[r]);
        i1.push(c.dense[0][r]);
        ids.push(c.cats.map((col) => col[r]));
      }
    }
  }
  return { labels, ids, i1 };
}

/** Element-wise equality that stays fast on long arrays (reports the first difference). */
function expectSame(got: ArrayLike<number>, want: ArrayLike<number>): void {
  expect(got.length).toBe(want.length);
  let i = 0;
  while (i < got.length && got[i] === want[i]) i++;
  expect(i === got.length ? "same" : `first difference at ${i}: ${got[i]} vs ${want[i]}`).toBe("same");
}

describe("CategoryCounter (typed-array hash table)", () => {
  it("matches a Map on counts, first-appearance ids and the threshold, across growth and 52-bit values", () => {
    const rng = new Rng(5);
    const values: number[] = [];
    for (let i = 0; i < 60000; i++) {
      const r = rng.uniform();
      // Many repeats of small values, a tail of large 32-bit ones, a few beyond 2^32.
      values.push(r < 0.5 ? rng.int(50) : r < 0.98 ? rng.nextU32() % 20000 : 2 ** 32 + rng.int(1000) * 977);
    }
    for (const minFreq of [1, 2, 3, 5]) {
      const c = new CategoryCounter(4); // tiny start: many grow() calls
      const m = new Map<number, number>();
      for (const v of values) {
        c.add(v);
        m.set(v, (m.get(v) ?? 0) + 1);
      }
      expect(c.size).toBe(m.size);
      expect([...m].filter(([k, n]) => c.count(k) !== n)).toEqual([]);
      expect(c.count(123456789)).toBe(0);
      const hist = new Map<number, number>();
      for (const n of m.values()) hist.set(n, (hist.get(n) ?? 0) + 1);
      if (minFreq > 1) {
        expect(hist.get(minFreq)).toBeGreaterThan(0); // values seen exactly minFreq times...
        expect(hist.get(minFreq - 1)).toBeGreaterThan(0); // ...and one fewer
      }
      const rows = c.assignIds(minFreq);
      let next = minFreq > 1 ? 1 : 0;
      const kept: number[] = [];
      const wrong: number[] = [];
      for (const [k, n] of m) {
        const want = n >= minFreq ? next++ : 0;
        if (c.id(k) !== want) wrong.push(k);
        if (n >= minFreq) kept.push(k);
      }
      expect(wrong).toEqual([]);
      expect(rows).toBe(Math.max(next, 1));
      expect(c.id(123456789)).toBe(-1);
      expect(Array.from(c.keptValues(minFreq))).toEqual(kept);
      // Stated bound: at most ~31 bytes per distinct value.
      expect(c.bytes / c.size).toBeLessThan(32);
    }
  });
});

async function drain(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const c of stream as unknown as AsyncIterable<Uint8Array>) parts.push(c.slice());
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

describe("generator in a worker thread (bench/scale_tbday.ts)", () => {
  it("gives criteoStream's bytes; stopped early, a prefix of whole rows", async () => {
    const opts = { shape: "terabyte" as const, rows: 3000, plannedRows: 195841983, seed: 5 };
    const want = await drain(criteoStream(opts, 1 << 16));
    const w = criteoStreamInWorker(opts, 1 << 16);
    expectSame(await drain(w.stream), want);
    expect(w.written).toBe(3000);
    const cut = criteoStreamInWorker(opts, 1 << 14, 0);
    const got = await drain(cut.stream);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThan(want.length);
    expect(got[got.length - 1]).toBe(10);
    expectSame(got, want.subarray(0, got.length));
    expect(got.filter((b) => b === 10).length).toBe(cut.written);
  });
});

describe("dictionary preprocessing at scale", () => {
  it("generated Kaggle-shaped file: cardinalities as planned, ids identical to an in-memory Map implementation (minFreq 1 and 3, with --max-ind-range)", async () => {
    const rows = 12000;
    const text = generate(rows);
    const file = join(dir, "gen.txt");
    await writeFile(file, text);
    const g = criteoGenerator({ shape: "kaggle", rows, seed: 7 });
    // Planned cardinalities are the Kaggle ones scaled by rows / 45.8M; features without missing values hit them exactly.
    const ref1 = referenceDictionaries(text, 1);
    g.cardinalities.forEach((c, j) => { if (![18, 19, 21, 24, 25].includes(j)) expect(ref1.counts[j].size).toBe(c); });
    expect(g.cardinalities[2]).toBe(Math.round((KAGGLE_CARDINALITIES[2] * rows) / 45840617));
    // The last case parses in a worker thread (parseInWorker: what the CLI does).
    for (const [minFreq, range, parseInWorker] of [[1, 0, false], [3, 0, false], [2, 1000, false], [3, 0, true]] as const) {
      const out = join(dir, `dict-${minFreq}-${range}-${parseInWorker}`);
      const rep = await preprocessCriteo({ input: file, outDir: out, dataset: "kaggle", minFreq, maxIndRange: range || undefined, recordBatchRows: 4096, parseInWorker });
      const ref = referenceDictionaries(text, minFreq, range);
      if (minFreq === 3) {
        // The threshold's edge cases occur in this file.
        expect(ref.counts.some((c) => [...c.values()].includes(3))).toBe(true);
        expect(ref.counts.some((c) => [...c.values()].includes(2))).toBe(true);
      }
      expect(rep.tableRows).toEqual(ref.tableRows);
      const got = await cacheRows(out, rep.manifest);
      expectSame(got.labels, ref.labels);
      expectSame(got.ids.flat(), ref.ids.flat());
      // Dictionary files: kept values in id order.
      for (const j of [0, 2, 25]) {
        const vals = JSON.parse(await readFile(join(out, rep.manifest.dictionaries![j]), "utf8")) as number[];
        const want = [...ref.dicts[j]].filter(([k]) => ref.counts[j].get(k)! >= minFreq).map(([k]) => k);
        expect(vals).toEqual(want);
      }
    }
  }, 600_000); // ~20 s on a quiet machine; minutes when the 2 cores are shared

  it("--data-sub-sample-rate drops label-0 rows only, the same rows in both passes, days cut on raw rows", async () => {
    // Rows identified by I1 = row number.
    const base = generate(6000, 3).trimEnd().split("\n");
    const text = base.map((l, i) => { const f = l.split("\t"); f[1] = String(i); return f.join("\t"); }).join("\n") + "\n";
    const file = join(dir, "sub.txt");
    await writeFile(file, text);
    const rate = 0.75;
    const out = join(dir, "sub-cache");
    const rep = await preprocessCriteo({ input: file, outDir: out, dataset: "kaggle", minFreq: 2, subSampleRate: rate, seed: 11, recordBatchRows: 1000 });
    const got = await cacheRows(out, rep.manifest);
    const keptLines = new Set(got.i1.map((x) => Math.round(Math.expm1(x))));
    expect(keptLines.size).toBe(got.i1.length);
    const labels = base.map((l) => Number(l[0]));
    const zeros = labels.filter((y) => y === 0).length;
    let droppedZeros = 0;
    labels.forEach((y, i) => {
      if (y === 1) expect(keptLines.has(i)).toBe(true);
      else if (!keptLines.has(i)) droppedZeros++;
    });
    // About `rate` of the label-0 rows are dropped (5 sigma).
    expect(Math.abs(droppedZeros / zeros - rate)).toBeLessThan(5 * Math.sqrt((rate * (1 - rate)) / zeros));
    // Dictionaries and ids: the in-memory reference over the kept rows only.
    const ref = referenceDictionaries(text, 2, 0, (line) => keptLines.has(line));
    expectSame(got.ids.flat(), ref.ids.flat());
    expect(rep.tableRows).toEqual(ref.tableRows);
    // Days: 7 equal cuts of the 6000 raw rows, counting kept rows in each.
    const rawDays = Array.from({ length: 7 }, (_, d) => Math.floor(6000 / 7) + (d < 6000 % 7 ? 1 : 0));
    let r0 = 0;
    const want = rawDays.map((n) => { let k = 0; for (let r = r0; r < r0 + n; r++) if (keptLines.has(r)) k++; r0 += n; return k; });
    expect(rep.manifest.days).toEqual(want);
    // Deterministic: the same seed drops the same rows.
    const again = await preprocessCriteo({ input: file, outDir: join(dir, "sub-cache2"), dataset: "kaggle", subSampleRate: rate, seed: 11, categorical: "hash", maxIndRange: 97 });
    expect((await cacheRows(join(dir, "sub-cache2"), again.manifest)).i1).toEqual(got.i1);
  });
});

/** The shuffle's definition, reimplemented over an in-memory list of row numbers (S = shard rows, P0 = piece rows). */
function referenceOrder(lo: number, hi: number, days: number[], randomize: Randomize, seed: number, epoch: number, S: number, P0 = 65536): number[] {
  const perm = (n: number, rng: Rng) => {
    const p = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) { const j = rng.int(i + 1); [p[i], p[j]] = [p[j], p[i]]; }
    return p;
  };
  const rows = Array.from({ length: hi - lo }, (_, i) => lo + i);
  if (randomize === "none") return rows;
  const groups: number[][] = [];
  if (randomize === "total") groups.push(rows);
  else {
    let d0 = 0;
    for (const n of days) { const g = rows.filter((r) => r >= d0 && r < d0 + n); if (g.length) groups.push(g); d0 += n; }
  }
  const P = Math.min(S, P0);
  const K = Math.max(1, Math.round(S / P));
  const out: number[] = [];
  groups.forEach((g, gi) => {
    // Pieces: the group's rows bucketed by floor(row / P), buckets in row order.
    const pieces: number[][] = [];
    for (const r of g) {
      if (pieces.length === 0 || Math.floor(pieces.at(-1)![0] / P) !== Math.floor(r / P)) pieces.push([]);
      pieces.at(-1)!.push(r);
    }
    const order = perm(pieces.length, new Rng(mixSeed(seed, epoch, 1, gi)));
    for (let i = 0; i < order.length; i += K) {
      const sh = order.slice(i, i + K).flatMap((k) => pieces[k]);
      for (const q of perm(sh.length, new Rng(mixSeed(seed, epoch, 2, sh[0])))) out.push(sh[q]);
    }
  });
  return out;
}

describe("--data-randomize shuffle", () => {
  let cache: string;
  let tbCache: string;
  const N = 5003;
  beforeAll(async () => {
    // I1 = row number identifies rows after shuffling.
    const lines = generate(N, 9).trimEnd().split("\n").map((l, i) => { const f = l.split("\t"); f[1] = String(i); return f.join("\t"); });
    const file = join(dir, "shuf.txt");
    await writeFile(file, lines.join("\n") + "\n");
    cache = join(dir, "shuf-cache");
    await preprocessCriteo({ input: file, outDir: cache, dataset: "kaggle", categorical: "hash", maxIndRange: 1000, recordBatchRows: 301 });
    // Terabyte layout: 3 day files of different sizes.
    const days = [lines.slice(0, 1500), lines.slice(1500, 3700), lines.slice(3700)];
    const files = await Promise.all(days.map(async (d, i) => { const f = join(dir, `day_${i}`); await writeFile(f, d.join("\n") + "\n"); return f; }));
    tbCache = join(dir, "shuf-tb");
    await preprocessCriteo({ input: files, outDir: tbCache, dataset: "terabyte", categorical: "hash", maxIndRange: 1000, recordBatchRows: 257 });
  });

  async function order(dirPath: string, randomize: Randomize, seed: number, epoch: number, S: number, B = 64, pieceRows?: number): Promise<number[]> {
    const src = await arrowCacheSource(dirPath, { randomize, shuffleSeed: seed, shardRows: S, pieceRows });
    const rows: number[] = [];
    for await (const b of src.batches({ batchSize: B, split: "train", epoch })) {
      for (let i = 0; i < b.size; i++) rows.push(Math.round(Math.expm1(b.dense[i * 13])));
    }
    return rows;
  }

  it("identical to the in-memory reference (total, day, none; Kaggle and Terabyte layouts; shards gathering pieces across record batches and days)", async () => {
    for (const [path, S, P] of [[cache, 700, undefined], [tbCache, 450, undefined], [tbCache, 10000, undefined], [cache, 700, 100], [tbCache, 1000, 333]] as const) {
      const m = await readManifest(path);
      const trainRows = m.days.slice(0, -1).reduce((a, b) => a + b, 0);
      for (const randomize of ["total", "day", "none"] as const) {
        const got = await order(path, randomize, 42, 0, S, 64, P);
        expectSame(got, referenceOrder(0, trainRows, m.days, randomize, 42, 0, S, P));
        expectSame([...got].sort((a, b) => a - b), Array.from({ length: trainRows }, (_, i) => i));
      }
    }
  });

  it("a reader stopped after its first record batch closes every file it opened (whole part and record-batch range)", async () => {
    const m = await readManifest(cache);
    const base = (await import("../../src/data/fs_node.ts")).nodeFs();
    let opened = 0, released = 0;
    const track = (inner: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> => {
      opened++;
      const r = inner.getReader();
      let done = false;
      const release = () => { if (!done) { done = true; released++; } };
      return new ReadableStream<Uint8Array>({
        async pull(c) {
          const x = await r.read();
          if (x.done) { release(); c.close(); } else c.enqueue(x.value);
        },
        async cancel(why) { release(); await r.cancel(why); },
      });
    };
    const fs = {
      ...base,
      async source(path: string) {
        const s = await base.source(path);
        return { ...s, open: () => track(s.open()), openRange: (a: number, b: number) => track(s.openRange!(a, b)) };
      },
    };
    const part = m.parts[0];
    expect(part.batches!.offsets.length).toBeGreaterThan(3);
    for (const range of [undefined, { part, from: 1, to: 3 }]) {
      for await (const cols of readPart(fs, cache, part.file, range)) {
        expect(cols.n).toBe(301);
        break;
      }
    }
    expect(opened).toBeGreaterThanOrEqual(3);
    expect(released).toBe(opened);
  });

  it("'total' with pieces: each shard's rows come from several days (not one stretch of rows)", async () => {
    const m = await readManifest(cache);
    const got = await order(cache, "total", 7, 0, 700, 64, 100);
    // The first shard (7 pieces of 100 rows): rows from at least 3 of the 6 training days.
    const dayOf = (r: number) => { let d = 0, e = m.days[0]; while (r >= e) e += m.days[++d]; return d; };
    expect(new Set(got.slice(0, 700).map(dayOf)).size).toBeGreaterThanOrEqual(3);
  });

  it("same seed and epoch give the same order; another seed or epoch another; 'day' keeps each day's rows in its day", async () => {
    const a = await order(tbCache, "total", 1, 0, 500);
    expect(await order(tbCache, "total", 1, 0, 500)).toEqual(a);
    expect(await order(tbCache, "total", 2, 0, 500)).not.toEqual(a);
    expect(await order(tbCache, "total", 1, 1, 500)).not.toEqual(a);
    const d = await order(tbCache, "day", 3, 0, 500);
    expect(d.slice(0, 1500).every((r) => r < 1500)).toBe(true);
    expect(d.slice(1500).every((r) => r >= 1500 && r < 3700)).toBe(true);
    expect(d.slice(0, 1500)).not.toEqual(Array.from({ length: 1500 }, (_, i) => i));
    // Validation and test are never shuffled.
    const src = await arrowCacheSource(tbCache, { randomize: "total", shuffleSeed: 1, shardRows: 500 });
    const test: number[] = [];
    for await (const b of src.batches({ batchSize: 100, split: "test" })) for (let i = 0; i < b.size; i++) test.push(Math.round(Math.expm1(b.dense[i * 13])));
    expect(test).toEqual(Array.from({ length: Math.ceil((N - 3700) / 2) }, (_, i) => 3700 + i));
  });

  it("a cache without record-batch offsets (older manifest) gives the same order by sequential reads", async () => {
    const m = await readManifest(cache);
    const want = await order(cache, "total", 5, 0, 800);
    const old = join(dir, "shuf-old");
    await rm(old, { recursive: true, force: true });
    await (await import("node:fs/promises")).cp(cache, old, { recursive: true });
    await writeFile(join(old, "manifest.json"), JSON.stringify({ ...m, parts: m.parts.map(({ batches: _b, ...p }) => p) }));
    expect(await order(old, "total", 5, 0, 800)).toEqual(want);
  });
});

const execFileP = promisify(execFile);

type Samples = { rows: number; samples: [number, number][]; peakRss: number };

/** Live-memory samples of child processes preprocessing `rows` generated rows (hashing), then reading them shuffled. */
async function childRuns(rows: number): Promise<{ pre: Samples; shuf: Samples }> {
  const script = join(import.meta.dirname, "scale_memory_child.ts");
  const out = join(dir, `mem-${rows}`);
  const run = async (args: string[]) => {
    const { stdout } = await execFileP(process.execPath, ["--expose-gc", "--import", "tsx", script, ...args], { cwd: join(import.meta.dirname, "../.."), maxBuffer: 1 << 22 });
    return JSON.parse(stdout.trim().split("\n").at(-1)!) as Samples;
  };
  const pre = await run(["pre", String(rows), out]);
  const shuf = await run(["shuf", out]);
  await rm(out, { recursive: true, force: true });
  return { pre, shuf };
}

/**
 * Growth of live memory over a run: mean of the samples in the last quarter of
 * the rows minus the mean in the second quarter (after warm-up). Means, because
 * a sample may catch a shard or a record batch in flight.
 */
function growth(s: Samples): number {
  const mean = (lo: number, hi: number) => {
    const v = s.samples.filter(([r]) => r > lo * s.rows && r <= hi * s.rows).map(([, b]) => b);
    expect(v.length).toBeGreaterThan(2);
    return v.reduce((x, y) => x + y, 0) / v.length;
  };
  return mean(0.75, 1) - mean(0.25, 0.5);
}

describe("bounded memory", () => {
  it("live memory of preprocessing (hashing) and of the shuffled read stays flat while rows grow 4x", async () => {
    const { pre, shuf } = await childRuns(200_000);
    expect(pre.rows).toBe(200_000);
    expect(shuf.rows).toBe(200_000 - Math.floor(200_000 / 7)); // the last of 7 days is held out
    const mb = (x: number) => (x / 2 ** 20).toFixed(1);
    console.log(`live memory growth from the 2nd to the 4th quarter of the rows: preprocess ${mb(growth(pre))} MiB (${pre.samples.length} samples, peak RSS ${mb(pre.peakRss)} MiB), shuffled read ${mb(growth(shuf))} MiB (${shuf.samples.length} samples, peak RSS ${mb(shuf.peakRss)} MiB)`);
    expect(pre.samples.length).toBeGreaterThan(8);
    expect(shuf.samples.length).toBeGreaterThan(8);
    // Holding the rows between the two stretches (about half of them) would add 100k x (~275 B of text
    // + 160 B of columns) = 41 MiB to preprocessing and 85k x (160 B of columns + 160 B of batches) = 26 MiB to the read.
    expect(growth(pre)).toBeLessThan(6 * 2 ** 20);
    expect(growth(shuf)).toBeLessThan(6 * 2 ** 20);
  }, 600_000); // ~20 s on a quiet machine; minutes when the 2 cores are shared
});
