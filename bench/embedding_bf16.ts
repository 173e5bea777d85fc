/**
 * bf16 vs fp32 embedding tables, kernel level, one process (issue 14, lower precision): the
 * embedding-bag forward and the fused backward + update (sgd, adagrad) of configs A and B of
 * bench/kernels/embedding_cases.ts on fp32 and bf16 tables holding the same values, rounds
 * alternating fp32 / bf16 (the order flipped each round): best GPU-timestamp wall ms and process
 * CPU ms (user + sys, includes the software adapter's threads; steadier on a shared machine), and
 * bf16 / fp32 ratios. Table bytes are printed too.
 *   DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/embedding_bf16.ts
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/embedding_bf16.ts
 * Env: EMB_ONLY (A or B), EMB_ROUNDS (4), EMB_OPT (sgd,adagrad; none: forward only), EMB_QUICK=1 (config B smaller),
 *      EMB_ROUNDING (stochastic, or nearest) for the bf16 backward.
 */
import process from "node:process";
import { createContext } from "../src/gpu/context.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { type Dispatch, encodeDispatches } from "../src/gpu/dispatch.ts";
import { Profiler } from "../src/gpu/timing.ts";
import { uploadBagBatch } from "../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../src/kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../src/kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState } from "../src/kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet, writeTableRows } from "../src/kernels/embedding_tables.ts";
import { createOptimizerParams } from "../src/kernels/optimizer_params.ts";
import { Rng } from "../src/util/rng.ts";
import { embeddingConfigs } from "./kernels/embedding_cases.ts";
import { envNumber } from "./util.ts";

const g = globalThis as { process?: { env: Record<string, string | undefined> }; Deno?: { env: { get(k: string): string | undefined } } };
const envStr = (k: string, d: string) => g.process?.env[k] ?? g.Deno?.env.get(k) ?? d;
const ROUNDS = envNumber("EMB_ROUNDS", 4);
const ONLY = envStr("EMB_ONLY", "");
const OPTS = envStr("EMB_OPT", "sgd,adagrad").split(",").filter((o) => o && o !== "none") as ("sgd" | "adagrad" | "rowwise-adagrad")[];
const QUICK = envStr("EMB_QUICK", "") === "1";
const ROUNDING = envStr("EMB_ROUNDING", "stochastic") as "stochastic" | "nearest";

const ctx = await createContext({ label: "bench-bf16" });
const device = ctx.device;
const prof = new Profiler(device, 1024);
console.log(`adapter: ${ctx.adapter.name}; rounds ${ROUNDS}`);

/** GPU-timestamp ms (sum of the dispatches) and process CPU ms of one execution of ds. */
async function measure(ds: readonly Dispatch[]): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const enc = device.createCommandEncoder();
  encodeDispatches(enc, ds, prof);
  prof.resolve(enc);
  device.queue.submit([enc.finish()]);
  await device.queue.onSubmittedWorkDone();
  const c = process.cpuUsage(c0);
  await prof.collect();
  const wall = prof.rows().reduce((a, r) => a + r.ms, 0);
  prof.reset();
  return { wall, cpu: (c.user + c.system) / 1000 };
}

