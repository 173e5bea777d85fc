import { describe, expect, it } from "vitest";
import { readF32 } from "../../src/gpu/buffers.ts";
import { createTableSet, destroyTableSet, planChunks, readTable, writeTable } from "../../src/kernels/embedding_tables.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

describe("planChunks", () => {
  it("packs consecutive global rows greedily, chunk boundaries inside tables", () => {
    // 8 rows of d=3 (96 bytes) per chunk; 101 bytes still holds only 8.
    expect(planChunks([3, 16, 5], 3, 101)).toEqual([
      { rowStart: 0, rowCount: 8 },
      { rowStart: 8, rowCount: 8 },
      { rowStart: 16, rowCount: 8 },
    ]);
    expect(planChunks([3, 16, 6], 3, 96)).toEqual([
      { rowStart: 0, rowCount: 8 },
      { rowStart: 8, rowCount: 8 },
      { rowStart: 16, rowCount: 8 },
      { rowStart: 24, rowCount: 1 },
    ]);
    expect(planChunks([1000, 1, 7], 64, 1 << 30)).toEqual([{ rowStart: 0, rowCount: 1008 }]);
    expect(planChunks([2, 1], 1, 4)).toEqual([0, 1, 2].map((r) => ({ rowStart: r, rowCount: 1 })));
  });

  it("rejects chunks smaller than a row, empty tables, bad dims", () => {
    expect(() => planChunks([4], 16, 63)).toThrow(/cannot hold one row of dim 16 \(64 bytes\)/);
    expect(() => planChunks([4, 0], 4, 1024)).toThrow(/table 1 has 0 rows/);
    expect(() => planChunks([], 4, 1024)).toThrow(/at least one table/);
    expect(() => planChunks([4], 0, 1024)).toThrow(/dim must be a positive integer/);
    expect(() => planChunks([2 ** 31, 2 ** 31], 1, 2 ** 30)).toThrow(/fewer than 2\^32 rows/);
  });
});

describe("embedding table sets", () => {
  it("are zero-filled, with row bases and one chunk when the set fits", async () => {
    const device = await testDevice();
    const set = createTableSet(device, { rows: [5, 1, 9], dim: 3, label: "t" });
    expect(set.rowBase).toEqual([0, 5, 6]);
    expect(set.chunks.length).toBe(1);
    expect(set.chunks[0]!.buffer.size).toBe(15 * 3 * 4);
    expect(Array.from(await readF32(device, set.chunks[0]!.buffer))).toEqual(new Array(45).fill(0));
    destroyTableSet(set);
  });

  it("caps chunks by the device's binding size", async () => {
    const device = await testDevice();
    const set = createTableSet(device, { rows: [4], dim: 4, maxChunkBytes: 2 ** 52 });
    expect(set.chunks.length).toBe(1);
    destroyTableSet(set);
  });

  for (const dim of [1, 3, 16]) {
    it(`d=${dim}: writeTable/readTable round-trip across chunks (one table spans 3 chunks)`, async () => {
      const device = await testDevice();
      const rows = [3, 16, 5, 1];
      const set = createTableSet(device, { rows, dim, maxChunkBytes: 8 * dim * 4 });
      expect(set.chunks.map((c) => [c.rowStart, c.rowCount])).toEqual([[0, 8], [8, 8], [16, 8], [24, 1]]);
      const rng = new Rng(dim);
      const data = rows.map((r) => rng.f32(r * dim));
      // Written in an order that would expose one table overwriting its neighbour.
      for (const t of [1, 3, 0, 2]) writeTable(device, set, t, data[t]!);
      for (let t = 0; t < rows.length; t++) expectBitIdentical(await readTable(device, set, t), data[t]!, `table ${t}`);
      // The chunks hold the global rows in order.
      const all = new Float32Array(25 * dim);
      let at = 0;
      for (const x of data) {
        all.set(x, at);
        at += x.length;
      }
      for (const c of set.chunks) {
        expectBitIdentical(await readF32(device, c.buffer), all.subarray(c.rowStart * dim, (c.rowStart + c.rowCount) * dim), `chunk at ${c.rowStart}`);
      }
      destroyTableSet(set);
    });
  }

  it("rejects a wrong data length and an unknown table", async () => {
    const device = await testDevice();
    const set = createTableSet(device, { rows: [3, 4], dim: 2 });
    expect(() => writeTable(device, set, 1, new Float32Array(7))).toThrow(/table 1 needs 8 floats \(4 rows x 2\), got 7/);
    expect(() => writeTable(device, set, 2, new Float32Array(8))).toThrow(/table 2 does not exist \(the set has 2 tables\)/);
    await expect(readTable(device, set, -1)).rejects.toThrow(/does not exist/);
    destroyTableSet(set);
  });
});
