import { describe, expect, it } from "vitest";
import { readF32, uploadStorage, writeBuffer } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import {
  type DenseOptimizerKind,
  denseOptimizerStateSizes,
  denseOptimizerStep,
  prepareDenseOptimizer,
} from "../../src/kernels/dense_optimizer.ts";
import { createOptimizerParams, writeOptimizerParams } from "../../src/kernels/optimizer_params.ts";
import { denseOptimizerRef } from "../../src/kernels/reference/dense_optimizer.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

const KINDS: DenseOptimizerKind[] = ["sgd", "adagrad", "adam", "rowwise-adagrad"];

describe("dense optimizers", () => {
  for (const kind of KINDS) {
    for (const [count, wd] of [[1, 0], [3, 0.01], [255, 0], [257, 0.1], [1000, 0]] as const) {
      it(`${kind} count=${count} weight_decay=${wd}: steps 1..5`, async () => {
        const device = await testDevice();
        const rng = new Rng(count * 31 + kind.length);
        const w0 = rng.f32(count);
        const param = uploadStorage(device, w0, "param");
        const grad = uploadStorage(device, new Float32Array(count), "grad");
        const sizes = denseOptimizerStateSizes(kind, count, kind === "rowwise-adagrad" ? 1 : undefined);
        const state = sizes.map((n, i) => uploadStorage(device, new Float32Array(n), `state${i}`));
        const eps = kind === "adam" ? 1e-8 : 1e-10;
        const hyper = { lr: 0.1, eps, beta1: 0.9, beta2: 0.999, weightDecay: wd, step: 1 };
        const optim = createOptimizerParams(device, hyper);
        // Dispatches prepared once; per-step values come through the uniform.
        const dispatches = prepareDenseOptimizer(device, { kind, param, grad, state, count, optim, rows: kind === "rowwise-adagrad" ? 1 : undefined });
        let w = Float64Array.from(w0);
        let st = sizes.map((n) => new Float64Array(n));
        for (let step = 1; step <= 5; step++) {
          const g = rng.f32(count, -2, 2);
          if (step === 2) g[0] = 0; // a zero gradient (Adam: first moment from history only)
          writeBuffer(device, grad, g);
          const h = { ...hyper, lr: 0.1 / step, step };
          writeOptimizerParams(device, optim, h);
          submitDispatches(device, dispatches);
          // Reference advanced from the GPU's previous float32 values: each step checked on its own.
          const prevState = st.map((s) => Float64Array.from(s));
          const mag = denseOptimizerRef(kind, w, g, st, h);
          const got = await readF32(device, param, count);
          expectAllClose(got, w, (i) => sumTolerance(16, mag[i]!), `${kind} param step ${step}`);
          for (let k = 0; k < sizes.length; k++) {
            const gs = await readF32(device, state[k]!, count);
            const tol = (i: number) => {
              const gi = Math.abs(g[i]!) + wd * Math.abs(got[i]!) + wd * Math.abs(w[i]!);
              return sumTolerance(6, Math.abs(prevState[k]![i]!) + (k === 0 && kind === "adam" ? gi : gi * gi) + Math.abs(st[k]![i]!));
            };
            expectAllClose(gs, st[k]!, tol, `${kind} state${k} step ${step}`);
            st[k] = Float64Array.from(gs);
          }
          w = Float64Array.from(got);
        }
      });
    }
  }

  // torch.optim.Adam, written out: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2,
  // p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). With gradients as small as eps the
  // placement of eps (outside the square root, after the bias correction) decides the update.
  it("adam: epsilon placement pinned with gradients as small as eps, steps 1 and 2", async () => {
    const device = await testDevice();
    const count = 5;
    const param = uploadStorage(device, new Float32Array(count), "param"); // from 0: the update itself is read back
    const grad = uploadStorage(device, new Float32Array(count), "grad");
    const state = [uploadStorage(device, new Float32Array(count), "m"), uploadStorage(device, new Float32Array(count), "v")];
    const hyper = { lr: 0.1, eps: 1e-8, beta1: 0.9, beta2: 0.999, weightDecay: 0, step: 1 };
    const optim = createOptimizerParams(device, hyper);
    const dispatches = prepareDenseOptimizer(device, { kind: "adam", param, grad, state, count, optim });
    const grads = [new Float32Array([1e-8, -3e-8, 5e-9, 1e-7, -1e-9]), new Float32Array([2e-8, -1e-8, 5e-9, -1e-7, 3e-9])];
    const w = new Float64Array(count), m = new Float64Array(count), v = new Float64Array(count);
    for (let t = 1; t <= 2; t++) {
      const g = grads[t - 1]!;
      writeBuffer(device, grad, g);
      writeOptimizerParams(device, optim, { ...hyper, step: t });
      submitDispatches(device, dispatches);
      for (let i = 0; i < count; i++) {
        m[i] = 0.9 * m[i]! + 0.1 * g[i]!;
        v[i] = 0.999 * v[i]! + 0.001 * g[i]! * g[i]!;
        w[i] = w[i]! - (0.1 / (1 - 0.9 ** t)) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(1 - 0.999 ** t) + 1e-8));
      }
      const got = await readF32(device, param, count);
      // Updates are 0.002..0.1 here; another placement of eps moves them by 1e-3 or more.
      expectAllClose(got, w, 2e-6, `adam step ${t}`); // float32 rounding of updates <= 0.1
    }
  });

  it("sizes and argument checks", async () => {
    expect(denseOptimizerStateSizes("sgd", 10)).toEqual([]);
    expect(denseOptimizerStateSizes("adagrad", 10)).toEqual([10]);
    expect(denseOptimizerStateSizes("adam", 10)).toEqual([10, 10]);
    expect(denseOptimizerStateSizes("rowwise-adagrad", 10, 5)).toEqual([10]);
    expect(() => denseOptimizerStateSizes("rowwise-adagrad", 10, 3)).toThrow(/does not divide/);
    const device = await testDevice();
    const b = uploadStorage(device, new Float32Array(4), "b");
    const optim = createOptimizerParams(device, { lr: 1 });
    expect(() => denseOptimizerStep(device, { kind: "adam", param: b, grad: b, state: [b], count: 4, optim })).toThrow(/2 state buffers/);
    expect(() => denseOptimizerStep(device, { kind: "sgd", param: b, grad: b, state: [], count: 5, optim })).toThrow(/needs/);
  });
});
