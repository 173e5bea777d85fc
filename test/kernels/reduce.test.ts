import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { prepareReduceSum, reduceSum } from "../../src/kernels/reduce.ts";
import { reduceSumRef } from "../../src/kernels/reference/reduce.ts";
import { expectBitIdentical, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

describe("reduce_sum", () => {
  for (const count of [1, 3, 255, 256, 257, 4095, 4096, 4097, 100003, 1_048_577 * 3]) {
    it(`sums ${count} floats`, async () => {
      const device = await testDevice();
      const x = new Rng(count).f32(count, -1, 3);
      const input = uploadStorage(device, x, "in");
      const output = uploadStorage(device, new Float32Array(4).fill(NaN), "out");
      const scale = 1 / count;
      reduceSum(device, { input, output, count, outputOffset: 2, scale });
      const got = await readF32(device, output, 4);
      const ref = reduceSumRef(x, count, scale);
      // log-depth tree, but use the worst-case K-term bound
      const tol = sumTolerance(count, ref.sumAbs);
      expect(Math.abs(got[2]! - ref.sum), `sum of ${count}: got ${got[2]}, expected ${ref.sum}`).toBeLessThanOrEqual(tol);
      // untouched neighbours
      expect(Number.isNaN(got[1]!) && Number.isNaN(got[3]!)).toBe(true);
      input.destroy();
    });
  }

  it("sums only the first `count` elements and is bit-reproducible", async () => {
    const device = await testDevice();
    const n = 70001;
    const x = new Rng(5).f32(n + 100);
    x.fill(1e6, n); // garbage beyond count must not be read
    const input = uploadStorage(device, x, "in");
    const output = uploadStorage(device, new Float32Array(2).fill(NaN), "out");
    const d = prepareReduceSum(device, { input, output, count: n });
    submitDispatches(device, d);
    const a = await readF32(device, output, 1);
    submitDispatches(device, d);
    const b = await readF32(device, output, 1);
    expectBitIdentical(a, b, "repeat");
    const ref = reduceSumRef(x, n);
    expect(Math.abs(a[0]! - ref.sum)).toBeLessThanOrEqual(sumTolerance(n, ref.sumAbs));
  });

  it("three passes (ping-pong scratch) with one element per invocation", async () => {
    const device = await testDevice();
    const n = 100003; // 391 -> 2 -> 1 partial sums
    const x = new Rng(9).f32(n);
    const input = uploadStorage(device, x, "in");
    const output = uploadStorage(device, new Float32Array(1).fill(NaN), "out");
    const d = prepareReduceSum(device, { input, output, count: n, perInvocation: 1, scale: 0.5 });
    expect(d.length).toBe(3);
    submitDispatches(device, d);
    const got = (await readF32(device, output, 1))[0]!;
    const ref = reduceSumRef(x, n, 0.5);
    expect(Math.abs(got - ref.sum)).toBeLessThanOrEqual(sumTolerance(n, ref.sumAbs));
  });

  it("10M elements", async () => {
    const device = await testDevice();
    const n = 10_000_000;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = ((i * 2654435761) % 1000) / 1000 - 0.25;
    const input = uploadStorage(device, x, "in");
    const output = uploadStorage(device, new Float32Array(1).fill(NaN), "out");
    reduceSum(device, { input, output, count: n });
    const got = (await readF32(device, output, 1))[0]!;
    const ref = reduceSumRef(x, n);
    expect(Math.abs(got - ref.sum)).toBeLessThanOrEqual(sumTolerance(n, ref.sumAbs));
    input.destroy();
  });

  it("rejects bad arguments", async () => {
    const device = await testDevice();
    const b = uploadStorage(device, new Float32Array(8), "b");
    expect(() => reduceSum(device, { input: b, output: b, count: 0 })).toThrow(/count/);
    expect(() => reduceSum(device, { input: b, output: b, count: 9 })).toThrow(/needs/);
    expect(() => reduceSum(device, { input: b, output: b, count: 8, outputOffset: 8 })).toThrow(/no element/);
  });
});
