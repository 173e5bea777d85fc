/**
 * bf16 embedding tables (src/kernels/embedding_tables_bf16.ts, embedding_bag_forward_bf16.ts,
 * embedding_bag_backward_bf16.ts) against the float64 reference of src/kernels/reference/bf16.ts
 * (the format from its definition) and the f32 references of the forward and the update:
 * packing and rounding, the forward's f32 sums (odd d, d % 8 == 0, empty bags, weights, mean,
 * tables straddling chunks), and the fused update (sgd / adagrad / rowwise-adagrad, nearest and
 * stochastic rounding, deterministic per step; stochastic rounding unbiased where nearest stalls).
 */
import { describe, expect, it } from "vitest";
import { readF32, readU32, uploadStorage, writeBuffer } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { createBagBatchBuffers, type HostBags, writeBagBatch } from "../../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../../src/kernels/embedding_bag_backward.ts";
import { checkEmbeddingErrors, createEmbeddingErrorBuffer, embeddingBagForward } from "../../src/kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState } from "../../src/kernels/embedding_optimizer_state.ts";
import { createTableSet, readTable, writeTable } from "../../src/kernels/embedding_tables.ts";
import { bf16ToF32, bf16Words, f32ToBf16, packBf16Rows, unpackBf16Rows } from "../../src/kernels/embedding_tables_bf16.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "../../src/kernels/embedding_types.ts";
import { createOptimizerParams, writeOptimizerParams } from "../../src/kernels/optimizer_params.ts";
import { bf16BitsValue, bf16RandomRef, decodeBf16Rows, roundBf16Ref } from "../../src/kernels/reference/bf16.ts";
import { embeddingBackwardStepRef, type RowGradient } from "../../src/kernels/reference/embedding_backward.ts";
import { embeddingBagForwardRef } from "../../src/kernels/reference/embedding_bag.ts";
import { expectAllClose, sumTolerance, U32 } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

type Kind = EmbeddingOptimizerState["kind"];
const f32 = Math.fround;

/** Random bags: every fifth bag empty, duplicates within and across bags. */
function randomBags(rng: Rng, rows: number[], batch: number, maxLen: number, weighted: boolean): HostBags {
  const T = rows.length;
  const offsets = new Uint32Array(T * batch + 1);
  const indices: number[] = [];
  const weights: number[] = [];
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < batch; b++) {
      const len = b % 5 === 3 ? 0 : 1 + rng.int(maxLen);
      for (let j = 0; j < len; j++) {
        indices.push(rng.uniform() < 0.3 ? rng.int(Math.min(3, rows[t]!)) : rng.int(rows[t]!));
        weights.push(rng.range(-2, 2));
      }
      offsets[t * batch + b + 1] = indices.length;
    }
  }
  return { batchSize: batch, offsets, indices: Uint32Array.from(indices), weights: weighted ? Float32Array.from(weights) : undefined };
}

