/**
 * Embedding-bag forward throughput vs the copy_f32 roofline, measured in the
 * same run on the same device, with the timer and byte count of
 * bench/kernels/embedding_cases.ts (configs A and B of the kernel bench).
 *   deno:  DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/embedding_bag_forward.ts
 *   node:  npx tsx bench/embedding_bag_forward.ts
 * Env: EMB_ROUNDS (repetitions of copy + each config, medians reported; 3),
 *      EMB_QUICK=1 (config B with 100k rows and 20 per bag, as --quick).
 */
import { createContext } from "../src/gpu/context.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { prepareCopy } from "../src/kernels/copy.ts";
import { uploadBagBatch } from "../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagForward } from "../src/kernels/embedding_bag_forward.ts";
import { createTableSet, destroyTableSet } from "../src/kernels/embedding_tables.ts";
import { Rng } from "../src/util/rng.ts";
import { embeddingConfigs } from "./kernels/embedding_cases.ts";
import { KernelTimer, median } from "./kernels/timing.ts";
import { envNumber } from "./util.ts";

const env = envNumber;

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
console.log(`adapter: ${ctx.adapter.name}`);
const timer = new KernelTimer(device, { targetMs: 500, slowMs: 2000, minReps: 3, maxReps: 15 });
const rounds = env("EMB_ROUNDS", 3);

const copyN = 16 << 20; // 64 MiB each way, as bench/roofline.ts
const src = createStorage(device, copyN * 4, "src"), dst = createStorage(device, copyN * 4, "dst");
const copyDs = [prepareCopy(device, { src, dst, count: copyN })];
const copyGBs = async () => (2 * copyN * 4) / ((await timer.time(copyDs, "copy")).ms * 1e6);

const copies: number[] = [];
const results = new Map<string, { gbs: number[]; frac: number[] }>();
const cases = embeddingConfigs(env("EMB_QUICK", 0) === 1).map((c) => {
  const { tables: T, rows: R, dim: d, perBag: L, batch: B } = c;
  const rng = new Rng(1000 + T);
  const rowCounts = new Array<number>(T).fill(R);
  const nIdx = T * B * L;
  const offsets = new Uint32Array(T * B + 1);
  for (let k = 0; k < T * B; k++) offsets[k + 1] = offsets[k]! + L;
  const indices = new Uint32Array(nIdx);
  for (let i = 0; i < nIdx; i++) indices[i] = rng.int(R);
  const set = createTableSet(device, { rows: rowCounts, dim: d, label: `emb-${c.key}` });
  const bags = uploadBagBatch(device, { batchSize: B, offsets, indices }, rowCounts, `bags-${c.key}`);
  const stride = (T + 1) * d;
  const out = createStorage(device, B * stride * 4, "emb:out");
  const ds = prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: stride, outOffset: d });
  const bytes = (T * B + 1) * 4 + nIdx * (4 + d * 4) + T * B * d * 4;
  results.set(c.key, { gbs: [], frac: [] });
  return { c, ds, bytes, free: () => { destroyTableSet(set); for (const b of [bags.offsets, bags.indices, out]) b.destroy(); } };
});
for (let r = 0; r < rounds; r++) {
  const cp = await copyGBs();
  copies.push(cp);
  for (const { c, ds, bytes } of cases) {
    const t = await timer.time(ds, `fwd ${c.key}`);
    const gbs = bytes / (t.ms * 1e6);
    results.get(c.key)!.gbs.push(gbs);
    results.get(c.key)!.frac.push(gbs / cp);
    console.log(`round ${r} copy ${cp.toFixed(2)} GB/s  ${c.key}: ${t.ms.toFixed(3)} ms ${gbs.toFixed(2)} GB/s ${(100 * gbs / cp).toFixed(1)}%`);
  }
}
console.log(`median copy ${median(copies).toFixed(2)} GB/s`);
for (const [k, v] of results) console.log(`median ${k}: ${median(v.gbs).toFixed(2)} GB/s = ${(100 * median(v.frac)).toFixed(1)}% of copy`);
for (const c of cases) c.free();
ctx.destroy();
