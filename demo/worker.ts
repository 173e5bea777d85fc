/**
 * The training worker: owns the GPU device, the model and the data, so the
 * page never waits on the GPU or on batch generation. It runs the same
 * engine as the CLI (DlrmModel, the data sources, checkpoints) and reports
 * losses, evaluations, per-kernel GPU times and the learned embeddings.
 */
import { createContext, createContexts, type GpuContext } from "../src/gpu/context.ts";
import { ShardedDlrm } from "../src/shard/model.ts";
import { shardView } from "./shard.ts";
import { Profiler } from "../src/gpu/timing.ts";
import { resolveConfig, type DlrmConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { bf16ShardError } from "../src/model/precision.ts";
import { initParameters } from "../src/model/params.ts";
import { MetricsAccumulator, rocAuc } from "../src/model/metrics.ts";
import { readTable } from "../src/kernels/embedding_tables.ts";
import { syntheticSource, type Teacher } from "../src/data/synthetic.ts";
import { randomSource } from "../src/data/random.ts";
import { fileSource, memoryFs } from "../src/data/fs.ts";
import { preprocessCriteo } from "../src/data/preprocess.ts";
import { arrowCacheSource } from "../src/data/arrow_cache.ts";
import type { Batch } from "../src/data/batch.ts";
import type { DataSource } from "../src/data/source.ts";
import { applyCheckpoint, checkpointBytes, parseCheckpoint } from "../src/io/checkpoint.ts";
import type { FromWorker, KernelTime, Stage, ToWorker } from "./protocol.ts";
import { topMlp, type Settings } from "./settings.ts";
import { parseRows } from "./rows.ts";

const post = (m: FromWorker, transfer: Transferable[] = []) => (self as unknown as Worker).postMessage(m, transfer);

let ctx: GpuContext | undefined;
let model: DlrmModel | ShardedDlrm | undefined;
/** The devices of a sharded run (besides `ctx`, which single-device runs and checkpoint loads use). */
let shardCtxs: GpuContext[] = [];
function dropModel(): void {
  model?.destroy();
  model = undefined;
  for (const c of shardCtxs) c.destroy();
  shardCtxs = [];
}
let source: DataSource | undefined;
let teacher: Teacher | undefined;
let settings: Settings | undefined;
let running = false;
let paused = false;
let stopRequested = false;
let resume: (() => void) | undefined;
let runId = 0;
let runDone: Promise<void> = Promise.resolve();

const VAL_BATCHES = 8;
const FLUSH_EVERY = 10;
const PROFILE_EVERY = 50;

/** Profiler that also keeps the kernels of the last timed step in encode order. */
class OrderedProfiler extends Profiler {
  sequence: { label: string; ms: number }[] = [];
  override add(label: string, ms: number): void {
    this.sequence.push({ label, ms });
    super.add(label, ms);
  }
}

/**
 * Which part of DLRM a dispatch belongs to, from the encode order of a
 * training step (forward, backward, update; see DlrmModel.buildPlan) and the
 * kernel labels.
 */
export function classify(labels: string[], bottomLayers: number): KernelTime["stage"][] & { phases: KernelTime["phase"][] } {
  const stages: Stage[] = [];
  const phases: KernelTime["phase"][] = [];
  let phase: KernelTime["phase"] = "forward";
  let linearFwd = 0;
  let seenInteractionBwd = false;
  for (const l of labels) {
    const isLinear = /^(linear-|bias-grad|gemm)/.test(l);
    const isInteraction = /interaction/.test(l);
    const isEmb = /emb|bag|sort|scan|keys|heads|segments|ranges|combine|:update:/.test(l);
    let stage: Stage = "other";
    if (phase === "forward") {
      if (/^linear-fwd/.test(l)) stage = linearFwd++ < bottomLayers ? "bottom" : "top";
      else if (isInteraction) stage = "interaction";
      else if (/^loss_|^reduce_sum/.test(l)) stage = "loss";
      else if (isEmb) stage = "embedding";
      if (/^reduce_sum/.test(l)) {
        stages.push(stage);
        phases.push(phase);
        phase = "backward";
        continue;
      }
    } else if (phase === "backward") {
      if (isInteraction) {
        stage = "interaction";
        seenInteractionBwd = true;
      } else if (isLinear) stage = seenInteractionBwd ? "bottom" : "top";
      else if (isEmb) stage = "embedding";
      else {
        phase = "update";
        stage = "optimizer";
      }
      if (/:update:/.test(l)) phase = "update";
    } else {
      stage = isEmb ? "embedding" : "optimizer";
    }
    stages.push(stage);
    phases.push(phase);
  }
  return Object.assign(stages, { phases });
}

async function ensureContext(): Promise<GpuContext> {
  if (ctx && !ctx.lostError) return ctx;
  ctx = await createContext({ label: "demo" });
  ctx.lost.then((e) => {
    if (running || model) post({ type: "error", message: `the GPU device was lost (${e.message}); press Reset, then Start to train again` });
  });
  post({
    type: "device",
    info: { name: ctx.adapter.name, vendor: ctx.adapter.vendor, architecture: ctx.adapter.architecture, fallback: ctx.adapter.isFallbackAdapter, timestamps: ctx.hasTimestamps },
  });
  return ctx;
}

function configOf(s: Settings, numDense: number, tableRows: number[]): DlrmConfig {
  const st = { ...s, tables: tableRows };
  return resolveConfig({
    embeddingDim: s.dim,
    tableRows,
    bottomMlp: [numDense, ...s.bottom.slice(1)],
    topMlp: topMlp(st),
    interaction: s.interaction,
    loss: "bce-logits", // the numerically stable form; "bce" is the reference's BCELoss on probabilities
    optimizer: s.optimizer,
    learningRate: s.lr,
    miniBatchSize: s.batch,
    seed: s.seed,
  });
}

async function makeSource(s: Settings, file: File | undefined, maxIndRange: number): Promise<{ source: DataSource; teacher?: Teacher; describe: string }> {
  if (s.data === "criteo") {
    if (!file) throw new Error("choose or drop a Criteo file first (Kaggle train.txt format: label, 13 integers, 26 hex categoricals; TSV or CSV, optionally .gz)");
    const fs = memoryFs();
    post({ type: "state", state: "preparing", message: `reading ${file.name} locally (nothing is uploaded)...` });
    let last = 0;
    const report = await preprocessCriteo({
      input: fileSource(file),
      outDir: "/criteo-cache",
      dataset: "kaggle",
      categorical: "hash",
      maxIndRange,
      fs,
      onProgress: (p) => {
        const now = performance.now();
        if (now - last < 250) return;
        last = now;
        post({ type: "state", state: "preparing", message: `reading ${file.name} locally: ${p.rows.toLocaleString()} rows${p.percent !== undefined ? ` (${p.percent.toFixed(0)}%)` : ""}, ${Math.round(p.rowsPerSec).toLocaleString()} rows/s` });
      },
    });
    const src = await arrowCacheSource("/criteo-cache", { fs });
    return { source: src, describe: `${file.name}: ${report.rows.toLocaleString()} rows (${report.malformed} malformed skipped), categoricals hashed modulo ${maxIndRange}; ${src.splitRows("train").toLocaleString()} training rows, the last day's half for validation` };
  }
  const numDense = s.bottom[0]!;
  if (s.data === "random") {
    return { source: randomSource({ numDense, tableRows: s.tables, seed: s.seed, bagSize: s.bag }), describe: "random data (paper 4.1): uniform dense features and indices, random labels: nothing to learn, a speed test" };
  }
  const src = syntheticSource({ numDense, tableRows: s.tables, seed: s.seed, bagSize: s.bag });
  return { source: src, teacher: src.teacher, describe: "synthetic data (paper 4.2): Zipf-popular indices, labels drawn from a hidden teacher model" };
}

function formatRow(b: Batch, i: number): string {
  const dense = Array.from(b.dense.subarray(i * b.numDense, (i + 1) * b.numDense), (v) => +v.toFixed(3));
  const ids: number[] = [];
  for (let t = 0; t < b.numTables; t++) ids.push(b.indices[b.offsets[t * b.size + i]!]!);
  return `${dense.join(" ")} | ${ids.join(" ")}`;
}

async function waitWhilePaused(): Promise<void> {
  while (paused && !stopRequested) await new Promise<void>((r) => (resume = r));
}

async function start(s: Settings, file: File | undefined, maxIndRange: number): Promise<void> {
  if (running) throw new Error("already training: stop first");
  const id = ++runId;
  running = true;
  paused = false;
  stopRequested = false;
  try {
    post({ type: "state", state: "preparing", message: "requesting the GPU device..." });
    const c = await ensureContext();
    dropModel();
    const made = await makeSource(s, file, maxIndRange);
    source = made.source;
    teacher = made.teacher;
    const tableRows = [...source.tableRows];
    const config = configOf(s, source.numDense, tableRows);
    settings = { ...s, tables: tableRows, bottom: [source.numDense, ...s.bottom.slice(1)] };
    post({ type: "state", state: "preparing", message: "building the model and its kernels..." });
    if (s.sharded && s.devices > 1) {
      if (s.embeddingPrecision === "bf16") throw bf16ShardError();
      shardCtxs = await createContexts(s.devices, { label: "demo-shard" });
      const shape = { tableRows, dim: s.dim, bottomMlp: config.bottomMlp, topMlp: config.topMlp, interaction: s.interaction, optimizer: s.optimizer, batchSize: s.batch, poolingFactor: s.bag };
      const { plan } = shardView(shape, s.devices, s.plan, s.interconnect);
      model = new ShardedDlrm(shardCtxs, config, initParameters(config), plan);
    } else {
      model = await c.checked("building the model", () => new DlrmModel(c.device, config, initParameters(config), { embeddingPrecision: s.embeddingPrecision }));
    }

    // A fixed validation set, and the teacher's own score on it (the best any model can do).
    const val: Batch[] = [];
    for await (const b of source.batches({ batchSize: s.batch, split: "val", limit: VAL_BATCHES })) val.push(b);
    let teacherAuc: number | null = null;
    let teacherLogLoss: number | null = null;
    if (teacher) {
      const acc = new MetricsAccumulator();
      for (const b of val) acc.add(teacher.probabilities(b), b.labels, b.size);
      const r = acc.result();
      teacherAuc = r.auc;
      teacherLogLoss = r.logLoss;
    }
    post({ type: "data", describe: made.describe, numDense: source.numDense, tableRows, teacher: !!teacher, examples: val.length ? [0, 1, 2].filter((i) => i < val[0]!.size).map((i) => formatRow(val[0]!, i)) : [] });

    const m = model;
    const profiler = new OrderedProfiler(c.device, 2048); // WebGPU caps a query set at 4096 queries
    const evalNow = async () => {
      const acc = new MetricsAccumulator();
      for (const b of val) acc.add((await m.evaluate(b)).prob, b.labels, b.size);
      const r = acc.result();
      post({ type: "eval", step: m.step, auc: r.auc, logLoss: r.logLoss, accuracy: r.accuracy, teacherAuc, teacherLogLoss, samples: r.samples });
      await learned(m);
    };

    post({ type: "state", state: "running", message: "training" });
    await evalNow();
    let trainMs = 0;
    let seg = performance.now();
    let last = { time: seg, step: m.step };
    let pending = 0;
    const flush = async () => {
      const losses = await m.readLosses();
      pending = 0;
      if (!losses.length) return;
      const now = performance.now();
      trainMs += now - seg;
      seg = now;
      const first = m.step - losses.length;
      const sps = ((m.step - last.step) * s.batch) / Math.max(1e-6, (now - last.time) / 1000);
      last = { time: now, step: m.step };
      const bad = losses.findIndex((l) => !Number.isFinite(l));
      post({ type: "steps", points: losses.map((loss, i) => ({ step: first + i + 1, loss })), samplesPerSec: sps, lr: m.learningRate, trainSeconds: trainMs / 1000, totalSteps: s.steps });
      if (bad >= 0) throw new Error(`the loss became ${losses[bad]} at step ${first + bad + 1}: lower the learning rate and start again`);
    };
    const pauseGap = async () => {
      // Time spent outside training (evaluation, pause) is not training time.
      await flush();
      trainMs += performance.now() - seg;
    };
    const resumeClock = () => {
      seg = performance.now();
      last = { time: seg, step: m.step };
    };

    for await (const batch of source.batches({ batchSize: s.batch, split: "train", limit: s.steps })) {
      if (stopRequested || id !== runId) break;
      if (paused) {
        await pauseGap();
        post({ type: "state", state: "paused", message: `paused at step ${m.step}` });
        await waitWhilePaused();
        if (stopRequested) break;
        post({ type: "state", state: "running", message: "training" });
        resumeClock();
      }
      if (m instanceof ShardedDlrm) {
        if (m.step >= 2 && (m.step - 2) % PROFILE_EVERY === 0) {
          await flush();
          const prof = await m.profileStep(batch);
          const col = prof.collectives;
          post({
            type: "collectives",
            step: m.step,
            devices: m.replicas.length,
            totalMs: prof.totalMs,
            phases: prof.phases,
            rounds: [col.forward, col.backward, col.allreduce].flatMap((c) => c.rounds.map((r) => ({ label: r.label, sent: r.sent, pairs: r.pairs, ms: r.ms }))),
          });
        } else await m.trainStep(batch);
      } else if (m.step >= 2 && (m.step - 2) % PROFILE_EVERY === 0) {
        await flush();
        profiler.reset();
        profiler.sequence = [];
        let stepMs: number;
        if (profiler.timestamps) {
          m.trainStep(batch, profiler);
          await profiler.collect();
          stepMs = profiler.sequence.reduce((a, k) => a + k.ms, 0);
        } else {
          stepMs = await profiler.wallClock("whole training step (wall clock)", () => m.trainStep(batch));
        }
        const labels = profiler.sequence.map((k) => k.label);
        const cls = profiler.timestamps ? classify(labels, config.bottomMlp.length - 1) : Object.assign(labels.map((): Stage => "other"), { phases: labels.map(() => "forward" as const) });
        post({ type: "kernels", step: m.step, timestamps: profiler.timestamps, stepMs, kernels: profiler.sequence.map((k, i) => ({ label: k.label, ms: k.ms, stage: cls[i]!, phase: cls.phases[i]! })) });
      } else {
        m.trainStep(batch);
      }
      pending++;
      if (pending >= FLUSH_EVERY) await flush();
      if (m.step % s.evalEvery === 0 && m.step < s.steps) {
        await pauseGap();
        await evalNow();
        resumeClock();
      }
    }
    await pauseGap();
    if (id === runId) {
      await evalNow();
      post({ type: "state", state: stopRequested ? "stopped" : "done", message: `${stopRequested ? "stopped" : "finished"} at step ${m.step}: ${trainMs > 0 ? ((m.step * s.batch) / (trainMs / 1000)).toFixed(0) : "?"} samples/s over ${(trainMs / 1000).toFixed(1)} s of training` });
    }
  } finally {
    running = false;
    paused = false;
  }
}

/** Pick the table the "what it learned" view shows: the largest with at most 1M rows. */
function learnedTable(rows: readonly number[]): number {
  let best = 0;
  rows.forEach((r, t) => {
    if (r <= 1_000_000 && r > rows[best]!) best = t;
  });
  return best;
}

async function learned(m: DlrmModel | ShardedDlrm): Promise<void> {
  const t = learnedTable(m.config.tableRows);
  let all: Float32Array;
  let d: number;
  let rows: number;
  if (m instanceof ShardedDlrm) {
    // The sharded model gathers the table from its shards.
    const w = (await m.stateDict())[`emb_l.${t}.weight`];
    if (!w) return;
    all = w.data;
    [rows, d] = w.shape as [number, number];
  } else {
    const lt = m.embeddings.layout.tables[t]!;
    if (lt.kind !== "plain") return;
    const place = lt.places[0]!;
    d = place.dim;
    rows = place.rows;
    all = await readTable(m.device, m.embeddings.sets[place.set]!, place.table);
  }
  const K = Math.min(rows, Math.max(400, 8 * d));
  const X = all.subarray(0, K * d);
  // Colour: the teacher's score of each row (synthetic data), or its popularity rank.
  const colour = new Float64Array(K);
  if (teacher) {
    const dense = new Float32Array(m.config.bottomMlp[0]!).fill(0.5);
    const bags = m.config.tableRows.map(() => [] as number[]);
    for (let r = 0; r < K; r++) {
      bags[t] = [r];
      colour[r] = teacher.logit(dense, bags);
    }
    const base = teacher.logit(dense, m.config.tableRows.map(() => []));
    for (let r = 0; r < K; r++) colour[r] -= base;
  } else for (let r = 0; r < K; r++) colour[r] = -r;
  const { pcs, mean } = pca2(X, K, d);
  const points = Array.from({ length: K }, (_, r) => {
    let x = 0, y = 0;
    for (let j = 0; j < d; j++) {
      const v = X[r * d + j]! - mean[j]!;
      x += v * pcs[0]![j]!;
      y += v * pcs[1]![j]!;
    }
    return { x, y, c: colour[r]! };
  });
  post({ type: "learned", step: m.step, table: t, points, r2: teacher ? adjustedR2(X, K, d, colour) : null, colour: teacher ? "teacher" : "popularity" });
}

/** The two leading principal directions of K rows of width d (power iteration with deflation). */
function pca2(X: Float32Array, K: number, d: number): { pcs: Float64Array[]; mean: Float64Array } {
  const mean = new Float64Array(d);
  for (let r = 0; r < K; r++) for (let j = 0; j < d; j++) mean[j]! += X[r * d + j]! / K;
  const C = new Float64Array(d * d);
  for (let r = 0; r < K; r++) {
    for (let i = 0; i < d; i++) {
      const a = X[r * d + i]! - mean[i]!;
      for (let j = 0; j < d; j++) C[i * d + j]! += a * (X[r * d + j]! - mean[j]!);
    }
  }
  const pcs: Float64Array[] = [];
  for (let k = 0; k < 2; k++) {
    let v = new Float64Array(d).map((_, i) => Math.sin(i + 1 + k));
    for (let it = 0; it < 100; it++) {
      const w = new Float64Array(d);
      for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) w[i]! += C[i * d + j]! * v[j]!;
      for (const p of pcs) {
        const dot = w.reduce((s, x, i) => s + x * p[i]!, 0);
        for (let i = 0; i < d; i++) w[i]! -= dot * p[i]!;
      }
      const n = Math.hypot(...w) || 1;
      v = w.map((x) => x / n);
    }
    pcs.push(v);
  }
  return { pcs, mean };
}

