/**
 * Kernel benchmark (issue 3): the adapter's roofline, then every DLRM kernel
 * on the shapes DLRM uses, as time, GFLOP/s or GB/s, fraction of the
 * roofline, and ratio to @tensorflow/tfjs-backend-webgpu on the same adapter.
 * Writes the BENCHMARKS.md section `kernels-<host>` (host = deno or node).
 *
 *   npx deno run -A bench/kernels.ts                                                     (Deno, wgpu; lavapipe)
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/kernels.ts  (Node, Dawn; SwiftShader)
 * Options:
 *   --quick        short smoke run (fewer repetitions, 100k-row tables); writes nothing unless --out is given
 *   --out FILE     markdown file to write the section into (default BENCHMARKS.md at the repo root)
 *   --no-tfjs      skip the tfjs peer
 *   --only LIST    comma-separated subset of gemm,interaction,embedding (the roofline always runs)
 * Timing: bench/kernels/timing.ts (ours) and bench/tfjs_peer.ts (tfjs).
 */
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { createContext } from "../src/gpu/context.ts";
import { detectHost } from "../src/gpu/host.ts";
import { gemmVariant } from "../src/kernels/gemm.ts";
import { table, writeSection } from "./report.ts";
import { measureRoofline } from "./roofline.ts";
import { TfjsPeer, peerRatio } from "./tfjs_peer.ts";
import { type BenchEnv, fmt, pct } from "./kernels/common.ts";
import { runEmbedding } from "./kernels/embedding_cases.ts";
import { runGemm } from "./kernels/gemm_cases.ts";
import { runInteraction } from "./kernels/interaction_cases.ts";
import { KernelTimer } from "./kernels/timing.ts";

const g = globalThis as {
  Deno?: { args: string[]; version: { deno: string; v8: string }; exit(code: number): never };
  process?: { argv: string[]; version: string; env: Record<string, string | undefined>; exit(code: number): never };
};
const args = g.Deno ? g.Deno.args : g.process!.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const quick = args.includes("--quick");
const noTfjs = args.includes("--no-tfjs");
const only = new Set((opt("only") ?? "gemm,interaction,embedding").split(","));
const outFile = opt("out") ?? (quick ? undefined : fileURLToPath(new URL("../BENCHMARKS.md", import.meta.url)));

const started = performance.now();
const load = loadavg();
const host = detectHost();
const runtime = g.Deno ? `Deno ${g.Deno.version.deno} (V8 ${g.Deno.version.v8})` : `Node ${g.process!.version}`;
const icd = g.process?.env.VK_ICD_FILENAMES;
const command = host === "deno"
  ? `npx deno run -A bench/kernels.ts${args.length ? " " + args.join(" ") : ""}`
  : `${icd ? `VK_ICD_FILENAMES=${icd} ` : ""}npx tsx bench/kernels.ts${args.length ? " " + args.join(" ") : ""}`;
const log = (s: string) => console.log(s);

