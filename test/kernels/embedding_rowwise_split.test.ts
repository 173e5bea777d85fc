/**
 * The row-wise Adagrad backward split for column shards
 * (src/kernels/embedding_rowwise_split.ts: shard_rowwise_partial +
 * shard_rowwise_update): a table set cut into column pieces, each piece's
 * partial row sums (rowSum prefilled with NaN, so a slot that is read but
 * never written fails) summed on the host in piece order (the allreduce's
 * job), then each piece's update. The pieces joined must match the float64
 * whole-row reference (embeddingBackwardStepRef, rowwise-adagrad) within the
 * rounding bound, every piece's row accumulators must be bit-identical, and
 * with one piece of full width the split must equal embed's fused kernel bit
 * for bit.
 */
import { describe, expect, it } from "vitest";
import { readF32, uploadStorage, writeBuffer } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { createBagBatchBuffers, type HostBags, writeBagBatch } from "../../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../../src/kernels/embedding_bag_backward.ts";
import { createEmbeddingOptimizerState } from "../../src/kernels/embedding_optimizer_state.ts";
import { prepareColumnRowwiseBackward } from "../../src/kernels/embedding_rowwise_split.ts";
import { createTableSet, readTable, writeTable } from "../../src/kernels/embedding_tables.ts";
import { createOptimizerParams } from "../../src/kernels/optimizer_params.ts";
import { embeddingBackwardStepRef } from "../../src/kernels/reference/embedding_backward.ts";
import { expectAllClose, expectBitIdentical, sumTolerance, U32 } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { Rng } from "../helpers/random.ts";

const LR = 0.05;
const EPS = 1e-10;

function randomBags(rng: Rng, rows: number[], batch: number, maxLen: number): HostBags {
  const T = rows.length;
  const offsets = new Uint32Array(T * batch + 1);
  const indices: number[] = [];
  for (let t = 0; t < T; t++) {
    for (let b = 0; b < batch; b++) {
      const len = b % 5 === 3 ? 0 : rng.int(maxLen + 1);
      for (let j = 0; j < len; j++) indices.push(rng.uniform() < 0.3 ? rng.int(Math.min(3, rows[t]!)) : rng.int(rows[t]!));
      offsets[t * batch + b + 1] = indices.length;
    }
  }
  return { batchSize: batch, offsets, indices: Uint32Array.from(indices) };
}

interface Piece {
  cols: [number, number];
  tables: ReturnType<typeof createTableSet>;
  state: ReturnType<typeof createEmbeddingOptimizerState>;
  gradOut: GPUBuffer;
  gradStride: number;
  rowSum: GPUBuffer;
  bw: ReturnType<typeof prepareColumnRowwiseBackward>;
}

