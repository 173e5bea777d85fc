import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { copyF32 } from "../../src/kernels/copy.ts";
import { copyRef } from "../../src/kernels/reference/copy.ts";
import { expectAllClose } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

describe("copy_f32", () => {
  for (const count of [4, 1020, 1028, 4 * 256 * 3 + 4]) {
    it(`copies ${count} floats`, async () => {
      const device = await testDevice();
      const src = new Rng(count).f32(count);
      const dst = uploadStorage(device, new Float32Array(count).fill(NaN), "dst");
      copyF32(device, { src: uploadStorage(device, src, "src"), dst, count });
      expectAllClose(await readF32(device, dst), copyRef(src, count), 0, "copy");
    });
  }
  it("rejects a count that is not a multiple of 4", async () => {
    const device = await testDevice();
    const b = uploadStorage(device, new Float32Array(8), "b");
    expect(() => copyF32(device, { src: b, dst: b, count: 6 })).toThrow(/multiple of 4/);
  });
});
