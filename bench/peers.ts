/**
 * bench:peers — the whole training step against its peers, in one run on one
 * adapter and machine (issue 14):
 *  - ours: DlrmModel.trainStep (batch upload, forward, backward, fused
 *    embedding update, dense optimizer), wall clock;
 *  - tfjs: the same DLRM in @tensorflow/tfjs-core + tfjs-backend-webgpu on
 *    the same adapter (bench/peers/tfjs_dlrm.ts), its autodiff and optimizer;
 *    before timing, its loss on the same weights and batch is checked against
 *    ours (forward, and again after one SGD step on each);
 *  - PyTorch on the CPU (bench/peers/torch_dlrm.py, Debian's python3-torch with OpenBLAS:
 *    apt-get install -y python3-torch libopenblas0-pthread; without OpenBLAS torch's GEMMs run on the
 *    reference BLAS, several times slower, and the run says so),
 *    timed like the reference times itself (ms per iteration);
 *  - the adapter's FMA and copy rooflines (bench/roofline.ts), measured in
 *    the same run; the step's effective FLOP/s (GEMMs + interaction) over the
 *    FMA roofline.
 * Writes the BENCHMARKS.md section `peers-<host>` (`peers-<host>-swiftshader` on SwiftShader).
 *
 *   npx deno run -A bench/peers.ts                                                          (Deno, wgpu; lavapipe)
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/peers.ts            (Node, Dawn; lavapipe)
 * Options: --max-rows N (Kaggle tables, default 1000000), --paper-rows N (default 250000),
 *   --only LIST (kaggle-b128,kaggle-b2048,paper), --no-tfjs, --no-torch, --no-write, --budget MS (per timed phase)
 */
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import type { Batch } from "../src/data/batch.ts";
import { randomSource } from "../src/data/random.ts";
import { type BenchPreset, presets } from "../src/cli/commands/bench.ts";
import { createContext } from "../src/gpu/context.ts";
import { detectHost } from "../src/gpu/host.ts";
import { type DlrmConfig, interactionWidth, resolveConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";
import { TfjsDlrm } from "./peers/tfjs_dlrm.ts";
import { sectionName, table, writeSection } from "./report.ts";
import { measureRoofline } from "./roofline.ts";
import { TfjsPeer } from "./tfjs_peer.ts";
import { KernelTimer } from "./kernels/timing.ts";

const g = globalThis as {
  Deno?: { args: string[]; version: { deno: string } };
  process?: { argv: string[]; version: string; env: Record<string, string | undefined> };
};
const args = g.Deno ? g.Deno.args : g.process!.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : fallback;
};
const maxRows = Number(opt("max-rows", "1000000"));
const paperRows = Number(opt("paper-rows", "250000"));
const only = new Set(opt("only", "kaggle-b128,kaggle-b2048,paper").split(","));
const budget = Number(opt("budget", "6000"));
const host = detectHost();
const runtime = g.Deno ? `Deno ${g.Deno.version.deno}` : `Node ${g.process!.version}`;
const icd = g.process?.env.VK_ICD_FILENAMES ?? (g.Deno as unknown as { env?: { get(k: string): string | undefined } })?.env?.get("VK_ICD_FILENAMES");
const command = host === "deno"
  ? `npx deno run -A bench/peers.ts${args.length ? " " + args.join(" ") : ""}`
  : `${icd ? `VK_ICD_FILENAMES=${icd} ` : ""}npx tsx bench/peers.ts${args.length ? " " + args.join(" ") : ""}`;
const load = loadavg();
const log = (s: string) => console.log(s);
const started = performance.now();

const ctx = await createContext({ label: "bench-peers" });
const device = ctx.device;
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
const infoText = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" / ") : ctx.adapter.name;
function mesaVersion(): string {
  const fromInfo = /Mesa\s+[\w.~+-]+/i.exec(infoText)?.[0];
  if (fromInfo || !/llvmpipe|lavapipe/i.test(infoText + ctx.adapter.name)) return fromInfo ?? "n/a (not a Mesa adapter)";
  try {
    return `Mesa ${execFileSync("dpkg-query", ["-W", "-f=${Version}", "mesa-vulkan-drivers"], { encoding: "utf8" }).trim()} (mesa-vulkan-drivers package)`;
  } catch {
    return "unknown";
  }
}
log(`peers bench: ${runtime}, adapter "${ctx.adapter.name}" [${infoText}], ${mesaVersion()}, load ${load.map((x) => x.toFixed(2)).join(" ")}`);

