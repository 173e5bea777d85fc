import { describe, expect, it } from "vitest";
import { readF32, readU32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { KernelInputError } from "../../src/gpu/errors.ts";
import { createBagBatchBuffers, uploadBagBatch, writeBagBatch, type HostBags } from "../../src/kernels/bag_batch.ts";
import {
  checkEmbeddingErrors,
  createEmbeddingErrorBuffer,
  embeddingBagForward,
  forwardLayout,
  prepareEmbeddingBagForward,
} from "../../src/kernels/embedding_bag_forward.ts";
import { createTableSet, destroyTableSet, writeTable } from "../../src/kernels/embedding_tables.ts";
import type { Pooling } from "../../src/kernels/embedding_types.ts";
import { embeddingBagForwardRef } from "../../src/kernels/reference/embedding_bag.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

interface Case {
  rows: number[];
  dim: number;
  bags: HostBags;
  pooling?: Pooling;
  /** Output stride/offset in floats (default: compact [B, T*dim]). */
  outStride?: number;
  outOffset?: number;
  maxChunkBytes?: number;
  maxWorkgroupsPerDim?: number;
  variant?: "general" | "rows";
  chunksPerDispatch?: 1 | 2;
}

/** Random bags: lengths from `len(rng, t, b)`, indices uniform in [0, rows[t]). */
function randomBags(rng: Rng, rows: number[], batchSize: number, len: (t: number, b: number) => number, weighted = false): HostBags {
  const T = rows.length;
  const offsets = new Uint32Array(T * batchSize + 1);
  const idx: number[] = [];
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < batchSize; b++) {
      const n = len(t, b);
      for (let i = 0; i < n; i++) idx.push(rng.int(rows[t]!));
      offsets[t * batchSize + b + 1] = idx.length;
    }
  }
  const bags: HostBags = { batchSize, offsets, indices: Uint32Array.from(idx) };
  if (weighted) bags.weights = rng.f32(idx.length, -2, 2);
  return bags;
}

function randomTables(rng: Rng, rows: number[], dim: number): Float32Array[] {
  return rows.map((r) => rng.f32(r * dim));
}

/**
 * Runs the forward on the GPU into a NaN-prefilled output and checks every
 * element that must be written against the float64 reference, and that
 * every other element is still NaN. Returns the number of dispatches.
 */
async function runCase(c: Case, tables: Float32Array[]): Promise<number> {
  const device = await testDevice();
  const T = c.rows.length;
  const B = c.bags.batchSize;
  const d = c.dim;
  const stride = c.outStride ?? T * d;
  const offset = c.outOffset ?? 0;
  const set = createTableSet(device, { rows: c.rows, dim: d, maxChunkBytes: c.maxChunkBytes, label: "test-tables" });
  tables.forEach((data, t) => writeTable(device, set, t, data));
  const bags = uploadBagBatch(device, c.bags, c.rows);
  const outLen = B * stride + 5; // a tail beyond the last sample must stay untouched too
  const out = uploadStorage(device, new Float32Array(outLen).fill(NaN), "out");
  const dispatches = prepareEmbeddingBagForward(device, {
    tables: set, bags, out, outStride: stride, outOffset: offset, pooling: c.pooling, maxWorkgroupsPerDim: c.maxWorkgroupsPerDim,
    variant: c.variant, chunksPerDispatch: c.chunksPerDispatch,
  });
  submitDispatches(device, dispatches, "test");
  const got = await readF32(device, out);
  destroyTableSet(set);
  compare(c, tables, got, stride, offset, set.chunks.length);
  return dispatches.length;
}

function compare(c: Case, tables: Float32Array[], got: Float32Array, stride: number, offset: number, chunks: number): void {
  const T = c.rows.length;
  const B = c.bags.batchSize;
  const d = c.dim;
  const input = { tables, dim: d, batchSize: B, offsets: c.bags.offsets, indices: c.bags.indices, weights: c.bags.weights, pooling: c.pooling };
  const ref = embeddingBagForwardRef(input);
  // Sum of |terms| per output: the reference applied to |tables| and |weights|.
  const abs = embeddingBagForwardRef({
    ...input,
    tables: tables.map((x) => x.map(Math.abs)),
    weights: c.bags.weights?.map(Math.abs),
  });
  const actual = new Float64Array(B * T * d);
  const written = new Uint8Array(got.length);
  const terms = new Float64Array(B * T * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const n = c.bags.offsets[t * B + b + 1]! - c.bags.offsets[t * B + b]!;
      for (let k = 0; k < d; k++) {
        const o = b * stride + offset + t * d + k;
        actual[(b * T + t) * d + k] = got[o]!;
        written[o] = 1;
        terms[(b * T + t) * d + k] = n + chunks + 1; // partial sums per chunk, mean scaling
      }
    }
  }
  expectAllClose(actual, ref, (i) => sumTolerance(terms[i]!, abs[i]!), "pooled");
  for (let i = 0; i < got.length; i++) {
    if (!written[i] && !Number.isNaN(got[i]!)) expect.fail(`out[${i}] = ${got[i]} should be untouched (NaN marker)`);
  }
}