/** Adjusted R² of the least-squares fit y ~ X w + b (how linearly the embeddings encode the teacher's score). */
function adjustedR2(X: Float32Array, K: number, d: number, y: Float64Array): number | null {
  const p = d + 1;
  if (K <= p + 1) return null;
  const A = new Float64Array(p * p);
  const rhs = new Float64Array(p);
  const row = new Float64Array(p);
  for (let r = 0; r < K; r++) {
    for (let j = 0; j < d; j++) row[j] = X[r * d + j]!;
    row[d] = 1;
    for (let i = 0; i < p; i++) {
      rhs[i]! += row[i]! * y[r]!;
      for (let j = 0; j < p; j++) A[i * p + j]! += row[i]! * row[j]!;
    }
  }
  let tr = 0;
  for (let i = 0; i < p; i++) tr += A[i * p + i]!;
  for (let i = 0; i < p; i++) A[i * p + i]! += 1e-9 * tr;
  // Gaussian elimination with partial pivoting.
  for (let c = 0; c < p; c++) {
    let piv = c;
    for (let r = c + 1; r < p; r++) if (Math.abs(A[r * p + c]!) > Math.abs(A[piv * p + c]!)) piv = r;
    for (let j = 0; j < p; j++) [A[c * p + j], A[piv * p + j]] = [A[piv * p + j]!, A[c * p + j]!];
    [rhs[c], rhs[piv]] = [rhs[piv]!, rhs[c]!];
    for (let r = c + 1; r < p; r++) {
      const f = A[r * p + c]! / A[c * p + c]!;
      for (let j = c; j < p; j++) A[r * p + j]! -= f * A[c * p + j]!;
      rhs[r]! -= f * rhs[c]!;
    }
  }
  const w = new Float64Array(p);
  for (let c = p - 1; c >= 0; c--) {
    let s = rhs[c]!;
    for (let j = c + 1; j < p; j++) s -= A[c * p + j]! * w[j]!;
    w[c] = s / A[c * p + c]!;
  }
  const ym = y.reduce((a, b) => a + b, 0) / K;
  let ssRes = 0, ssTot = 0;
  for (let r = 0; r < K; r++) {
    let f = w[d]!;
    for (let j = 0; j < d; j++) f += w[j]! * X[r * d + j]!;
    ssRes += (y[r]! - f) ** 2;
    ssTot += (y[r]! - ym) ** 2;
  }
  if (ssTot === 0) return null;
  const r2 = 1 - ssRes / ssTot;
  return 1 - ((1 - r2) * (K - 1)) / (K - p);
}

