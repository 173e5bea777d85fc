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
