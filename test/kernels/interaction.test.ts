import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import {
  type InteractionOp,
  type InteractionVariant,
  interactionBackward,
  interactionForward,
  interactionOutputDim,
} from "../../src/kernels/interaction.ts";
import {
  interactionBackwardRef,
  interactionForwardAbsRef,
  interactionForwardRef,
  interactionPairList,
} from "../../src/kernels/reference/interaction.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

const nan = (n: number) => new Float32Array(n).fill(NaN);

async function check(B: number, n: number, d: number, op: InteractionOp, self: boolean, variant: InteractionVariant, seed: number, vec4 = false) {
  const device = await testDevice();
  const rng = new Rng(seed);
  const xh = rng.f32(B * d);
  const eh = rng.f32(B * n * d);
  const outDim = interactionOutputDim(n, d, op, self);
  const gh = rng.f32(B * outDim);
  const x = uploadStorage(device, xh, "x");
  const emb = uploadStorage(device, eh, "emb");
  const out = uploadStorage(device, nan(B * outDim), "out");
  const gradOut = uploadStorage(device, gh, "gradOut");
  const gradX = uploadStorage(device, nan(B * d), "gradX");
  const gradEmb = uploadStorage(device, nan(B * n * d), "gradEmb");
  const shape = { x, emb, batch: B, numEmb: n, dim: d, op, self, variant, vec4 };
  interactionForward(device, { ...shape, out });
  interactionBackward(device, { ...shape, gradOut, gradX, gradEmb });

  const ref = interactionForwardRef(xh, eh, B, n, d, op, self);
  const abs = interactionForwardAbsRef(xh, eh, B, n, d, op, self);
  const tag = `B=${B} n=${n} d=${d} ${op}${self ? "+self" : ""} ${variant}${vec4 ? " vec4" : ""}`;
  expectAllClose(await readF32(device, out, B * outDim), ref, (i) => sumTolerance(d, abs[i]!), `${tag} out`);
  const g = interactionBackwardRef(xh, eh, gh, B, n, d, op, self);
  // Each output of dT sums about 2(n+1) products plus the pass-through term.
  const terms = 2 * (n + 2);
  expectAllClose(await readF32(device, gradX, B * d), g.gradX, (i) => sumTolerance(terms, g.absX[i]!), `${tag} gradX`);
  expectAllClose(await readF32(device, gradEmb, B * n * d), g.gradEmb, (i) => sumTolerance(terms, g.absEmb[i]!), `${tag} gradEmb`);
  for (const b of [x, emb, out, gradOut, gradX, gradEmb]) b.destroy();
}

describe("interaction output layout", () => {
  it("dims match the reference's formulas", () => {
    expect(interactionOutputDim(26, 16, "dot")).toBe(16 + 351);
    expect(interactionOutputDim(26, 16, "dot", true)).toBe(16 + 378);
    expect(interactionOutputDim(26, 16, "cat")).toBe(27 * 16);
    expect(interactionPairList(3, false)).toEqual([[1, 0], [2, 0], [2, 1], [3, 0], [3, 1], [3, 2]]);
    expect(interactionPairList(2, true)).toEqual([[0, 0], [1, 0], [1, 1], [2, 0], [2, 1], [2, 2]]);
  });

  for (const variant of ["global", "sample", "workgroup"] as const) {
    for (const self of [false, true]) {
      it(`dot places Z[i][j] at the li/lj position (${variant}${self ? ", self" : ""}, d=1 and d=4)`, async () => {
        // T_i = (p_i, 0, 0, 0)[0..d) with distinct primes: every product p_i p_j identifies its pair.
        const device = await testDevice();
        const primes = [2, 3, 5, 7, 11, 13];
        const n = 5;
        const B = 2;
        for (const d of [1, 4]) {
          const xh = new Float32Array(B * d);
          const eh = new Float32Array(B * n * d);
          xh[0] = primes[0]!;
          xh[d] = 17;
          for (let b = 0; b < B; b++) for (let i = 1; i <= n; i++) eh[(b * n + i - 1) * d] = b === 0 ? primes[i]! : 17 + i;
          const outDim = interactionOutputDim(n, d, "dot", self);
          const out = uploadStorage(device, nan(B * outDim), "out");
          interactionForward(device, {
            x: uploadStorage(device, xh, "x"), emb: uploadStorage(device, eh, "emb"), out,
            batch: B, numEmb: n, dim: d, op: "dot", self, variant,
          });
          const got = await readF32(device, out, B * outDim);
          const expected = [2, ...new Array<number>(d - 1).fill(0)];
          for (let i = 0; i <= n; i++) for (let j = 0; j < i + (self ? 1 : 0); j++) expected.push(primes[i]! * primes[j]!);
          expect(Array.from(got.slice(0, outDim)), `d=${d}`).toEqual(expected);
        }
      });
    }
  }
});

describe("interaction forward + backward vs float64 reference", () => {
  const Bs = [1, 3, 65];
  let seed = 1;
  for (const n of [1, 3, 8, 26, 40]) {
    for (const d of [1, 3, 16, 64]) {
      const B = Bs[(n + d) % 3]!;
      it(`n=${n} d=${d} B=${B}`, async () => {
        for (const self of [false, true]) {
          const pairs = ((n + 1) * (n + (self ? 2 : 0))) / 2;
          for (const vec4 of d % 4 === 0 ? [false, true] : [false]) {
            await check(B, n, d, "dot", self, "global", seed++, vec4);
            await check(B, n, d, "dot", self, "sample", seed++, vec4);
            // The workgroup variant covers every shape whose tile fits (n=40, d=64 does not).
            const fits = vec4 ? (n + 1) * d <= 2048 && pairs <= 2048 : (n + 1) * d + pairs <= 4096;
            if (fits) await check(B, n, d, "dot", self, "workgroup", seed++, vec4);
          }
        }
        await check(B, n, d, "cat", false, "auto", seed++);
      });
    }
  }
  it("every batch size for n=26 d=16 (and a few samples per workgroup)", async () => {
    for (const B of [1, 3, 65]) {
      await check(B, 26, 16, "dot", false, "auto", seed++);
      await check(B, 26, 16, "dot", true, "workgroup", seed++);
      await check(B, 26, 16, "dot", true, "workgroup", seed++, true);
    }
  });
  it("d above the sample backward's limit (128): auto falls back to global", async () => {
    await check(3, 3, 132, "dot", true, "auto", seed++);
    await check(2, 2, 129, "dot", false, "auto", seed++);
  });
    it("rejects a tile that does not fit and bad shapes", async () => {
    const device = await testDevice();
    const b = uploadStorage(device, new Float32Array(64 * 41 * 64), "b");
    expect(() =>
      interactionForward(device, { x: b, emb: b, out: b, batch: 1, numEmb: 40, dim: 128, op: "dot", variant: "workgroup" }),
    ).toThrow(/workgroup tile/);
    expect(() => interactionForward(device, { x: b, emb: b, out: b, batch: 0, numEmb: 4, dim: 4, op: "dot" })).toThrow(/batch/);
    expect(() =>
      interactionBackward(device, { x: b, emb: b, gradOut: b, gradX: b, gradEmb: b, batch: 1, numEmb: 2, dim: 132, op: "dot", variant: "sample" }),
    ).toThrow(/dim <= 128/);
    expect(() => interactionForward(device, { x: b, emb: b, out: b, batch: 1000, numEmb: 40, dim: 64, op: "dot" })).toThrow(/needs/);
  });
});