/** The raw words of every chunk, in global row order. */
async function readWords(device: GPUDevice, set: EmbeddingTableSet): Promise<Uint32Array> {
  const parts = await Promise.all(set.chunks.map((c) => readU32(device, c.buffer)));
  const out = new Uint32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe("bf16 packing (host)", () => {
  it("f32 -> bf16 rounds to nearest even as the format defines it; bf16 -> f32 is exact", () => {
    const rng = new Rng(7);
    const xs: number[] = [0, -0, 1, -1, 2 ** -130, -(2 ** -140), 2 ** -149, 3.4e38, -3.4e38, Infinity, -Infinity];
    for (let i = 0; i < 4000; i++) xs.push(f32(rng.normal() * 2 ** (rng.int(80) - 40)));
    // Exact ties (half a step above a bf16 value), with an even and an odd last bit.
    for (const base of [1, 1 + 2 ** -7, -3, 2 ** -126, 2 ** 100]) xs.push(f32(base + Math.sign(base) * bf16Step(base) / 2));
    for (const x of xs) {
      const h = f32ToBf16(x);
      expect(bf16BitsValue(h), `f32ToBf16(${x})`).toBe(roundBf16Ref(x, "nearest"));
      expect(bf16ToF32(h)).toBe(bf16BitsValue(h));
    }
    expect(Number.isNaN(bf16ToF32(f32ToBf16(NaN)))).toBe(true);
    // The largest f32 rounds past the largest bf16: Infinity, as round-to-nearest-even does.
    expect(bf16ToF32(f32ToBf16(3.4028234663852886e38))).toBe(Infinity);
  });

  it("packs rows of odd and even d, element 2j in the low half of word j; unpack is exact", () => {
    const rng = new Rng(8);
    for (const d of [1, 3, 8, 17]) {
      const rows = 5;
      const x = rng.f32(rows * d, -3, 3);
      const words = packBf16Rows(x, d);
      expect(words.length).toBe(rows * bf16Words(d));
      const dec = decodeBf16Rows(words, d);
      const un = unpackBf16Rows(words, d);
      for (let i = 0; i < x.length; i++) {
        expect(dec[i]).toBe(roundBf16Ref(x[i]!, "nearest"));
        expect(un[i]).toBe(dec[i]);
      }
      // The padding half of an odd row stays 0.
      if (d % 2 === 1) for (let r = 0; r < rows; r++) expect(words[r * bf16Words(d) + bf16Words(d) - 1]! >>> 16).toBe(0);
    }
  });
});

function bf16Step(x: number): number {
  const e = Math.max(Math.floor(Math.log2(Math.abs(x))), -126);
  return 2 ** (e - 7);
}

interface FwdCase {
  dim: number; rows: number[]; batch: number; maxLen: number; weighted: boolean; pooling: "sum" | "mean"; chunkRows?: number;
  /** Output stride and offset multiples of 4 (the rows kernel applies when d % 8 == 0), and the kernel to force. */
  aligned?: boolean; variant?: "rows" | "general";
}

async function forwardCase(c: FwdCase, seed: number): Promise<void> {
  const device = await testDevice();
  const rng = new Rng(seed);
  const T = c.rows.length;
  const d = c.dim;
  const tables = createTableSet(device, { rows: c.rows, dim: d, precision: "bf16", maxChunkBytes: c.chunkRows ? c.chunkRows * bf16Words(d) * 4 : undefined });
  if (c.chunkRows) expect(tables.chunks.length).toBeGreaterThan(1);
  const values = c.rows.map((r) => rng.f32(r * d));
  values.forEach((v, t) => writeTable(device, tables, t, v));
  // The upload rounds to nearest even; the stored words decode to those values.
  const stored = decodeBf16Rows(await readWords(device, tables), d);
  const perTable = c.rows.map((r, t) => stored.subarray(tables.rowBase[t]! * d, (tables.rowBase[t]! + r) * d));
  perTable.forEach((p, t) => p.forEach((v, i) => expect(v).toBe(roundBf16Ref(values[t]![i]!, "nearest"))));
  expectAllClose(await readTable(device, tables, T - 1), perTable[T - 1]!, 0, "readTable");
  const host = randomBags(rng, c.rows, c.batch, c.maxLen, c.weighted);
  const bags = createBagBatchBuffers(device, { batchSize: c.batch, numTables: T, maxIndices: host.indices.length, weighted: c.weighted });
  writeBagBatch(device, bags, host, c.rows);
  const outOffset = c.aligned ? 4 : 1;
  const outStride = T * d + (c.aligned ? 8 : 3);
  const out = uploadStorage(device, new Float32Array(c.batch * outStride).fill(NaN), "out");
  embeddingBagForward(device, { tables, bags, out, outStride, outOffset, pooling: c.pooling, variant: c.variant });
  const got = await readF32(device, out);
  const ref = embeddingBagForwardRef({ tables: perTable, dim: d, batchSize: c.batch, offsets: host.offsets, indices: host.indices, weights: host.weights, pooling: c.pooling });
  const absRef = embeddingBagForwardRef({
    tables: perTable.map((p) => p.map(Math.abs)), dim: d, batchSize: c.batch, offsets: host.offsets, indices: host.indices,
    weights: host.weights?.map(Math.abs), pooling: c.pooling,
  });
  const actual: number[] = [];
  const tol: number[] = [];
  for (let b = 0; b < c.batch; b++) {
    for (let i = 0; i < T * d; i++) actual.push(got[b * outStride + outOffset + i]!);
    for (let t = 0; t < T; t++) {
      const len = host.offsets[t * c.batch + b + 1]! - host.offsets[t * c.batch + b]!;
      for (let k = 0; k < d; k++) tol.push(sumTolerance(len + 1, absRef[(b * T + t) * d + k]!));
    }
    // Outside the bags' slots: untouched.
    expect(Number.isNaN(got[b * outStride]!)).toBe(true);
    expect(Number.isNaN(got[b * outStride + outStride - 1]!)).toBe(true);
  }
  expectAllClose(actual, ref, (i) => tol[i]!, "pooled");
}

describe("bf16 embedding-bag forward", () => {
  const cases: FwdCase[] = [
    { dim: 1, rows: [37, 5], batch: 17, maxLen: 4, weighted: false, pooling: "sum" },
    { dim: 3, rows: [11, 70, 2], batch: 9, maxLen: 6, weighted: true, pooling: "sum", chunkRows: 13 },
    { dim: 17, rows: [29, 64], batch: 13, maxLen: 5, weighted: false, pooling: "mean" },
    { dim: 8, rows: [40, 9, 100], batch: 65, maxLen: 3, weighted: true, pooling: "sum", chunkRows: 23 },
    { dim: 16, rows: [300], batch: 1, maxLen: 20, weighted: false, pooling: "mean" },
    { dim: 64, rows: [50, 129], batch: 33, maxLen: 7, weighted: false, pooling: "sum", chunkRows: 60 },
    // The one-invocation-per-bag kernel (d % 8 == 0, d <= 64, aligned output), and the lane kernel forced on the same shapes.
    { dim: 8, rows: [40, 9, 100], batch: 65, maxLen: 3, weighted: true, pooling: "sum", chunkRows: 23, aligned: true, variant: "rows" },
    { dim: 16, rows: [300, 7], batch: 63, maxLen: 20, weighted: false, pooling: "mean", aligned: true, variant: "rows" },
    { dim: 64, rows: [50, 129], batch: 33, maxLen: 7, weighted: true, pooling: "sum", chunkRows: 60, aligned: true, variant: "rows" },
    { dim: 24, rows: [31], batch: 1, maxLen: 1, weighted: false, pooling: "sum", aligned: true },
    { dim: 16, rows: [300, 7], batch: 63, maxLen: 20, weighted: false, pooling: "mean", aligned: true, variant: "general" },
  ];
  for (const [i, c] of cases.entries()) {
    it(`d=${c.dim} rows=${c.rows.join("-")} B=${c.batch} ${c.pooling}${c.weighted ? " weighted" : ""}${c.chunkRows ? ` chunks of ${c.chunkRows}` : ""}${c.aligned ? " aligned" : ""}${c.variant ? ` ${c.variant}` : ""}`, async () => {
      await forwardCase(c, 100 + i);
    });
  }

  it("a bad index is skipped and reported, as with f32 tables", async () => {
    const device = await testDevice();
    const tables = createTableSet(device, { rows: [4, 6], dim: 8, precision: "bf16" });
    const bags = createBagBatchBuffers(device, { batchSize: 2, numTables: 2, maxIndices: 4 });
    device.queue.writeBuffer(bags.offsets, 0, new Uint32Array([0, 1, 2, 3, 4]));
    device.queue.writeBuffer(bags.indices, 0, new Uint32Array([0, 3, 9, 1]));
    const out = uploadStorage(device, new Float32Array(2 * 16).fill(NaN), "out");
    const errors = createEmbeddingErrorBuffer(device);
    embeddingBagForward(device, { tables, bags, out, outStride: 16, outOffset: 0, errors });
    await expect(checkEmbeddingErrors(device, errors, tables.rows, 2)).rejects.toThrow(/index 9 out of range for table 1 \(6 rows\) at sample 0/);
  });
});

const LR = 0.05;
const EPS = 1e-10;

interface BwdCase {
  dim: number; rows: number[]; batch: number; kind: Kind; pooling: "sum" | "mean"; weighted: boolean; maxLen: number; rounding: "nearest" | "stochastic"; chunkRows?: number;
  /** Gradient stride and offset multiples of 4 (the vec4 update applies when d % 8 == 0), and the update to force. */
  aligned?: boolean; variant?: "vec4" | "scalar";
}

/** Tolerance of the f32 value before rounding (see embedding_bag_backward.test.ts: g within sumTolerance, propagated through the optimizer). */
function preTolerance(c: BwdCase, grads: Map<number, RowGradient>, w0: Float64Array, s0: Float64Array, wRef: Float64Array, sRef: Float64Array) {
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
      const ref = (w0[row * d + k]! - wRef[row * d + k]!) / LR;
      let worst = 0;
      for (const num of [rg.g[k]! - delta[k]!, rg.g[k]! + delta[k]!]) {
        for (const s of [Math.max(0, sLo - sTol), sHi + sTol]) worst = Math.max(worst, Math.abs(num / (Math.sqrt(s) + EPS) - ref));
      }
      tolW[row * d + k] = LR * (worst + 8 * U32 * Math.abs(ref)) + ulpW(k, LR * ref);
    }
  }
  return { tolW, tolS };
}

