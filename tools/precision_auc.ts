/**
 * Lower precision's effect on AUC (issue 14): the main job (`train --preset main`: Kaggle-shaped
 * model, teacher-labelled data, Adagrad) trained with fp32 tables and with bf16 tables (stochastic
 * and nearest-even rounding), same data, same initial parameters, same process, per seed; then
 * test AUC / log loss on the same 8192 test samples, the last training loss, the tables' memory
 * and training samples/s relative to fp32 measured in this run (variants alternate in order from
 * seed to seed, so a slow minute does not fall on one variant only). Writes the BENCHMARKS.md
 * section "precision-<host>" unless --no-write.
 *
 *   DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A tools/precision_auc.ts [--seeds 123,7,42] [--variants fp32,bf16,bf16-nearest] [--no-write] [-- extra train flags]
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx tools/precision_auc.ts --seeds 123
 */
import { loadavg } from "node:os";
import { argValue, table, writeSection } from "../bench/report.ts";
import { resolveTrainFlags } from "../src/cli/commands/train.ts";
import { evalPlan, makeConfig, makeSource } from "../src/cli/setup.ts";
import { createContext } from "../src/gpu/context.ts";
import { detectHost } from "../src/gpu/host.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters, layoutOf } from "../src/model/params.ts";
import { type Bf16Rounding, embeddingRowBytes, type EmbeddingPrecision } from "../src/model/precision.ts";
import { train } from "../src/model/trainer.ts";

const argv = (globalThis as { process?: { argv: string[] } }).process?.argv ?? [];
const seeds = (argValue("seeds", "123") ?? "123").split(",").map(Number);
const VARIANTS: Record<string, { precision: EmbeddingPrecision; rounding?: Bf16Rounding; label: string }> = {
  fp32: { precision: "fp32", label: "fp32 tables" },
  bf16: { precision: "bf16", rounding: "stochastic", label: "bf16 tables, stochastic rounding" },
  "bf16-nearest": { precision: "bf16", rounding: "nearest", label: "bf16 tables, round to nearest even" },
};
const variants = (argValue("variants", "fp32,bf16,bf16-nearest") ?? "").split(",");
for (const v of variants) if (!VARIANTS[v]) throw new Error(`unknown variant ${v}: use ${Object.keys(VARIANTS).join(", ")}`);
const extra = argv.includes("--") ? argv.slice(argv.indexOf("--") + 1) : [];
const host = detectHost();
const runtime = (globalThis as { Deno?: { version: { deno: string } } }).Deno ? `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `Node ${process.versions.node}`;
const loadStart = loadavg()[0]!.toFixed(2);

const ctx = await createContext({ label: "precision-auc" });
console.log(`${runtime}, adapter "${ctx.adapter.name}", load ${loadStart}; seeds ${seeds.join(", ")}; variants ${variants.join(", ")}`);

interface Run { variant: string; seed: number; auc: number; logLoss: number; lastLoss: number; samplesPerSec: number; tableBytes: number }
const runs: Run[] = [];
let cmdline = "";
for (const [si, seed] of seeds.entries()) {
  const order = si % 2 === 0 ? variants : [...variants].reverse();
  for (const name of order) {
    const spec = VARIANTS[name]!;
    const { v, given } = await resolveTrainFlags(["--preset", "main", "--seed", String(seed), ...extra]);
    cmdline = ["train --preset main", ...extra].join(" ");
    const { source, generated } = await makeSource(v, () => {});
    const config = makeConfig(v, source, given);
    const plan = evalPlan(v, generated);
    const model = new DlrmModel(ctx.device, config, initParameters(config), { embeddingPrecision: spec.precision, bf16Rounding: spec.rounding });
    const batchSize = v.miniBatchSize as number;
    const r = await train(model, {
      source, batchSize, epochs: v.nepochs as number, numBatches: v.numBatches as number, printFreq: v.printFreq as number,
      testFreq: 0, finalEval: true, testBatches: plan.limit, testBatchSize: plan.batchSize,
    });
    const ev = r.evals.at(-1)!;
    const L = layoutOf(config);
    const tableBytes = L.sets.reduce((a, s) => a + s.rows.reduce((x, y) => x + y, 0) * embeddingRowBytes(s.dim, spec.precision), 0);
    const run: Run = {
      variant: name, seed, auc: ev.auc, logLoss: ev.logLoss, lastLoss: r.losses.at(-1)!.loss,
      samplesPerSec: (r.trainedSteps * batchSize) / r.seconds, tableBytes,
    };
    runs.push(run);
    console.log(`seed ${seed} ${name}: AUC ${run.auc.toFixed(4)}  log loss ${run.logLoss.toFixed(4)}  last train loss ${run.lastLoss.toFixed(4)}  ${run.samplesPerSec.toFixed(0)} samples/s  tables ${(tableBytes / 2 ** 20).toFixed(2)} MiB`);
    model.destroy();
  }
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const fp32Sps = runs.filter((r) => r.variant === "fp32");
const rows = variants.map((name) => {
  const rs = runs.filter((r) => r.variant === name);
  // samples/s relative to the fp32 run of the same seed (same process), then averaged.
  const ratio = fp32Sps.length ? mean(rs.map((r) => r.samplesPerSec / fp32Sps.find((f) => f.seed === r.seed)!.samplesPerSec)) : NaN;
  return [
    VARIANTS[name]!.label,
    rs.map((r) => r.auc.toFixed(4)).join(" / "),
    mean(rs.map((r) => r.auc)).toFixed(4),
    mean(rs.map((r) => r.logLoss)).toFixed(4),
    mean(rs.map((r) => r.lastLoss)).toFixed(4),
    `${(rs[0]!.tableBytes / 2 ** 20).toFixed(2)} MiB`,
    Number.isFinite(ratio) ? ratio.toFixed(2) : "-",
  ];
});
const out = table(["tables", `test AUC per seed (${seeds.join(" / ")})`, "mean AUC", "mean log loss", "mean last train loss", "table memory", "samples/s vs fp32 (same seed, same process)"], rows);
console.log(out);
if (!argv.includes("--no-write")) {
  writeSection("BENCHMARKS.md", `precision-${host}`,
    `## Lower precision: bf16 embedding tables, AUC on the teacher data (${runtime}, adapter "${ctx.adapter.name}")\n\n` +
      `\`${host === "deno" ? "DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A" : "npx tsx"} tools/precision_auc.ts --seeds ${seeds.join(",")}${extra.length ? ` -- ${extra.join(" ")}` : ""}\`, ${new Date().toISOString().slice(0, 10)}, ` +
      `load ${loadStart} at the start. Each row: \`${cmdline}\` with the seed (data, teacher and initial parameters), one process; ` +
      `the variants alternate in order from seed to seed. Test set: the same 8192 samples for every variant of a seed. ` +
      `samples/s include data generation, evaluation and (first seed) pipeline compilation on a shared machine; the embedding kernels are ~2% of this ` +
      `job's GPU time (bench/precision_step.ts), so that column mostly shows the load, not the tables.\n\n${out}\n`);
}
ctx.destroy();