async function predict(text: string): Promise<void> {
  if (!model || !source) throw new Error("train a model (or load a checkpoint) first");
  const { batch, lines } = parseRows(text, model.config.bottomMlp[0]!, model.config.tableRows);
  const prob = await model.predict(batch);
  const tp = teacher ? teacher.probabilities(batch) : undefined;
  post({ type: "prediction", rows: lines.map((l, i) => ({ text: l, prob: prob[i]!, teacher: tp ? tp[i]! : null })) });
}

async function load(bytes: Uint8Array, name: string): Promise<void> {
  if (running) throw new Error("stop training before loading a checkpoint");
  const ckpt = parseCheckpoint(bytes, name);
  const c = await ensureContext();
  const cfg = ckpt.config;
  let saved: Partial<Settings> = {};
  try {
    saved = JSON.parse(ckpt.extra.demo_settings ?? "{}") as Partial<Settings>;
  } catch {
    /* a checkpoint from the CLI: no demo settings */
  }
  const s: Settings = {
    preset: saved.preset ?? "tiny",
    tables: cfg.tableRows,
    dim: cfg.embeddingDim,
    bottom: cfg.bottomMlp,
    topHidden: cfg.topMlp.slice(1, -1),
    interaction: cfg.interaction,
    optimizer: cfg.optimizer,
    lr: cfg.learningRate,
    batch: cfg.miniBatchSize,
    steps: saved.steps ?? 600,
    bag: saved.bag ?? 1,
    evalEvery: saved.evalEvery ?? 50,
    devices: saved.devices ?? 4,
    interconnect: saved.interconnect ?? "pcie4",
    plan: saved.plan === "table" ? "table" : "planner",
    sharded: false,
    data: saved.data === "random" ? "random" : "synthetic",
    seed: saved.seed ?? cfg.seed,
  };
  dropModel();
  const m = await c.checked("loading the checkpoint", () => new DlrmModel(c.device, cfg, ckpt.params));
  applyCheckpoint(m, ckpt);
  model = m;
  // Predictions compare with the teacher that labelled the data the checkpoint saw (when it came from here).
  const made = await makeSource(s, undefined, 0).catch(() => undefined);
  source = made?.source;
  teacher = made?.teacher;
  settings = s;
  post({ type: "loaded", step: m.step, settings: s, name });
  await learned(m);
}