async function runSplit(d: number, rows: number[], cuts: number[], batch: number, seed: number, chunkRows?: number): Promise<void> {
  const device = await testDevice();
  const rng = new Rng(seed);
  const T = rows.length;
  const maxLen = 4;
  const maxIndices = T * batch * maxLen;
  const bags = createBagBatchBuffers(device, { batchSize: batch, numTables: T, maxIndices });
  const optim = createOptimizerParams(device, { lr: LR, eps: EPS });
  const slots = rows.map((_, t) => ({ offset: rows.slice(0, t).reduce((a, r) => a + r, 0), capacity: rows[t]! }));
  const slotFloats = rows.reduce((a, r) => a + r, 0);
  const w0 = rows.map((r) => rng.f32(r * d));
  const edges = [0, ...cuts, d];
  const pieces: Piece[] = edges.slice(0, -1).map((a, p) => {
    const cols: [number, number] = [a, edges[p + 1]!];
    const w = cols[1] - cols[0];
    const tables = createTableSet(device, { rows, dim: w, maxChunkBytes: chunkRows ? chunkRows * w * 4 : undefined });
    rows.forEach((r, t) => {
      const part = new Float32Array(r * w);
      for (let i = 0; i < r; i++) part.set(w0[t]!.subarray(i * d + cols[0], i * d + cols[1]), i * w);
      writeTable(device, tables, t, part);
    });
    const state = createEmbeddingOptimizerState(device, tables, "rowwise-adagrad");
    const gradStride = (T + 1) * w + 3;
    const gradOut = uploadStorage(device, new Float32Array(batch * gradStride).fill(NaN), `grad${p}`);
    const rowSum = uploadStorage(device, new Float32Array(slotFloats).fill(NaN), `rowSum${p}`);
    const bw = prepareColumnRowwiseBackward(device, { tables, state, bags, gradOut, gradStride, gradOffset: w, maxIndices, optim, fullDim: d, slots, rowSum });
    return { cols, tables, state, gradOut, gradStride, rowSum, bw };
  });
  let table: Float32Array = new Float32Array(slotFloats * d);
  w0.forEach((x, t) => table.set(x, slots[t]!.offset * d));
  let state: Float32Array = new Float32Array(slotFloats);
  for (let step = 0; step < 3; step++) {
    const host = randomBags(rng, rows, batch, maxLen);
    writeBagBatch(device, bags, host, rows);
    // The whole-row gradient [B, T*d]; each piece gets its columns in an interaction-style row.
    const grad = rng.f32(batch * T * d);
    for (const pc of pieces) {
      const w = pc.cols[1] - pc.cols[0];
      const g = new Float32Array(batch * pc.gradStride).fill(NaN);
      for (let b = 0; b < batch; b++) for (let t = 0; t < T; t++) g.set(grad.subarray((b * T + t) * d + pc.cols[0], (b * T + t) * d + pc.cols[1]), b * pc.gradStride + w + t * w);
      writeBuffer(device, pc.gradOut, g);
      writeBuffer(device, pc.rowSum, new Float32Array(slotFloats).fill(NaN));
      pc.bw.setNumIndices(device, host.indices.length);
      submitDispatches(device, pc.bw.reduce);
    }
    // The allreduce, on the host: f32 sum in piece order, the same total on every piece.
    const partials = await Promise.all(pieces.map((pc) => readF32(device, pc.rowSum)));
    const total = new Float32Array(slotFloats);
    for (let i = 0; i < slotFloats; i++) {
      let acc = Math.fround(partials[0]![i]!);
      for (let p = 1; p < pieces.length; p++) acc = Math.fround(acc + partials[p]![i]!);
      total[i] = acc;
    }
    for (const pc of pieces) {
      writeBuffer(device, pc.rowSum, total);
      submitDispatches(device, pc.bw.update);
    }
    const ref = embeddingBackwardStepRef({
      dim: d, rows, batchSize: batch, offsets: host.offsets, indices: host.indices, pooling: "sum",
      gradOut: grad, gradStride: T * d, gradOffset: 0, kind: "rowwise-adagrad", lr: LR, eps: EPS, table, state,
    });
    // Join the pieces; every piece's accumulators must be the same bits.
    const got = new Float32Array(slotFloats * d);
    let gotState: Float32Array | undefined;
    for (const pc of pieces) {
      const w = pc.cols[1] - pc.cols[0];
      const st = new Float32Array(slotFloats);
      for (let t = 0; t < T; t++) {
        const part = await readTable(device, pc.tables, t);
        for (let i = 0; i < rows[t]!; i++) got.set(part.subarray(i * w, (i + 1) * w), (slots[t]!.offset + i) * d + pc.cols[0]);
        st.set(await readTable(device, { ...pc.tables, dim: 1, chunks: pc.tables.chunks.map((c, k) => ({ ...c, buffer: pc.state.chunks[k]! })) }, t), slots[t]!.offset);
      }
      if (gotState) expectBitIdentical(st, gotState, `step ${step}: accumulators of piece [${pc.cols}]`);
      else gotState = st;
    }
    // Tolerance: g of a row is a K-term f32 sum (error delta_k); propagate through s and the update at the corners.
    const tolW = new Float64Array(got.length);
    const tolS = new Float64Array(slotFloats);
    for (const [row, rg] of ref.grads) {
      const delta = Array.from({ length: d }, (_, k) => sumTolerance(rg.terms + 2, rg.absSum[k]!));
      let lo = 0, hi = 0;
      for (let k = 0; k < d; k++) {
        lo += Math.max(0, Math.abs(rg.g[k]!) - delta[k]!) ** 2;
        hi += (Math.abs(rg.g[k]!) + delta[k]!) ** 2;
      }
      const sLo = state[row]! + lo / d;
      const sHi = state[row]! + hi / d;
      const sTol = Math.max(sHi - ref.state[row]!, ref.state[row]! - sLo) + (d + 4 + pieces.length) * U32 * sHi;
      tolS[row] = sTol;
      for (let k = 0; k < d; k++) {
        const i = row * d + k;
        const dir = (table[i]! - ref.table[i]!) / LR;
        let worst = 0;
        for (const num of [rg.g[k]! - delta[k]!, rg.g[k]! + delta[k]!]) for (const s of [Math.max(0, sLo - sTol), sHi + sTol]) worst = Math.max(worst, Math.abs(num / (Math.sqrt(s) + EPS) - dir));
        tolW[i] = LR * (worst + 8 * U32 * Math.abs(dir)) + 4 * U32 * (Math.abs(table[i]!) + Math.abs(LR * dir)) + 1e-30;
      }
    }
    expect(ref.grads.size).toBeGreaterThan(1);
    expectAllClose(got, ref.table, (i) => tolW[i]!, `step ${step} table`);
    expectAllClose(gotState!, ref.state, (i) => tolS[i]!, `step ${step} state`);
    table = got;
    state = gotState!;
  }
  for (const pc of pieces) {
    await pc.bw.checkIndices(device);
    pc.bw.destroy();
  }
}

