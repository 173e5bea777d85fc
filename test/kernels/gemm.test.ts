import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { KernelInputError } from "../../src/gpu/errors.ts";
import { gemm, type GemmVariant, planGemm } from "../../src/kernels/gemm.ts";
import { gemmRef } from "../../src/kernels/reference/gemm.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

const SIZES = [1, 3, 17, 129];

async function check(device: GPUDevice, variant: GemmVariant, m: number, n: number, k: number, transA: boolean, transB: boolean, vec4 = true) {
  const rng = new Rng(m * 1_000_003 + n * 1009 + k * 7 + Number(transA) * 2 + Number(transB));
  const a = rng.f32(m * k);
  const b = rng.f32(k * n);
  const c = uploadStorage(device, new Float32Array(m * n).fill(NaN), "c");
  gemm(device, { a: uploadStorage(device, a, "a"), b: uploadStorage(device, b, "b"), c, m, n, k, transA, transB, variant, vec4 });
  const ref = gemmRef(a, b, m, n, k, transA, transB);
  const what = `${variant}${vec4 ? "" : " scalar"} ${transA ? "T" : "N"}${transB ? "T" : "N"} ${m}x${n}x${k}`;
  expectAllClose(await readF32(device, c, m * n), ref.value, (i) => sumTolerance(k, ref.absSum[i]!), what);
}

describe("gemm C = op(A) op(B)", () => {
  for (const variant of ["rb", "tiled"] as const) {
    for (const [transA, transB] of [[false, false], [false, true], [true, false], [true, true]] as const) {
      it(`${variant} ${transA ? "T" : "N"}${transB ? "T" : "N"}: M, N, K in {1, 3, 17, 129}`, async () => {
        const device = await testDevice();
        for (const m of SIZES) for (const n of SIZES) for (const k of SIZES) {
          // The full cube for NN; a diagonal-ish subset for the other layouts keeps the run short.
          if ((transA || transB) && (m + n + k) % 2 === 1 && !(m === 1 || n === 1)) continue;
          await check(device, variant, m, n, k, transA, transB);
        }
      });
    }
    it(`${variant}: larger shapes (tile multiples and not)`, async () => {
      const device = await testDevice();
      await check(device, variant, 128, 256, 64, false, false);
      await check(device, variant, 130, 67, 200, false, true);
      await check(device, variant, 65, 257, 33, true, false);
      await check(device, variant, 2048, 1, 256, false, true);
      await check(device, variant, 1, 300, 512, true, true);
      // n % 4 == 0: the vec4 kernel (rb), with edges in m and in vec4 columns.
      await check(device, variant, 3, 16, 17, false, false);
      await check(device, variant, 17, 132, 3, true, false);
      await check(device, variant, 129, 260, 129, false, false);
      await check(device, variant, 9, 36, 1, true, false);
    });
  }

  it("rb scalar path on vec4-eligible shapes", async () => {
    const device = await testDevice();
    await check(device, "rb", 17, 132, 3, false, false, false);
    await check(device, "rb", 129, 260, 129, true, false, false);
  });

  it("chooses the orientation that keeps the long dimension on SIMD lanes", async () => {
    const device = await testDevice();
    const dummy = uploadStorage(device, new Float32Array(4), "dummy");
    const spec = { a: dummy, b: dummy, c: dummy, k: 1, variant: "rb" as const };
    expect(planGemm(device, { ...spec, m: 2048, n: 1 }).swapped).toBe(true);
    expect(planGemm(device, { ...spec, m: 2048, n: 1 }).constants.TM).toBe(1);
    expect(planGemm(device, { ...spec, m: 128, n: 512 }).swapped).toBe(false);
    expect(planGemm(device, { ...spec, m: 128, n: 512 }).shader).toBe("gemm_rb_nn4");
    expect(planGemm(device, { ...spec, m: 128, n: 512, transB: true }).shader).toBe("gemm_rb");
  });

  it("rejects bad shapes and short buffers", async () => {
    const device = await testDevice();
    const a = uploadStorage(device, new Float32Array(12), "a");
    const c = uploadStorage(device, new Float32Array(12), "c");
    expect(() => gemm(device, { a, b: a, c, m: 0, n: 3, k: 4 })).toThrow(KernelInputError);
    expect(() => gemm(device, { a, b: a, c, m: 2.5, n: 3, k: 4 })).toThrow(/positive integer/);
    expect(() => gemm(device, { a, b: a, c, m: 4, n: 4, k: 4 })).toThrow(/needs 64/);
    expect(() => gemm(device, { a, b: a, c: a, m: 3, n: 3, k: 1 })).toThrow(/alias/);
  });
});