const timerOpts = { targetMs: 500, slowMs: 2000, minReps: 3, maxReps: 10 };
const timer = new KernelTimer(device, timerOpts);
const roof0 = await measureRoofline(device, timer);
log(`roofline: FMA ${roof0.fmaGflops.toFixed(2)} GFLOP/s, copy ${roof0.copyGBs.toFixed(2)} GB/s`);

let tfPeer: TfjsPeer | undefined;
if (!args.includes("--no-tfjs")) {
  tfPeer = await TfjsPeer.create(timerOpts);
  // tfjs-core alone registers no gradients; the union package's bundle registers them all (the registry is global).
  await import("@tensorflow/tfjs");
}

/** FLOPs of one training step's GEMMs (forward, dX, dW; no dX for the first bottom layer) and dot interaction. */
function stepFlops(c: DlrmConfig, B: number): { gemm: number; interaction: number } {
  let gemm = 0;
  const layers = (sizes: number[], first: boolean) =>
    sizes.slice(1).forEach((out, i) => {
      gemm += 2 * B * sizes[i]! * out * (first && i === 0 ? 2 : 3);
    });
  layers(c.bottomMlp, true);
  layers(c.topMlp, false);
  const n = c.tableRows.length + 1;
  const pairs = (n * (n - 1)) / 2;
  return { gemm, interaction: 6 * c.embeddingDim * pairs * B };
}

function configOf(p: BenchPreset): DlrmConfig {
  return resolveConfig({
    embeddingDim: p.dim,
    tableRows: p.tableRows,
    bottomMlp: p.bottom,
    topMlp: [interactionWidth(p.tableRows.length, p.dim, "dot", false), ...p.top],
    loss: "bce",
    optimizer: "sgd",
    learningRate: 0.01,
    miniBatchSize: p.batchSize,
  });
}

/** Steps to time so that the phase takes about `budget` ms (at least 2). */
const stepsFor = (estMs: number, max: number) => Math.max(2, Math.min(max, Math.round(budget / Math.max(estMs, 1))));

interface Row {
  preset: BenchPreset;
  flops: number;
  ours: number;
  oursSteps: number;
  tfjs?: number;
  tfjsSteps?: number;
  torch?: { msPerIt: number; samplesPerSec: number; threads: number; torch: string; blas: string; blasThreads: number | null };
  check: string;
  dispatches: number;
  hostMs: number;
}

