/**
 * Kernel benchmark (issue 3): the adapter's roofline, then every DLRM kernel
 * on the shapes DLRM uses, as time, GFLOP/s or GB/s, fraction of the
 * roofline, and ratio to @tensorflow/tfjs-backend-webgpu on the same adapter.
 * Writes the BENCHMARKS.md section `kernels-<host>` (host = deno or node;
 * `kernels-<host>-swiftshader` on SwiftShader).
 *
 *   npx deno run -A bench/kernels.ts                                                     (Deno, wgpu; lavapipe)
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/kernels.ts       (Node, Dawn; lavapipe, its best adapter)
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/kernels.ts  (Node on SwiftShader: an extra section, not in npm run bench:kernels)
 * Options:
 *   --quick        short smoke run (fewer repetitions, 100k-row tables); writes nothing unless --out is given
 *   --out FILE     markdown file to write the section into (default BENCHMARKS.md at the repo root)
 *   --no-tfjs      skip the tfjs peer
 *   --only LIST    comma-separated subset of gemm,interaction,embedding (the roofline always runs)
 * Timing: bench/kernels/timing.ts (ours) and bench/tfjs_peer.ts (tfjs).
 */
import { execFileSync } from "node:child_process";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { createContext } from "../src/gpu/context.ts";
import { detectHost } from "../src/gpu/host.ts";
import { gemmVariant } from "../src/kernels/gemm.ts";
import { sectionName, table, writeSection } from "./report.ts";
import { measureRoofline, type Roofline } from "./roofline.ts";
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
/** Mesa version: from the adapter description when it says, else (lavapipe) the installed Debian package. */
function mesaVersion(): string | undefined {
  const fromInfo = /Mesa\s+[\w.~+-]+/i.exec(infoText)?.[0];
  if (fromInfo || !/llvmpipe|lavapipe/i.test(infoText + ctx.adapter.name)) return fromInfo;
  try {
    const v = execFileSync("dpkg-query", ["-W", "-f=${Version}", "mesa-vulkan-drivers"], { encoding: "utf8" }).trim();
    return v ? `Mesa ${v} (mesa-vulkan-drivers package; not in the adapter description)` : undefined;
  } catch {
    return undefined;
  }
}
const mesa = mesaVersion();
log(`kernels bench: ${runtime}, adapter "${ctx.adapter.name}" [${infoText}], load ${load.map((x) => x.toFixed(2)).join(" ")}`);

const timerOpts = quick ? { targetMs: 120, slowMs: 500, minReps: 2, maxReps: 5 } : { targetMs: 500, slowMs: 2000, minReps: 3, maxReps: 15 };
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

log("\n# roofline (opening)");
const roofStart = await measureRoofline(device, timer, quick);
const logRoof = (r: Roofline) =>
  log(`FMA ${r.fmaGflops.toFixed(2)} GFLOP/s (${r.fmaShape}); copy ${r.copyGBs.toFixed(2)} GB/s (${(r.copyBytes / 2 ** 20).toFixed(0)} MiB moved in ${r.copyTiming.ms.toFixed(3)} ms)`);
logRoof(roofStart);
// Fractions are taken against `roof`, raised at the end to the best of the opening and closing measurements.
const roof: Roofline = { ...roofStart };
const env: BenchEnv = { device, timer, peer, roof, quick, log };

let gemm: Awaited<ReturnType<typeof runGemm>> | undefined;
let inter: (() => string) | undefined;
let emb: Awaited<ReturnType<typeof runEmbedding>> | undefined;
if (only.has("gemm")) {
  log("\n# GEMM");
  gemm = await runGemm(env);
}
if (only.has("interaction")) {
  log("\n# interaction");
  inter = await runInteraction(env);
}
if (only.has("embedding")) {
  log("\n# embedding bag");
  emb = await runEmbedding(env);
}
log("\n# roofline (closing)");
const roofEnd = await measureRoofline(device, timer, quick);
logRoof(roofEnd);
if (roofEnd.fmaGflops > roof.fmaGflops) Object.assign(roof, { fmaGflops: roofEnd.fmaGflops, fmaShape: roofEnd.fmaShape, fmaTiming: roofEnd.fmaTiming });
if (roofEnd.copyGBs > roof.copyGBs) Object.assign(roof, { copyGBs: roofEnd.copyGBs, copyTiming: roofEnd.copyTiming });

