/**
 * bench:scale helper: the uncapped Kaggle model on one device. 26 tables with
 * the Kaggle cardinalities (from a dictionary cache's manifest, or the
 * generator's when the data is "synthetic") x d=16, bottom 13-512-256-64-16,
 * top 367-512-256-1, bce, SGD lr 0.1 (the reference's Kaggle config).
 * Measures creation, ms/step at batch 2048 with the prefetching loader
 * (shuffled Arrow cache, or Zipf synthetic batches), checkpoint write and load.
 * Prints one JSON line.
 *   deno run -A bench/scale_model.ts CACHE_DIR|synthetic OUT_DIR [STEPS] [sgd|adagrad|rwsadagrad]
 * SCALE_DEVICES=N runs it on N devices of the adapter (the sharded model, as train --devices N
 * --shard-plan SCALE_SHARD_PLAN, default row), then loads the N-device checkpoint on one device.
 * Each phase's peak RSS is VmHWM, reset (/proc/self/clear_refs) at the phase's start.
 * SCALE_KEEP=1 keeps the checkpoint files.
 */
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { arrowCacheSource } from "../src/data/arrow_cache.ts";
import { KAGGLE_CARDINALITIES } from "../src/data/criteo_gen.ts";
import { prefetch } from "../src/data/prefetch.ts";
import type { DataSource } from "../src/data/source.ts";
import { syntheticSource } from "../src/data/synthetic.ts";
import { createContext, createContexts } from "../src/gpu/context.ts";
import { resolveTrainFlags } from "../src/cli/commands/train.ts";
import { createSharded } from "../src/cli/shard.ts";
import { ShardedDlrm } from "../src/shard/model.ts";
import { loadCheckpointInto, saveCheckpoint } from "../src/io/checkpoint.ts";
import { resolveConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const [data, outDir, stepsArg, optArg] = args;
const steps = Number(stepsArg ?? 10);
const optimizer = (optArg ?? "sgd") as "sgd" | "adagrad" | "rwsadagrad";
const keep = Boolean((globalThis as { Deno?: { env: { get(k: string): string | undefined } } }).Deno?.env.get("SCALE_KEEP") ?? process.env.SCALE_KEEP);
const WRITER = "streaming";
const env = (k: string) => (globalThis as { Deno?: { env: { get(k: string): string | undefined } } }).Deno?.env.get(k) ?? process.env[k];
/** SCALE_DEVICES=N: N devices of the adapter under the sharding scheduler (train --devices N --shard-plan SCALE_SHARD_PLAN, default row). */
const devices = Number(env("SCALE_DEVICES") ?? 1);
const shardPlan = env("SCALE_SHARD_PLAN") ?? "row";
/** Loads checkpoint `path` into `model` (parameters and optimizer state), streaming. */
async function loadInto(path: string, m: DlrmModel | ShardedDlrm): Promise<void> {
  await loadCheckpointInto(path, m);
}
const warmup = 3;
const B = 2048;
const log = (s: string) => console.error(`[scale_model ${new Date().toISOString().slice(11, 19)}] ${s}`);
/** Peak RSS (VmHWM) since the last reset, and the current RSS, in bytes (Linux /proc). */
function rss(): { peak: number; now: number } {
  const st = readFileSync("/proc/self/status", "utf8");
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(st)?.[1] ?? NaN) * 1024;
  return { peak: kb("VmHWM"), now: kb("VmRSS") };
}
/** Resets VmHWM to the current RSS (writes 5 to /proc/self/clear_refs), so the next rss().peak is a phase's own peak. */
function resetPeak(): void {
  try { writeFileSync("/proc/self/clear_refs", "5"); } catch { /* not Linux: peaks stay cumulative */ }
}
const phases: Record<string, { seconds: number; peakRss: number; rssAfter: number }> = {};
function phase(name: string, t0: number): number {
  const s = (performance.now() - t0) / 1000;
  const r = rss();
  phases[name] = { seconds: s, peakRss: r.peak, rssAfter: r.now };
  log(`${name}: ${s.toFixed(1)} s, peak RSS ${(r.peak / 2 ** 30).toFixed(2)} GiB, now ${(r.now / 2 ** 30).toFixed(2)} GiB`);
  resetPeak();
  return s;
}

const source: DataSource = data === "synthetic"
  ? syntheticSource({ numDense: 13, tableRows: KAGGLE_CARDINALITIES, seed: 1, distribution: { kind: "zipf", s: 1.05 } })
  : await arrowCacheSource(data, { randomize: "total", shuffleSeed: 1 });
