import { describe, expect, it } from "vitest";
import { readF32, readU32 } from "../../src/gpu/buffers.ts";
import { KernelInputError } from "../../src/gpu/errors.ts";
import { createBagBatchBuffers, uploadBagBatch, validateBags, writeBagBatch } from "../../src/kernels/bag_batch.ts";
import { testDevice } from "../helpers/gpu.ts";

// 2 tables x batch 3: bags (0,0)=[1,2] (0,1)=[] (0,2)=[3] (1,0)=[0] (1,1)=[4,4] (1,2)=[]
const rows = [4, 5];
const good = () => ({ batchSize: 3, offsets: new Uint32Array([0, 2, 2, 3, 4, 6, 6]), indices: new Uint32Array([1, 2, 3, 0, 4, 4]) });

describe("validateBags", () => {
  it("accepts well-formed bags (empty bags, trailing unused indices)", () => {
    validateBags(good(), rows);
    validateBags({ ...good(), indices: new Uint32Array([1, 2, 3, 0, 4, 4, 99]) }, rows);
    validateBags({ batchSize: 1, offsets: new Uint32Array(3), indices: new Uint32Array(0) }, rows);
  });

  it("names table, sample and index of an out-of-range index", () => {
    const b = good();
    b.indices[5] = 1048576;
    expect(() => validateBags(b, rows)).toThrow(new KernelInputError("index 1048576 out of range for table 1 (5 rows) at sample 1"));
    const c = good();
    c.indices[2] = 4; // table 0 has 4 rows
    expect(() => validateBags(c, rows)).toThrow("index 4 out of range for table 0 (4 rows) at sample 2");
  });

  it("rejects malformed offsets", () => {
    const g = good();
    expect(() => validateBags({ ...g, offsets: g.offsets.subarray(0, 6) }, rows)).toThrow(/offsets has 6 entries; 2 tables x batch 3 need T\*B\+1 = 7/);
    expect(() => validateBags({ ...g, offsets: new Uint32Array([1, 2, 2, 3, 4, 6, 6]) }, rows)).toThrow(/offsets\[0\] is 1; it must be 0/);
    expect(() => validateBags({ ...g, offsets: new Uint32Array([0, 2, 2, 3, 4, 3, 6]) }, rows)).toThrow(
      /offsets decrease at table 1, sample 1: offsets\[5\] = 3 < offsets\[4\] = 4/,
    );
    expect(() => validateBags({ ...g, offsets: new Uint32Array([0, 2, 2, 3, 4, 6, 8]) }, rows)).toThrow(
      /offsets end at 8 but there are only 6 indices \(overrun by 2\)/,
    );
    expect(() => validateBags({ ...g, weights: new Float32Array(5) }, rows)).toThrow(/6 indices but only 5 weights/);
    expect(() => validateBags({ ...g, batchSize: 0 }, rows)).toThrow(/batchSize must be a positive integer/);
  });
});

describe("bag batch buffers", () => {
  it("are reused every step: writes offsets, indices, weights and numIndices", async () => {
    const device = await testDevice();
    const bufs = createBagBatchBuffers(device, { batchSize: 3, numTables: 2, maxIndices: 8, weighted: true });
    expect(bufs.capacityBags).toBe(6);
    expect(bufs.capacityIndices).toBe(8);
    expect(Array.from(await readU32(device, bufs.offsets))).toEqual(new Array(7).fill(0)); // all bags empty
    const b = { ...good(), weights: new Float32Array([0.5, 1, 2, 3, 4, 5]) };
    writeBagBatch(device, bufs, b, rows);
    expect(bufs.numIndices).toBe(6);
    expect(Array.from(await readU32(device, bufs.offsets))).toEqual(Array.from(b.offsets));
    expect(Array.from(await readU32(device, bufs.indices, 6))).toEqual(Array.from(b.indices));
    expect(Array.from(await readF32(device, bufs.weights!, 6))).toEqual(Array.from(b.weights));
    // A second, smaller step.
    const s = { batchSize: 3, offsets: new Uint32Array([0, 1, 1, 1, 1, 1, 2]), indices: new Uint32Array([3, 2]), weights: new Float32Array([7, 8]) };
    writeBagBatch(device, bufs, s, rows);
    expect(bufs.numIndices).toBe(2);
    expect(Array.from(await readU32(device, bufs.indices, 2))).toEqual([3, 2]);
  });

  it("say which capacity is exceeded and by how much, and reject mismatched batches", async () => {
    const device = await testDevice();
    const bufs = createBagBatchBuffers(device, { batchSize: 3, numTables: 2, maxIndices: 4 });
    expect(() => writeBagBatch(device, bufs, good(), rows)).toThrow(
      /the batch has 6 indices but the bag buffers hold 4 \(indices capacity exceeded by 2\); create them with maxIndices >= 6/,
    );
    expect(() => writeBagBatch(device, bufs, { ...good(), batchSize: 2, offsets: new Uint32Array(5) }, rows)).toThrow(
      /bag buffers are for batch 3, got batch 2; pad a short batch with empty bags/,
    );
    expect(() => writeBagBatch(device, bufs, good(), [4, 5, 6])).toThrow(/for 2 tables but 3 table sizes/);
    const big = createBagBatchBuffers(device, { batchSize: 3, numTables: 2, maxIndices: 10 });
    expect(() => writeBagBatch(device, big, { ...good(), weights: new Float32Array(6) }, rows)).toThrow(/created without weights/);
    const bad = good();
    bad.indices[0] = 9;
    expect(() => writeBagBatch(device, big, bad, rows)).toThrow("index 9 out of range for table 0 (4 rows) at sample 0");
    expect(big.numIndices).toBe(0); // nothing written
    const weighted = createBagBatchBuffers(device, { batchSize: 3, numTables: 2, maxIndices: 10, weighted: true });
    expect(() => writeBagBatch(device, weighted, good(), rows)).toThrow(/created weighted: pass weights/);
  });

  it("uploadBagBatch validates and uploads exactly the used indices", async () => {
    const device = await testDevice();
    const b = uploadBagBatch(device, { ...good(), indices: new Uint32Array([1, 2, 3, 0, 4, 4, 77]) }, rows);
    expect(b.numIndices).toBe(6);
    expect(b.numTables).toBe(2);
    expect(Array.from(await readU32(device, b.indices))).toEqual([1, 2, 3, 0, 4, 4]);
    expect(b.weights).toBeUndefined();
    const e = good();
    e.offsets[6] = 7;
    expect(() => uploadBagBatch(device, e, rows)).toThrow(/overrun by 1/);
    const empty = uploadBagBatch(device, { batchSize: 2, offsets: new Uint32Array(5), indices: new Uint32Array(0), weights: new Float32Array(0) }, rows);
    expect(empty.numIndices).toBe(0);
    expect(empty.weights).toBeDefined();
  });
});
