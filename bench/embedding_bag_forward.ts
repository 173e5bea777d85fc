/**
 * Embedding-bag forward throughput vs the copy_f32 roofline, measured in the
 * same run on the same device. Gathered bytes = lookups * d * 4.
 *   node:  npx tsx bench/embedding_bag_forward.ts
 *   deno:  DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/embedding_bag_forward.ts
 * Env: EMB_B (batch, 512), EMB_L (lookups per bag, 20), EMB_T (tables, 8), EMB_ROWS (100000).
 */
import { createContext } from "../src/gpu/context.ts";
import { createStorage } from "../src/gpu/buffers.ts";
import { type Dispatch, submitDispatches } from "../src/gpu/dispatch.ts";
import { prepareCopy } from "../src/kernels/copy.ts";
import { uploadBagBatch } from "../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagForward } from "../src/kernels/embedding_bag_forward.ts";
import { createTableSet, destroyTableSet, writeTable } from "../src/kernels/embedding_tables.ts";
import { Rng } from "../src/util/rng.ts";

const env = (k: string, d: number) => Number((globalThis as { process?: { env: Record<string, string> } }).process?.env[k] ?? (globalThis as { Deno?: { env: { get(k: string): string | undefined } } }).Deno?.env.get(k) ?? d);

async function time(device: GPUDevice, ds: Dispatch[], reps: number): Promise<number> {
  submitDispatches(device, ds); // warm-up (pipeline compile)
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) submitDispatches(device, ds);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
console.log(`adapter: ${ctx.adapter.name}`);
const B = env("EMB_B", 512), L = env("EMB_L", 20), T = env("EMB_T", 8), R = env("EMB_ROWS", 100000);

const copyN = 16 << 20; // 64 MiB
const src = createStorage(device, copyN * 4, "src"), dst = createStorage(device, copyN * 4, "dst");
const copyMs = await time(device, [prepareCopy(device, { src, dst, count: copyN })], 5);
const copyGBs = (2 * copyN * 4) / copyMs / 1e6;
console.log(`copy_f32 64 MiB: ${copyMs.toFixed(2)} ms, ${copyGBs.toFixed(2)} GB/s (read+write)`);

const rng = new Rng(1);
const rows = new Array(T).fill(R);
const offsets = new Uint32Array(T * B + 1);
for (let k = 0; k < T * B; k++) offsets[k + 1] = offsets[k]! + L;
const indices = new Uint32Array(T * B * L);
for (let i = 0; i < indices.length; i++) indices[i] = rng.int(R);
for (const d of [4, 16, 64, 128, 3]) {
  const set = createTableSet(device, { rows, dim: d });
  for (let t = 0; t < T; t++) writeTable(device, set, t, rng.f32(R * d));
  const bags = uploadBagBatch(device, { batchSize: B, offsets, indices }, rows);
  const out = createStorage(device, B * (T + 1) * d * 4, "out");
  const ds = prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: (T + 1) * d, outOffset: d });
  const ms = await time(device, ds, 5);
  const gbs = (indices.length * d * 4) / ms / 1e6;
  console.log(`forward T=${T} rows=${R} B=${B} L=${L} d=${d}: ${ms.toFixed(2)} ms, ${(indices.length / ms / 1e3).toFixed(1)} M lookups/s, gathered ${gbs.toFixed(2)} GB/s = ${((100 * gbs) / copyGBs).toFixed(0)}% of copy`);
  destroyTableSet(set);
  bags.offsets.destroy();
  bags.indices.destroy();
  out.destroy();
}
ctx.destroy();
