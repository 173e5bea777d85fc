/**
 * What an app embedding the kernels meets: its own device and buffers, the
 * readback helper, and clear errors for a buffer of another device or a plain
 * array where a typed array is needed.
 */
import { describe, expect, it } from "vitest";
import {
  createBagBatchBuffers, createStorage, createTableSet, DeviceMismatchError, embeddingBagForward, gemm, KernelInputError,
  readF32, trackBuffer, uploadStorage, writeBagBatch, writeTable,
} from "../../src/kernels/index.ts";
import { createContexts } from "../../src/gpu/context.ts";

describe("kernels for embedders", () => {
  it("reads back, and names a buffer that belongs to another device", async () => {
    const [a, b] = await createContexts(2, { label: "embedder" });
    const da = a!.device;
    const db = b!.device;
    const x = uploadStorage(da, new Float32Array([1, 2, 3, 4]), "x-on-a");
    expect([...(await readF32(da, x))]).toEqual([1, 2, 3, 4]);
    await expect(readF32(db, x)).rejects.toThrow(DeviceMismatchError);
    await expect(readF32(db, x)).rejects.toThrow(/'x-on-a' belongs to GPUDevice 'embedder-device-0', not to the GPUDevice 'embedder-device-1'/);
    const y = createStorage(db, 16, "y-on-b");
    const c = createStorage(db, 4 * 4, "c-on-b");
    // A GEMM on device b given a buffer of device a.
    expect(() => gemm(db, { a: x, b: y, c, m: 2, n: 2, k: 2 })).toThrow(/binding 'a'.*'x-on-a' belongs to GPUDevice 'embedder-device-0'/);
    // The app's own buffer, tracked by the app.
    const own = trackBuffer(da, da.createBuffer({ label: "app-buffer", size: 16, usage: 0x80 | 0x04 | 0x08 }));
    expect(() => gemm(db, { a: own, b: y, c, m: 2, n: 2, k: 2 })).toThrow(/'app-buffer' belongs to/);
    // An untracked app buffer from another device: the readback's validation error names the fix.
    const foreign = da.createBuffer({ label: "untracked", size: 16, usage: 0x80 | 0x04 | 0x08 });
    await expect(readF32(db, foreign)).rejects.toThrow(/readback of buffer 'untracked'[\s\S]*must belong to this device/);
    a!.destroy();
    b!.destroy();
  });

  it("says to wrap a plain array in a typed array", async () => {
    const [ctx] = await createContexts(1);
    const device = ctx!.device;
    const tables = createTableSet(device, { rows: [3], dim: 2 });
    expect(() => writeTable(device, tables, 0, [1, 2, 3, 4, 5, 6] as unknown as Float32Array)).toThrow(
      /writeTable: table 0 data must be Float32Array, got a plain Array of 6: wrap it, e.g. new Float32Array\(values\)/,
    );
    expect(() => writeTable(device, tables, 0, new Float64Array(6) as unknown as Float32Array)).toThrow(/must be Float32Array, got Float64Array/);
    const bags = createBagBatchBuffers(device, { batchSize: 1, numTables: 1, maxIndices: 2 });
    expect(() => writeBagBatch(device, bags, { batchSize: 1, offsets: [0, 2] as unknown as Uint32Array, indices: new Uint32Array([0, 2]) }, [3])).toThrow(
      /bags.offsets must be Uint32Array, got a plain Array of 2/,
    );
    expect(() => uploadStorage(device, [1, 2] as unknown as Float32Array, "x")).toThrow(KernelInputError);
    // The same calls with typed arrays work.
    writeTable(device, tables, 0, new Float32Array([1, 2, 3, 4, 5, 6]));
    writeBagBatch(device, bags, { batchSize: 1, offsets: new Uint32Array([0, 2]), indices: new Uint32Array([0, 2]) }, [3]);
    const out = createStorage(device, 8, "out");
    embeddingBagForward(device, { tables, bags, out, outStride: 2, outOffset: 0 });
    expect([...(await readF32(device, out))]).toEqual([6, 8]);
    ctx!.destroy();
  });
});
