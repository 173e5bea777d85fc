/**
 * Training benchmark (`npm run bench:train`): samples/s of a full training
 * step (forward, backward, fused embedding update, dense optimizer) for the
 * Kaggle config at batch 128 and 2048 and the DLRM paper's benchmark config,
 * with the per-kernel GPU time split from timestamp queries; writes the
 * BENCHMARKS.md section `train-<host>` (`train-<host>-swiftshader` on SwiftShader).
 *
 *   npx deno run -A bench/train.ts [--max-rows N] [--steps N] [--no-write]     (Deno, wgpu; lavapipe)
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/train.ts   (Node, Dawn; lavapipe, its best adapter)
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/train.ts   (Node on SwiftShader: the extra line, section train-node-swiftshader)
 * `npm run bench:train` runs all three.
 */
import { cpus, loadavg } from "node:os";
import { benchTraining, kernelFamily, presets } from "../src/cli/commands/bench.ts";
import { createContext } from "../src/gpu/context.ts";
import { detectHost } from "../src/gpu/host.ts";
import { argValue, nodeCommand, sectionName, table, writeSection } from "./report.ts";

const host = detectHost();
const maxRows = Number(argValue("max-rows", "1000000"));
const steps = Number(argValue("steps", "8"));
const argv = (globalThis as { process?: { argv: string[] } }).process?.argv ?? [];
const args = argv.slice(2);
const runtime = (globalThis as { Deno?: { version: { deno: string } } }).Deno ? `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `Node ${process.versions.node}`;
const load = loadavg()[0]!.toFixed(2);

const ctx = await createContext({ label: "bench-train" });
const rows: (string | number)[][] = [];
const splits: string[] = [];
for (const p of presets(maxRows)) {
  const paper = p.name === "paper";
  console.log(`${p.name}: ${p.describe}`);
  const r = await benchTraining(ctx, p, { steps: paper ? Math.max(2, Math.floor(steps / 4)) : steps, warmup: paper ? 1 : 3, profileSteps: paper ? 1 : 3 });
  console.log(`  ${r.stepMs.toFixed(1)} ms/step, ${Math.round(r.samplesPerSec)} samples/s`);
  rows.push([p.name, p.batchSize, r.stepMs.toFixed(1), Math.round(r.samplesPerSec)]);
  const fam = new Map<string, number>();
  for (const k of r.kernels) fam.set(kernelFamily(k.label), (fam.get(kernelFamily(k.label)) ?? 0) + k.share);
  const top = r.kernels.slice(0, 6).map((k) => `${k.label} ${(100 * k.share).toFixed(1)}%`).join("; ");
  splits.push(
    `**${p.name}** — ${p.describe}\n\n` +
      table(["kernel family", "share of GPU time"], [...fam].sort((a, b) => b[1] - a[1]).map(([f, s]) => [f, `${(100 * s).toFixed(1)}%`])) +
      `\n\nLargest single dispatches: ${top || "(no timestamp queries on this adapter)"}.`,
  );
}
const md = [
  `## Training step on ${runtime}, adapter "${ctx.adapter.name}"`,
  "",
  `\`${host === "deno" ? `npx deno run -A bench/train.ts${args.length ? " " + args.join(" ") : ""}` : nodeCommand("bench/train.ts", args)}\` ` +
    `(${new Date().toISOString().slice(0, 10)}, ${cpus().length} cores, load average ${load} at the start). ` +
    `Random data (paper 4.1), SGD, BCE; one step = upload of the batch, forward, backward, embedding update fused in the backward, dense optimizer. ` +
    `Wall clock over ${steps} steps after warm-up (the paper config: fewer); kernel shares from timestamp queries over separate profiled steps. ` +
    `Table rows are capped at ${maxRows} per table to fit memory.`,
  "",
  table(["config", "batch", "ms / step", "samples / s"], rows),
  "",
  ...splits.flatMap((s) => [s, ""]),
].join("\n");
console.log("\n" + md);
if (!argv.includes("--no-write")) writeSection(new URL("../BENCHMARKS.md", import.meta.url).pathname, sectionName("train", host, ctx.adapter.name), md);
ctx.destroy();
