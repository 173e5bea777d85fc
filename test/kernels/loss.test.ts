import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { type LossKind, lossForwardBackward, prepareLoss } from "../../src/kernels/loss.ts";
import { prepareReduceSum } from "../../src/kernels/reduce.ts";
import { lossRef } from "../../src/kernels/reference/loss.ts";
import { expectAllClose, sumTolerance, U32 } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

/**
 * Tolerances from WGSL's accuracy bounds: exp within 3 + 2|x| ulp, log within
 * 2^-21 absolute on [0.5, 2] (3 ulp elsewhere), division 2.5 ulp. So p carries
 * about (6 + 2|z|) ulp; a loss L(p) moves by |dL/dp| times that, plus the log's error.
 */
const LOG_ABS = 2 ** -21;
function dp(z: number, p: number): number {
  return (6 + 2 * Math.abs(z)) * U32 * p + 1e-30;
}

const WEIGHTS: [number, number] = [0.35, 2.5];

async function run(kind: LossKind, z: Float32Array, y: Float32Array) {
  const device = await testDevice();
  const B = z.length;
  const nan = () => uploadStorage(device, new Float32Array(B).fill(NaN), "out");
  const prob = nan();
  const grad = nan();
  const loss = nan();
  const mean = uploadStorage(device, new Float32Array(1).fill(NaN), "mean");
  const args = { logits: uploadStorage(device, z, "z"), labels: uploadStorage(device, y, "y"), prob, grad, loss, batch: B, kind, classWeights: WEIGHTS };
  submitDispatches(device, [...prepareLoss(device, args), ...prepareReduceSum(device, { input: loss, output: mean, count: B, scale: 1 / B })]);
  return {
    prob: await readF32(device, prob, B), grad: await readF32(device, grad, B), loss: await readF32(device, loss, B),
    mean: (await readF32(device, mean, 1))[0]!,
  };
}

function checkAll(kind: LossKind, z: Float32Array, y: Float32Array, got: Awaited<ReturnType<typeof run>>) {
  const B = z.length;
  const ref = lossRef(z, y, kind, WEIGHTS);
  expectAllClose(got.prob, ref.prob, (i) => dp(z[i]!, ref.prob[i]!), `${kind} prob`);
  const w = (i: number) => (kind === "wbce" ? WEIGHTS[y[i]! >= 1 ? 1 : 0] : 1);
  expectAllClose(got.loss, ref.loss, (i) => {
    const p = ref.prob[i]!, yi = y[i]!, zi = z[i]!;
    const e = dp(zi, p);
    if (kind === "mse") return 2 * Math.abs(p - yi) * e + 4 * U32 * ref.loss[i]! + 1e-30;
    if (kind === "bce") return LOG_ABS + 4 * U32 * (2 * Math.abs(zi) + ref.loss[i]!) + (6 + 2 * Math.abs(zi)) * U32 * Math.exp(-Math.abs(zi));
    // BCELoss on p: dL/dp = -y/p + (1-y)/(1-p), each log also within 2^-21 + 3 ulp
    const slope = Math.abs(yi) / Math.max(p, 1e-30) + Math.abs(1 - yi) / Math.max(1 - p, 1e-30);
    return w(i) * (Math.min(slope * e, 200) + 2 * LOG_ABS + 8 * U32 * Math.abs(ref.loss[i]! / w(i)));
  }, `${kind} loss`);
  expectAllClose(got.grad, ref.grad, (i) => {
    const p = ref.prob[i]!, yi = y[i]!, zi = z[i]!;
    const e = dp(zi, p);
    const gB = Math.abs(ref.grad[i]! * B);
    if (kind === "mse") return (2 * (p * (1 - p) + Math.abs(p - yi)) * e + 10 * U32 * gB) / B + 1e-30;
    return (w(i) * (e + 2 * U32) + (10 + 2 * Math.abs(zi)) * U32 * gB) / B + 1e-30;
  }, `${kind} grad`);
  let sumAbsTol = 0;
  for (let i = 0; i < B; i++) sumAbsTol += Math.abs(got.loss[i]! - ref.loss[i]!);
  const sumAbs = ref.loss.reduce((a, v) => a + Math.abs(v), 0);
  expect(Math.abs(got.mean - ref.mean), `${kind} mean loss`).toBeLessThanOrEqual((sumTolerance(B, sumAbs) + sumAbsTol) / B + 1e-30);
}

