/**
 * The main job's training step (`train --preset main`: Kaggle-shaped, batch 128, Adagrad) with fp32
 * and bf16 embedding tables (stochastic and nearest rounding) in one process: the same batches, rounds of
 * steps alternating the variants (order flipped each round), best wall ms per step of each and the ratio, then one
 * timestamped step of each split by kernel family (embedding forward / backward + update vs the
 * rest). Complements tools/precision_auc.ts, whose samples/s include data generation and evaluation.
 *   DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/precision_step.ts [--rounds 6] [--steps 20] [-- extra train flags]
 */
import { resolveTrainFlags } from "../src/cli/commands/train.ts";
import { makeConfig, makeSource } from "../src/cli/setup.ts";
import type { Batch } from "../src/data/batch.ts";
import { createContext } from "../src/gpu/context.ts";
import { Profiler } from "../src/gpu/timing.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";
import { argValue } from "./report.ts";

const argv = (globalThis as { process?: { argv: string[] } }).process?.argv ?? [];
const rounds = Number(argValue("rounds", "6"));
const steps = Number(argValue("steps", "20"));
const extra = argv.includes("--") ? argv.slice(argv.indexOf("--") + 1) : [];
const ctx = await createContext({ label: "precision-step" });
const device = ctx.device;
const { v, given } = await resolveTrainFlags(["--preset", "main", ...extra]);
const { source } = await makeSource(v, () => {});
const config = makeConfig(v, source, given);
const B = v.miniBatchSize as number;
const batches: Batch[] = [];
for await (const b of source.batches({ batchSize: B, split: "train", limit: steps })) batches.push(b);
const init = initParameters(config);
const models = {
  fp32: new DlrmModel(device, config, init),
  bf16: new DlrmModel(device, config, init, { embeddingPrecision: "bf16" }),
  "bf16-nearest": new DlrmModel(device, config, init, { embeddingPrecision: "bf16", bf16Rounding: "nearest" }),
};
type Arm = keyof typeof models;
const ARMS: Arm[] = ["fp32", "bf16", "bf16-nearest"];
console.log(`adapter ${ctx.adapter.name}; main job config, batch ${B}; ${rounds} rounds of ${steps} steps per variant`);

async function run(m: DlrmModel): Promise<number> {
  const t0 = performance.now();
  for (const b of batches) m.trainStep(b);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / batches.length;
}
for (const m of Object.values(models)) await run(m); // compile, warm
const ms: Record<string, number[]> = { fp32: [], bf16: [], "bf16-nearest": [] };
for (let r = 0; r < rounds; r++) {
  for (const k of r % 2 === 0 ? ARMS : [...ARMS].reverse()) ms[k]!.push(await run(models[k]));
}
const best = (xs: number[]) => Math.min(...xs);
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const k of ARMS) {
  console.log(`${k}: step ms best ${best(ms[k]!).toFixed(2)}, median ${med(ms[k]!).toFixed(2)}; / fp32: ${(best(ms[k]!) / best(ms.fp32!)).toFixed(2)} (best), ${(med(ms[k]!) / med(ms.fp32!)).toFixed(2)} (median)`);
}
const prof = new Profiler(device, 2048);
for (const k of ARMS) {
  const tot = new Map<string, number>();
  for (let i = 0; i < 3; i++) {
    models[k].trainStep(batches[i]!, prof);
    await device.queue.onSubmittedWorkDone();
    await prof.collect();
    for (const r of prof.rows()) {
      const fam = /embedding|emb-|update-bf16|backward:|key-ranges|sort|keys/.test(r.label) ? "embedding fwd+bwd+update" : "rest (MLPs, interaction, loss, dense optimizer)";
      tot.set(fam, (tot.get(fam) ?? 0) + r.ms / 3);
    }
    prof.reset();
  }
  console.log(`${k}: ${[...tot].map(([f, x]) => `${f} ${x.toFixed(2)} ms`).join("; ")}`);
}
for (const m of Object.values(models)) m.destroy();
ctx.destroy();
