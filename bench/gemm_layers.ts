/**
 * The MLP GEMMs of the real layer shapes, through the layer API the training step uses
 * (prepareLinearForward / prepareLinearBackward: forward, dX, dW incl. packs, transposes,
 * ReLU-mask and bias-gradient passes), as a fraction of the FMA roofline measured in the
 * same process; optionally an A/B of two GEMM tunings in alternating rounds.
 *
 *   npx deno run -A bench/gemm_layers.ts [--config kaggle|paper|both] [--batch 2048]
 *       [--ab old,new] [--rounds 3] [--filter "512-256"]
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/gemm_layers.ts
 * --ab a,b: tuning names of src/kernels/gemm_tuning.ts (e.g. "ubo,lp"); each round times
 * every case with a, then with b, prepared once per tuning. Timing: GPU timestamps of every
 * dispatch of the case (src/gpu/timing.ts Profiler), summed, median over `reps`.
 * flops per case: 2*m*n*k of its GEMM (bias-gradient and relu-mask passes are counted in
 * the time only).
 */
import { createStorage, uploadStorage } from "../src/gpu/buffers.ts";
import { createContext } from "../src/gpu/context.ts";
import { type Dispatch, encodeDispatches } from "../src/gpu/dispatch.ts";
import { Profiler } from "../src/gpu/timing.ts";
import { prepareLinearBackward, prepareLinearForward } from "../src/kernels/linear.ts";
import { setGemmTuning, type TuningName } from "../src/kernels/gemm_tuning.ts";
import { Rng } from "../src/util/rng.ts";
import { argValue } from "./report.ts";
import { KernelTimer } from "./kernels/timing.ts";
import { measureRoofline } from "./roofline.ts";

const which = argValue("config", "both")!;
const batch = Number(argValue("batch", "2048"));
const rounds = Number(argValue("rounds", "2"));
const reps = Number(argValue("reps", "2"));
const filter = new RegExp(argValue("filter", ".")!);
const ab = (argValue("ab", "auto")!).split(",") as TuningName[];

const ctx = await createContext({ label: "gemm-layers" });
const device = ctx.device;
const timer = new KernelTimer(device, { targetMs: 300, slowMs: 2000, minReps: 2, maxReps: 5 });
const roof = await measureRoofline(device, timer, true);
console.log(`${ctx.adapter.name}: FMA roofline ${roof.fmaGflops.toFixed(2)} GFLOP/s (same process)`);

type Act = "relu" | "sigmoid";
interface Layer { cfg: string; name: string; k: number; n: number; act: Act; first: boolean }
const layers: Layer[] = [];
const add = (cfg: string, dims: number[], top: boolean) => {
  for (let i = 0; i + 1 < dims.length; i++) {
    const last = top && i + 2 === dims.length;
    layers.push({ cfg, name: `${cfg} ${top ? "top" : "bot"} ${dims[i]}-${dims[i + 1]}`, k: dims[i]!, n: dims[i + 1]!, act: last ? "sigmoid" : "relu", first: !top && i === 0 });
  }
};
if (which !== "paper") { add("kaggle", [13, 512, 256, 64, 16], false); add("kaggle", [367, 512, 256, 1], true); }
if (which !== "kaggle") { add("paper", [512, 512, 64], false); add("paper", [100, 1024, 1024, 1024, 1], true); }

const rng = new Rng(3);
const bufs: GPUBuffer[] = [];
const up = (d: Float32Array, l: string) => { const b = uploadStorage(device, d, l); bufs.push(b); return b; };
const out = (f: number, l: string) => { const b = createStorage(device, f * 4, l); bufs.push(b); return b; };

interface Case { name: string; flops: number; d: Record<string, Dispatch[]> }
const cases: Case[] = [];
const m = batch;
for (const L of layers) {
  if (!filter.test(L.name)) continue;
  const { k, n } = L;
  const x = up(rng.f32(m * k), "x"), w = up(rng.f32(n * k, -0.1, 0.1), "w"), bias = up(rng.f32(n), "b");
  const y = up(rng.f32(m * n, -1, 1), "y"), dy = up(rng.f32(m * n), "dy");
  const dx = L.first ? undefined : out(m * k, "dx"), dw = out(n * k, "dw"), db = out(n, "db");
  const fwd: Case = { name: `${L.name} fwd`, flops: 2 * m * n * k, d: {} };
  const bwd: Case = { name: `${L.name} bwd (${dx ? "dX+" : ""}dW+db)`, flops: 2 * m * n * k * (dx ? 2 : 1), d: {} };
  for (const t of ab) {
    setGemmTuning(device, t);
    fwd.d[t] = prepareLinearForward(device, { x, w, b: bias, y: out(m * n, "yo"), m, n, k, activation: L.act });
    bwd.d[t] = prepareLinearBackward(device, { x, w, y, dy, dx, dw, db, m, n, k, activation: L.act === "relu" ? "relu" : "none" });
  }
  setGemmTuning(device, undefined);
  cases.push(fwd, bwd);
}