const ctxs = devices > 1 ? await createContexts(devices, { label: "scale" }) : [await createContext({ label: "scale" })];
const ctx = ctxs[0]!;
const lim = ctx.device.limits;
const settle = () => Promise.all(ctxs.map((c) => c.device.queue.onSubmittedWorkDone()));
const config = resolveConfig({
  embeddingDim: 16, tableRows: [...source.tableRows], bottomMlp: [13, 512, 256, 64, 16], topMlp: [367, 512, 256, 1],
  loss: "bce", optimizer, learningRate: 0.1, miniBatchSize: B,
});
const rows = config.tableRows.reduce((a, b) => a + b, 0);
log(`adapter ${ctx.adapter.name} x ${devices}${devices > 1 ? ` (--shard-plan ${shardPlan})` : ""}; ${rows} rows; ${optimizer}; maxStorageBufferBindingSize ${lim.maxStorageBufferBindingSize}, maxBufferSize ${lim.maxBufferSize}`);
resetPeak();
let t = performance.now();
const init = initParameters(config);
phase("init", t);
t = performance.now();
const model: DlrmModel | ShardedDlrm = devices > 1
  ? await createSharded(ctxs, config, init, (await resolveTrainFlags(["--devices", String(devices), "--shard-plan", shardPlan, "--mini-batch-size", String(B)])).v)
  : new DlrmModel(ctx.device, config, init);
await settle();
for (const k of Object.keys(init)) delete init[k];
const createSeconds = phase("create", t);

const loader = prefetch(source.batches({ batchSize: B, split: "train", limit: warmup + steps }), 4);
const times: number[] = [];
let waitAfterWarmup = 0;
let k = 0;
t = performance.now();
let tStep = t;
let tMeasured = 0;
for await (const batch of loader) {
  if (k === warmup) { tMeasured = performance.now(); waitAfterWarmup = loader.stats.waitMs; }
  await model.trainStep(batch);
  await settle();
  const now = performance.now();
  const dt = now - tStep;
  if (k >= warmup) times.push(dt);
  tStep = now;
  k++;
  log(`step ${k}: ${dt.toFixed(0)} ms`);
}
const measured = performance.now() - tMeasured;
const losses = await model.readLosses();
const msPerStep = times.reduce((a, b) => a + b, 0) / times.length;
const loaderShare = (loader.stats.waitMs - waitAfterWarmup) / measured;
phase("steps", t);

const ckpt = join(outDir, "uncapped.safetensors");
const side = ckpt.replace(/\.safetensors$/, ".optim.safetensors");
rmSync(ckpt, { force: true });
rmSync(side, { force: true });
t = performance.now();
await saveCheckpoint(ckpt, model);
const saveSeconds = phase("save", t);
const checkpointBytes = statSync(ckpt).size;
const optimizerBytes = optimizer === "sgd" ? 0 : statSync(side).size;
log(`checkpoint ${checkpointBytes} + ${optimizerBytes} bytes in ${saveSeconds.toFixed(1)} s`);
t = performance.now();
await loadInto(ckpt, model);
await settle();
const loadSeconds = phase("load", t);
// The loaded model still steps.
const again = prefetch(source.batches({ batchSize: B, split: "train", limit: 1 }), 1);
for await (const b of again) await model.trainStep(b);
const after = await model.readLosses();
let loadOnOne: { seconds: number; peakRss: number } | undefined;
if (devices > 1) {
  // The checkpoint written by N devices, loaded by one.
  model.destroy();
  await settle();
  resetPeak();
  t = performance.now();
  const one = new DlrmModel(ctx.device, config, initParameters(config));
  await settle();
  phase("create-1", t);
  t = performance.now();
  await loadCheckpointInto(ckpt, one);
  await settle();
  loadOnOne = { seconds: phase("load-on-1", t), peakRss: phases["load-on-1"]!.peakRss };
  one.destroy();
}
if (!keep) { rmSync(ckpt, { force: true }); rmSync(side, { force: true }); }
const chunks = Math.ceil((rows * 16 * 4) / Math.min(lim.maxStorageBufferBindingSize, lim.maxBufferSize));
const gpuBytes = rows * 16 * 4 * (optimizer === "adagrad" ? 2 : optimizer === "rwsadagrad" ? 1 + 1 / 16 : 1);
console.log(JSON.stringify({
  data, host: (globalThis as { Deno?: unknown }).Deno ? "deno" : "node", adapter: ctx.adapter.name, tableRows: rows, embeddingBytes: rows * 16 * 4, gpuBytes, chunks, maxBinding: lim.maxStorageBufferBindingSize, maxBuffer: lim.maxBufferSize,
  optimizer, lr: 0.1, createSeconds, steps: times.length, warmup, msPerStep, stepTimes: times.map(Math.round), loaderShare, saveSeconds, loadSeconds, checkpointBytes, optimizerBytes,
  firstLoss: losses[0], lastLoss: losses.at(-1), lossAfterLoad: after.at(-1), phases, writer: WRITER, devices, shardPlan: devices > 1 ? shardPlan : undefined, loadOnOne,
}));
if (devices === 1) model.destroy();
ctxs.forEach((c) => c.destroy());
