import { describe, expect, it } from "vitest";
import { readF32, uploadStorage, writeBuffer } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { createBagBatchBuffers, type HostBags, writeBagBatch } from "../../src/kernels/bag_batch.ts";
import { embeddingBagBackward, prepareEmbeddingBagBackward } from "../../src/kernels/embedding_bag_backward.ts";
import { createEmbeddingOptimizerState } from "../../src/kernels/embedding_optimizer_state.ts";
import { createTableSet, writeTable } from "../../src/kernels/embedding_tables.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "../../src/kernels/embedding_types.ts";
import { createOptimizerParams } from "../../src/kernels/optimizer_params.ts";
import { embeddingBackwardStepRef, type RowGradient } from "../../src/kernels/reference/embedding_backward.ts";
import { expectAllClose, expectBitIdentical, sumTolerance, U32 } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

type Kind = EmbeddingOptimizerState["kind"];

interface Case {
  dim: number;
  rows: number[];
  batch: number;
  kind: Kind;
  pooling: "sum" | "mean";
  weighted: boolean;
  /** Rows per weight chunk (small, so tables straddle chunks), or undefined for one chunk. */
  chunkRows?: number;
  maxLen: number;
  /** Update kernel to force; "vec4" also makes the gradient stride a multiple of 4. */
  variant?: "scalar" | "vec4";
  /** vec4 update: sorted positions per thread (default 4), and what the sort carries. */
  segment?: number;
  sortValues?: "positions";
}

const LR = 0.05;
const EPS = 1e-10;

/** Random bags: empty bags, duplicates within and across bags, and one index of table 0 in every bag. */
function randomBags(rng: Rng, c: Case): HostBags {
  const T = c.rows.length;
  const offsets = new Uint32Array(T * c.batch + 1);
  const indices: number[] = [];
  const weights: number[] = [];
  const hot = rng.int(c.rows[0]!);
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < c.batch; b++) {
      const len = b % 5 === 3 ? 0 : rng.int(c.maxLen + 1);
      for (let j = 0; j < len; j++) {
        const r = rng.uniform();
        const idx = r < 0.3 ? rng.int(Math.min(3, c.rows[t]!)) : rng.int(c.rows[t]!);
        indices.push(idx);
        weights.push(rng.range(-2, 2));
      }
      if (t === 0 && len > 0) {
        indices.push(hot);
        weights.push(rng.range(-2, 2));
      }
      offsets[t * c.batch + b + 1] = indices.length;
    }
  }
  return {
    batchSize: c.batch,
    offsets,
    indices: Uint32Array.from(indices),
    weights: c.weighted ? Float32Array.from(weights) : undefined,
  };
}

