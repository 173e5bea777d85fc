/**
 * GEMM benchmark: GFLOP/s of the GEMM kernels as a fraction of an FMA peak
 * measured in the same run (shaders/roofline_fma.wgsl).
 *   npx deno run -A bench/gemm.ts                                                     (Deno, wgpu; lavapipe)
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/gemm.ts  (Node, Dawn; SwiftShader)
 * Options: --quick (fewer cases), --tune (rb tile sweep on 1024^3).
 * Timing: each case encodes `reps` dispatches in one compute pass, wall clock
 * around submit + onSubmittedWorkDone, best of several runs after a warmup.
 */
import { createStorage, uploadStorage, uploadUniform } from "../src/gpu/buffers.ts";
import { createContext } from "../src/gpu/context.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { detectHost } from "../src/gpu/host.ts";
import { bindGroup, getKernel } from "../src/gpu/pipelines.ts";
import { roofline_fma } from "../src/shaders/roofline_fma.ts";
import { type GemmSpec, type GemmVariant, gemmVariant, planGemm, prepareGemmDispatch } from "../src/kernels/gemm.ts";
import { prepareBiasGrad } from "../src/kernels/linear.ts";
import { Rng } from "../src/util/rng.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const quick = args.includes("--quick");
const tune = args.includes("--tune");

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
const now = () => performance.now();

/** Seconds per execution of `dispatches`, best of `runs` after one warmup; reps chosen so a run takes ~`target` s. */
async function time(dispatches: Dispatch[], target = 0.25, runs = 3): Promise<number> {
  const run = async (reps: number) => {
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    for (let r = 0; r < reps; r++) {
      for (const d of dispatches) {
        pass.setPipeline(d.kernel.pipeline);
        d.bindGroups.forEach((g, i) => pass.setBindGroup(i, g));
        pass.dispatchWorkgroups(d.workgroups[0], d.workgroups[1] ?? 1, d.workgroups[2] ?? 1);
      }
    }
    pass.end();
    await device.queue.onSubmittedWorkDone();
    const t0 = now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return (now() - t0) / 1000;
  };
  const first = await run(1); // warmup (includes pipeline compilation on some hosts)
  const once = await run(1);
  const reps = Math.max(1, Math.min(2000, Math.round(target / Math.max(Math.min(first, once), 1e-5))));
  let best = Infinity;
  for (let i = 0; i < runs; i++) best = Math.min(best, (await run(reps)) / reps);
  return best;
}

// ------------------------------------------------------------- FMA roofline
async function fmaPeak(): Promise<number> {
  const WG = 64;
  const groups = 1024;
  const out = createStorage(device, groups * WG * 4, "fma:out");
  const kernel = getKernel(device, { shader: roofline_fma, constants: { WG } });
  let best = 0;
  for (const iters of [256, 2048]) {
    const ab = new ArrayBuffer(16);
    new Uint32Array(ab)[0] = iters;
    new Float32Array(ab)[1] = 0.5;
    const params = uploadUniform(device, ab, "fma:params");
    const d: Dispatch = { label: "fma", kernel, bindGroups: [bindGroup(device, kernel, { params, out }, "fma")], workgroups: [groups] };
    const s = await time([d], 0.3);
    best = Math.max(best, (64 * iters * groups * WG) / s / 1e9);
  }
  return best;
}

const rng = new Rng(1);
const bufCache = new Map<string, GPUBuffer>();
function buf(name: string, elems: number): GPUBuffer {
  const key = `${name}:${elems}`;
  let b = bufCache.get(key);
  if (!b) bufCache.set(key, (b = uploadStorage(device, rng.f32(elems), key)));
  return b;
}

const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
console.log(`host ${detectHost()}, adapter "${ctx.adapter.name}" (${info ? `${info.vendor}/${info.architecture}` : "no adapterInfo"}), ` +
  `auto variant: ${gemmVariant(device)}`);
const peak = await fmaPeak();
console.log(`FMA peak (roofline_fma): ${peak.toFixed(2)} GFLOP/s`);

function report(name: string, flops: number, s: number, extra = ""): number {
  const g = flops / s / 1e9;
  console.log(`${name.padEnd(44)} ${(s * 1e3).toFixed(3).padStart(9)} ms ${g.toFixed(2).padStart(8)} GFLOP/s ${(100 * g / peak).toFixed(1).padStart(5)}% peak ${extra}`);
  return g;
}