const rows: Row[] = [];
const outFile = fileURLToPath(new URL("../BENCHMARKS.md", import.meta.url));
const all = presets(maxRows).map((p) => (p.name === "paper" ? { ...p, tableRows: p.tableRows.map(() => paperRows), describe: p.describe.replace(/\d+ rows/, `${paperRows} rows`) } : p));
for (const p of all.filter((q) => only.has(q.name))) {
  log(`\n# ${p.name}: ${p.describe}`);
  const config = configOf(p);
  const sd = initParameters(config);
  const batches: Batch[] = [];
  for await (const b of randomSource({ numDense: p.bottom[0]!, tableRows: p.tableRows, seed: 1, bagSize: p.bagSize }).batches({ batchSize: p.batchSize, limit: 4 })) batches.push(b);
  const next = (i: number) => batches[i % batches.length]!;

  // Ours: the loss checks first (forward on batch 0, one SGD step on it, forward on batch 1).
  const model = new DlrmModel(device, config, sd);
  const o0 = (await model.evaluate(batches[0]!)).loss;
  model.trainStep(batches[0]!);
  const o1 = (await model.evaluate(batches[1]!)).loss;
  await model.readLosses();
  // The check step compiled every pipeline; one more step estimates the cost. Slow steps (the machine is
  // shared and loaded) are timed over 2 steps without further warm-up so that a run stays within minutes.
  let t0 = performance.now();
  model.trainStep(next(2));
  await model.readLosses();
  const est = performance.now() - t0;
  const oursSteps = stepsFor(est, 50);
  if (est < budget / 4) {
    for (let s = 0; s < 2; s++) model.trainStep(next(s));
    await model.readLosses();
  }
  t0 = performance.now();
  let hostMs = 0;
  for (let s = 0; s < oursSteps; s++) {
    const h = performance.now();
    model.trainStep(next(s));
    hostMs += performance.now() - h;
  }
  await model.readLosses();
  // Dispatches recorded per step (the model's step plan; one submit per step).
  const plan = (model as unknown as { plans: Map<number, { forward: unknown[]; backward: unknown[]; update: unknown[] }> }).plans.get(p.batchSize);
  const dispatches = plan ? plan.forward.length + plan.backward.length + plan.update.length : NaN;
  const oursMs = (performance.now() - t0) / oursSteps;
  model.destroy();
  log(`ours: ${oursMs.toFixed(1)} ms/step (${oursSteps} steps), loss ${o0.toFixed(6)} -> ${o1.toFixed(6)}`);
  const row: Row = { preset: p, flops: 0, ours: (p.batchSize * 1000) / oursMs, oursSteps, check: "", dispatches, hostMs: hostMs / oursSteps };
  const f = stepFlops(config, p.batchSize);
  row.flops = f.gemm + f.interaction;

  if (tfPeer) {
    const tf = tfPeer.tf;
    const peer = new TfjsDlrm(tf, config, sd);
    const p0 = await peer.loss(batches[0]!);
    const c0 = peer.step(batches[0]!);
    await c0.data();
    c0.dispose();
    const p1 = await peer.loss(batches[1]!);
    // float32 with different summation orders: agreement to a few 1e-6 relative is expected.
    const tol = (x: number) => 1e-4 * Math.max(1, Math.abs(x));
    const ok0 = Math.abs(p0 - o0) <= tol(o0);
    const ok1 = Math.abs(p1 - o1) <= tol(o1);
    row.check = `${ok0 && ok1 ? "same" : "**DIFFERENT**"} (${o0.toFixed(6)} vs ${p0.toFixed(6)}; after 1 step ${o1.toFixed(6)} vs ${p1.toFixed(6)})`;
    log(`tfjs loss check: ${row.check}`);
    if (!(ok0 && ok1)) throw new Error(`tfjs peer computes a different loss: ${row.check}`);
    const run = async (n: number, from: number) => {
      const costs: ReturnType<TfjsDlrm["step"]>[] = [];
      const t = performance.now();
      for (let s = 0; s < n; s++) costs.push(peer.step(next(from + s)));
      await costs.at(-1)!.data();
      const ms = (performance.now() - t) / n;
      for (const c of costs) c.dispose();
      return ms;
    };
    // The check step compiled its programs; a step slower than half the budget is timed once more and that is the figure.
    const est = await run(1, 2);
    const tfjsSteps = est > budget / 2 ? 1 : stepsFor(est, 20);
    if (tfjsSteps > 1) await run(1, 3);
    const tfjsMs = tfjsSteps === 1 ? est : await run(tfjsSteps, 0);
    peer.destroy();
    row.tfjs = (p.batchSize * 1000) / tfjsMs;
    row.tfjsSteps = tfjsSteps;
    log(`tfjs: ${tfjsMs.toFixed(1)} ms/step (${tfjsSteps} steps), ${tf.memory().numTensors} tensors live after`);
  }

  if (!args.includes("--no-torch")) {
    const spec = { tableRows: p.tableRows, dim: p.dim, bottom: p.bottom, top: p.top, bagSize: p.bagSize, batchSize: p.batchSize, lr: 0.01, steps: p.batchSize <= 128 ? 30 : p.name === "paper" ? 3 : 6, warmup: 1 };
    const script = fileURLToPath(new URL("./peers/torch_dlrm.py", import.meta.url));
    const python = existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3"; // Debian's python3-torch lives in the system Python
    const r = spawnSync(python, [script, JSON.stringify(spec)], { encoding: "utf8", maxBuffer: 1 << 20 });
    if (r.status === 0) {
      row.torch = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
      log(`PyTorch ${row.torch!.torch}: ${row.torch!.msPerIt.toFixed(1)} ms/it (${row.torch!.threads} threads; GEMMs on ${row.torch!.blas})`);
      if (row.torch!.blas.startsWith("reference")) log("WARNING: PyTorch's GEMMs ran on the reference (netlib) BLAS, several times slower than OpenBLAS: the PyTorch peer is understated. Install OpenBLAS: apt-get install -y libopenblas0-pthread");
    } else {
      log(`PyTorch peer failed (install it: apt-get install -y python3-torch libopenblas0-pthread): ${(r.stderr || String(r.error)).trim().split("\n").slice(-3).join(" ")}`);
    }
  }
  rows.push(row);
  if (!args.includes("--no-write") && rows.length < all.filter((q) => only.has(q.name)).length) {
    writeSection(outFile, sectionName("peers", host, ctx.adapter.name), render(roof0.fmaGflops, roof0.copyGBs, `opening only (the run has not finished)`, ` (partial: ${rows.length} configs so far)`));
  }
}

const roof1 = await measureRoofline(device, timer);
const fma = Math.max(roof0.fmaGflops, roof1.fmaGflops);
const copy = Math.max(roof0.copyGBs, roof1.copyGBs);
timer.destroy();
const md = render(fma, copy, `opening ${roof0.fmaGflops.toFixed(2)}, closing ${roof1.fmaGflops.toFixed(2)}`, "");
log("\n" + md);
if (!args.includes("--no-write")) writeSection(outFile, sectionName("peers", host, ctx.adapter.name), md);
ctx.destroy();


