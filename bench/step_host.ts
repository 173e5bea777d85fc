/**
 * Per-step host work of DlrmModel.trainStep, split by phase (issue 14, batch 128):
 * dispatches and submits per step, CPU ms in each phase (split / validate+upload,
 * optimizer params, encode, finish, submit), wall ms per step, and GPU-only ms per
 * step (one step submitted alone, waited for).
 *
 *   npx deno run -A bench/step_host.ts [--preset kaggle-b128] [--max-rows 1000] [--steps 30]
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/step_host.ts
 * --ab ubo-dw|ubo-split|ubo-wide|ubo-a4|lps [--rounds 4] [--kernels 1 --filter REGEX]: two models in one process,
 * without (A) and with (B) the knob, alternating rounds of steps.
 * --kernels N: GPU timestamps of 3 profiled steps (--profile-steps), the N largest dispatch labels and the
 * whole step split into kernel families (GEMM forward / dX / dW / packs and transposes / ReLU mask and bias
 * gradient, interaction, embedding forward / backward, optimizer, loss): stepFamily() below.
 */
import type { Batch } from "../src/data/batch.ts";
import { randomSource } from "../src/data/random.ts";
import { presets } from "../src/cli/commands/bench.ts";
import { createContext } from "../src/gpu/context.ts";
import { interactionWidth, resolveConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";
import { argValue } from "./report.ts";

/** Finer split than src/cli/commands/bench.ts kernelFamily(): the GEMM passes apart. */
export function stepFamily(label: string): string {
  const l = label.toLowerCase();
  if (l.startsWith("linear-")) {
    if (l.includes(":pack") || l.includes(":dzt")) return "GEMM packs + dZ transposes";
    if (l.startsWith("linear-dz")) return "ReLU mask (dZ)";
    if (l.startsWith("linear-fwd")) return "GEMM forward";
    if (l.startsWith("linear-dx")) return "GEMM dX";
    if (l.startsWith("linear-dw")) return "GEMM dW";
  }
  if (l.startsWith("bias-grad")) return "bias gradients";
  if (l.includes("gemm")) return "GEMM (other)";
  if (l.includes("interaction")) return "interaction";
  if (l.includes("embedding") || l.includes("radix") || l.includes("scan") || l.includes("emb")) return l.includes("forward") || l.includes("fwd") ? "embedding forward" : "embedding backward + update";
  if (l.includes("loss") || l.includes("reduce")) return "loss";
  if (l.includes("optim") || l.includes("sgd") || l.includes("adagrad") || l.includes("adam")) return "dense optimizer";
  return `other (${label})`;
}

const preset = argValue("preset", "kaggle-b128");
const maxRows = Number(argValue("max-rows", "1000"));
const steps = Number(argValue("steps", "30"));
const p = presets(maxRows).find((q) => q.name === preset)!;
const ctx = await createContext({ label: "step-host" });
const device = ctx.device;
const config = resolveConfig({
  embeddingDim: p.dim, tableRows: p.tableRows, bottomMlp: p.bottom,
  topMlp: [interactionWidth(p.tableRows.length, p.dim, "dot", false), ...p.top],
  loss: "bce", optimizer: "sgd", learningRate: 0.01, miniBatchSize: p.batchSize,
});
const batches: Batch[] = [];
for await (const b of randomSource({ numDense: p.bottom[0]!, tableRows: p.tableRows, seed: 1, bagSize: p.bagSize }).batches({ batchSize: p.batchSize, limit: 8 })) batches.push(b);
const ab = argValue("ab");
const { setUboDw } = await import("../src/kernels/linear.ts");
const { setUboA4, setUboSplit, setUboWide } = await import("../src/kernels/gemm_ubo.ts");
const { setLps } = await import("../src/kernels/gemm_lps.ts");
const knob = ab === "ubo-dw" ? setUboDw : ab === "ubo-split" ? setUboSplit : ab === "ubo-wide" ? setUboWide : ab === "ubo-a4" ? setUboA4 : ab === "lps" ? setLps : undefined;
let modelB: DlrmModel | undefined;
if (knob) {
  knob(device, false);
  modelB = new DlrmModel(device, config, initParameters(config));
  modelB.trainStep(batches[0]!); // plans are built at the first step
  await modelB.readLosses();
  knob(device, true);
}
const model = new DlrmModel(device, config, initParameters(config));
if (modelB) {
  // A/B in one process: alternate rounds of steps on the model without (A) and with (B) the change.
  const time = async (m: DlrmModel, n: number) => {
    await device.queue.onSubmittedWorkDone();
    const t = performance.now();
    for (let s = 0; s < n; s++) m.trainStep(batches[s % 8]!);
    await m.readLosses();
    return (performance.now() - t) / n;
  };
  await time(modelB, 3); await time(model, 3);
  const a: number[] = [], b: number[] = [];
  for (let r = 0; r < Number(argValue("rounds", "4")); r++) { a.push(await time(modelB, steps)); b.push(await time(model, steps)); }
  console.log(`A/B ${ab}: without ${a.map((v) => v.toFixed(1)).join(" ")} ms/step; with ${b.map((v) => v.toFixed(1)).join(" ")} ms/step; ratio of sums ${(a.reduce((x, y) => x + y) / b.reduce((x, y) => x + y)).toFixed(2)}x, of minima ${(Math.min(...a) / Math.min(...b)).toFixed(2)}x`);
  if (argValue("kernels")) {
    const { Profiler } = await import("../src/gpu/timing.ts");
    for (const [name, m] of [["without", modelB], ["with", model]] as const) {
      const prof = new Profiler(device, 1024);
      for (let s = 0; s < 3; s++) { m.trainStep(batches[s % 8]!, prof); await prof.collect(); }
      await m.readLosses();
      const rows = prof.rows();
      console.log(`${name}: timestamp total ${(rows.reduce((x, r) => x + r.ms, 0) / 3).toFixed(1)} ms/step; ` + rows.filter((r) => new RegExp(argValue("filter", "dw|dz")!).test(r.label)).map((r) => `${r.label} ${(r.ms / 3).toFixed(2)}`).join("; "));
      prof.destroy();
    }
  }
  modelB.destroy();
}

// Count API calls per step by wrapping the device's queue and encoder methods.
const counts = { submit: 0, writeBuffer: 0, dispatch: 0, setBindGroup: 0, setPipeline: 0, passes: 0, createBuffer: 0, createBindGroup: 0 };
const phase = new Map<string, number>();
let inStep = false;
const addPhase = (k: string, ms: number) => { if (inStep) phase.set(k, (phase.get(k) ?? 0) + ms); };
const q = device.queue as GPUQueue;
const origSubmit = q.submit.bind(q);
q.submit = (cbs: Iterable<GPUCommandBuffer>) => { counts.submit++; const t = performance.now(); origSubmit(cbs); addPhase("queue.submit", performance.now() - t); };
const origWrite = q.writeBuffer.bind(q) as (...a: unknown[]) => void;
(q as unknown as { writeBuffer: (...a: unknown[]) => void }).writeBuffer = (...a: unknown[]) => { counts.writeBuffer++; const t = performance.now(); origWrite(...a); addPhase("queue.writeBuffer", performance.now() - t); };
const origCB = device.createBuffer.bind(device);
device.createBuffer = (d: GPUBufferDescriptor) => { counts.createBuffer++; return origCB(d); };
const origBG = device.createBindGroup.bind(device);
device.createBindGroup = (d: GPUBindGroupDescriptor) => { counts.createBindGroup++; return origBG(d); };
const origEnc = device.createCommandEncoder.bind(device);
device.createCommandEncoder = (d?: GPUCommandEncoderDescriptor) => {
  const enc = origEnc(d);
  const origPass = enc.beginComputePass.bind(enc);
  enc.beginComputePass = (pd?: GPUComputePassDescriptor) => {
    counts.passes++;
    const pass = origPass(pd);
    const sp = pass.setPipeline.bind(pass), sb = pass.setBindGroup.bind(pass) as (...a: unknown[]) => void, dw = pass.dispatchWorkgroups.bind(pass);
    pass.setPipeline = (pl: GPUComputePipeline) => { counts.setPipeline++; sp(pl); };
    (pass as unknown as { setBindGroup: (...a: unknown[]) => void }).setBindGroup = (...a: unknown[]) => { counts.setBindGroup++; sb(...a); };
    pass.dispatchWorkgroups = (x: number, y?: number, z?: number) => { counts.dispatch++; dw(x, y, z); };
    return pass;
  };
  const fin = enc.finish.bind(enc);
  enc.finish = (fd?: GPUCommandBufferDescriptor) => { const t = performance.now(); const cb = fin(fd); addPhase("encoder.finish", performance.now() - t); return cb; };
  return enc;
};

for (let s = 0; s < 4; s++) model.trainStep(batches[s % 8]!);
await model.readLosses();
// GPU-only: one step at a time, waited for.
let gpuMs = 0;
for (let s = 0; s < 5; s++) {
  await device.queue.onSubmittedWorkDone();
  const t = performance.now();
  model.trainStep(batches[s % 8]!);
  await device.queue.onSubmittedWorkDone();
  gpuMs += performance.now() - t;
}
gpuMs /= 5;
await model.readLosses();
for (const k of Object.keys(counts) as (keyof typeof counts)[]) counts[k] = 0;
phase.clear();
let hostMs = 0;
const t0 = performance.now();
for (let s = 0; s < steps; s++) {
  const t = performance.now();
  inStep = true;
  model.trainStep(batches[s % 8]!);
  inStep = false;
  hostMs += performance.now() - t;
}
await model.readLosses();
const wall = (performance.now() - t0) / steps;
const per = (v: number) => (v / steps).toFixed(1);
console.log(`${preset} (max rows ${maxRows}), ${ctx.adapter.name}, ${steps} steps`);
console.log(`wall ${wall.toFixed(1)} ms/step; host (inside trainStep) ${per(hostMs)} ms/step; one step alone, submit to done ${gpuMs.toFixed(1)} ms`);
console.log(`per step: ${Object.entries(counts).map(([k, v]) => `${k} ${per(v)}`).join(", ")}`);
console.log(`host ms per step by call (inside trainStep): ${[...phase].map(([k, v]) => `${k} ${per(v)}`).join(", ")}; everything else in trainStep (split, validation, encoding) ${per(hostMs - [...phase.values()].reduce((a, b) => a + b, 0))}`);
if (argValue("kernels", "0") !== "0") {
  const { Profiler } = await import("../src/gpu/timing.ts");
  const prof = new Profiler(device, 1024);
  const reps = Number(argValue("profile-steps", "3"));
  for (let s = 0; s < reps; s++) {
    model.trainStep(batches[s % 8]!, prof);
    await prof.collect();
  }
  await model.readLosses();
  const rows = prof.rows();
  const total = rows.reduce((a, r) => a + r.ms, 0) / reps;
  console.log(`timestamp total ${total.toFixed(1)} ms/step over ${rows.reduce((a, r) => a + r.count, 0) / reps} timed passes`);
  for (const r of rows.slice(0, Number(argValue("kernels")))) console.log(`  ${(r.ms / reps).toFixed(2).padStart(8)} ms  x${r.count / reps}  ${r.label}`);
  const fam = new Map<string, { ms: number; n: number }>();
  for (const r of rows) {
    const f = fam.get(stepFamily(r.label)) ?? { ms: 0, n: 0 };
    f.ms += r.ms / reps; f.n += r.count / reps;
    fam.set(stepFamily(r.label), f);
  }
  console.log(`| kernel family | ms / step | share of GPU time | dispatches / step |\n| --- | --- | --- | --- |`);
  for (const [f, v] of [...fam].sort((a, b) => b[1].ms - a[1].ms)) console.log(`| ${f} | ${v.ms.toFixed(1)} | ${((100 * v.ms) / total).toFixed(1)}% | ${v.n} |`);
  prof.destroy();
}
model.destroy();
ctx.destroy();
