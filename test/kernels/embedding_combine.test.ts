import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import {
  embeddingCombineBackward,
  embeddingCombineForward,
  embeddingProjGrad,
  prepareEmbeddingCombineForward,
  prepareEmbeddingProjGrad,
  uploadCombineDescriptors,
} from "../../src/kernels/embedding_combine.ts";
import { prepareEmbeddingBagForward } from "../../src/kernels/embedding_bag_forward.ts";
import { uploadBagBatch } from "../../src/kernels/bag_batch.ts";
import { createTableSet, writeTable } from "../../src/kernels/embedding_tables.ts";
import { combineBackwardRef, combineForwardRef, projGradRef } from "../../src/kernels/reference/embedding_combine.ts";
import { type EmbeddingLayoutOptions, embeddingLayout, packProjections, splitBags, initEmbeddingParameters } from "../../src/model/embedding_layout.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";
import { cpuEmbeddingForward, EMB_FIXTURES, fixtureBatch, fixtureStateDict, layoutOptions, loadRawFixture, setWeights } from "../model/embedding_fixture_helpers.ts";

const nan = (n: number) => new Float32Array(n).fill(NaN);

/** Layout options mixing the ops: QR `op` on big tables, MD (some identity) on middle ones, plain small ones. */
function mixed(d: number, n: number, op: "add" | "mult" | "concat" | null, seed: number): EmbeddingLayoutOptions {
  const rng = new Rng(seed);
  const tableRows = Array.from({ length: n }, () => 1 + rng.int(300));
  // With 3+ tables: an MD identity (t % 3 == 0, rows 60), an MD projection (rows 50) and a QR table (rows 250).
  if (n >= 3) tableRows.splice(0, 3, 60, 50, 250);
  if (op === "concat") return { embeddingDim: d, tableRows, qr: { operation: "concat", collisions: 1 + rng.int(9), threshold: 0 } };
  return {
    embeddingDim: d,
    tableRows,
    qr: op ? { operation: op, collisions: 1 + rng.int(9), threshold: 200 } : null,
    md: { temperature: 1, roundDims: false, threshold: 20, dims: tableRows.map((_, t) => (t % 3 === 0 ? d : 1 + rng.int(d - 1))) },
  };
}

async function check(B: number, opts: EmbeddingLayoutOptions, seed: number, per?: 1 | 4) {
  const device = await testDevice();
  const layout = embeddingLayout(opts);
  const { dim: d, numTables: n, width: W, projSize } = layout;
  const rng = new Rng(seed);
  const Ph = rng.f32(B * W);
  const projH = rng.f32(Math.max(projSize, 1));
  const dEh = rng.f32(B * n * d);
  const desc = uploadCombineDescriptors(device, layout);
  const pooled = uploadStorage(device, Ph, "P");
  const proj = uploadStorage(device, projH, "proj");
  const gradOut = uploadStorage(device, dEh, "dE");
  const out = uploadStorage(device, nan(B * n * d), "E");
  const gradPooled = uploadStorage(device, nan(B * W), "dP");
  const gradProj = uploadStorage(device, nan(Math.max(projSize, 1)), "dproj");
  embeddingCombineForward(device, { pooled, desc, proj, out, batch: B, elementsPerInvocation: per });
  embeddingCombineBackward(device, { pooled, desc, proj, gradOut, gradPooled, batch: B, elementsPerInvocation: per });
  embeddingProjGrad(device, { pooled, desc, gradOut, gradProj, batch: B });

  const ops = [...new Set(layout.combine.map((c) => c.op))].sort().join(",");
  const tag = `B=${B} n=${n} d=${d} W=${W} ops=${ops} per=${per ?? "auto"}`;
  const f = combineForwardRef(Ph, layout.combine, projH, B, d, W);
  expectAllClose(await readF32(device, out, B * n * d), f.value, (i) => sumTolerance(d, f.abs[i]!), `${tag} E`);
  const g = combineBackwardRef(Ph, layout.combine, projH, dEh, B, d, W);
  expectAllClose(await readF32(device, gradPooled, B * W), g.value, (i) => sumTolerance(d, g.abs[i]!), `${tag} dP`);
  if (projSize > 0) {
    const p = projGradRef(Ph, layout.combine, dEh, B, d, W, projSize);
    expectAllClose(await readF32(device, gradProj, projSize), p.value, (i) => sumTolerance(B, p.abs[i]!), `${tag} dproj`);
  }
  for (const b of [desc.buffer, pooled, proj, gradOut, out, gradPooled, gradProj]) b.destroy();
  return layout;
}