self.onmessage = async (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  try {
    switch (msg.type) {
      case "start":
        runDone = start(msg.settings, msg.file, msg.maxIndRange ?? 100_000);
        await runDone;
        break;
      case "pause":
        if (running) paused = true;
        break;
      case "resume":
        paused = false;
        resume?.();
        break;
      case "stop":
        stopRequested = true;
        paused = false;
        resume?.();
        break;
      case "reset":
        stopRequested = true;
        paused = false;
        resume?.();
        runId++;
        await runDone.catch(() => undefined);
        dropModel();
        source = undefined;
        teacher = undefined;
        post({ type: "state", state: "idle", message: "reset" });
        break;
      case "predict":
        await predict(msg.text);
        break;
      case "checkpoint": {
        if (!model) throw new Error("nothing to save yet: train a model first");
        const bytes = await checkpointBytes(model, { demo_settings: JSON.stringify(settings ?? {}) });
        post({ type: "checkpoint", bytes, name: `dlrm-demo-step${model.step}.safetensors` }, [bytes.buffer]);
        break;
      }
      case "load":
        await load(msg.bytes, msg.name);
        break;
    }
  } catch (e) {
    const err = e as Error;
    if (msg.type === "predict") post({ type: "prediction", rows: [], error: err.message });
    else post({ type: "error", message: err.message });
  }
};