async function readChunks(device: GPUDevice, buffers: readonly GPUBuffer[]): Promise<Float32Array> {
  const parts = await Promise.all(buffers.map((b) => readF32(device, b)));
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function writeChunks(device: GPUDevice, buffers: readonly GPUBuffer[], data: Float32Array): void {
  let o = 0;
  for (const b of buffers) {
    const n = b.size / 4;
    writeBuffer(device, b, data.subarray(o, o + n));
    o += n;
  }
}

/**
 * Per-element tolerances of one GPU step against the float64 reference applied to
 * the same f32 starting values: the gradient g of a row is a K-term f32 sum with
 * error <= delta = sumTolerance(K + 2, sum|terms|) (the +2 covers rounding of the
 * per-position factor and product); it is propagated through the optimizer by
 * evaluating the update at the corners of the interval g +- delta, plus a few
 * roundings of the update itself.
 */
function tolerances(c: Case, grads: Map<number, RowGradient>, w0: Float32Array, s0: Float32Array, wRef: Float64Array, sRef: Float64Array) {
  const d = c.dim;
  const tolW = new Float64Array(w0.length);
  const tolS = new Float64Array(s0.length);
  for (const [row, rg] of grads) {
    const delta = Array.from({ length: d }, (_, k) => sumTolerance(rg.terms + 2, rg.absSum[k]!));
    const ulpW = (k: number, step: number) => 4 * U32 * (Math.abs(w0[row * d + k]!) + Math.abs(step)) + 1e-30;
    if (c.kind === "sgd") {
      for (let k = 0; k < d; k++) tolW[row * d + k] = LR * delta[k]! + ulpW(k, LR * rg.g[k]!);
      continue;
    }
    // Range of the accumulator(s) given g in [g - delta, g + delta].
    const lo = (k: number) => Math.max(0, Math.abs(rg.g[k]!) - delta[k]!) ** 2;
    const hi = (k: number) => (Math.abs(rg.g[k]!) + delta[k]!) ** 2;
    for (let k = 0; k < d; k++) {
      let sLo: number, sHi: number, sIdx: number;
      if (c.kind === "adagrad") {
        sIdx = row * d + k;
        sLo = s0[sIdx]! + lo(k);
        sHi = s0[sIdx]! + hi(k);
      } else {
        sIdx = row;
        let a = 0, b = 0;
        for (let j = 0; j < d; j++) {
          a += lo(j);
          b += hi(j);
        }
        sLo = s0[row]! + a / d;
        sHi = s0[row]! + b / d;
      }
      const sTol = Math.max(sHi - sRef[sIdx]!, sRef[sIdx]! - sLo) + (d + 4) * U32 * sHi;
      tolS[sIdx] = Math.max(tolS[sIdx]!, sTol);
      const ref = (w0[row * d + k]! - wRef[row * d + k]!) / LR; // exact update direction g / (sqrt(s) + eps)
      let worst = 0;
      for (const num of [rg.g[k]! - delta[k]!, rg.g[k]! + delta[k]!]) {
        for (const s of [Math.max(0, sLo - sTol), sHi + sTol]) worst = Math.max(worst, Math.abs(num / (Math.sqrt(s) + EPS) - ref));
      }
      tolW[row * d + k] = LR * (worst + 8 * U32 * Math.abs(ref)) + ulpW(k, LR * ref);
    }
  }
  return { tolW, tolS };
}

async function runCase(c: Case, seed: number, steps = 3): Promise<void> {
  const device = await testDevice();
  const rng = new Rng(seed);
  const T = c.rows.length;
  const d = c.dim;
  const totalRows = c.rows.reduce((a, r) => a + r, 0);
  const tables: EmbeddingTableSet = createTableSet(device, { rows: c.rows, dim: d, maxChunkBytes: c.chunkRows ? c.chunkRows * d * 4 : undefined });
  if (c.chunkRows) expect(tables.chunks.length).toBeGreaterThan(1);
  c.rows.forEach((r, t) => writeTable(device, tables, t, rng.f32(r * d)));
  const state = createEmbeddingOptimizerState(device, tables, c.kind);
  const maxIndices = T * c.batch * (c.maxLen + 1);
  const bags = createBagBatchBuffers(device, { batchSize: c.batch, numTables: T, maxIndices, weighted: c.weighted });
  // Interaction-style gradient rows: [x | e_0 .. e_{T-1} | pad]; everything outside the e_t slots is NaN.
  const gradOffset = d;
  const gradStride = (T + 1) * d + (c.variant === "vec4" ? 4 : 3);
  const gradOut = uploadStorage(device, new Float32Array(c.batch * gradStride).fill(NaN), "gradOut");
  const optim = createOptimizerParams(device, { lr: LR, eps: EPS });
  const bw = prepareEmbeddingBagBackward(device, { tables, state, bags, gradOut, gradStride, gradOffset, pooling: c.pooling, maxIndices, optim, updateVariant: c.variant,
    updateSegment: c.segment, sortValues: c.sortValues });
  const tableBufs = tables.chunks.map((ch) => ch.buffer);
  let w = await readChunks(device, tableBufs);
  let s = c.kind === "sgd" ? new Float32Array(0) : await readChunks(device, state.chunks);
  expect(w.length).toBe(totalRows * d);

  for (let step = 0; step < steps; step++) {
    const host = randomBags(rng, c);
    writeBagBatch(device, bags, host, c.rows);
    const grad = new Float32Array(c.batch * gradStride).fill(NaN);
    for (let b = 0; b < c.batch; b++) grad.set(rng.f32(T * d), b * gradStride + gradOffset);
    writeBuffer(device, gradOut, grad);
    const ref = embeddingBackwardStepRef({
      dim: d, rows: c.rows, batchSize: c.batch, offsets: host.offsets, indices: host.indices, weights: host.weights,
      pooling: c.pooling, gradOut: grad, gradStride, gradOffset, kind: c.kind, lr: LR, eps: EPS, table: w, state: s,
    });
    bw.setNumIndices(device, bags.numIndices);
    submitDispatches(device, bw.dispatches);
    const w1 = await readChunks(device, tableBufs);
    const s1 = c.kind === "sgd" ? new Float32Array(0) : await readChunks(device, state.chunks);
    const { tolW, tolS } = tolerances(c, ref.grads, w, s, ref.table, ref.state);
    // Rows outside the batch: bit-identical (tolerance 0).
    expectAllClose(w1, ref.table, (i) => tolW[i]!, `step ${step} table`);
    expectAllClose(s1, ref.state, (i) => tolS[i]!, `step ${step} state`);
    if (step === 0) expect(ref.grads.size).toBeGreaterThan(1);
    w = w1;
    s = s1;
  }
  await bw.checkIndices(device);
  bw.destroy();
}

describe("embedding bag backward + optimizer", () => {
  const cases: Case[] = [
    { dim: 4, rows: [37, 5, 100], batch: 17, kind: "sgd", pooling: "sum", weighted: false, chunkRows: 23, maxLen: 4 },
    { dim: 3, rows: [11, 70], batch: 9, kind: "sgd", pooling: "mean", weighted: true, maxLen: 6 },
    { dim: 16, rows: [29, 64, 3], batch: 13, kind: "adagrad", pooling: "sum", weighted: true, chunkRows: 17, maxLen: 5 },
    { dim: 1, rows: [50, 9], batch: 33, kind: "adagrad", pooling: "mean", weighted: false, chunkRows: 7, maxLen: 3 },
    { dim: 64, rows: [40, 200], batch: 11, kind: "adagrad", pooling: "sum", weighted: false, maxLen: 4 },
    { dim: 64, rows: [40, 130], batch: 12, kind: "rowwise-adagrad", pooling: "sum", weighted: false, chunkRows: 45, maxLen: 4 },
    { dim: 3, rows: [21, 8, 60], batch: 15, kind: "rowwise-adagrad", pooling: "mean", weighted: true, chunkRows: 10, maxLen: 5 },
    { dim: 1, rows: [300], batch: 40, kind: "rowwise-adagrad", pooling: "sum", weighted: true, maxLen: 3 },
    { dim: 16, rows: [1, 2, 33], batch: 7, kind: "rowwise-adagrad", pooling: "mean", weighted: false, maxLen: 8 },
    { dim: 4, rows: [1000], batch: 64, kind: "adagrad", pooling: "mean", weighted: true, chunkRows: 333, maxLen: 20 },
    // The vec4 update (one thread per row, blocks of 4 vec4): one block, a block + a 1-vec4 tail, several blocks.
    { dim: 4, rows: [37, 5, 100], batch: 17, kind: "sgd", pooling: "sum", weighted: false, chunkRows: 23, maxLen: 4, variant: "vec4" },
    { dim: 20, rows: [29, 64, 3], batch: 13, kind: "adagrad", pooling: "sum", weighted: true, chunkRows: 17, maxLen: 5, variant: "vec4" },
    { dim: 36, rows: [40, 130], batch: 12, kind: "rowwise-adagrad", pooling: "sum", weighted: false, chunkRows: 45, maxLen: 4, variant: "vec4" },
    { dim: 16, rows: [1, 2, 33], batch: 7, kind: "rowwise-adagrad", pooling: "mean", weighted: true, maxLen: 8, variant: "vec4" },
    { dim: 64, rows: [40, 200], batch: 11, kind: "adagrad", pooling: "mean", weighted: false, maxLen: 4, variant: "vec4" },
    { dim: 8, rows: [300], batch: 40, kind: "sgd", pooling: "sum", weighted: true, maxLen: 3, variant: "vec4" },
    { dim: 12, rows: [1000], batch: 64, kind: "rowwise-adagrad", pooling: "sum", weighted: true, chunkRows: 333, maxLen: 20, variant: "vec4" },
    // The vec4 update's thread segments (SEG sorted positions per thread): tiny tables make long runs that
    // cross segments and chunks (default 8 per thread, and 1, 3, 4); the sort carrying positions (pos_info gather)
    // instead of gradient addresses on sum pooling without weights.
    { dim: 8, rows: [3, 2, 5], batch: 70, kind: "sgd", pooling: "sum", weighted: false, chunkRows: 4, maxLen: 9, variant: "vec4", segment: 3 },
    { dim: 4, rows: [2, 40], batch: 33, kind: "adagrad", pooling: "sum", weighted: false, chunkRows: 7, maxLen: 6, variant: "vec4", segment: 1 },
    { dim: 16, rows: [6, 1], batch: 65, kind: "rowwise-adagrad", pooling: "sum", weighted: false, maxLen: 12, variant: "vec4", segment: 4 },
    { dim: 4, rows: [37, 5, 100], batch: 17, kind: "sgd", pooling: "sum", weighted: false, chunkRows: 23, maxLen: 4, variant: "vec4", sortValues: "positions" },
  ];
  cases.forEach((c, i) => {
    const chunks = (c.chunkRows ? `, chunks of ${c.chunkRows} rows` : "") + (c.variant ? `, ${c.variant} update` : "") +
      (c.segment ? `, ${c.segment} positions per thread` : "") + (c.sortValues ? `, sort carries ${c.sortValues}` : "");
    it(`${c.kind} ${c.pooling}${c.weighted ? " weighted" : ""} d=${c.dim} tables [${c.rows}] B=${c.batch}${chunks}: 3 steps`, () => runCase(c, 100 + i));
  });

  it("is deterministic: the same step twice from the same start gives bit-identical tables and state", async () => {
    const device = await testDevice();
    const c: Case = { dim: 16, rows: [20, 500], batch: 64, kind: "adagrad", pooling: "sum", weighted: true, chunkRows: 64, maxLen: 12 };
    const rng = new Rng(5);
    const tables = createTableSet(device, { rows: c.rows, dim: c.dim, maxChunkBytes: c.chunkRows! * c.dim * 4 });
    c.rows.forEach((r, t) => writeTable(device, tables, t, rng.f32(r * c.dim)));
    const state = createEmbeddingOptimizerState(device, tables, c.kind);
    const host = randomBags(rng, c);
    const n = host.offsets[host.offsets.length - 1]!;
    const bags = createBagBatchBuffers(device, { batchSize: c.batch, numTables: 2, maxIndices: n, weighted: true });
    writeBagBatch(device, bags, host, c.rows);
    const gradStride = 2 * c.dim;
    const gradOut = uploadStorage(device, rng.f32(c.batch * gradStride, -1, 1), "gradOut");
    const optim = createOptimizerParams(device, { lr: 0.1 });
    const bw = prepareEmbeddingBagBackward(device, { tables, state, bags, gradOut, gradStride, gradOffset: 0, maxIndices: n, optim });
    const bufs = tables.chunks.map((ch) => ch.buffer);
    const w0 = await readChunks(device, bufs);
    const runOnce = async () => {
      writeChunks(device, bufs, w0);
      writeChunks(device, state.chunks, new Float32Array(w0.length));
      submitDispatches(device, bw.dispatches);
      return [await readChunks(device, bufs), await readChunks(device, state.chunks)] as const;
    };
    const [wa, sa] = await runOnce();
    const [wb, sb] = await runOnce();
    expectBitIdentical(wa, wb, "table");
    expectBitIdentical(sa, sb, "state");
    expect(wa.some((v, i) => v !== w0[i])).toBe(true);
    bw.destroy();
  });

  it("handles an empty batch and a one-shot call", async () => {
    const device = await testDevice();
    const rows = [10, 4];
    const tables = createTableSet(device, { rows, dim: 4 });
    const rng = new Rng(9);
    rows.forEach((r, t) => writeTable(device, tables, t, rng.f32(r * 4)));
    const w0 = await readF32(device, tables.chunks[0]!.buffer);
    const state = createEmbeddingOptimizerState(device, tables, "sgd");
    const optim = createOptimizerParams(device, { lr: 1 });
    const gradOut = uploadStorage(device, rng.f32(3 * 8), "gradOut");
    const empty = createBagBatchBuffers(device, { batchSize: 3, numTables: 2, maxIndices: 0 });
    writeBagBatch(device, empty, { batchSize: 3, offsets: new Uint32Array(7), indices: new Uint32Array(0) }, rows);
    embeddingBagBackward(device, { tables, state, bags: empty, gradOut, gradStride: 8, gradOffset: 0, maxIndices: 0, optim, numIndices: 0 });
    expectBitIdentical(await readF32(device, tables.chunks[0]!.buffer), w0, "untouched table");
    // One index, row 2 of table 1 (global row 12), bag (t=1, b=2): w -= 1 * gradOut[2*8 + 4 + k].
    const one = createBagBatchBuffers(device, { batchSize: 3, numTables: 2, maxIndices: 1 });
    writeBagBatch(device, one, { batchSize: 3, offsets: Uint32Array.from([0, 0, 0, 0, 0, 0, 1]), indices: Uint32Array.from([2]) }, rows);
    embeddingBagBackward(device, { tables, state, bags: one, gradOut, gradStride: 8, gradOffset: 0, maxIndices: 1, optim, numIndices: 1 });
    const w1 = await readF32(device, tables.chunks[0]!.buffer);
    const g = await readF32(device, gradOut);
    const expected = Float64Array.from(w0);
    for (let k = 0; k < 4; k++) expected[12 * 4 + k] = Math.fround(w0[12 * 4 + k]! - g[2 * 8 + 4 + k]!);
    expectAllClose(w1, expected, 0, "one update");
  });

  it("skips and reports out-of-range indices instead of clamping them", async () => {
    const device = await testDevice();
    const rows = [10, 4];
    const tables = createTableSet(device, { rows, dim: 4 });
    const w0 = new Float32Array(14 * 4).fill(1);
    writeTable(device, tables, 0, w0.subarray(0, 40));
    writeTable(device, tables, 1, w0.subarray(40));
    const state = createEmbeddingOptimizerState(device, tables, "sgd");
    const optim = createOptimizerParams(device, { lr: 1 });
    const gradOut = uploadStorage(device, new Float32Array(2 * 8).fill(0.5), "gradOut");
    // bag (t=1, b=0) holds index 4 (table 1 has 4 rows) at position 1; position 0 is valid.
    const bags = {
      batchSize: 2, numTables: 2, numIndices: 2,
      offsets: uploadStorage(device, Uint32Array.from([0, 1, 1, 2, 2]), "offsets"),
      indices: uploadStorage(device, Uint32Array.from([3, 4]), "indices"),
    };
    const bw = prepareEmbeddingBagBackward(device, { tables, state, bags, gradOut, gradStride: 8, gradOffset: 0, maxIndices: 2, optim });
    submitDispatches(device, bw.dispatches);
    await expect(bw.checkIndices(device)).rejects.toThrow(/out of range; the first at position 1 \(index 4\)/);
    await bw.checkIndices(device); // the counter was reset
    const w1 = await readF32(device, tables.chunks[0]!.buffer);
    const expected = Float64Array.from(w0);
    for (let k = 0; k < 4; k++) expected[3 * 4 + k] = 0.5;
    expectAllClose(w1, expected, 0, "only the valid row changes");
    bw.destroy();
  });
});
