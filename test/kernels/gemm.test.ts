import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { KernelInputError } from "../../src/gpu/errors.ts";
import { gemm, type GemmVariant, planGemm } from "../../src/kernels/gemm.ts";
import { gemmRef } from "../../src/kernels/reference/gemm.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

const SIZES = [1, 3, 17, 129];

async function check(
  device: GPUDevice, variant: GemmVariant, m: number, n: number, k: number, transA: boolean, transB: boolean, vec4 = true,
  tile?: { TM: number; TN: number; WG: number },
) {
  const rng = new Rng(m * 1_000_003 + n * 1009 + k * 7 + Number(transA) * 2 + Number(transB));
  const a = rng.f32(m * k);
  const b = rng.f32(k * n);
  const c = uploadStorage(device, new Float32Array(m * n).fill(NaN), "c");
  gemm(device, { a: uploadStorage(device, a, "a"), b: uploadStorage(device, b, "b"), c, m, n, k, transA, transB, variant, vec4, tile });
  const ref = gemmRef(a, b, m, n, k, transA, transB);
  const what = `${variant}${vec4 ? "" : " scalar"} ${transA ? "T" : "N"}${transB ? "T" : "N"} ${m}x${n}x${k}${tile ? ` tile ${JSON.stringify(tile)}` : ""}`;
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

  it("rb scalar NT path (vec4: false) on awkward sizes", async () => {
    const device = await testDevice();
    for (const [m, n, k] of [[1, 1, 1], [3, 17, 129], [129, 3, 17], [17, 129, 4], [2048, 1, 13]]) await check(device, "rb", m!, n!, k!, false, true, false);
  });

  it("nt4 (NT, 4 K terms per step): K % 4 in {0, 1, 2, 3}, both orientations, every row count", async () => {
    const device = await testDevice();
    // Edges in rows (TM = 8), in columns (4 per lane x WG lanes), and in the K tail.
    for (const k of [1, 2, 3, 4, 5, 7, 8, 13, 129, 256]) {
      await check(device, "rb", 17, 33, k, false, true);   // C orientation
      await check(device, "rb", 129, 3, k, false, true);   // swapped: C^T = B A^T
    }
    for (const [m, n, k] of [[1, 1, 1], [1, 129, 17], [129, 1, 367], [9, 31, 64], [65, 257, 12], [2048, 1, 256], [128, 16, 64]]) {
      await check(device, "rb", m!, n!, k!, false, true);
    }
    // Forced tiles: every row count 1..8 and other workgroup sizes.
    for (const TM of [1, 2, 3, 5, 7, 8]) await check(device, "rb", 19, 45, 23, false, true, true, { TM, TN: 1, WG: 8 });
    for (const WG of [1, 4, 16, 64]) await check(device, "rb", 37, 70, 9, false, true, true, { TM: 8, TN: 1, WG });
  });

  it("rb_nn4 (vec4 columns, written-out tile): every row count, K % 4 tails, NN and TN", async () => {
    const device = await testDevice();
    for (const k of [1, 2, 3, 5, 8, 13]) {
      await check(device, "rb", 11, 36, k, false, false);
      await check(device, "rb", 11, 36, k, true, false);
    }
    for (const TM of [1, 2, 3, 5, 7, 8]) {
      await check(device, "rb", 19, 68, 21, false, false, true, { TM, TN: 1, WG: 16 });
      await check(device, "rb", 19, 68, 21, true, false, true, { TM, TN: 1, WG: 4 });
    }
  });

  it("chooses the orientation that keeps the long dimension on SIMD lanes", async () => {
    const device = await testDevice();
    const dummy = uploadStorage(device, new Float32Array(4), "dummy");
    const spec = { a: dummy, b: dummy, c: dummy, k: 1, variant: "rb" as const };
    expect(planGemm(device, { ...spec, m: 2048, n: 1 }).swapped).toBe(true);
    expect(planGemm(device, { ...spec, m: 2048, n: 1 }).constants.TM).toBe(1);
    expect(planGemm(device, { ...spec, m: 128, n: 512 }).swapped).toBe(false);
    expect(planGemm(device, { ...spec, m: 128, n: 512 }).shader).toBe("gemm_rb_nn4");
    expect(planGemm(device, { ...spec, m: 128, n: 512, transB: true }).shader).toBe("gemm_nt4");
    expect(planGemm(device, { ...spec, m: 128, n: 512, transB: true }).swapped).toBe(false);
    expect(planGemm(device, { ...spec, m: 2048, n: 1, transB: true }).swapped).toBe(true);
    expect(planGemm(device, { ...spec, m: 128, n: 512, transB: true, vec4: false }).shader).toBe("gemm_rb");
    expect(planGemm(device, { ...spec, m: 128, n: 512, transB: true, mask: { buffer: dummy, operand: "a" } }).shader).toBe("gemm_rb");
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