describe("fused sigmoid + loss", () => {
  for (const kind of ["bce", "bce-prob", "wbce", "mse"] as const) {
    for (const B of [1, 3, 255, 257, 1000]) {
      it(`${kind} B=${B}`, async () => {
        const rng = new Rng(B * 7 + kind.length);
        // |z| <= 8 keeps p away from the float32 saturation edge, where
        // bce-prob's clamp at -100 makes the loss jump.
        const z = rng.f32(B, -8, 8);
        const y = new Float32Array(B).map(() => rng.int(2));
        if (kind === "bce" || kind === "mse") for (let i = 0; i < B; i += 5) y[i] = 0.25; // soft targets too
        checkAll(kind, z, y, await run(kind, z, y));
      });
    }
    it(`${kind} extreme logits stay finite`, async () => {
      const zs = [30, -30, 100, -100, 0, 88, -88, 1e4, -1e4];
      const z = new Float32Array(zs.flatMap((v) => [v, v]));
      const y = new Float32Array(zs.flatMap(() => [0, 1]));
      const got = await run(kind, z, y);
      for (const [name, arr] of Object.entries(got)) {
        for (const v of typeof arr === "number" ? [arr] : arr) expect(Number.isFinite(v), `${kind} ${name} finite`).toBe(true);
      }
      if (kind !== "bce-prob" && kind !== "wbce") checkAll(kind, z, y, got);
      else {
        // Saturated p: PyTorch's clamp gives exactly 100 per wrong sample and 0 for a right one.
        const ref = lossRef(z, y, kind, WEIGHTS);
        for (let i = 0; i < z.length; i++) {
          if (Math.abs(z[i]!) < 30) continue;
          // A denormal p (z = -100) may be flushed to 0 by the GPU, moving log(p) = -99.98 to the clamp -100.
          const pf = Math.fround(ref.prob[i]!);
          const w = kind === "wbce" ? WEIGHTS[y[i]! >= 1 ? 1 : 0] : 1;
          const flush = pf > 0 && pf < 2 ** -126 ? w * (100 + Math.log(pf)) : 0;
          const err = Math.abs(got.loss[i]! - ref.loss[i]!);
          expect(err, `${kind} loss[${i}] z=${z[i]} y=${y[i]}: ${got.loss[i]} vs ${ref.loss[i]}`).toBeLessThanOrEqual(flush + 1e-4);
        }
      }
    });
  }
  it("bce: large logits give the exact linear loss |z| for the wrong label", async () => {
    const z = new Float32Array([100, -100, 30]);
    const y = new Float32Array([0, 1, 0]);
    const got = await run("bce", z, y);
    expect(Array.from(got.loss)).toEqual([100, 100, 30]);
    expect(got.grad[0]).toBeCloseTo(1 / 3, 6);
    expect(got.grad[1]).toBeCloseTo(-1 / 3, 6);
  });
  for (const kind of ["bce-prob", "wbce", "mse"] as const) {
    it(`${kind} with the output clamp (--loss-threshold 0.2)`, async () => {
      const device = await testDevice();
      const rng = new Rng(99 + kind.length);
      const B = 67;
      const z = rng.f32(B, -4, 4);
      const y = new Float32Array(B).map(() => rng.int(2));
      const out = () => uploadStorage(device, new Float32Array(B).fill(NaN), "out");
      const [prob, grad, loss] = [out(), out(), out()];
      const thr = 0.2;
      lossForwardBackward(device, { logits: uploadStorage(device, z, "z"), labels: uploadStorage(device, y, "y"), prob, grad, loss, batch: B, kind, classWeights: WEIGHTS, threshold: thr });
      const ref = lossRef(z, y, kind, WEIGHTS, thr);
      const [gp, gg, gl] = [await readF32(device, prob, B), await readF32(device, grad, B), await readF32(device, loss, B)];
      let clamped = 0;
      for (let i = 0; i < B; i++) {
        const inside = ref.prob[i]! > thr && ref.prob[i]! < 1 - thr;
        if (!inside) {
          clamped++;
          expect(Math.abs(gg[i]!), `grad[${i}] where the clamp holds`).toBe(0);
          expect(gp[i]).toBe(Math.fround(ref.prob[i]!));
        }
      }
      expect(clamped).toBeGreaterThan(5);
      // Inside the clamp, the same bounds as without it (p(1-p) >= 0.16 keeps dL/dp moderate).
      expectAllClose(gp, ref.prob, (i) => dp(z[i]!, ref.prob[i]!), "prob");
      expectAllClose(gg, ref.grad, (i) => (64 * U32 * Math.abs(ref.grad[i]! * B) + 32 * U32) / B, "grad");
      expectAllClose(gl, ref.loss, (i) => 64 * U32 * (Math.abs(ref.loss[i]!) + 1), "loss");
    });
  }
  // PyTorch in float32, written out (independent of lossRef): p = sigmoid(z) rounded to f32;
  // BCELoss backward (p - y) / max((1 - p) p, 1e-12); sigmoid backward times (1 - p) p; mean over B;
  // wbce weights by the label. At these saturated but representable logits the 1e-12 clamp decides
  // the gradient (z = -30, -50), and a larger epsilon (1e-6) would already change it at |z| = 15.
  for (const kind of ["bce-prob", "wbce"] as const) {
    it(`${kind}: gradients at saturated logits (z = ±15, ±20, ±30, -50) match PyTorch's BCELoss formula`, async () => {
      const zs = [15, -15, 20, -20, 30, -30, -50];
      const z = new Float32Array(zs.flatMap((v) => [v, v]));
      const y = new Float32Array(zs.flatMap(() => [0, 1]));
      const B = z.length;
      const got = await run(kind, z, y);
      const f = Math.fround;
      for (let i = 0; i < B; i++) {
        const zi = z[i]!, yi = y[i]!;
        const p = f(zi >= 0 ? 1 / (1 + Math.exp(-zi)) : Math.exp(zi) / (1 + Math.exp(zi)));
        const pq = f(f(1 - p) * p);
        const w = kind === "wbce" ? WEIGHTS[yi >= 1 ? 1 : 0] : 1;
        const want = (w * ((p - yi) / Math.max(pq, 1e-12)) * pq) / B;
        // p carries (6 + 2|z|) ulp (WGSL's exp), so does the gradient; near p = 1, |p - y| is a few ulp of 1.
        const tol = (4 * (6 + 2 * Math.abs(zi)) * U32 * Math.abs(want * B) + 4 * U32 * w) / B;
        expect(Math.abs(got.grad[i]! - want), `z=${zi} y=${yi}: grad ${got.grad[i]} vs PyTorch ${want}`).toBeLessThanOrEqual(tol);
      }
      // The regimes the clamp creates are all present: full gradient, vanished (p rounds to 1), scaled by p(1-p)/1e-12.
      expect(got.grad[0]! * B).toBeCloseTo(kind === "wbce" ? WEIGHTS[0] : 1, 5); // z = 15, y = 0: (p - y) in full
      expect(got.grad[4]).toBe(0); // z = 20, y = 0: p is 1 in float32, so (1 - p) p = 0
      expect(got.grad[11]! * B).toBeCloseTo((kind === "wbce" ? WEIGHTS[1] : 1) * -Math.fround(Math.exp(-30)) / 1e-12, 4);
    });
  }
  it("rejects bad arguments", async () => {
    const device = await testDevice();
    const b = uploadStorage(device, new Float32Array(4), "b");
    const args = { logits: b, labels: b, prob: b, grad: b, loss: b, batch: 4, kind: "wbce" as const };
    expect(() => lossForwardBackward(device, args)).toThrow(/classWeights/);
    expect(() => lossForwardBackward(device, { ...args, kind: "bce", batch: 5 })).toThrow(/needs/);
    expect(() => lossForwardBackward(device, { ...args, kind: "bce", threshold: 0.1 })).toThrow(/bce-prob/);
  });
});
