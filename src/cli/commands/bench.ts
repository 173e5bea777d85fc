/**
 * `bench`: training-step throughput (samples/s) of preset or custom models on
 * random data, and the per-kernel GPU time split from timestamp queries.
 */
import { randomSource } from "../../data/random.ts";
import type { Batch } from "../../data/batch.ts";
import { createContext, type GpuContext } from "../../gpu/context.ts";
import { Profiler } from "../../gpu/timing.ts";
import { type DlrmConfig, interactionWidth, resolveConfig } from "../../model/config.ts";
import { DlrmModel } from "../../model/dlrm.ts";
import { initParameters } from "../../model/params.ts";
import { type FlagSpec, helpText, parseFlags, UsageError } from "../args.ts";
import { cliHost } from "../host.ts";
import { VERSION } from "../version.ts";

export interface BenchPreset {
  name: string;
  describe: string;
  tableRows: number[];
  dim: number;
  bottom: number[];
  top: number[];
  bagSize: number;
  batchSize: number;
}

const KAGGLE_ROWS = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572];

export function presets(rowCap: number): BenchPreset[] {
  const kaggle = (B: number): BenchPreset => ({
    name: `kaggle-b${B}`,
    describe: `Criteo Kaggle config (d=16, 26 tables capped at ${rowCap} rows, bottom 13-512-256-64-16, top 367-512-256-1, 1 index per bag), batch ${B}`,
    tableRows: KAGGLE_ROWS.map((r) => Math.min(r, rowCap)),
    dim: 16,
    bottom: [13, 512, 256, 64, 16],
    top: [512, 256, 1],
    bagSize: 1,
    batchSize: B,
  });
  return [
    kaggle(128),
    kaggle(2048),
    {
      name: "paper",
      describe: `DLRM paper benchmark (8 tables x ${Math.min(1_000_000, rowCap)} rows x d=64, 100 indices per bag, bottom 512-512-64, top 1024-1024-1024-1), batch 2048`,
      tableRows: new Array(8).fill(Math.min(1_000_000, rowCap)),
      dim: 64,
      bottom: [512, 512, 64],
      top: [1024, 1024, 1024, 1],
      bagSize: 100,
      batchSize: 2048,
    },
  ];
}

export interface BenchResult {
  preset: BenchPreset;
  stepMs: number;
  samplesPerSec: number;
  kernels: { label: string; ms: number; share: number }[];
}

/** Times `steps` training steps after `warmup` steps; then profiles `profileSteps` steps per kernel. */
export async function benchTraining(ctx: GpuContext, p: BenchPreset, opts: { steps: number; warmup: number; profileSteps: number; optimizer?: DlrmConfig["optimizer"] }): Promise<BenchResult> {
  const config = resolveConfig({
    embeddingDim: p.dim,
    tableRows: p.tableRows,
    bottomMlp: p.bottom,
    topMlp: [interactionWidth(p.tableRows.length, p.dim, "dot", false), ...p.top],
    loss: "bce-logits",
    optimizer: opts.optimizer ?? "sgd",
    learningRate: 0.01,
    miniBatchSize: p.batchSize,
  });
  const source = randomSource({ numDense: p.bottom[0]!, tableRows: p.tableRows, seed: 1, bagSize: p.bagSize });
  const batches: Batch[] = [];
  const count = Math.min(8, opts.warmup + opts.steps);
  for await (const b of source.batches({ batchSize: p.batchSize, limit: count })) batches.push(b);
  const model = new DlrmModel(ctx.device, config, initParameters(config));
  let i = 0;
  const next = () => batches[i++ % batches.length]!;
  for (let s = 0; s < opts.warmup; s++) model.trainStep(next());
  await model.readLosses();
  const t0 = performance.now();
  for (let s = 0; s < opts.steps; s++) model.trainStep(next());
  await model.readLosses(); // waits for the GPU
  const stepMs = (performance.now() - t0) / opts.steps;
  // One step's timed passes: the most a query set holds (lavapipe's K-sliced GEMMs run over 512 passes in a paper-config step).
  const profiler = new Profiler(ctx.device, 2048);
  if (profiler.timestamps) {
    for (let s = 0; s < opts.profileSteps; s++) {
      model.trainStep(next(), profiler);
      await profiler.collect();
    }
  }
  await model.readLosses();
  const rows = profiler.rows();
  const total = rows.reduce((a, r) => a + r.ms, 0);
  const kernels = rows.map((r) => ({ label: r.label, ms: r.ms / Math.max(1, opts.profileSteps), share: total ? r.ms / total : 0 }));
  profiler.destroy();
  model.destroy();
  return { preset: p, stepMs, samplesPerSec: (p.batchSize * 1000) / stepMs, kernels };
}

