/**
 * Per-dispatch GPU timestamps of the embedding-bag forward and of every pass of the fused
 * backward (keys, radix sort histogram / scan / scatter, heads, scan, segments, ranges, update),
 * configs A and B of bench/kernels/embedding_cases.ts, with the copy roofline of the same run.
 *   deno:  DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/embedding_profile.ts
 *   node:  npx tsx bench/embedding_profile.ts
 * Env: EMB_REPS (timed repetitions, median per dispatch group; 5), EMB_ONLY (A or B),
 *      EMB_OPT (comma list of sgd,adagrad,rowwise-adagrad; sgd), EMB_QUICK=1 (config B smaller).
 *      EMB_AB=forward: the forward's general kernel, the rows kernel with one (rows1) and two (rows2)
 *      chunks per dispatch, and the auto choice (rows kernel for d <= 64; rows2 when few tables straddle
 *      the chunks: config A on lavapipe), likewise.
 *      EMB_AB=update: instead, alternate rounds (EMB_ROUNDS, 3) of the backward's scalar path (run-length
 *      encoding + scalar update) and vec4 path (update walking the sorted keys) in this process, each
 *      with a copy measurement before it: GPU-timestamp wall ms (best of rounds vs the best copy) and
 *      process CPU ms (EMB_CPU_REPS executions per submit; steadier under load), and their ratios.
 *      EMB_AB=values: likewise, the vec4 path with the sort carrying positions (pos_info gather) vs
 *      gradient addresses (the default for sum pooling without weights). EMB_AB=segment: one sorted
 *      position per update thread vs the default 8 (EMB_SEGS=a,b,...: other counts). EMB_AB=sortscan: the sort's digit-count scans by
 *      scan.ts's levels vs the default (one dispatch per pass when small). EMB_AB=session: all three
 *      (positions, 1 per thread, levels: the code before 2026-11-30 03:30) vs the defaults.
 * Labels are grouped by stripping chunk / pass / level numbers.
 */
import process from "node:process";
import { createContext } from "../src/gpu/context.ts";
import { createStorage, uploadStorage } from "../src/gpu/buffers.ts";
import { type Dispatch, encodeDispatches } from "../src/gpu/dispatch.ts";
import { Profiler } from "../src/gpu/timing.ts";
import { prepareCopy } from "../src/kernels/copy.ts";
import { uploadBagBatch } from "../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../src/kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../src/kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState } from "../src/kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet } from "../src/kernels/embedding_tables.ts";
import { createOptimizerParams } from "../src/kernels/optimizer_params.ts";
import { Rng } from "../src/util/rng.ts";
import { embeddingConfigs } from "./kernels/embedding_cases.ts";
import { median } from "./kernels/timing.ts";
import { envNumber } from "./util.ts";

const g = globalThis as { process?: { env: Record<string, string | undefined> }; Deno?: { env: { get(k: string): string | undefined } } };
const envStr = (k: string, d: string) => g.process?.env[k] ?? g.Deno?.env.get(k) ?? d;
const REPS = envNumber("EMB_REPS", 5);
const ONLY = envStr("EMB_ONLY", "");
const AB = envStr("EMB_AB", "");
const ROUNDS = envNumber("EMB_ROUNDS", 3);
const CPU_REPS = envNumber("EMB_CPU_REPS", 3);
const SEGS = envStr("EMB_SEGS", "1,8").split(",").map(Number);
const OPTS = envStr("EMB_OPT", "sgd").split(",") as ("sgd" | "adagrad" | "rowwise-adagrad")[];

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
console.log(`adapter: ${ctx.adapter.name}`);
const prof = new Profiler(device, 1024);