async function backwardCase(c: BwdCase, seed: number, steps = 3): Promise<void> {
  const device = await testDevice();
  const rng = new Rng(seed);
  const T = c.rows.length;
  const d = c.dim;
  const tables = createTableSet(device, { rows: c.rows, dim: d, precision: "bf16", maxChunkBytes: c.chunkRows ? c.chunkRows * bf16Words(d) * 4 : undefined });
  if (c.chunkRows) expect(tables.chunks.length).toBeGreaterThan(1);
  c.rows.forEach((r, t) => writeTable(device, tables, t, rng.f32(r * d)));
  const state = createEmbeddingOptimizerState(device, tables, c.kind);
  const maxIndices = T * c.batch * c.maxLen;
  const bags = createBagBatchBuffers(device, { batchSize: c.batch, numTables: T, maxIndices, weighted: c.weighted });
  const gradOffset = c.aligned ? 8 : d;
  const gradStride = (T + 1) * d + (c.aligned ? 8 : 3);
  const gradOut = uploadStorage(device, new Float32Array(c.batch * gradStride).fill(NaN), "gradOut");
  const optim = createOptimizerParams(device, { lr: LR, eps: EPS });
  const roundingSeed = 1234 + seed;
  const bw = prepareEmbeddingBagBackward(device, { tables, state, bags, gradOut, gradStride, gradOffset, pooling: c.pooling, maxIndices, optim, rounding: c.rounding, roundingSeed, updateVariant: c.variant });
  let words = await readWords(device, tables);
  let s = c.kind === "sgd" ? new Float64Array(0) : Float64Array.from(await readStates(device, state));
  for (let step = 1; step <= steps; step++) {
    writeOptimizerParams(device, optim, { lr: LR, eps: EPS, step });
    const host = randomBags(rng, c.rows, c.batch, c.maxLen, c.weighted);
    writeBagBatch(device, bags, host, c.rows);
    const grad = new Float32Array(c.batch * gradStride).fill(NaN);
    for (let b = 0; b < c.batch; b++) grad.set(rng.f32(T * d), b * gradStride + gradOffset);
    writeBuffer(device, gradOut, grad);
    const w = decodeBf16Rows(words, d);
    const ref = embeddingBackwardStepRef({
      dim: d, rows: c.rows, batchSize: c.batch, offsets: host.offsets, indices: host.indices, weights: host.weights,
      pooling: c.pooling, gradOut: grad, gradStride, gradOffset, kind: c.kind, lr: LR, eps: EPS, table: w, state: s,
    });
    bw.setNumIndices(device, bags.numIndices);
    submitDispatches(device, bw.dispatches);
    const words1 = await readWords(device, tables);
    const w1 = decodeBf16Rows(words1, d);
    const s1 = c.kind === "sgd" ? new Float64Array(0) : Float64Array.from(await readStates(device, state));
    const { tolW, tolS } = preTolerance(c, ref.grads, w, s, ref.table, ref.state);
    // Rounding is monotone for fixed random bits: the stored value lies between the roundings of
    // the ends of the f32 value's interval (one value, unless the interval straddles a boundary).
    let moved = 0;
    for (let i = 0; i < w1.length; i++) {
      const row = Math.floor(i / d);
      const k = i % d;
      if (!ref.grads.has(row)) {
        expect(w1[i], `untouched row ${row}`).toBe(w[i]);
        continue;
      }
      const r = bf16RandomRef(roundingSeed, step, row, k);
      const lo = roundBf16Ref(f32(ref.table[i]! - tolW[i]!), c.rounding, r);
      const hi = roundBf16Ref(f32(ref.table[i]! + tolW[i]!), c.rounding, r);
      if (!(w1[i]! >= lo && w1[i]! <= hi)) {
        expect.fail(`step ${step} row ${row} col ${k}: ${w1[i]} not in [${lo}, ${hi}] (unrounded ${ref.table[i]} +- ${tolW[i]}, ${c.rounding})`);
      }
      if (w1[i] !== w[i]) moved++;
    }
    expect(moved).toBeGreaterThan(0);
    // The padding half of an odd row stays 0.
    if (d % 2 === 1) for (let row = 0; row < w1.length / d; row++) expect(words1[row * bf16Words(d) + bf16Words(d) - 1]! >>> 16).toBe(0);
    expectAllClose(s1, ref.state, (i) => tolS[i]!, `step ${step} state`);
    words = words1;
    s = s1;
  }
  await bw.checkIndices(device);
  bw.destroy();
}