const ctx = await createContext({ label: "bench-kernels" });
const device = ctx.device;
const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
const infoText = info ? [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(" / ") : ctx.adapter.name;
const mesa = /Mesa\s+[\w.~+-]+/i.exec(infoText)?.[0];
log(`kernels bench: ${runtime}, adapter "${ctx.adapter.name}" [${infoText}], load ${load.map((x) => x.toFixed(2)).join(" ")}`);

const timerOpts = quick ? { targetMs: 120, minReps: 2, maxReps: 5 } : { targetMs: 500, minReps: 3, maxReps: 15 };
const timer = new KernelTimer(device, timerOpts);
let peer: TfjsPeer | undefined;
let peerError = noTfjs ? "skipped (--no-tfjs)" : "";
if (!noTfjs) {
  try {
    peer = await TfjsPeer.create(timerOpts);
  } catch (e) {
    peerError = (e as Error).message;
    log(`tfjs peer unavailable: ${peerError}`);
  }
}

log("\n# roofline");
const roof = await measureRoofline(device, timer, quick);
log(`FMA ${roof.fmaGflops.toFixed(2)} GFLOP/s (${roof.fmaShape}); copy ${roof.copyGBs.toFixed(2)} GB/s (${(roof.copyBytes / 2 ** 20).toFixed(0)} MiB moved in ${roof.copyTiming.ms.toFixed(3)} ms)`);

const env: BenchEnv = { device, timer, peer, roof, quick, log };
const sections: string[] = [];
const targets: string[][] = [];
const isLavapipe = /llvmpipe|lavapipe/i.test(infoText + ctx.adapter.name);
const met = (ok: boolean) => (ok ? "**met**" : "**not met**");

if (only.has("gemm")) {
  log("\n# GEMM");
  const r = await runGemm(env);
  sections.push(`### GEMM\n\nAuto kernel choice on this adapter: \`${gemmVariant(device)}\`. FLOPs = 2mnk. Forward = bias + activation fused ` +
    `(tfjs: tf.fused.matMul with the same bias and activation); dX = dZ W and dW = dZ^T X with the ReLU mask applied in our loads ` +
    `(tfjs: plain tf.matMul). The first bottom layer has no dX.\n\n${r.markdown}`);
  const pr = r.big.peer ? peerRatio(r.big.ours, r.big.peer) : undefined;
  const frac = r.big.gflops / roof.fmaGflops;
  targets.push(
    ["GEMM 1024^3 >= 5x tfjs-backend-webgpu", pr ? `${pr.ratio.toFixed(2)}x (${fmt(r.big.ours.ms, 1)} ms vs tfjs ${fmt(pr.method === "timestamp" ? r.big.peer!.ms : r.big.peer!.wallMs, 1)} ms, ${pr.method}; wall clock ${(r.big.peer!.wallMs / r.big.ours.wallMs).toFixed(2)}x)` : `n/a (${peerError})`, pr ? met(pr.ratio >= 5) : "n/a"],
    ["GEMM 1024^3 >= 10% of FMA peak", `${fmt(r.big.gflops)} GFLOP/s = ${pct(frac)} of ${fmt(roof.fmaGflops)}`, met(frac >= 0.1)],
  );
}
if (only.has("interaction")) {
  log("\n# interaction");
  sections.push(`### Dot interaction\n\nBytes = every input read once + every output written once; GFLOP/s counts the pair dot products ` +
    `(2 d per pair forward, 4 d backward). The tfjs peer runs only the batched matMul T T^T (full (n+1)^2 Z, no triangle gather).\n\n${await runInteraction(env)}`);
}
if (only.has("embedding")) {
  log("\n# embedding bag");
  const r = await runEmbedding(env);
  sections.push(`### Embedding bag\n\nBytes = the floor a lookup must move (offsets, indices, one row read per index, one output row per bag; ` +
    `backward: gradient row per bag, each distinct row read + written once; sort traffic not counted). Backward = sort by row, ` +
    `segment sums in fixed order, SGD in place (src/kernels/embedding_bag_backward.ts); tfjs has no fused equivalent.\n\n${r.markdown}\n\n` +
    r.notes.map((n) => `- ${n}`).join("\n"));
  for (const e of r.results) {
    targets.push([`embedding-bag forward (config ${e.config.key}) >= 25% of copy BW`, `${fmt(e.fwdGBs)} GB/s = ${pct(e.fwdFraction)} of ${fmt(roof.copyGBs)}`, met(e.fwdFraction >= 0.25)]);
  }
}

const seconds = (performance.now() - started) / 1000;
const method = timer.method === "timestamp"
  ? "GPU timestamp queries (one compute pass per dispatch, src/gpu/timing.ts Profiler), median of 3-15 repetitions after a warm-up; tfjs: tf.time() kernelMs (its own timestamp queries, summed over its programs), median likewise"
  : "wall clock around submit + onSubmittedWorkDone (no timestamp-query), several executions per submit, median of 3 after a warm-up";
const md = [
  `## Kernels on ${host} (${ctx.adapter.name})`,
  "",
  `- Command: \`${command}\` (${seconds.toFixed(0)} s)`,
  `- Date: ${new Date().toISOString()}`,
  `- Runtime: ${runtime}; tfjs ${peer ? `${peer.version} (webgpu backend)` : `not run: ${peerError}`}`,
  `- Adapter: ${ctx.adapter.name} [${infoText}]${mesa ? `, ${mesa}` : ""}; timestamp-query ${timer.method === "timestamp" ? "yes" : "no"}`,
  `- Load average at start: ${load.map((x) => x.toFixed(2)).join(", ")} (2 cores, shared with other processes)`,
  `- Timing: ${method}. "wall ms" = wall clock per execution with several executions per submit. Ratios tfjs / ours are taken on the same method (> 1: ours faster).`,
  "",
  "### Roofline (same device, same run)",
  "",
  table(["kernel", "figure", "ms", "shape"], [
    ["roofline_fma (FMA-bound)", `${fmt(roof.fmaGflops)} GFLOP/s`, fmt(roof.fmaTiming.ms, 3), roof.fmaShape],
    ["copy_f32 (vec4 copy)", `${fmt(roof.copyGBs)} GB/s`, fmt(roof.copyTiming.ms, 3), `${(roof.copyBytes / 2 ** 20).toFixed(0)} MiB read + written`],
  ]),
  "",
  `### Issue targets${isLavapipe ? "" : " (stated for lavapipe; shown here for reference)"}`,
  "",
  table(["target", "measured", "status"], targets),
  "",
  ...sections.flatMap((s) => [s, ""]),
].join("\n");

log("\n" + md);
if (outFile) {
  writeSection(outFile, `kernels-${host}`, md);
  log(`\nwrote section kernels-${host} to ${outFile}`);
}
timer.destroy();
ctx.destroy();
if (peer) peer.backend.device.destroy();
if (g.Deno) g.Deno.exit(0);
else g.process!.exit(0);
