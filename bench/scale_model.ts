/**
 * bench:scale helper: the uncapped Kaggle model on one device. 26 tables with
 * the Kaggle cardinalities (from a dictionary cache's manifest, or the
 * generator's when the data is "synthetic") x d=16, bottom 13-512-256-64-16,
 * top 367-512-256-1, bce, SGD lr 0.1 (the reference's Kaggle config).
 * Measures creation, ms/step at batch 2048 with the prefetching loader
 * (shuffled Arrow cache, or Zipf synthetic batches), checkpoint write and load.
 * Prints one JSON line.
 *   deno run -A bench/scale_model.ts CACHE_DIR|synthetic OUT_DIR [STEPS]
 */
import { statSync, rmSync } from "node:fs";
import { join } from "node:path";
import { arrowCacheSource } from "../src/data/arrow_cache.ts";
import { KAGGLE_CARDINALITIES } from "../src/data/criteo_gen.ts";
import { prefetch } from "../src/data/prefetch.ts";
import type { DataSource } from "../src/data/source.ts";
import { syntheticSource } from "../src/data/synthetic.ts";
import { createContext } from "../src/gpu/context.ts";
import { applyCheckpoint, loadCheckpointFile, saveCheckpoint } from "../src/io/checkpoint.ts";
import { resolveConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const [data, outDir, stepsArg] = args;
const steps = Number(stepsArg ?? 20);
const warmup = 3;
const B = 2048;
const log = (s: string) => console.error(`[scale_model ${new Date().toISOString().slice(11, 19)}] ${s}`);

const source: DataSource = data === "synthetic"
  ? syntheticSource({ numDense: 13, tableRows: KAGGLE_CARDINALITIES, seed: 1, distribution: { kind: "zipf", s: 1.05 } })
  : await arrowCacheSource(data, { randomize: "total", shuffleSeed: 1 });
const ctx = await createContext({ label: "scale" });
const lim = ctx.device.limits;
const config = resolveConfig({
  embeddingDim: 16, tableRows: [...source.tableRows], bottomMlp: [13, 512, 256, 64, 16], topMlp: [367, 512, 256, 1],
  loss: "bce", optimizer: "sgd", learningRate: 0.1, miniBatchSize: B,
});
const rows = config.tableRows.reduce((a, b) => a + b, 0);
log(`adapter ${ctx.adapter.name}; ${rows} rows; maxStorageBufferBindingSize ${lim.maxStorageBufferBindingSize}, maxBufferSize ${lim.maxBufferSize}`);
let t = performance.now();
const model = new DlrmModel(ctx.device, config, initParameters(config));
await ctx.device.queue.onSubmittedWorkDone();
const createSeconds = (performance.now() - t) / 1000;
log(`created in ${createSeconds.toFixed(1)} s`);

const loader = prefetch(source.batches({ batchSize: B, split: "train", limit: warmup + steps }), 4);
const times: number[] = [];
let waitAfterWarmup = 0;
let k = 0;
let tStep = performance.now();
let tMeasured = 0;
for await (const batch of loader) {
  if (k === warmup) { tMeasured = performance.now(); waitAfterWarmup = loader.stats.waitMs; }
  model.trainStep(batch);
  await ctx.device.queue.onSubmittedWorkDone();
  const now = performance.now();
  if (k >= warmup) times.push(now - tStep);
  tStep = now;
  k++;
  if (k % 5 === 0) log(`step ${k}: ${(times.at(-1) ?? 0).toFixed(0)} ms`);
}
const measured = performance.now() - tMeasured;
const losses = await model.readLosses();
const msPerStep = times.reduce((a, b) => a + b, 0) / times.length;
const loaderShare = (loader.stats.waitMs - waitAfterWarmup) / measured;

const ckpt = join(outDir, "uncapped.safetensors");
rmSync(ckpt, { force: true });
t = performance.now();
await saveCheckpoint(ckpt, model);
const saveSeconds = (performance.now() - t) / 1000;
const checkpointBytes = statSync(ckpt).size;
log(`checkpoint ${checkpointBytes} bytes in ${saveSeconds.toFixed(1)} s`);
t = performance.now();
const loaded = await loadCheckpointFile(ckpt, config);
applyCheckpoint(model, loaded, { withOptimizer: false });
await ctx.device.queue.onSubmittedWorkDone();
const loadSeconds = (performance.now() - t) / 1000;
log(`loaded in ${loadSeconds.toFixed(1)} s`);
// The loaded model still steps.
const again = prefetch(source.batches({ batchSize: B, split: "train", limit: 1 }), 1);
for await (const b of again) model.trainStep(b);
const after = await model.readLosses();
rmSync(ckpt, { force: true });
const chunks = Math.ceil((rows * 16 * 4) / Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize));
console.log(JSON.stringify({
  data, adapter: ctx.adapter.name, tableRows: rows, embeddingBytes: rows * 16 * 4, chunks, maxBinding: lim.maxStorageBufferBindingSize, maxBuffer: lim.maxBufferSize,
  optimizer: "sgd", lr: 0.1, createSeconds, steps: times.length, warmup, msPerStep, loaderShare, saveSeconds, loadSeconds, checkpointBytes,
  firstLoss: losses[0], lastLoss: losses.at(-1), lossAfterLoad: after.at(-1), rssAfter: (globalThis as { process?: { memoryUsage(): { rss: number } } }).process?.memoryUsage().rss,
}));
model.destroy();
ctx.destroy();
