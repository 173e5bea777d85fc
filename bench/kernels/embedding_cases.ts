/**
 * Embedding-bag forward and backward + SGD update, two configurations:
 *   A  26 tables x 100k rows, d = 16, 1 index per bag, B = 2048 (Kaggle-like)
 *   B  8 tables x 1M rows, d = 64, 100 indices per bag, B = 2048 (the DLRM paper's)
 * Indices uniform in [0, rows) (no reuse beyond chance), fixed seed.
 * Bytes a lookup must move (the floor the kernel cannot go below):
 *   forward   offsets (T*B+1 u32) + indices (4 B each) + one row read per
 *             index (d*4) + one output row per bag (d*4), written into the
 *             interaction input [B, (T+1)*d] at offset d
 *   backward  offsets + indices + one gradient row per bag (d*4) + each
 *             distinct row read and written once (2*d*4); the sort and the
 *             run bookkeeping are extra traffic not counted
 * Peer (forward): per table tf.gather, then the bag sum as a batched
 * tf.matMul of ones [B, 1, L] with the gathered rows [B, L, d] (plain gather
 * when a bag holds one index), then tf.stack into [B, T, d]. That is the
 * fastest tfjs formulation found in probes (one table of config B-like
 * shapes, kernel ms): lavapipe gather + matMul 267 vs gather + tf.sum 780 vs
 * gather + tf.unsortedSegmentSum 1750; SwiftShader (20 per bag) 1020 vs
 * 5300 (tfjs's reduce is slow there). tf.sparse.sparseSegmentSum reads its
 * inputs back to the CPU on the webgpu backend (no GPU peer; fails in Deno). tfjs holds
 * one tensor per table, so its tables are capped at one storage binding
 * (maxStorageBufferBindingSize); the cap is stated when it applies.
 */
import { createStorage, uploadStorage } from "../../src/gpu/buffers.ts";
import { uploadBagBatch } from "../../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../../src/kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../../src/kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState } from "../../src/kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet } from "../../src/kernels/embedding_tables.ts";
import { createOptimizerParams } from "../../src/kernels/optimizer_params.ts";
import { Rng } from "../../src/util/rng.ts";
import { table } from "../report.ts";
import { type BenchEnv, type Cell, fmt, pct, peerCols, renderCells } from "./common.ts";
import type { Timing } from "./timing.ts";

export interface EmbeddingConfig {
  key: string;
  tables: number;
  rows: number;
  dim: number;
  perBag: number;
  batch: number;
}

export interface EmbeddingResult {
  config: EmbeddingConfig;
  fwd: Timing;
  fwdGBs: number;
  bwdGBs: number;
}

const HEAD = ["case", "ms", "M lookups/s", "GB/s moved", "% copy BW", "wall ms", "tfjs ms", "tfjs / ours"];

export function embeddingConfigs(quick: boolean): EmbeddingConfig[] {
  return [
    { key: "A", tables: 26, rows: 100_000, dim: 16, perBag: 1, batch: 2048 },
    // --quick: smaller tables and bags (a smoke run, not the shape).
    { key: "B", tables: 8, rows: quick ? 100_000 : 1_000_000, dim: 64, perBag: quick ? 20 : 100, batch: 2048 },
  ];
}

