import { describe, expect, it } from "vitest";
import { createStorage, readU32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { createScanPlan, exclusiveScan, SCAN_PER } from "../../src/kernels/scan.ts";
import { exclusiveScanRef } from "../../src/kernels/reference/sort.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

function expectU32Equal(actual: Uint32Array, expected: Uint32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) expect.fail(`${what}[${i}] = ${actual[i]}, expected ${expected[i]}`);
  }
}

describe("exclusive scan", () => {
  const sizes = [1, 3, SCAN_PER - 1, SCAN_PER, SCAN_PER + 1, 255, 256, 257, SCAN_PER * SCAN_PER + 1, 100003];
  for (const count of sizes) {
    it(`scans ${count} u32`, async () => {
      const device = await testDevice();
      const rng = new Rng(count);
      const input = new Uint32Array(count);
      for (let i = 0; i < count; i++) input[i] = rng.int(1000);
      const output = uploadStorage(device, new Uint32Array(count).fill(0xdeadbeef), "out");
      exclusiveScan(device, { input: uploadStorage(device, input, "in"), output, count });
      expectU32Equal(await readU32(device, output, count), exclusiveScanRef(input, count), "scan");
    });
  }

  it("scans with longer runs per thread (per = 256, 3, as the radix sort's digit-count scans use) at sizes around the level boundaries", async () => {
    const device = await testDevice();
    for (const [per, counts] of [[256, [1, 255, 256, 257, 26624, 65536, 65537, 131073]], [3, [1, 2, 3, 4, 10, 28, 100]]] as const) {
      for (const count of counts) {
        const rng = new Rng(count + per);
        const input = new Uint32Array(count);
        for (let i = 0; i < count; i++) input[i] = rng.int(1000);
        const inBuf = uploadStorage(device, input, "in");
        const output = uploadStorage(device, new Uint32Array(count + 1).fill(0xdeadbeef), "out");
        const plan = createScanPlan(device, { input: inBuf, output, capacity: count, per });
        submitDispatches(device, plan.dispatches);
        const got = await readU32(device, output, count + 1);
        expectU32Equal(got.subarray(0, count), exclusiveScanRef(input, count), `per ${per} scan of ${count}`);
        expect(got[count], "the element past the count is untouched").toBe(0xdeadbeef);
        plan.destroy();
      }
    }
  });

  it("wraps modulo 2^32 like the reference", async () => {
    const device = await testDevice();
    const input = new Uint32Array(300).fill(0x40000000);
    const output = createStorage(device, 300 * 4, "out");
    exclusiveScan(device, { input: uploadStorage(device, input, "in"), output, count: 300 });
    expectU32Equal(await readU32(device, output, 300), exclusiveScanRef(input, 300), "scan");
  });

  it("re-scans shorter lengths with setCount and leaves the tail alone", async () => {
    const device = await testDevice();
    const cap = 20000;
    const rng = new Rng(7);
    const input = new Uint32Array(cap);
    for (let i = 0; i < cap; i++) input[i] = rng.int(5);
    const inBuf = uploadStorage(device, input, "in");
    const output = createStorage(device, cap * 4, "out");
    const plan = createScanPlan(device, { input: inBuf, output, capacity: cap });
    for (const n of [cap, 4097, 64, 1, 0, 12345]) {
      device.queue.writeBuffer(output, 0, new Uint32Array(cap).fill(0xffffffff));
      plan.setCount(device, n);
      submitDispatches(device, plan.dispatches);
      const got = await readU32(device, output, cap);
      expectU32Equal(got.subarray(0, n), exclusiveScanRef(input, n), `scan n=${n}`);
      for (let i = n; i < cap; i++) if (got[i] !== 0xffffffff) expect.fail(`n=${n}: wrote past the count at ${i}`);
    }
    expect(() => plan.setCount(device, cap + 1)).toThrow(/outside/);
    plan.destroy();
  });

  it("rejects aliased input and output", async () => {
    const device = await testDevice();
    const b = createStorage(device, 64, "b");
    expect(() => exclusiveScan(device, { input: b, output: b, count: 16 })).toThrow(/different buffers/);
  });
});