/** Median per group over REPS timestamped executions; returns [group, ms][] and the total. */
async function profile(ds: readonly Dispatch[], reps = REPS): Promise<{ groups: [string, number][]; total: number }> {
  const run = async () => {
    const enc = device.createCommandEncoder();
    encodeDispatches(enc, ds, prof);
    prof.resolve(enc);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    await prof.collect();
    const rows = prof.rows();
    prof.reset();
    return rows;
  };
  if (reps !== 1) await run();
  const per = new Map<string, number[]>();
  const totals: number[] = [];
  for (let r = 0; r < Math.max(1, reps); r++) {
    const rows = await run();
    const byGroup = new Map<string, number>();
    let tot = 0;
    for (const row of rows) {
      const key = row.label.replace(/chunk\d+/, "chunk*").replace(/:\d+$/, ":*").replace(/pass\d+/, "pass*").replace(/L\d+/, "L*");
      byGroup.set(key, (byGroup.get(key) ?? 0) + row.ms);
      tot += row.ms;
    }
    for (const [k, v] of byGroup) per.set(k, [...(per.get(k) ?? []), v]);
    totals.push(tot);
  }
  return { groups: [...per].map(([k, v]) => [k, median(v)] as [string, number]).sort((a, b) => b[1] - a[1]), total: median(totals) };
}

/**
 * CPU ms (user + sys of this process, which includes the software adapter's worker threads) per
 * execution of ds, `reps` executions in one submit: on a shared machine this tracks the work done
 * far more steadily than wall time (other processes steal time slices, not instructions).
 */
async function cpuMs(ds: readonly Dispatch[], reps: number): Promise<number> {
  const enc = device.createCommandEncoder();
  for (let i = 0; i < reps; i++) encodeDispatches(enc, ds);
  const cb = enc.finish();
  await device.queue.onSubmittedWorkDone();
  const c0 = process.cpuUsage();
  device.queue.submit([cb]);
  await device.queue.onSubmittedWorkDone();
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / reps;
}

const copyN = 16 << 20;
const src = createStorage(device, copyN * 4, "src"), dst = createStorage(device, copyN * 4, "dst");
const copyD = [prepareCopy(device, { src, dst, count: copyN })];
const copyGBs = async (reps = 3) => (2 * copyN * 4) / ((await profile(copyD, reps)).total * 1e6);