describe("embedding combine kernels vs float64 reference", () => {
  // [B, d, n, QR op, elements per invocation (undefined: the wrapper's default, 4 when legal)]
  const cases: [number, number, number, "add" | "mult" | "concat" | null, (1 | 4)?][] = [
    [1, 4, 1, "mult"],
    [3, 4, 5, "add"],
    [65, 4, 27, "mult"],
    [65, 4, 27, "mult", 1],
    [3, 16, 13, "add"],
    [3, 16, 13, "add", 1],
    [65, 16, 27, "concat"],
    [1, 16, 3, "concat"],
    [65, 3, 27, "add"],
    [3, 3, 8, "mult"],
    [65, 16, 27, null],
    [65, 16, 27, null, 1],
    [3, 3, 17, null],
  ];
  cases.forEach(([B, d, n, op, per], i) => {
    it(`B=${B} d=${d} n=${n} qr=${op ?? "none"} + MD + plain, per=${per ?? "auto"}`, async () => {
      const layout = await check(B, mixed(d, n, op, 100 + i), 200 + i, per);
      // The case really mixes what it claims.
      const ops = new Set(layout.combine.map((c) => c.op));
      if (op) expect(ops.has(op)).toBe(true);
      if (op !== "concat" && n >= 3) {
        expect(ops.has("project")).toBe(true);
        expect(ops.has("copy")).toBe(true);
      }
    });
  });

  it("a layout without projections: proj may be omitted, no projection-gradient dispatch", async () => {
    const device = await testDevice();
    const layout = embeddingLayout({ embeddingDim: 4, tableRows: [9, 30], qr: { operation: "add", collisions: 4, threshold: 10 } });
    const desc = uploadCombineDescriptors(device, layout);
    const P = uploadStorage(device, new Float32Array(2 * layout.width), "P");
    const E = uploadStorage(device, new Float32Array(2 * 8), "E");
    expect(prepareEmbeddingCombineForward(device, { pooled: P, desc, out: E, batch: 2 })).toHaveLength(1);
    expect(prepareEmbeddingProjGrad(device, { pooled: P, desc, gradOut: E, gradProj: E, batch: 2 })).toHaveLength(0);
    expect(() => prepareEmbeddingCombineForward(device, { pooled: P, desc, out: E, batch: 3 })).toThrow(/pooled P/);
    const d3 = uploadCombineDescriptors(device, embeddingLayout({ embeddingDim: 3, tableRows: [9] }));
    expect(() => prepareEmbeddingCombineForward(device, { pooled: P, desc: d3, out: E, batch: 1, elementsPerInvocation: 4 })).toThrow(/d % 4/);
    const md = uploadCombineDescriptors(device, embeddingLayout({ embeddingDim: 4, tableRows: [9], md: { temperature: 1, roundDims: false, threshold: 0, dims: [2] } }));
    expect(() => prepareEmbeddingCombineForward(device, { pooled: P, desc: md, out: E, batch: 1 })).toThrow(/pass proj/);
  });
});

describe("QR / MD embedding forward on the GPU vs the PyTorch fixtures", () => {
  for (const name of EMB_FIXTURES) {
    it(`${name}: per-set embedding-bag forward into P, then combine = act/ly.{t}`, async () => {
      const device = await testDevice();
      const fx = loadRawFixture(name);
      const cfg = fx.config;
      const layout = embeddingLayout(layoutOptions(cfg));
      const sd = fixtureStateDict(fx, "init");
      const batch = fixtureBatch(fx, 0);
      const B = batch.batchSize;
      const { dim: d, numTables: n, width: W } = layout;
      // What the model will do: one table set per width, all pooled into P [B, W].
      const P = uploadStorage(device, nan(B * W), "P");
      const weights = setWeights(layout, sd);
      const bags = splitBags(layout, batch);
      const dispatches = layout.sets.flatMap((set, s) => {
        const tables = createTableSet(device, { rows: set.rows, dim: set.dim, label: `set${s}` });
        weights[s]!.forEach((w, j) => writeTable(device, tables, j, w));
        const gpuBags = uploadBagBatch(device, { ...bags[s]! }, set.rows, `bags${s}`);
        return prepareEmbeddingBagForward(device, { tables, bags: gpuBags, out: P, outStride: W, outOffset: set.offset });
      });
      const desc = uploadCombineDescriptors(device, layout);
      const proj = uploadStorage(device, packProjections(layout, sd), "proj");
      const E = uploadStorage(device, nan(B * n * d), "E");
      dispatches.push(...prepareEmbeddingCombineForward(device, { pooled: P, desc, proj, out: E, batch: B }));
      submitDispatches(device, dispatches, "fixture-embeddings");

      const cpu = cpuEmbeddingForward(layout, sd, batch);
      const got = await readF32(device, E, B * n * d);
      const tol = (i: number) => sumTolerance(cpu.terms, cpu.abs[i]!);
      expectAllClose(got, cpu.E, tol, `${name} E vs float64`);
      const fixture = new Float64Array(B * n * d);
      for (let t = 0; t < n; t++) {
        const ly = fx.tensors[`act/ly.${t}`]!.data;
        for (let b = 0; b < B; b++) for (let k = 0; k < d; k++) fixture[(b * n + t) * d + k] = ly[b * d + k]!;
      }
      // Two float32 computations of the same sums: within twice the bound of each other.
      expectAllClose(got, fixture, (i) => 2 * tol(i), `${name} E vs PyTorch`);
      // Padding columns of P are never written by the forward; the owned ones all are.
      const p = await readF32(device, P, B * W);
      const owned = new Set(layout.sets.flatMap((s) => Array.from({ length: s.rows.length * s.dim }, (_, c) => s.offset + c)));
      for (let c = 0; c < W; c++) expect(Number.isNaN(p[c]!), `P column ${c}`).toBe(!owned.has(c));
    });
  }

  it("random init through the same path stays finite (init ranges usable by the kernels)", async () => {
    const layout = embeddingLayout(mixed(16, 9, "mult", 7));
    const sd = initEmbeddingParameters(layout, new Rng(5));
    expect(Object.values(sd).every((t) => t.data.every(Number.isFinite))).toBe(true);
    expect(packProjections(layout, sd).length).toBe(layout.projSize);
  });
});