for (const c of embeddingConfigs(QUICK)) {
  if (ONLY && c.key !== ONLY) continue;
  const { tables: T, rows: R, dim: d, perBag: L, batch: B } = c;
  console.log(`config ${c.key}: ${T} x ${R} x d${d}, ${L}/bag, B=${B}`);
  const rng = new Rng(1000 + T);
  const nIdx = T * B * L;
  const offsets = new Uint32Array(T * B + 1);
  for (let k = 0; k < T * B; k++) offsets[k + 1] = offsets[k]! + L;
  const indices = new Uint32Array(nIdx);
  for (let i = 0; i < nIdx; i++) indices[i] = rng.int(R);
  const bags = uploadBagBatch(device, { batchSize: B, offsets, indices }, new Array<number>(T).fill(R));
  const stride = (T + 1) * d;
  const out = createStorage(device, B * stride * 4, "bench:out");
  const grad = createStorage(device, B * stride * 4, "bench:grad");
  const optim = createOptimizerParams(device, { lr: 1e-3, eps: 1e-8 });
  // Adagrad's f32 state is twice a bf16 chunk: with adagrad, bf16 chunks at half a binding (as DlrmModel does).
  const bf16Chunk = OPTS.includes("adagrad") ? Math.floor(device.limits.maxStorageBufferBindingSize / 2) : undefined;
  const sets = { fp32: createTableSet(device, { rows: new Array<number>(T).fill(R), dim: d }), bf16: createTableSet(device, { rows: new Array<number>(T).fill(R), dim: d, precision: "bf16", maxChunkBytes: bf16Chunk }) };
  // Same values in both (random rows, 64k rows at a time).
  const piece = 65536;
  for (let t = 0; t < T; t++) {
    for (let r0 = 0; r0 < R; r0 += piece) {
      const data = rng.f32(Math.min(piece, R - r0) * d, -0.01, 0.01);
      writeTableRows(device, sets.fp32, t, r0, data);
      writeTableRows(device, sets.bf16, t, r0, data);
    }
  }
  await device.queue.onSubmittedWorkDone();
  device.pushErrorScope("validation");
  const bytes = (s: typeof sets.fp32) => s.chunks.reduce((a, ch) => a + ch.buffer.size, 0);
  console.log(`  table bytes: fp32 ${(bytes(sets.fp32) / 2 ** 20).toFixed(1)} MiB, bf16 ${(bytes(sets.bf16) / 2 ** 20).toFixed(1)} MiB`);
  const passes: { name: string; make: (k: "fp32" | "bf16") => { ds: Dispatch[]; done: () => void } }[] = [
    { name: "forward", make: (k) => ({ ds: prepareEmbeddingBagForward(device, { tables: sets[k], bags, out, outStride: stride, outOffset: d }), done: () => {} }) },
    ...OPTS.map((opt) => ({
      name: `backward+${opt}`,
      make: (k: "fp32" | "bf16") => {
        const state = createEmbeddingOptimizerState(device, sets[k], opt);
        const bw = prepareEmbeddingBagBackward(device, { tables: sets[k], state, bags, gradOut: grad, gradStride: stride, gradOffset: d, maxIndices: nIdx, optim, rounding: ROUNDING });
        return { ds: bw.dispatches, done: () => (bw.destroy(), state.chunks.forEach((b) => b.destroy())) };
      },
    })),
  ];
  for (const p of passes) {
    const arms = { fp32: p.make("fp32"), bf16: p.make("bf16") };
    const res = { fp32: { wall: [] as number[], cpu: [] as number[] }, bf16: { wall: [] as number[], cpu: [] as number[] } };
    for (const k of ["fp32", "bf16"] as const) await measure(arms[k].ds); // compile + warm
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of (r % 2 === 0 ? ["fp32", "bf16"] : ["bf16", "fp32"]) as ("fp32" | "bf16")[]) {
        const m = await measure(arms[k].ds);
        res[k].wall.push(m.wall);
        res[k].cpu.push(m.cpu);
      }
    }
    const best = (xs: number[]) => Math.min(...xs);
    const w32 = best(res.fp32.wall), w16 = best(res.bf16.wall), c32 = best(res.fp32.cpu), c16 = best(res.bf16.cpu);
    console.log(`  ${c.key} ${p.name}: wall best ms fp32 ${w32.toFixed(2)} bf16 ${w16.toFixed(2)} (bf16/fp32 ${(w16 / w32).toFixed(2)}); CPU best ms fp32 ${c32.toFixed(1)} bf16 ${c16.toFixed(1)} (bf16/fp32 ${(c16 / c32).toFixed(2)})`);
    arms.fp32.done();
    arms.bf16.done();
  }
  const err = await device.popErrorScope();
  if (err) throw new Error(`config ${c.key}: a validation error, the figures above are void: ${err.message}`);
  destroyTableSet(sets.fp32);
  destroyTableSet(sets.bf16);
  for (const b of [bags.offsets, bags.indices, out, grad]) b.destroy();
}
ctx.destroy();