for (const c of embeddingConfigs(envNumber("EMB_QUICK", 0) === 1).filter((c) => !ONLY || c.key === ONLY)) {
  const { tables: T, rows: R, dim: d, perBag: L, batch: B } = c;
  const rng = new Rng(1000 + T);
  const rowCounts = new Array<number>(T).fill(R);
  const nIdx = T * B * L;
  const offsets = new Uint32Array(T * B + 1);
  for (let k = 0; k < T * B; k++) offsets[k + 1] = offsets[k]! + L;
  const indices = new Uint32Array(nIdx);
  for (let i = 0; i < nIdx; i++) indices[i] = rng.int(R);
  const seen = new Uint8Array(T * R);
  let distinct = 0;
  for (let t = 0; t < T; t++) for (let p = offsets[t * B]!; p < offsets[(t + 1) * B]!; p++) if (!seen[t * R + indices[p]!]) (seen[t * R + indices[p]!] = 1), distinct++;
  const set = createTableSet(device, { rows: rowCounts, dim: d, label: `emb-${c.key}`, maxChunkBytes: 256 << 20 });
  const bags = uploadBagBatch(device, { batchSize: B, offsets, indices }, rowCounts, `bags-${c.key}`);
  const stride = (T + 1) * d;
  const out = createStorage(device, B * stride * 4, "emb:out");
  const gradOut = uploadStorage(device, rng.f32(B * stride), "emb:gradOut");
  const optim = createOptimizerParams(device, { lr: 0.01 });
  const fwdBytes = (T * B + 1) * 4 + nIdx * (4 + d * 4) + T * B * d * 4;
  const bwdBytes = (T * B + 1) * 4 + nIdx * 4 + T * B * d * 4 + distinct * 2 * d * 4;
  const fwd = prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: stride, outOffset: d });
  console.log(`\n== config ${c.key} (${T} x ${R} x d${d}, ${L}/bag, B=${B})`);
  if (AB === "forward") {
    // The general kernel, the rows kernel with one and two chunks per dispatch, the auto choice,
    // alternating, wall (timestamps) and CPU time.
    const variants = [["general", prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: stride, outOffset: d, variant: "general" })],
      ["rows1", prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: stride, outOffset: d, variant: "rows", chunksPerDispatch: 1 })],
      ["rows2", prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: stride, outOffset: d, variant: "rows", chunksPerDispatch: 2 })],
      ["auto", fwd]] as const;
    const got = new Map<string, { ms: number[]; cpu: number[]; copy: number[]; copyCpu: number[] }>();
    for (const [name, ds] of variants) { await profile(ds, 0); got.set(name, { ms: [], cpu: [], copy: [], copyCpu: [] }); }
    for (let r = 0; r < ROUNDS; r++) {
      for (const [name, ds] of variants) {
        const e = got.get(name)!;
        e.copy.push(await copyGBs());
        e.ms.push((await profile(ds, 1)).total);
        e.copyCpu.push(await cpuMs(copyD, 1));
        e.cpu.push(await cpuMs(ds, CPU_REPS));
      }
    }
    for (const [name, e] of got) {
      const f = fwdBytes / Math.min(...e.ms) / 1e6 / Math.max(...e.copy);
      const fc = (fwdBytes / Math.min(...e.cpu)) / (2 * copyN * 4 / Math.min(...e.copyCpu));
      console.log(`${c.key} forward ${name}: best ${Math.min(...e.ms).toFixed(3)} ms = ${(100 * f).toFixed(1)}% of best copy ${Math.max(...e.copy).toFixed(2)} GB/s; ` +
        `CPU best ${Math.min(...e.cpu).toFixed(2)} ms = ${(100 * fc).toFixed(1)}% of copy's bytes per CPU ms`);
    }
    const a = got.get("auto")!;
    for (const base of ["general", "rows1", "rows2"]) {
      const g = got.get(base)!;
      console.log(`${c.key} forward ${base}/auto (auto: ${fwd.length} dispatches): wall (best) ${(Math.min(...g.ms) / Math.min(...a.ms)).toFixed(2)}x, (median) ${(median(g.ms) / median(a.ms)).toFixed(2)}x, CPU (best) ${(Math.min(...g.cpu) / Math.min(...a.cpu)).toFixed(2)}x, CPU (median) ${(median(g.cpu) / median(a.cpu)).toFixed(2)}x`);
    }
  }
  if (!AB) {
  const cp = await copyGBs();
  const f = await profile(fwd);
  console.log(`copy ${cp.toFixed(2)} GB/s; forward ${f.total.toFixed(3)} ms = ${(fwdBytes / f.total / 1e6).toFixed(2)} GB/s = ${(100 * fwdBytes / f.total / 1e6 / cp).toFixed(1)}% of copy`);
  for (const [k, v] of f.groups) console.log(`   ${v.toFixed(3).padStart(9)} ms  ${k}`);
  }
  for (const kind of AB === "forward" ? [] : OPTS) {
    const state = createEmbeddingOptimizerState(device, set, kind);
    const mk = (updateVariant?: "scalar" | "vec4", sortValues?: "auto" | "positions", updateSegment?: number, sortScan?: "levels") =>
      prepareEmbeddingBagBackward(device, { tables: set, state, bags, gradOut, gradStride: stride, gradOffset: d, maxIndices: nIdx, optim, updateVariant, sortValues, updateSegment, sortScan });
    if (["update", "values", "segment", "sortscan", "session"].includes(AB)) {
      // update: scalar (run-length encoding + scalar update) vs vec4 (the update walks the sorted keys, no heads/scan/segments).
      // values: the vec4 path with the sort carrying positions (pos_info gather) vs gradient addresses (auto).
      // segment: one sorted position per update thread vs the default; session: both of those off vs the defaults.
      const variants = AB === "values"
        ? [["positions", mk("vec4", "positions")], ["direct", mk("vec4")]] as const
        : AB === "segment"
        ? SEGS.map((k) => [`seg${k}`, mk("vec4", undefined, k)] as const)
        : AB === "sortscan"
        ? [["levels", mk("vec4", undefined, undefined, "levels")], ["default", mk("vec4")]] as const
        : AB === "session"
        ? [["before", mk("vec4", "positions", 1, "levels")], ["after", mk("vec4")]] as const
        : [["scalar", mk("scalar")], ["vec4", mk("vec4")]] as const;
      const [n0, n1] = [variants[0][0], variants[1][0]];
      const got = new Map<string, { total: number[]; upd: number[]; sort: number[]; copy: number[]; cpu: number[]; copyCpu: number[] }>();
      for (const [name, bw] of variants) { await profile(bw.dispatches, 0); got.set(name, { total: [], upd: [], sort: [], copy: [], cpu: [], copyCpu: [] }); }
      // Finest interleaving: each round times copy, then variant 1, copy, variant 2 (load here swings 2-4x within seconds).
      for (let r = 0; r < ROUNDS; r++) {
        for (const [name, bw] of variants) {
          const cp2 = await copyGBs();
          const b = await profile(bw.dispatches, 1);
          const e = got.get(name)!;
          e.copy.push(cp2);
          e.total.push(b.total);
          e.upd.push(b.groups.filter(([k]) => k.includes(":update:")).reduce((a, [, v]) => a + v, 0));
          e.sort.push(b.groups.filter(([k]) => k.includes(":sort:")).reduce((a, [, v]) => a + v, 0));
          e.copyCpu.push(await cpuMs(copyD, 1));
          e.cpu.push(await cpuMs(bw.dispatches, CPU_REPS));
        }
      }
      const best = (xs: number[], hi = false) => (hi ? Math.max(...xs) : Math.min(...xs));
      const lines = [...got].map(([name, e]) => {
        const f = bwdBytes / best(e.total) / 1e6 / best(e.copy, true);
        return { name, f, text: `${name}: best ${best(e.total).toFixed(2)} ms (update ${best(e.upd).toFixed(2)}), median ${median(e.total).toFixed(2)} ms = ${(100 * f).toFixed(1)}% of best copy ${best(e.copy, true).toFixed(2)} GB/s` };
      });
      for (const l of lines) console.log(`${c.key} ${kind} ${l.text}`);
      for (const [name, e] of got) {
        const f = (bwdBytes / Math.min(...e.cpu)) / (2 * copyN * 4 / Math.min(...e.copyCpu));
        console.log(`${c.key} ${kind} ${name}: CPU time best ${Math.min(...e.cpu).toFixed(2)} ms, median ${median(e.cpu).toFixed(2)} ms = ${(100 * f).toFixed(1)}% of copy's bytes per CPU ms`);
      }
      const g0 = got.get(n0)!, g1 = got.get(n1)!;
      console.log(`${c.key} ${kind} CPU time ${n0}/${n1} (best) ${(Math.min(...g0.cpu) / Math.min(...g1.cpu)).toFixed(2)}x, (median) ${(median(g0.cpu) / median(g1.cpu)).toFixed(2)}x`);
      console.log(`${c.key} ${kind} wall ${n0}/${n1} (best times) ${(Math.min(...g0.total) / Math.min(...g1.total)).toFixed(2)}x, (medians) ${(median(g0.total) / median(g1.total)).toFixed(2)}x; ` +
        `update only (best) ${(Math.min(...g0.upd) / Math.min(...g1.upd)).toFixed(2)}x, (medians) ${(median(g0.upd) / median(g1.upd)).toFixed(2)}x; ` +
        `sort only (best) ${Math.min(...g0.sort).toFixed(2)} / ${Math.min(...g1.sort).toFixed(2)} ms = ${(Math.min(...g0.sort) / Math.min(...g1.sort)).toFixed(2)}x, (medians) ${(median(g0.sort) / median(g1.sort)).toFixed(2)}x`);
      for (const [, bw] of variants) bw.destroy();
    } else {
      const bw = mk();
      const cp2 = await copyGBs();
      const b = await profile(bw.dispatches);
      console.log(`backward+${kind} ${b.total.toFixed(3)} ms (${bw.dispatches.length} dispatches) = ${(bwdBytes / b.total / 1e6).toFixed(2)} GB/s = ${(100 * bwdBytes / b.total / 1e6 / cp2).toFixed(1)}% of copy ${cp2.toFixed(2)}`);
      for (const [k, v] of b.groups) console.log(`   ${v.toFixed(3).padStart(9)} ms  ${k}`);
      bw.destroy();
    }
    for (const s of state.chunks) s.destroy();
  }
  destroyTableSet(set);
  for (const x of [bags.offsets, bags.indices, out, gradOut, optim]) x.destroy();
}
prof.destroy();
ctx.destroy();
