import { describe, expect, it } from "vitest";
import { readU32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { prepareRadixSort, radixPasses, radixSort } from "../../src/kernels/radix_sort.ts";
import { stableSortRef } from "../../src/kernels/reference/sort.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

function expectU32Equal(actual: Uint32Array, expected: Uint32Array, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) expect.fail(`${what}[${i}] = ${actual[i]}, expected ${expected[i]}`);
  }
}

async function check(count: number, bits: number | undefined, keyRange: number, seed: number, scan?: "fused" | "levels"): Promise<void> {
  const device = await testDevice();
  const rng = new Rng(seed);
  const keys = new Uint32Array(count);
  // Values = positions, so stability is visible: equal keys must keep increasing values.
  const values = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    keys[i] = keyRange >= 2 ** 32 ? rng.nextU32() : rng.int(keyRange);
    values[i] = i;
  }
  const kb = uploadStorage(device, keys, "keys");
  const vb = uploadStorage(device, values, "values");
  const sorted = radixSort(device, { keys: kb, values: vb, count, bits, scan });
  const ref = stableSortRef(keys, values, count, bits ?? 32);
  expectU32Equal(await readU32(device, sorted.keysOut, count), ref.keys, "keys");
  expectU32Equal(await readU32(device, sorted.valuesOut, count), ref.values, "values");
  sorted.destroy();
}

describe("radix sort", () => {
  it("splits the key bits into near-equal passes of at most 8 bits", () => {
    expect(radixPasses(32)).toEqual([8, 8, 8, 8]);
    expect(radixPasses(23)).toEqual([8, 8, 7]);
    expect(radixPasses(9)).toEqual([5, 4]);
    expect(radixPasses(1)).toEqual([1]);
  });
  for (const count of [1, 2, 255, 256, 257, 4099]) {
    it(`sorts ${count} full 32-bit keys`, () => check(count, undefined, 2 ** 32, count));
  }
  it("sorts 100003 keys with many duplicates (keys < 50), 6 bits, stable", () => check(100003, 6, 50, 1));
  it("sorts 100003 keys on 17 bits (3 passes, result in scratch)", () => check(100003, 17, 2 ** 17, 2));
  // The digit-count scans: one-dispatch radix_sort_offsets (auto for histograms <= 65536 words) and
  // scan.ts's levels, each forced on sizes where auto picks the other; radix 256 and odd radices.
  it("sorts with either digit-count scan: 53248 keys on 22 bits (config A's sort), 300007 keys on 16 bits, 4099 on 9", async () => {
    await check(53248, 22, 2 ** 22, 7); // auto: fused
    await check(53248, 22, 2 ** 22, 8, "levels");
    await check(300007, 16, 2 ** 16, 9); // auto: levels (256 x 1024 words)
    await check(300007, 16, 60000, 10, "fused");
    await check(4099, 9, 2 ** 9, 11, "levels");
    await check(4099, 9, 300, 12, "fused");
  });
  it("sorts only the low bits: higher bits ride along, order among them stable", () => check(5000, 4, 2 ** 12, 3));
  it("sorts all-equal keys without moving anything", () => check(3000, 20, 1, 4));

  it("re-sorts shorter prefixes with setCount (either digit-count scan)", async () => {
    const device = await testDevice();
    const cap = 30000;
    const rng = new Rng(11);
    const keys = new Uint32Array(cap);
    const values = new Uint32Array(cap);
    const kb = uploadStorage(device, keys, "keys");
    const vb = uploadStorage(device, values, "values");
    for (const scan of ["fused", "levels"] as const) {
      const sort = prepareRadixSort(device, { keys: kb, values: vb, count: cap, bits: 20, scan });
      for (const n of [cap, 3, 700, 0, 1, 29999]) {
        for (let i = 0; i < cap; i++) {
          keys[i] = rng.int(2 ** 20);
          values[i] = i;
        }
        device.queue.writeBuffer(kb, 0, keys);
        device.queue.writeBuffer(vb, 0, values);
        sort.setCount(device, n);
        submitDispatches(device, sort.dispatches);
        const ref = stableSortRef(keys, values, n, 20);
        expectU32Equal(await readU32(device, sort.keysOut, n === 0 ? 1 : n).then((a) => a.subarray(0, n)), ref.keys, `keys n=${n}`);
        expectU32Equal(await readU32(device, sort.valuesOut, n === 0 ? 1 : n).then((a) => a.subarray(0, n)), ref.values, `values n=${n}`);
      }
      sort.destroy();
    }
  });

  it("rejects bad arguments", async () => {
    const device = await testDevice();
    const b = uploadStorage(device, new Uint32Array(8), "b");
    const c = uploadStorage(device, new Uint32Array(8), "c");
    expect(() => prepareRadixSort(device, { keys: b, values: c, count: 8, bits: 0 })).toThrow(/bits/);
    expect(() => prepareRadixSort(device, { keys: b, values: b, count: 8 })).toThrow(/different/);
    expect(() => prepareRadixSort(device, { keys: b, values: c, count: 9 })).toThrow(/need 9/);
  });
});