describe("row-wise Adagrad split for column shards (partial row sums, allreduce, update)", () => {
  it("d = 8 cut 3 + 5, tables [37, 5, 100] in chunks of 23 rows, B = 17: 3 steps match the whole-row reference", () => runSplit(8, [37, 5, 100], [3], 17, 1, 23));
  it("d = 16 cut 8 + 5 + 3, tables [29, 64], B = 13: 3 steps match the whole-row reference", () => runSplit(16, [29, 64], [8, 13], 13, 2));
  it("one piece of full width equals the fused rowwise-adagrad backward bit for bit", async () => {
    const device = await testDevice();
    const rng = new Rng(5);
    const rows = [37, 5, 100];
    const d = 8;
    const T = rows.length;
    const batch = 17;
    const maxIndices = T * batch * 4;
    const optim = createOptimizerParams(device, { lr: LR, eps: EPS });
    const w0 = rows.map((r) => rng.f32(r * d));
    const gradStride = T * d;
    const gradOut = uploadStorage(device, rng.f32(batch * gradStride), "grad");
    const host = randomBags(rng, rows, batch, 4);
    const make = () => {
      const tables = createTableSet(device, { rows, dim: d, maxChunkBytes: 23 * d * 4 });
      rows.forEach((_, t) => writeTable(device, tables, t, w0[t]!));
      const bags = createBagBatchBuffers(device, { batchSize: batch, numTables: T, maxIndices });
      writeBagBatch(device, bags, host, rows);
      return { tables, state: createEmbeddingOptimizerState(device, tables, "rowwise-adagrad"), bags };
    };
    const a = make();
    const b = make();
    // The scalar fused update: the split recomputes g and sums g^2 in its order.
    const fused = prepareEmbeddingBagBackward(device, { ...a, gradOut, gradStride, gradOffset: 0, maxIndices, optim, updateVariant: "scalar" });
    const rowSum = uploadStorage(device, new Float32Array(rows.reduce((x, r) => x + r, 0)).fill(NaN), "rowSum");
    const slots = rows.map((r, t) => ({ offset: rows.slice(0, t).reduce((x, y) => x + y, 0), capacity: r }));
    const split = prepareColumnRowwiseBackward(device, { ...b, gradOut, gradStride, gradOffset: 0, maxIndices, optim, fullDim: d, slots, rowSum });
    for (let step = 0; step < 2; step++) {
      submitDispatches(device, fused.dispatches);
      submitDispatches(device, [...split.reduce, ...split.update]);
    }
    for (let t = 0; t < T; t++) expectBitIdentical(await readTable(device, b.tables, t), await readTable(device, a.tables, t), `table ${t}`);
    fused.destroy();
    split.destroy();
  });
});