/** The section so far (partial while configs remain; the closing roofline only at the end). */
function render(fma: number, copy: number, roofText: string, partial: string): string {
  const secs = ((performance.now() - started) / 1000).toFixed(0);
  const x = (a?: number, b?: number) => (a && b ? `${(a / b).toFixed(2)}x` : "n/a");
  // What fraction of PyTorch's samples/s ours reaches (issue 14), as a plain ratio: 0.78 = 78%, 2.22 = 2.22 times.
  const fraction = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : "n/a");
  const sps = (v?: number) => (v ? Math.round(v).toLocaleString("en-US") : "n/a");
  const torchInfo = rows.find((r) => r.torch)?.torch;

  const md = [
    `## Whole training step against its peers on ${host} (${ctx.adapter.name})${partial}`,
    "",
    `- Command: \`${command}\` (${secs} s; \`npm run bench:peers\` runs the Deno and the Node lines)`,
    `- Date: ${new Date().toISOString()}`,
    `- Runtime: ${runtime}; tfjs ${tfPeer?.version ?? "not run"} (webgpu backend, same adapter); PyTorch ${torchInfo ? `${torchInfo.torch} on the CPU, ${torchInfo.threads} intra-op threads, GEMMs on ${torchInfo.blas}${torchInfo.blasThreads ? ` with ${torchInfo.blasThreads} threads` : ""}${torchInfo.blas.startsWith("reference") ? " (UNDERSTATED: install libopenblas0-pthread)" : ""}` : "not run"}`,
    `- Adapter: ${ctx.adapter.name} [${infoText}], ${mesaVersion()}`,
    `- Machine: ${cpus().length} cores (load average ${load.map((v) => v.toFixed(2)).join(", ")} at the start; above ${cpus().length} means other processes shared them): absolute figures are noisy; only the ratios measured in this same run count.`,
    `- Roofline (same device, same run; the higher of opening and closing): FMA ${fma.toFixed(2)} GFLOP/s (${roofText}), copy ${copy.toFixed(2)} GB/s.`,
    `- One step = batch upload, forward, backward, embedding update, dense optimizer (SGD lr 0.01, BCE); random data (paper 4.1), fixed bags. Ours and tfjs: wall clock over N steps after the (compiling) check step and warm-up (N sized to about ${budget / 1000} s; a tfjs step slower than half of that is timed once); PyTorch: ms per iteration around forward + backward + step as dlrm_s_pytorch.py times it, data generation excluded. ` +
      `Kaggle-shaped tables capped at ${maxRows} rows; the paper config's 8 tables capped at ${paperRows} rows (tfjs keeps each table in one binding of at most 128 MiB on lavapipe, and its dense embedding gradients double the memory).`,
    "- tfjs check: before timing, its mean BCE on the same weights and batch equals ours (tolerance 1e-4 relative), and again on the next batch after one SGD step on each.",
    "",
    table(
      ["config", "batch", "dispatches / step (1 submit)", "host ms / step", "ours samples/s", "tfjs samples/s", "ours / tfjs", "PyTorch CPU samples/s", "ours / PyTorch (fraction of its samples/s)", "GFLOP / step", "ours GFLOP/s", "% of FMA roofline", "tfjs loss check (ours vs tfjs)"],
      rows.map((r) => {
        const gf = (r.flops * r.ours) / r.preset.batchSize / 1e9;
        return [r.preset.name, r.preset.batchSize, r.dispatches, r.hostMs.toFixed(1), sps(r.ours), sps(r.tfjs), x(r.ours, r.tfjs), sps(r.torch?.samplesPerSec), fraction(r.ours, r.torch?.samplesPerSec), (r.flops / 1e9).toFixed(2), gf.toFixed(2), `${((100 * gf) / fma).toFixed(1)}%`, r.check || "n/a"];
      }),
    ),
    "",
    `GFLOP / step counts the MLP GEMMs (forward, dX, dW; 2mnk each, no dX for the first bottom layer) and the pairwise dot interaction (forward + backward); "host ms / step" = wall time inside trainStep() (batch split and upload, optimizer parameters, command encoding, submit): under Node (Dawn) submit returns at once and this is host work that overlaps the GPU work of earlier steps; under Deno (wgpu) on lavapipe submit runs the step's GPU work before returning, so it includes the whole step (bench/step_host.ts splits it); "% of FMA roofline" = that over the step's wall time, against the FMA microkernel above. Steps timed: ${rows.map((r) => `${r.preset.name} ours ${r.oursSteps}${r.tfjsSteps ? `, tfjs ${r.tfjsSteps}` : ""}`).join("; ")}.`,
  ].join("\n");
  return md;
}
