import { describe, expect, it } from "vitest";
import { setUboSplit, setUboWide, uboTile } from "../../src/kernels/gemm_ubo.ts";
import { lpsShapeFor, setLps } from "../../src/kernels/gemm_lps.ts";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { type Activation, type GemmVariant } from "../../src/kernels/gemm.ts";
import { linearBackward, linearForward } from "../../src/kernels/linear.ts";
import { linearBackwardRef, linearForwardRef } from "../../src/kernels/reference/gemm.ts";
import { expectAllClose, sumTolerance, U32 } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

const nan = (n: number) => new Float32Array(n).fill(NaN);

/** [m, n, k]: awkward sizes plus the Kaggle DLRM layers. */
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [3, 17, 1], [17, 3, 129], [129, 17, 3], [1, 129, 17], [17, 129, 129],
  [128, 512, 13], [64, 367, 33], [200, 1, 256], [129, 16, 64], [3, 1, 367],
];

async function forward(variant: GemmVariant | undefined, m: number, n: number, k: number, activation: Activation) {
  const device = await testDevice();
  const rng = new Rng(m * 7919 + n * 31 + k + activation.length);
  const x = rng.f32(m * k);
  const w = rng.f32(n * k, -0.5, 0.5);
  const b = rng.f32(n);
  const y = uploadStorage(device, nan(m * n), "y");
  linearForward(device, {
    x: uploadStorage(device, x, "x"), w: uploadStorage(device, w, "w"), b: uploadStorage(device, b, "b"), y, m, n, k, activation, variant,
  });
  const ref = linearForwardRef(x, w, b, m, n, k, activation);
  const tol = (i: number) => {
    const t = sumTolerance(k + 1, ref.absSum[i]!);
    if (activation !== "sigmoid") return t; // none and relu are 1-Lipschitz
    // sigmoid' <= 1/4; WGSL exp is within (3 + 2|z|) ulp, then an add and a division.
    return 0.25 * t + 0.25 * (3 + 2 * Math.abs(ref.pre[i]!)) * 2 * U32 + 4 * U32;
  };
  expectAllClose(await readF32(device, y, m * n), ref.value, tol, `${variant ?? "auto"} ${activation} y ${m}x${n}x${k}`);
}

async function backward(variant: GemmVariant | undefined, m: number, n: number, k: number, activation: "none" | "relu", withDx: boolean) {
  const device = await testDevice();
  const rng = new Rng(m * 104729 + n * 131 + k * 3 + Number(withDx) + activation.length);
  const x = rng.f32(m * k);
  const w = rng.f32(n * k, -0.5, 0.5);
  // Forward output: negatives, exact zeros (masked: relu'(0) = 0) and positives.
  const y = rng.f32(m * n);
  for (let i = 0; i < y.length; i += 5) y[i] = 0;
  const dy = rng.f32(m * n);
  const dx = uploadStorage(device, nan(m * k), "dx");
  const dw = uploadStorage(device, nan(n * k), "dw");
  const db = uploadStorage(device, nan(n), "db");
  linearBackward(device, {
    x: uploadStorage(device, x, "x"), w: uploadStorage(device, w, "w"), y: uploadStorage(device, y, "y"), dy: uploadStorage(device, dy, "dy"),
    dx: withDx ? dx : undefined, dw, db, m, n, k, activation, variant,
  });
  const ref = linearBackwardRef(x, w, y, dy, m, n, k, activation);
  const tag = `${variant ?? "auto"} ${activation} ${m}x${n}x${k}`;
  expectAllClose(await readF32(device, dw, n * k), ref.dw.value, (i) => sumTolerance(m, ref.dw.absSum[i]!), `dw ${tag}`);
  expectAllClose(await readF32(device, db, n), ref.db.value, (i) => sumTolerance(m, ref.db.absSum[i]!), `db ${tag}`);
  const dxOut = await readF32(device, dx, m * k);
  if (withDx) expectAllClose(dxOut, ref.dx.value, (i) => sumTolerance(n, ref.dx.absSum[i]!), `dx ${tag}`);
  else expect(dxOut.every(Number.isNaN), `dx must stay unwritten without dx ${tag}`).toBe(true);
}

describe("linear forward Y = act(X W^T + b)", () => {
  for (const variant of [undefined, "rb", "tiled", "ubo"] as const) {
    for (const activation of ["none", "relu", "sigmoid"] as const) {
      it(`${variant ?? "auto"} ${activation}`, async () => {
        for (const [m, n, k] of SHAPES) await forward(variant, m, n, k, activation);
      });
    }
  }
  it("auto: Kaggle batch 2048 layers (bottom 13->512, top 256->1)", async () => {
    await forward(undefined, 2048, 512, 13, "relu");
    await forward(undefined, 2048, 1, 256, "sigmoid");
  });
});

describe("linear backward (dX, dW, db; relu mask from Y)", () => {
  for (const variant of [undefined, "rb", "tiled", "ubo"] as const) {
    for (const activation of ["none", "relu"] as const) {
      it(`${variant ?? "auto"} ${activation}, with and without dx`, async () => {
        for (const [i, [m, n, k]] of SHAPES.entries()) await backward(variant, m, n, k, activation, i % 3 !== 2);
        await backward(variant, 17, 3, 129, activation, false);
      });
    }
  }
});