describe("embedding_bag_forward", () => {
  // Columns per lane (COLS): 6 -> 2, 16 -> 4 (vec4: 1), 64 and 128 -> 8 (vec4: 16 and 32 units).
  // 37 (scalar), 520 (vec4, 2 per lane) and 1056 (vec4, 8 per lane): more columns than
  // LANES * COLS, lanes loop.
  for (const dim of [1, 3, 4, 6, 16, 64, 128, 37, 520, 1056]) {
    it(`d=${dim}: several tables of different sizes, empty bags`, async () => {
      const rng = new Rng(100 + dim);
      const rows = [7, 1, 50, 13];
      const bags = randomBags(rng, rows, 17, (t, b) => (b % 5 === 0 ? 0 : rng.int(7)));
      await runCase({ rows, dim, bags }, randomTables(rng, rows, dim));
    });
  }

  it("B = 1", async () => {
    const rng = new Rng(1);
    const rows = [9, 4];
    await runCase({ rows, dim: 16, bags: randomBags(rng, rows, 1, () => 3) }, randomTables(rng, rows, 16));
  });

  for (const dim of [3, 16, 128]) {
    it(`d=${dim}: B just below, at and above the bags per workgroup`, async () => {
      const device = await testDevice();
      const units = dim % 4 === 0 ? dim / 4 : dim;
      const per = forwardLayout(device, units).bags;
      for (const B of [per - 1, per, per + 1]) {
        const rng = new Rng(B * 7 + dim);
        const rows = [11];
        await runCase({ rows, dim, bags: randomBags(rng, rows, B, () => 1 + rng.int(4)) }, randomTables(rng, rows, dim));
      }
    });
  }

  it("a bag of 1000 indices (sum and mean)", async () => {
    const rng = new Rng(1000);
    const rows = [300, 5];
    const bags = randomBags(rng, rows, 3, (t, b) => (t === 0 && b === 1 ? 1000 : 2));
    const tables = randomTables(rng, rows, 16);
    await runCase({ rows, dim: 16, bags }, tables);
    await runCase({ rows, dim: 16, bags, pooling: "mean" }, tables);
  });

  it("one index repeated across the whole batch", async () => {
    const rng = new Rng(5);
    const rows = [40, 40];
    const B = 70;
    const bags = randomBags(rng, rows, B, () => 4);
    bags.indices.fill(17);
    await runCase({ rows, dim: 8, bags }, randomTables(rng, rows, 8));
  });

  for (const dim of [3, 6, 16, 64]) {
    it(`d=${dim}: mean pooling with empty bags`, async () => {
      const rng = new Rng(31 + dim);
      const rows = [6, 20, 3];
      const bags = randomBags(rng, rows, 33, (t, b) => ((t + b) % 4 === 0 ? 0 : 1 + rng.int(9)));
      await runCase({ rows, dim, bags, pooling: "mean" }, randomTables(rng, rows, dim));
    });

    it(`d=${dim}: per-index weights`, async () => {
      const rng = new Rng(77 + dim);
      const rows = [6, 20, 3];
      const bags = randomBags(rng, rows, 21, () => rng.int(8), true);
      await runCase({ rows, dim, bags }, randomTables(rng, rows, dim));
    });
  }

  it("writes into an interaction input [B, n+1, d] at offset d (vec4 path)", async () => {
    const rng = new Rng(9);
    const rows = [10, 3, 25];
    const d = 16;
    const bags = randomBags(rng, rows, 19, () => rng.int(5));
    await runCase({ rows, dim: d, bags, outStride: (rows.length + 1) * d, outOffset: d }, randomTables(rng, rows, d));
  });

  it("writes at a stride and offset that are not multiples of 4 (scalar path, d=4, 3, 16, 40)", async () => {
    for (const d of [4, 3, 16, 40]) {
      const rng = new Rng(10 + d);
      const rows = [10, 3, 25];
      const bags = randomBags(rng, rows, 23, () => rng.int(5));
      await runCase({ rows, dim: d, bags, outStride: rows.length * d + 7, outOffset: 5 }, randomTables(rng, rows, d));
    }
  });

  for (const dim of [3, 8, 32]) {
    it(`d=${dim}: tables split across chunks (one table spans 3 chunks), sum, mean and weights`, async () => {
      const rng = new Rng(300 + dim);
      // Chunks of 8 rows: global rows 0-2 table 0, 3-18 table 1 (chunks 0, 1, 2), 19-23 table 2 (chunk 2).
      const rows = [3, 16, 5];
      const maxChunkBytes = 8 * dim * 4 + 3; // not a multiple of the row size
      const tables = randomTables(rng, rows, dim);
      const plain = randomBags(rng, rows, 37, (t, b) => (b % 6 === 0 ? 0 : 1 + rng.int(12)));
      expect(await runCase({ rows, dim, bags: plain, maxChunkBytes }, tables)).toBe(3);
      await runCase({ rows, dim, bags: plain, maxChunkBytes, pooling: "mean" }, tables);
      const weighted = randomBags(rng, rows, 37, () => rng.int(12), true);
      await runCase({ rows, dim, bags: weighted, maxChunkBytes, outStride: rows.length * dim + 4, outOffset: 4 }, tables);
      // Single-row chunks: every row its own dispatch (one chunk per dispatch, the default); the rows kernel
      // (d % 4 == 0) pairs them on request: 13 dispatches (a pair never straddles a table boundary here:
      // fewest bag-dispatch pairs).
      expect(await runCase({ rows, dim, bags: plain, maxChunkBytes: dim * 4 }, tables)).toBe(24);
      if (dim % 4 === 0) expect(await runCase({ rows, dim, bags: plain, maxChunkBytes: dim * 4, chunksPerDispatch: 2 }, tables)).toBe(13);
    });
  }

  // The one-invocation-per-bag kernel ("rows", auto for d % 4 == 0 and d <= 64): one-index bags
  // (its straight-line path), longer bags, B around its 64 bags per workgroup, chunks, weights, mean;
  // and the general vec4 kernel forced on the same short rows.
  // Chunks of 7 rows make tables span several chunks: the kernel's branch (BRANCH) form and the two-chunk
  // kernel (chunksPerDispatch 2); one chunk: its select form.
  for (const dim of [4, 12, 16, 32, 64]) {
    it(`d=${dim}: rows kernel, one index per bag and longer bags, B = 1, 63, 64, 65, 129; general kernel forced`, async () => {
      const rng = new Rng(700 + dim);
      const rows = [11, 1, 40];
      for (const B of [1, 63, 64, 65, 129]) {
        const tables = randomTables(rng, rows, dim);
        await runCase({ rows, dim, bags: randomBags(rng, rows, B, () => 1), variant: "rows", outStride: (rows.length + 1) * dim, outOffset: dim }, tables);
        await runCase({ rows, dim, bags: randomBags(rng, rows, B, () => rng.int(6)), variant: "rows" }, tables);
        await runCase({ rows, dim, bags: randomBags(rng, rows, B, () => 1), variant: "general" }, tables);
      }
      const tables = randomTables(rng, rows, dim);
      const maxChunkBytes = 7 * dim * 4;
      await runCase({ rows, dim, bags: randomBags(rng, rows, 33, () => 1, true), variant: "rows", maxChunkBytes }, tables);
      await runCase({ rows, dim, bags: randomBags(rng, rows, 33, () => rng.int(9)), variant: "rows", maxChunkBytes, pooling: "mean" }, tables);
      await runCase({ rows, dim, bags: randomBags(rng, rows, 33, () => rng.int(9)), variant: "rows", maxChunkBytes, chunksPerDispatch: 2 }, tables);
      await runCase({ rows, dim, bags: randomBags(rng, rows, 33, () => rng.int(9), true), variant: "general", maxChunkBytes }, tables);
    });
  }

  // The two-chunk rows kernel (embedding_bag_forward_rows2): tables straddling the two chunks of a
  // dispatch and the pairs, bags with rows in both chunks, empty bags, weights, mean, B not a
  // multiple of the 64 bags per workgroup, an odd chunk count (a lone last chunk), one chunk per
  // dispatch forced on the same data.
  for (const dim of [4, 8, 20, 64]) {
    it(`d=${dim}: two chunks per dispatch (tables straddling chunks and pairs, empty bags, weights, mean, B = 1, 37, 65, 130)`, async () => {
      const rng = new Rng(900 + dim);
      // Global rows 0-5 table 0, 6-22 table 1, 23-24 table 2, 25-36 table 3. Chunks of 5 rows: 8 chunks, paired
      // (0,1) (2,3) (4,5) (6,7), the middle pair holding tables 1-3; chunks of 6 rows: 7 chunks, paired (0) (1,2) (3,4) (5,6)
      // (fewest bag-dispatch pairs), a lone chunk first.
      const rows = [6, 17, 2, 12];
      const tables = randomTables(rng, rows, dim);
      for (const [B, rowsPerChunk] of [[1, 5], [37, 6], [65, 5], [130, 6]] as const) {
        const maxChunkBytes = rowsPerChunk * dim * 4;
        const len = (t: number, b: number) => (b % 7 === 3 ? 0 : 1 + rng.int(12));
        const plain = randomBags(rng, rows, B, len);
        const n2 = await runCase({ rows, dim, bags: plain, maxChunkBytes, outStride: (rows.length + 1) * dim, outOffset: dim, chunksPerDispatch: 2 }, tables);
        expect(n2).toBe(4);
        expect(await runCase({ rows, dim, bags: plain, maxChunkBytes }, tables)).toBe(Math.ceil(37 / rowsPerChunk)); // default: 1 per dispatch
        if (dim === 64 && B > 37) continue; // compile time: one weighted / mean variant each suffices at d = 64
        await runCase({ rows, dim, bags: plain, maxChunkBytes, pooling: "mean", chunksPerDispatch: 2 }, tables);
        await runCase({ rows, dim, bags: randomBags(rng, rows, B, len, true), maxChunkBytes, chunksPerDispatch: 2 }, tables);
      }
    });
  }

  it("two chunks per dispatch: pairs chosen to keep tables in one dispatch; one table straddling the two chunks; the auto choice", async () => {
    const rng = new Rng(950);
    // Chunks of 4 rows: table 0 = rows 0-3 (chunk 0), table 1 = rows 4-11 (chunks 1, 2): pairing (0), (1, 2) walks each bag once.
    const rows = [4, 8];
    const tables = randomTables(rng, rows, 4);
    const bags = randomBags(rng, rows, 70, (t, b) => (b % 9 === 0 ? 0 : rng.int(20)));
    expect(await runCase({ rows, dim: 4, bags, maxChunkBytes: 16 * 4, chunksPerDispatch: 2 }, tables)).toBe(2);
    // One table over exactly two chunks (config B's shape): every bag has rows in both.
    const one = randomBags(rng, [8], 67, () => 30);
    expect(await runCase({ rows: [8], dim: 4, bags: one, maxChunkBytes: 16 * 4, chunksPerDispatch: 2 }, [tables[1]!])).toBe(1);
    // Auto: pairs when under a quarter of the tables straddle the pair (config A's shape: 7 tables over 2 chunks,
    // table 3 straddling: one dispatch), not when every table spans both chunks of its pair (config B's shape).
    const seven = [5, 5, 5, 5, 5, 5, 5];
    for (const dim of [4, 16]) {
      const t7 = randomTables(rng, seven, dim);
      expect(await runCase({ rows: seven, dim, bags: randomBags(rng, seven, 67, () => 1), maxChunkBytes: 18 * dim * 4 }, t7)).toBe(1);
      expect(await runCase({ rows: seven, dim, bags: randomBags(rng, seven, 33, (t, b) => (b % 5 === 0 ? 0 : rng.int(4)), true), maxChunkBytes: 18 * dim * 4 }, t7)).toBe(1);
      expect(await runCase({ rows: seven, dim, bags: randomBags(rng, seven, 33, () => 1), maxChunkBytes: 18 * dim * 4, chunksPerDispatch: 1 }, t7)).toBe(2);
    }
    expect(await runCase({ rows: [8, 8], dim: 4, bags: randomBags(rng, [8, 8], 40, () => 6), maxChunkBytes: 16 * 4 }, randomTables(rng, [8, 8], 4))).toBe(4);
  });

  it("all tables in one dispatch when they fit in one chunk", async () => {
    const rng = new Rng(12);
    const rows = [5, 6, 7, 8, 9];
    expect(await runCase({ rows, dim: 4, bags: randomBags(rng, rows, 9, () => 2) }, randomTables(rng, rows, 4))).toBe(1);
  });

  it("folds more workgroups than one grid dimension holds into y", async () => {
    const rng = new Rng(13);
    const rows = [12, 30];
    for (const dim of [3, 128]) {
      await runCase({ rows, dim, bags: randomBags(rng, rows, 45, () => rng.int(4)), maxWorkgroupsPerDim: 2 }, randomTables(rng, rows, dim));
    }
  });

  it("seeded random shapes (property test)", async () => {
    for (let seed = 0; seed < 24; seed++) {
      const rng = new Rng(5000 + seed);
      const T = 1 + rng.int(4);
      const rows = Array.from({ length: T }, () => 1 + rng.int(40));
      const dim = [1, 2, 3, 4, 5, 8, 12, 16, 20, 33][rng.int(10)]!;
      const B = 1 + rng.int(70);
      const pooling: Pooling = rng.int(3) === 0 ? "mean" : "sum";
      const weighted = pooling === "sum" && rng.int(2) === 0;
      const maxLen = [1, 3, 10, 40][rng.int(4)]!;
      const bags = randomBags(rng, rows, B, () => rng.int(maxLen + 1), weighted);
      const pad = rng.int(3) === 0 ? rng.int(9) : 0;
      const outOffset = pad ? rng.int(pad + 1) : 0;
      const totalRows = rows.reduce((a, r) => a + r, 0);
      const maxChunkBytes = rng.int(2) === 0 ? (1 + rng.int(totalRows)) * dim * 4 : undefined;
      const c: Case = { rows, dim, bags, pooling, outStride: T * dim + pad, outOffset, maxChunkBytes };
      try {
        await runCase(c, randomTables(rng, rows, dim));
      } catch (e) {
        throw new Error(`seed ${5000 + seed}: T=${T} rows=${rows} d=${dim} B=${B} ${pooling}${weighted ? " weighted" : ""} pad=${pad} offset=${outOffset} chunk=${maxChunkBytes}: ${(e as Error).message}`);
      }
    }
  });

  it("prepared once, encoded every step with new bags and new table values", async () => {
    const device = await testDevice();
    const rng = new Rng(21);
    const rows = [9, 30, 4];
    const d = 4;
    const B = 11;
    const set = createTableSet(device, { rows, dim: d, maxChunkBytes: 16 * d * 4 }); // 3 chunks
    const bufs = createBagBatchBuffers(device, { batchSize: B, numTables: rows.length, maxIndices: 200, weighted: true });
    const stride = (rows.length + 1) * d;
    const out = uploadStorage(device, new Float32Array(B * stride + 5).fill(NaN), "out");
    const prepared = prepareEmbeddingBagForward(device, { tables: set, bags: bufs, out, outStride: stride, outOffset: d });
    for (let step = 0; step < 3; step++) {
      const tables = randomTables(rng, rows, d);
      tables.forEach((x, t) => writeTable(device, set, t, x));
      const bags = randomBags(rng, rows, B, () => rng.int(3 + 2 * step), true);
      writeBagBatch(device, bufs, bags, rows);
      expect(bufs.numIndices).toBe(bags.offsets[rows.length * B]);
      submitDispatches(device, prepared, `step ${step}`);
      compare({ rows, dim: d, bags }, tables, await readF32(device, out), stride, d, set.chunks.length);
    }
  });

  describe("bad input flagged on the GPU", () => {
    it("skips an out-of-range index, names table, sample and index, then resets", async () => {
      const device = await testDevice();
      const rng = new Rng(40);
      const rows = [5, 10, 7];
      const d = 4;
      const B = 6;
      const tables = randomTables(rng, rows, d);
      const good = randomBags(rng, rows, B, () => 2 + rng.int(3));
      for (const [maxChunkBytes, chunksPerDispatch] of [[undefined, undefined], [6 * d * 4, 1], [6 * d * 4, 2]] as const) {
        const set = createTableSet(device, { rows, dim: d, maxChunkBytes });
        tables.forEach((x, t) => writeTable(device, set, t, x));
        const bad = good.indices.slice();
        const p1 = good.offsets[1 * B + 2]! + 1; // table 1, sample 2
        const p2 = good.offsets[2 * B + 4]!; // a later bad lookup: table 2, sample 4
        bad[p1] = 1048576;
        bad[p2] = 7;
        const bags = {
          batchSize: B, numTables: rows.length, numIndices: bad.length,
          offsets: uploadStorage(device, good.offsets, "offsets"), indices: uploadStorage(device, bad, "indices"),
        };
        const out = uploadStorage(device, new Float32Array(B * rows.length * d).fill(NaN), "out");
        const errors = createEmbeddingErrorBuffer(device);
        const args = { tables: set, bags, out, outStride: rows.length * d, outOffset: 0, errors, chunksPerDispatch };
        embeddingBagForward(device, args);
        await expect(checkEmbeddingErrors(device, errors, rows, B)).rejects.toThrow(
          /^index 1048576 out of range for table 1 \(10 rows\) at sample 2 /,
        );
        // The bad lookups were skipped; everything else is as without them.
        const kept: number[] = [];
        const offs = new Uint32Array(good.offsets.length);
        for (let k = 0; k < rows.length * B; k++) {
          for (let p = good.offsets[k]!; p < good.offsets[k + 1]!; p++) if (p !== p1 && p !== p2) kept.push(bad[p]!);
          offs[k + 1] = kept.length;
        }
        const skipped = { batchSize: B, offsets: offs, indices: Uint32Array.from(kept) };
        compare({ rows, dim: d, bags: skipped }, tables, await readF32(device, out), rows.length * d, 0, set.chunks.length);
        // Reset: a clean check passes, and the next bad lookup is reported afresh.
        await checkEmbeddingErrors(device, errors, rows, B);
        expect(Array.from(await readU32(device, errors, 5))).toEqual([0xffffffff, 0xffffffff, 0, 0xffffffff, 0xffffffff]);
        embeddingBagForward(device, args);
        embeddingBagForward(device, args); // the first error is kept across calls
        await expect(checkEmbeddingErrors(device, errors, rows, B)).rejects.toBeInstanceOf(KernelInputError);
        await checkEmbeddingErrors(device, errors, rows, B);
        destroyTableSet(set);
      }
    });

    it("flags offsets that run past the indices buffer without reading it", async () => {
      const device = await testDevice();
      const rows = [4, 4];
      const B = 3;
      const set = createTableSet(device, { rows, dim: 3 });
      writeTable(device, set, 0, new Float32Array(12).fill(1));
      writeTable(device, set, 1, new Float32Array(12).fill(2));
      const offsets = new Uint32Array([0, 1, 2, 3, 4, 5, 99]); // bag (1, 2) ends past 6 indices
      const bags = {
        batchSize: B, numTables: 2, numIndices: 6,
        offsets: uploadStorage(device, offsets, "offsets"), indices: uploadStorage(device, new Uint32Array(6), "indices"),
      };
      const out = uploadStorage(device, new Float32Array(B * 6).fill(NaN), "out");
      const errors = createEmbeddingErrorBuffer(device);
      embeddingBagForward(device, { tables: set, bags, out, outStride: 6, outOffset: 0, errors });
      await expect(checkEmbeddingErrors(device, errors, rows, B)).rejects.toThrow(/malformed offsets for table 1 at sample 2/);
      expect(Array.from(await readF32(device, out))).toEqual([1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 1, 1, 1, 0, 0, 0]);
      await checkEmbeddingErrors(device, errors, rows, B);
    });
  });

  describe("argument errors", () => {
    it("rejects mean with weights, overlapping samples, a short output and a table count mismatch", async () => {
      const device = await testDevice();
      const rows = [4, 6];
      const set = createTableSet(device, { rows, dim: 4 });
      const rng = new Rng(3);
      const bags = uploadBagBatch(device, randomBags(rng, rows, 5, () => 2, true), rows);
      const out = uploadStorage(device, new Float32Array(40), "out");
      const base = { tables: set, bags, out, outStride: 8, outOffset: 0 };
      expect(() => prepareEmbeddingBagForward(device, { ...base, pooling: "mean" })).toThrow(/mean pooling takes no per-index weights/);
      expect(() => prepareEmbeddingBagForward(device, { ...base, outOffset: 4 })).toThrow(/samples would overlap/);
      expect(() => prepareEmbeddingBagForward(device, { ...base, outStride: 9 })).toThrow(/out holds 40 floats .* needs 44/);
      expect(() => prepareEmbeddingBagForward(device, { ...base, bags: { ...bags, numTables: 3 } })).toThrow(/3 tables but the table set has 2/);
      expect(() => prepareEmbeddingBagForward(device, { ...base, pooling: "max" as Pooling })).toThrow(/pooling must be/);
      expect(() => prepareEmbeddingBagForward(device, base)).not.toThrow();
    });
  });
});