async function readStates(device: GPUDevice, state: EmbeddingOptimizerState): Promise<Float32Array> {
  const parts = await Promise.all(state.chunks.map((b) => readF32(device, b)));
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

describe("bf16 embedding-bag backward + optimizer", () => {
  const cases: BwdCase[] = [
    { dim: 3, rows: [37, 5, 100], batch: 17, kind: "sgd", pooling: "sum", weighted: false, maxLen: 4, rounding: "nearest", chunkRows: 23 },
    { dim: 16, rows: [29, 64], batch: 13, kind: "sgd", pooling: "mean", weighted: true, maxLen: 5, rounding: "stochastic" },
    { dim: 1, rows: [50, 9], batch: 33, kind: "sgd", pooling: "sum", weighted: true, maxLen: 3, rounding: "stochastic", chunkRows: 7 },
    { dim: 17, rows: [21, 60], batch: 15, kind: "adagrad", pooling: "sum", weighted: true, maxLen: 5, rounding: "stochastic", chunkRows: 10 },
    { dim: 8, rows: [40, 30], batch: 12, kind: "adagrad", pooling: "mean", weighted: false, maxLen: 4, rounding: "nearest" },
    { dim: 64, rows: [40, 130], batch: 12, kind: "rowwise-adagrad", pooling: "sum", weighted: false, maxLen: 4, rounding: "stochastic", chunkRows: 45 },
    { dim: 5, rows: [300], batch: 40, kind: "rowwise-adagrad", pooling: "mean", weighted: true, maxLen: 3, rounding: "nearest" },
    // The vec4 update (d % 8 == 0, aligned gradients): one unit, one block, a block + a 1-unit tail; and the scalar update forced.
    { dim: 8, rows: [37, 5, 100], batch: 17, kind: "sgd", pooling: "sum", weighted: true, maxLen: 4, rounding: "stochastic", chunkRows: 23, aligned: true, variant: "vec4" },
    { dim: 16, rows: [29, 64], batch: 13, kind: "adagrad", pooling: "mean", weighted: false, maxLen: 5, rounding: "stochastic", aligned: true, variant: "vec4" },
    { dim: 24, rows: [21, 60], batch: 15, kind: "adagrad", pooling: "sum", weighted: true, maxLen: 5, rounding: "nearest", chunkRows: 10, aligned: true, variant: "vec4" },
    { dim: 64, rows: [40, 130], batch: 12, kind: "rowwise-adagrad", pooling: "sum", weighted: false, maxLen: 4, rounding: "stochastic", chunkRows: 45, aligned: true, variant: "vec4" },
    { dim: 24, rows: [50], batch: 20, kind: "rowwise-adagrad", pooling: "mean", weighted: true, maxLen: 3, rounding: "nearest", aligned: true },
    { dim: 16, rows: [29, 64], batch: 13, kind: "adagrad", pooling: "mean", weighted: false, maxLen: 5, rounding: "stochastic", aligned: true, variant: "scalar" },
  ];
  for (const [i, c] of cases.entries()) {
    it(`${c.kind} ${c.rounding} d=${c.dim} rows=${c.rows.join("-")} B=${c.batch} ${c.pooling}${c.weighted ? " weighted" : ""}${c.chunkRows ? ` chunks of ${c.chunkRows}` : ""}${c.aligned ? " aligned" : ""}${c.variant ? ` ${c.variant}` : ""}`, async () => {
      await backwardCase(c, 200 + i);
    });
  }

  /** One SGD step on 256 rows x 16 of 1.0, every row in one bag with gradient g: the update lr*g is a quarter of bf16's step at 1. */
  async function smallUpdate(rounding: "nearest" | "stochastic", seedOffset = 0): Promise<Float64Array> {
    const device = await testDevice();
    const rows = 256;
    const d = 16;
    const tables = createTableSet(device, { rows: [rows], dim: d, precision: "bf16" });
    writeTable(device, tables, 0, new Float32Array(rows * d).fill(1));
    const state = createEmbeddingOptimizerState(device, tables, "sgd");
    const bags = createBagBatchBuffers(device, { batchSize: rows, numTables: 1, maxIndices: rows });
    writeBagBatch(device, bags, { batchSize: rows, offsets: Uint32Array.from({ length: rows + 1 }, (_, i) => i), indices: Uint32Array.from({ length: rows }, (_, i) => i) }, [rows]);
    const step = 2 ** -7 / 4; // lr * |g|: a quarter of bf16's step between 1 and 2 (the weights move up)
    const gradOut = uploadStorage(device, new Float32Array(rows * d).fill(-step / LR), "gradOut");
    const optim = createOptimizerParams(device, { lr: LR, eps: EPS, step: 1 + seedOffset });
    const bw = prepareEmbeddingBagBackward(device, { tables, state, bags, gradOut, gradStride: d, gradOffset: 0, maxIndices: rows, optim, rounding, roundingSeed: 99 });
    submitDispatches(device, bw.dispatches);
    const out = decodeBf16Rows(await readWords(device, tables), d);
    bw.destroy();
    return out;
  }

  it("stochastic rounding keeps a sub-step update on average; nearest drops it; reruns of a step give the same bits", async () => {
    const near = await smallUpdate("nearest");
    expect(near.every((v) => v === 1)).toBe(true);
    const sr = await smallUpdate("stochastic");
    // Each element becomes 1 + 2^-7 with probability 1/4, else stays 1: mean 1 + 2^-9.
    const n = sr.length;
    const up = sr.filter((v) => v === 1 + 2 ** -7).length;
    expect(sr.filter((v) => v === 1).length + up).toBe(n);
    const p = 0.25;
    expect(Math.abs(up - n * p)).toBeLessThan(5 * Math.sqrt(n * p * (1 - p)));
    // Deterministic per step: the same step again gives the same bits; another step other bits.
    expect(Array.from(await smallUpdate("stochastic"))).toEqual(Array.from(sr));
    expect(Array.from(await smallUpdate("stochastic", 1))).not.toEqual(Array.from(sr));
  });

  it("rejects a vec4 update the shapes do not allow, saying what it needs", async () => {
    const device = await testDevice();
    const tables = createTableSet(device, { rows: [8], dim: 8, precision: "bf16" });
    const state = createEmbeddingOptimizerState(device, tables, "sgd");
    const bags = createBagBatchBuffers(device, { batchSize: 2, numTables: 1, maxIndices: 2 });
    const gradOut = uploadStorage(device, new Float32Array(32), "g");
    const optim = createOptimizerParams(device, { lr: LR });
    expect(() => prepareEmbeddingBagBackward(device, { tables, state, bags, gradOut, gradStride: 10, gradOffset: 0, maxIndices: 2, optim, updateVariant: "vec4" })).toThrow(/needs dim a multiple of 8 and gradStride, gradOffset multiples of 4 \(got 8, 10, 0\)/);
  });
});