describe("uniform-buffer GEMM (gemm_ubo_nt + gemm_pack)", () => {
  it("plans 4, 2 and 1 columns per invocation by K, and rejects K too long for one binding", () => {
    expect(uboTile(13)).toEqual({ TN: 4, KP: 16 });
    expect(uboTile(512)).toEqual({ TN: 4, KP: 512 });
    expect(uboTile(700)).toEqual({ TN: 2, KP: 704 });
    expect(uboTile(1500)).toEqual({ TN: 1, KP: 1504 });
    expect(uboTile(2049).TN).toBe(0);
  });
  it("long K (split into 512 slices, the last applying bias and activation), partial last chunk, K % 4 tails, relu mask on dX", async () => {
    for (const activation of ["none", "relu"] as const) {
      await forward("ubo", 33, 40, 700, activation);
      await forward("ubo", 9, 24, 1501, activation);
      await forward("ubo", 130, 70, 6, activation);
      await backward("ubo", 19, 700, 40, activation, true);
      await backward("ubo", 10, 1501, 24, activation, true);
      // dW on the uniform-buffer kernel: batch reductions of 2, 1 column(s) per invocation (batch 700, 1501), and past one binding (2100: rb).
      await backward("ubo", 700, 20, 40, activation, false);
      await backward("ubo", 1501, 17, 19, activation, true);
      await backward("ubo", 2100, 16, 17, activation, false);
      // Reductions past 512 (dW over the batch, dX over n) split into accumulating slices of 512: 512 + 512 + a 6-term tail.
      await backward("ubo", 1030, 20, 24, activation, true);
      await backward("ubo", 24, 1030, 20, activation, true);
      // The forward split too: bias and activation applied by the last slice.
      await forward("ubo", 19, 24, 1030, activation);
    }
    await forward("ubo", 19, 24, 1030, "sigmoid");
  });
  it("unsplit long K: 2 and 1 columns per invocation (setUboSplit off)", async () => {
    const device = await testDevice();
    setUboSplit(device, false);
    try {
      for (const activation of ["none", "relu"] as const) {
        await forward("ubo", 33, 40, 700, activation);
        await forward("ubo", 9, 24, 1501, activation);
        await backward("ubo", 19, 700, 40, activation, true);
        await backward("ubo", 1501, 17, 19, activation, true);
      }
    } finally {
      setUboSplit(device, true);
    }
  });
});

describe("uniform-buffer GEMM, wide tile (8 columns x 4 rows per invocation, slices of 256)", () => {
  it("forward, dX and dW with partial 64-column chunks, row counts not a multiple of 4, K slices with tails, relu mask", async () => {
    const device = await testDevice();
    setUboWide(device, true);
    setLps(device, false); // the wide tile itself (lavapipe's default routes >= 128 columns to lps)
    try {
      for (const activation of ["none", "relu"] as const) {
        await forward("ubo", 33, 70, 300, activation); // 64 + 6 columns, K = 256 + 44 (K % 4 == 0)
        await forward("ubo", 6, 130, 13, activation); // 2 full chunks + 2, one short slice with a K % 4 tail
        await forward("ubo", 2, 64, 517, activation); // TM 2, slices 256 + 256 + 5
        await backward("ubo", 19, 100, 67, activation, true); // dX 67 columns (64 + 3), over n = 100
        await backward("ubo", 300, 65, 70, activation, true); // dW: rows 65, 70 columns, reduction over 300 (sliced)
      }
      await forward("ubo", 9, 64, 257, "sigmoid");
    } finally {
      setUboWide(device, undefined);
      setLps(device, undefined);
    }
  });
});

describe("lps GEMM (workgroup-memory A at constant indices, generated straight-line K slices)", () => {
  it("plans K slices of 16 ... 256 (fewest padded steps + per-slice overhead) at 2 columns per invocation", () => {
    expect(lpsShapeFor(13)).toEqual({ TU: 12, TL: 2, KS: 16 });
    expect(lpsShapeFor(33)).toEqual({ TU: 12, TL: 2, KS: 64 });
    expect(lpsShapeFor(100)).toEqual({ TU: 12, TL: 2, KS: 128 });
    expect(lpsShapeFor(367)).toEqual({ TU: 12, TL: 2, KS: 128 });
    expect(lpsShapeFor(129)).toEqual({ TU: 12, TL: 2, KS: 256 });
    expect(lpsShapeFor(2048)).toEqual({ TU: 12, TL: 2, KS: 256 });
  });
  it("forward, dX and dW: partial 128-column chunks, rows not a multiple of 12, K slices with tails, K % 4 != 0, relu mask", async () => {
    const device = await testDevice();
    // Slices of 16 (short generated code, many accumulating slices), then one planned slice of 48.
    setLps(device, true, { KS: 16 });
    try {
      await forward("ubo", 33, 140, 300, "relu"); // 128 + 12 columns, K = 18 x 16 + 12 (vec4 A loads)
      await forward("ubo", 6, 130, 13, "none"); // 128 + 2 columns, one slice with a K % 4 tail
      await forward("ubo", 14, 128, 37, "sigmoid"); // K = 16 + 16 + 5 (scalar A loads)
      await backward("ubo", 19, 200, 131, "relu", true); // dX: 131 columns, K = n = 200; dW: 200 x 131 over 19 rows
      await backward("ubo", 150, 65, 130, "none", true); // dX 130 columns over K = 65; dW 65 x 130, reduction over 150 = 9 x 16 + 6
      setLps(device, true);
      await forward("ubo", 25, 133, 40, "relu"); // planned: one slice of 64 holding K = 40
    } finally {
      setLps(device, undefined);
    }
  });
});