export async function runEmbedding(env: BenchEnv): Promise<{ markdown: () => string; notes: string[]; results: EmbeddingResult[] }> {
  const { device, timer, peer, roof, log, quick } = env;
  const tf = peer?.tf;
  const rows: Cell[][] = [];
  const notes: string[] = [];
  const results: EmbeddingResult[] = [];
  for (const c of embeddingConfigs(quick)) {
    const { tables: T, rows: R, dim: d, perBag: L, batch: B } = c;
    const name = `${c.key}: ${T} x ${R / 1000}k x d${d}, ${L}/bag, B=${B}`;
    const rng = new Rng(1000 + T);
    const rowCounts = new Array<number>(T).fill(R);
    const nIdx = T * B * L;
    const offsets = new Uint32Array(T * B + 1);
    for (let k = 0; k < T * B; k++) offsets[k + 1] = offsets[k]! + L;
    const indices = new Uint32Array(nIdx);
    for (let i = 0; i < nIdx; i++) indices[i] = rng.int(R);
    // Distinct (table, row) pairs: the rows the update must read and write.
    let distinct = 0;
    {
      const seen = new Uint8Array(T * R);
      for (let t = 0; t < T; t++) {
        for (let p = offsets[t * B]!; p < offsets[(t + 1) * B]!; p++) {
          const g = t * R + indices[p]!;
          if (!seen[g]) (seen[g] = 1), distinct++;
        }
      }
    }

    // ---- ours
    // Chunks of at most 256 MiB: SwiftShader (Dawn) fails a 1 GiB allocation with
    // VK_ERROR_OUT_OF_DEVICE_MEMORY although its binding limit allows it.
    const set = createTableSet(device, { rows: rowCounts, dim: d, label: `emb-${c.key}`, maxChunkBytes: 256 << 20 });
    const bags = uploadBagBatch(device, { batchSize: B, offsets, indices }, rowCounts, `bags-${c.key}`);
    const stride = (T + 1) * d;
    const out = createStorage(device, B * stride * 4, "emb:out");
    const gradOut = uploadStorage(device, rng.f32(B * stride), "emb:gradOut");
    const optim = createOptimizerParams(device, { lr: 0.01 });
    const fwdDs = prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: stride, outOffset: d });
    const t0 = performance.now();
    const since = () => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
    const fwd = await timer.time(fwdDs, `embedding fwd ${c.key}`);
    log(`  (config ${c.key}: forward measured at ${since()})`);
    const state = createEmbeddingOptimizerState(device, set, "sgd");
    const bw = prepareEmbeddingBagBackward(device, {
      tables: set, state, bags, gradOut, gradStride: stride, gradOffset: d, maxIndices: nIdx, optim,
    });
    const bwd = await timer.time(bw.dispatches, `embedding bwd ${c.key}`);
    log(`  (config ${c.key}: backward measured at ${since()})`);
    bw.destroy();
    destroyTableSet(set);
    for (const b of [bags.offsets, bags.indices, out, gradOut, optim]) b.destroy();

    const fwdBytes = (T * B + 1) * 4 + nIdx * (4 + d * 4) + T * B * d * 4;
    const bwdBytes = (T * B + 1) * 4 + nIdx * 4 + T * B * d * 4 + distinct * 2 * d * 4;
    const fwdGBs = fwdBytes / (fwd.ms * 1e6);
    const bwdGBs = bwdBytes / (bwd.ms * 1e6);

    // ---- tfjs
    let peerT: Timing | undefined;
    let peerHow = "";
    if (tf && peer) {
      const cap = Math.floor(device.limits.maxStorageBufferBindingSize / (d * 4));
      const rT = Math.min(R, cap);
      if (rT < R) notes.push(`Config ${c.key}: tfjs tables capped at ${rT} rows each (one tensor per table must fit one ${device.limits.maxStorageBufferBindingSize / 2 ** 20} MiB storage binding); indices drawn below that.`);
      const tabs = rowCounts.map(() => tf.fill([rT, d], 0.01, "float32") as import("@tensorflow/tfjs-core").Tensor2D);
      const idx = Array.from({ length: T }, (_, t) => {
        const a = new Int32Array(B * L);
        for (let i = 0; i < B * L; i++) a[i] = rT < R ? rng.int(rT) : indices[t * B * L + i]!;
        return tf.tensor1d(a, "int32");
      });
      // Bag sum as a batched matMul: ones [B, 1, L] x gathered rows [B, L, d].
      const ones = tf.ones([B, 1, L]) as import("@tensorflow/tfjs-core").Tensor3D;
      const gatherSum = () => tf.stack(tabs.map((tab, t) => {
        const g = tf.gather(tab, idx[t]!);
        return L === 1 ? g : tf.reshape(tf.matMul(ones, tf.reshape(g, [B, L, d]) as import("@tensorflow/tfjs-core").Tensor3D), [B, d]);
      }), 1);
      peerT = await peer.time(gatherSum);
      log(`  (config ${c.key}: tfjs measured at ${since()})`);
      peerHow = L === 1 ? "gather + stack" : "gather + ones-matMul + stack";
      for (const t of [...tabs, ...idx, ones]) t.dispose();
    }

    const add = (pass: string, t: Timing, gbs: number, p: Timing | undefined, how = "") => {
      const [pm, pr] = p ? peerCols(t, p) : [pass === "fwd" ? "n/a" : "n/a (no peer op)", "n/a"];
      const cells = [`${name} ${pass}`, fmt(t.ms, 3), fmt(nIdx / (t.ms * 1e3), 1), fmt(gbs), () => pct(gbs / roof.copyGBs), fmt(t.wallMs, 3),
        how ? `${pm} (${how})` : pm, pr];
      rows.push(cells);
      log(renderCells(cells).join("  "));
    };
    add("fwd", fwd, fwdGBs, peerT, peerHow);
    add("bwd+SGD", bwd, bwdGBs, undefined);
    notes.push(`Config ${c.key}: ${nIdx} lookups, ${distinct} distinct rows; forward moves ${(fwdBytes / 2 ** 20).toFixed(1)} MiB, backward+update at least ${(bwdBytes / 2 ** 20).toFixed(1)} MiB.`);
    results.push({ config: c, fwd, fwdGBs, bwdGBs });
  }
  return { markdown: () => table(HEAD, rows.map(renderCells)), notes, results };
}