async function gemmCase(name: string, spec: Omit<GemmSpec, "a" | "b" | "c">, a = "A", b = "B"): Promise<number> {
  const full: GemmSpec = { ...spec, a: buf(a, spec.m * spec.k), b: buf(b, spec.k * spec.n), c: buf("C", spec.m * spec.n) };
  const plan = planGemm(device, full);
  const d = prepareGemmDispatch(device, full);
  const s = await time([d]);
  const c = plan.constants;
  const desc = plan.shader === "gemm_rb_nn4" ? `[rb_nn4 TM${c.TM} WG${c.WG}]` : plan.shader === "gemm_nt4" ? `[nt4 ${plan.swapped ? "C^T " : ""}TM${c.TM} WG${c.WG}]` : plan.variant === "rb" ? `[rb ${plan.swapped ? "C^T " : ""}TM${c.TM} TN${c.TN} WG${c.WG}]` : "[tiled 64x64]";
  report(name, 2 * spec.m * spec.n * spec.k, s, desc);
  return s;
}

// ------------------------------------------------------------- 1024^3
console.log("\n# 1024^3 (C = A B)");
for (const [variant, vec4] of [["rb", true], ["rb", false], ["tiled", false]] as [GemmVariant, boolean][]) {
  for (const [ta, tb] of quick ? [[false, false]] : [[false, false], [false, true], [true, false]]) {
    await gemmCase(`1024^3 ${variant}${vec4 ? "" : " scalar"} ${ta ? "T" : "N"}${tb ? "T" : "N"}`, { m: 1024, n: 1024, k: 1024, transA: ta, transB: tb, variant, vec4 });
  }
}
if (tune) {
  console.log("\n# rb tile sweep, 1024^3 NN");
  for (const TM of [8]) for (const TN of [1, 4]) for (const WG of [16, 64]) {
    await gemmCase(`rb TM${TM} TN${TN} WG${WG}`, { m: 1024, n: 1024, k: 1024, variant: "rb", vec4: false, tile: { TM, TN, WG } });
  }
  console.log("\n# rb_nn4 tile sweep, 1024^3 NN (TN ignored: one vec4 column per invocation)");
  for (const TM of [4, 8]) for (const WG of [8, 16, 64]) {
    await gemmCase(`rb_nn4 TM${TM} WG${WG}`, { m: 1024, n: 1024, k: 1024, variant: "rb", tile: { TM, TN: 1, WG } });
  }
  console.log("\n# nt4 tile sweep, 1024^3 NT");
  for (const TM of [4, 8]) for (const WG of [8, 16, 64]) {
    await gemmCase(`nt4 TM${TM} WG${WG}`, { m: 1024, n: 1024, k: 1024, transB: true, variant: "rb", tile: { TM, TN: 1, WG } });
  }
}

// ------------------------------------------------------------- Kaggle MLPs
const layers: [string, number, number, "relu" | "sigmoid"][] = [
  ["bot 13->512", 13, 512, "relu"], ["bot 512->256", 512, 256, "relu"], ["bot 256->64", 256, 64, "relu"], ["bot 64->16", 64, 16, "relu"],
  ["top 367->512", 367, 512, "relu"], ["top 512->256", 512, 256, "relu"], ["top 256->1", 256, 1, "sigmoid"],
];
for (const batch of tune ? [] : quick ? [2048] : [128, 2048]) {
  console.log(`\n# Kaggle DLRM MLP layers, batch ${batch} (auto variant)`);
  let flops = 0;
  let secs = 0;
  for (const [name, k, n, act] of layers) {
    const m = batch;
    const f = 2 * m * n * k;
    // forward: Y = act(X W^T + b)
    secs += await gemmCase(`${name} fwd`, { m, n, k, transB: true, bias: buf("bias", n), activation: act }, "X", "W");
    // dX = dZ W (relu mask on dZ), skipped for the first bottom layer
    if (k !== 13) secs += await gemmCase(`${name} dX`, { m, n: k, k: n, mask: { buffer: buf("Y", m * n), operand: "a" } }, "Y", "W");
    // dW = dZ^T X
    secs += await gemmCase(`${name} dW`, { m: n, n: k, k: m, transA: true, mask: { buffer: buf("Y", m * n), operand: "a" } }, "Y", "X");
    const db = prepareBiasGrad(device, { dy: buf("Y", m * n), y: buf("Y", m * n), db: buf("db", n), m, n });
    secs += await time([db]);
    flops += f * (k !== 13 ? 3 : 2);
  }
  report(`total (fwd + bwd + db), batch ${batch}`, flops, secs);
}
ctx.destroy();