/** Groups kernel labels into families (gemm, embedding forward...) for the split table. */
export function kernelFamily(label: string): string {
  const l = label.toLowerCase();
  if (l.includes("embedding") || l.includes("radix") || l.includes("scan") || l.includes("emb")) return l.includes("forward") || l.includes("fwd") ? "embedding forward" : "embedding backward + update";
  if (l.includes("gemm") || l.includes("linear") || l.includes("bias")) return "MLP (GEMM)";
  if (l.includes("interaction")) return "interaction";
  if (l.includes("loss") || l.includes("reduce")) return "loss";
  if (l.includes("optim") || l.includes("sgd") || l.includes("adagrad") || l.includes("adam")) return "dense optimizer";
  return "other";
}

const FLAGS: FlagSpec[] = [
  { name: "preset", type: "string", default: "kaggle-b128,kaggle-b2048,paper", help: "comma-separated presets: kaggle-b128, kaggle-b2048, paper", meta: "LIST" },
  { name: "num-batches", type: "int", default: 10, help: "timed steps per preset", meta: "N" },
  { name: "warmup", type: "int", default: 3, help: "untimed steps first", meta: "N" },
  { name: "profile-steps", type: "int", default: 3, help: "steps profiled per kernel (timestamp queries)", meta: "N" },
  { name: "max-rows", type: "int", default: 1_000_000, help: "cap on rows per table (memory)", meta: "N" },
  { name: "optimizer", type: "choice", choices: ["sgd", "adagrad", "rwsadagrad"], default: "sgd", help: "optimizer" },
  { name: "json", type: "bool", default: false, help: "print results as one JSON object on stdout (progress goes to stderr)" },
];

export async function benchCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(helpText("bench", "Training-step throughput on random data, with the per-kernel GPU time split.", FLAGS, ["webgpu-dlrm bench --preset kaggle-b128", "webgpu-dlrm bench --preset paper --max-rows 200000 --num-batches 3"]));
    return 0;
  }
  const { values: v } = parseFlags(argv, FLAGS, "bench");
  const all = presets(v.maxRows as number);
  const chosen = (v.preset as string).split(",").map((name) => {
    const p = all.find((q) => q.name === name.trim());
    if (!p) throw new UsageError(`unknown preset '${name}'; presets: ${all.map((q) => q.name).join(", ")}`);
    return p;
  });
  const ctx = await createContext({ label: "bench" });
  const results: BenchResult[] = [];
  // With --json, stdout holds only the JSON document.
  const say = (s: string) => (v.json ? cliHost.error(s) : cliHost.write(s));
  for (const p of chosen) {
    say(`${p.name}: ${p.describe}\n`);
    const r = await benchTraining(ctx, p, { steps: v.numBatches as number, warmup: v.warmup as number, profileSteps: v.profileSteps as number, optimizer: v.optimizer as DlrmConfig["optimizer"] });
    results.push(r);
    say(`  ${r.stepMs.toFixed(1)} ms per training step (wall clock, mean of ${v.numBatches}), ${Math.round(r.samplesPerSec)} samples/s\n`);
    const fam = new Map<string, number>();
    for (const k of r.kernels) fam.set(kernelFamily(k.label), (fam.get(kernelFamily(k.label)) ?? 0) + k.share);
    if (fam.size) say(`  share of GPU time per kernel family (timestamp queries over ${v.profileSteps} steps):\n`);
    for (const [f, share] of [...fam].sort((a, b) => b[1] - a[1])) say(`    ${f.padEnd(28)} ${(100 * share).toFixed(1)}%\n`);
  }
  if (v.json) cliHost.write(JSON.stringify({ version: VERSION, adapter: ctx.adapter.name, host: cliHost.runtime(), results }, null, 2) + "\n");
  ctx.destroy();
  return 0;
}