const sections: string[] = [];
const targets: string[][] = [];
const isLavapipe = /llvmpipe|lavapipe/i.test(infoText + ctx.adapter.name);
const met = (ok: boolean) => (ok ? "**met**" : "**not met**");
if (gemm) {
  sections.push(`### GEMM\n\nAuto kernel choice on this adapter: \`${gemmVariant(device)}\`. FLOPs = 2mnk. Forward = bias + activation fused ` +
    `(tfjs: tf.fused.matMul with the same bias and activation); dX = dZ W and dW = dZ^T X with the ReLU mask applied in our loads ` +
    `(tfjs: plain tf.matMul). The first bottom layer has no dX.\n\n${gemm.markdown()}`);
  const big = gemm.big;
  const pr = big.peer ? peerRatio(big.ours, big.peer) : undefined;
  const frac = big.gflops / roof.fmaGflops;
  targets.push(
    ["GEMM 1024^3 >= 5x tfjs-backend-webgpu", pr && big.peer
      ? `${pr.ratio.toFixed(2)}x (ours ${fmt(big.ours.ms, 1)} ms vs tfjs ${fmt(pr.method === "timestamp" ? big.peer.ms : big.peer.wallMs, 1)} ms, ${pr.method}; wall clock ${(big.peer.wallMs / big.ours.wallMs).toFixed(2)}x)`
      : `n/a (${peerError})`, pr ? met(pr.ratio >= 5) : "n/a"],
    ["GEMM 1024^3 >= 10% of FMA peak", `${fmt(big.gflops)} GFLOP/s = ${pct(frac)} of ${fmt(roof.fmaGflops)}`, met(frac >= 0.1)],
  );
}
if (inter) {
  sections.push(`### Dot interaction\n\nBytes = every input read once + every output written once; GFLOP/s counts the pair dot products ` +
    `(2 d per pair forward, 4 d backward). The tfjs peer runs only the batched matMul T T^T (full (n+1)^2 Z, no triangle gather).\n\n${inter()}`);
}
if (emb) {
  sections.push(`### Embedding bag\n\nBytes = the floor a lookup must move (offsets, indices, one row read per index, one output row per bag; ` +
    `backward: gradient row per bag, each distinct row read + written once; sort traffic not counted). Backward = sort by row, ` +
    `segment sums in fixed order, SGD in place (src/kernels/embedding_bag_backward.ts; d % 4 == 0: the vec4 path, whose update walks the sorted keys, ` +
    `8 sorted positions per thread; sum pooling without weights: the sort carries gradient addresses; small sorts scan their digit counts in one dispatch per pass); tfjs has no fused equivalent. ` +
    `Forward kernel: embedding_bag_forward_rows (one invocation per bag) for d <= 64 (d % 4 == 0), else the general kernels; two table chunks bound per dispatch (_rows2) when few tables straddle them (config A on lavapipe), else one per chunk (config B). ` +
    `tfjs forward = per table tf.gather, the bag sum as a batched tf.matMul of ones [B,1,L] with the rows [B,L,d] (the fastest tfjs formulation in probes; tf.sum over the bag was 3-5x slower), then tf.stack.\n\n${emb.markdown()}\n\n` +
    emb.notes.map((n) => `- ${n}`).join("\n"));
  // Issue 14's targets: forward >= 40%, the fused backward (sort, segment sums, SGD update) >= 25% of copy BW.
  for (const e of emb.results) {
    const f = e.fwdGBs / roof.copyGBs;
    targets.push([`embedding-bag forward (config ${e.config.key}) >= 40% of copy BW`, `${fmt(e.fwdGBs)} GB/s = ${pct(f)} of ${fmt(roof.copyGBs)}`, met(f >= 0.4)]);
  }
  for (const e of emb.results) {
    const f = e.bwdGBs / roof.copyGBs;
    targets.push([`embedding-bag backward + SGD update (config ${e.config.key}) >= 25% of copy BW`, `${fmt(e.bwdGBs)} GB/s = ${pct(f)} of ${fmt(roof.copyGBs)}`, met(f >= 0.25)]);
  }
}

const seconds = (performance.now() - started) / 1000;
const method = timer.method === "timestamp"
  ? "GPU timestamp queries (one compute pass per dispatch, src/gpu/timing.ts Profiler), median of 3-15 repetitions after a warm-up (a single measured execution for cases whose warm-up took over 2 s); tfjs: tf.time() kernelMs (its own timestamp queries, summed over its programs), median likewise"
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
  "Measured before and after the kernels; fractions below use the higher of the two (the stricter figure).",
  "",
  table(["kernel", "opening", "closing", "shape"], [
    ["roofline_fma (FMA-bound)", `${fmt(roofStart.fmaGflops)} GFLOP/s`, `${fmt(roofEnd.fmaGflops)} GFLOP/s`, roof.fmaShape],
    ["copy_f32 (vec4 copy)", `${fmt(roofStart.copyGBs)} GB/s`, `${fmt(roofEnd.copyGBs)} GB/s`, `${(roof.copyBytes / 2 ** 20).toFixed(0)} MiB read + written`],
  ]),
  "",
  `### Issue targets${isLavapipe ? "" : " (stated for lavapipe; shown here for reference)"}`,
  "",
  table(["target", "measured", "status"], targets),
  "",
  ...sections.flatMap((x) => [x, ""]),
].join("\n");

log("\n" + md);
if (outFile) {
  const section = sectionName("kernels", host, ctx.adapter.name);
  writeSection(outFile, section, md);
  log(`\nwrote section ${section} to ${outFile}`);
}
timer.destroy();
ctx.destroy();
if (peer) peer.backend.device.destroy();
if (g.Deno) g.Deno.exit(0);
else g.process!.exit(0);