const parts = new Map<string, Record<string, number>>();
async function gpuMs(ds: Dispatch[], key: string): Promise<number> {
  const times: number[] = [];
  const split: Record<string, number> = {};
  for (let r = 0; r < reps + 1; r++) {
    const prof = new Profiler(device, 2048);
    const enc = device.createCommandEncoder();
    encodeDispatches(enc, ds, prof);
    prof.resolve(enc);
    device.queue.submit([enc.finish()]);
    await prof.collect();
    if (r > 0) {
      times.push(prof.rows().reduce((s, x) => s + x.ms, 0));
      for (const row of prof.rows()) {
        const part = row.label.split(" ")[0]!.replace(/:.*/, "");
        split[part] = (split[part] ?? 0) + row.ms / reps;
      }
    }
    prof.destroy();
  }
  const prev = parts.get(key);
  if (!prev || Object.values(split).reduce((a, b) => a + b, 0) < Object.values(prev).reduce((a, b) => a + b, 0)) parts.set(key, split);
  times.sort((a, b) => a - b);
  return times[times.length >> 1]!;
}

const res = new Map<string, Record<string, number[]>>();
for (let r = 0; r < rounds; r++) {
  for (const c of cases) {
    for (const t of ab) {
      const ms = await gpuMs(c.d[t]!, `${c.name}|${t}`);
      console.log(`  round ${r} ${c.name} ${t}: ${ms.toFixed(2)} ms (${(100 * c.flops / (ms * 1e6) / roof.fmaGflops).toFixed(1)}%)`);
      const e = res.get(c.name) ?? {};
      (e[t] ??= []).push(ms);
      res.set(c.name, e);
    }
  }
}
const pct = (flops: number, ms: number) => (100 * flops / (ms * 1e6) / roof.fmaGflops).toFixed(1);
console.log(`\ncase | ${ab.map((t) => `${t} ms (% roof)`).join(" | ")}${ab.length > 1 ? ` | ${ab[0]}/${ab[1]}` : ""}`);
const tot: Record<string, number> = {};
const totF: Record<string, number> = {};
for (const c of cases) {
  const e = res.get(c.name)!;
  const best = ab.map((t) => Math.min(...e[t]!));
  ab.forEach((t, i) => { tot[`${c.name.split(" ")[0]}:${t}`] = (tot[`${c.name.split(" ")[0]}:${t}`] ?? 0) + best[i]!; });
  totF[c.name.split(" ")[0]!] = (totF[c.name.split(" ")[0]!] ?? 0) + c.flops;
  for (const t of ab) if (!c.name.endsWith("fwd")) console.log(`  ${t}: ${Object.entries(parts.get(`${c.name}|${t}`)!).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ")} ms (best round)`);
  console.log(`${c.name} | ${best.map((b) => `${b.toFixed(2)} (${pct(c.flops, b)}%)`).join(" | ")}${ab.length > 1 ? ` | ${(best[0]! / best[1]!).toFixed(2)}x` : ""}`);
}
for (const cfg of Object.keys(totF)) {
  console.log(`${cfg} all MLP GEMMs b${batch} | ${ab.map((t) => `${tot[`${cfg}:${t}`]!.toFixed(1)} (${pct(totF[cfg]!, tot[`${cfg}:${t}`]!)}%)`).join(" | ")}${ab.length > 1 ? ` | ${(tot[`${cfg}:${ab[0]}`]! / tot[`${cfg}:${ab[1]}`]!).toFixed(2)}x` : ""}`);
}
const roofEnd = await measureRoofline(device, timer, true);
console.log(`FMA roofline at the end ${roofEnd.fmaGflops.toFixed(2)} GFLOP/s (start ${roof.fmaGflops.toFixed(2)}; % figures use the start)`);
for (const b of bufs) b.destroy();
timer.destroy();
ctx.destroy();
