/**
 * Embedding-bag backward + optimizer throughput (sort, run-length encoding, segment
 * reduce + update), with the copy_f32 roofline measured in the same run.
 *   node:  npx tsx bench/embedding_backward.ts
 *   deno:  DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/embedding_backward.ts
 * Env: EMB_ROWS (rows per table, 100000), EMB_REPS (3), EMB_B (batch, 2048), EMB_ONLY (config index, all),
 *      EMB_SORT (0 skips the sort-only timings).
 * Stage times are cumulative prefixes of the dispatch list (keys, +sort, +runs, +update); on the vec4 path
 * (d % 4 == 0) "runs" is only the key-ranges dispatch. bench/embedding_profile.ts times every dispatch.
 */
import { createContext } from "../src/gpu/context.ts";
import { createStorage, uploadStorage } from "../src/gpu/buffers.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { uploadBagBatch } from "../src/kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../src/kernels/embedding_bag_backward.ts";
import { createEmbeddingOptimizerState } from "../src/kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet } from "../src/kernels/embedding_tables.ts";
import { createOptimizerParams } from "../src/kernels/optimizer_params.ts";
import { prepareRadixSort } from "../src/kernels/radix_sort.ts";
import { Rng } from "../src/util/rng.ts";
import { copyRoofline, envNumber, wallTime } from "./util.ts";

const env = envNumber;
const REPS = env("EMB_REPS", 3);
const R = env("EMB_ROWS", 100000);

const time = (device: GPUDevice, ds: Dispatch[], reps = REPS) => wallTime(device, ds, reps);

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
console.log(`adapter: ${ctx.adapter.name}`);
const { ms: copyMs, gbs: copyGBs } = await copyRoofline(device, REPS);
console.log(`copy_f32 64 MiB: ${copyMs.toFixed(2)} ms, ${copyGBs.toFixed(2)} GB/s (read+write)`);

const rng = new Rng(1);
for (const [n, bits] of env("EMB_SORT", 1) ? ([[53248, 22], [1638400, 20]] as const) : []) {
  const keys = new Uint32Array(n);
  for (let i = 0; i < n; i++) keys[i] = rng.int(2 ** bits);
  const kb = uploadStorage(device, keys, "keys"), vb = createStorage(device, n * 4, "vals");
  const sort = prepareRadixSort(device, { keys: kb, values: vb, count: n, bits });
  // Each rep re-sorts the already sorted output (same work per pass).
  const ms = await time(device, sort.dispatches);
  console.log(`radix sort n=${n} bits=${bits} (${sort.passes} passes): ${ms.toFixed(2)} ms, ${(n / ms / 1e3).toFixed(1)} M keys/s`);
  sort.destroy();
  kb.destroy();
  vb.destroy();
}

const configs = [
  { name: "criteo-like 26 tables x 1 lookup", T: 26, B: env("EMB_B", 2048), L: 1, d: 16 },
  { name: "paper 8 tables x 100 lookups", T: 8, B: env("EMB_B", 2048), L: 100, d: 64 },
].filter((_, i) => env("EMB_ONLY", -1) < 0 || i === env("EMB_ONLY", -1));
for (const c of configs) {
  const rows = new Array(c.T).fill(R);
  const set = createTableSet(device, { rows, dim: c.d });
  const offsets = new Uint32Array(c.T * c.B + 1);
  for (let k = 0; k < c.T * c.B; k++) offsets[k + 1] = offsets[k]! + c.L;
  const n = offsets[c.T * c.B]!;
  const indices = new Uint32Array(n);
  for (let i = 0; i < n; i++) indices[i] = rng.int(R);
  const bags = uploadBagBatch(device, { batchSize: c.B, offsets, indices }, rows);
  const stride = (c.T + 1) * c.d;
  const gradOut = uploadStorage(device, rng.f32(c.B * stride), "gradOut");
  const optim = createOptimizerParams(device, { lr: 0.01 });
  for (const kind of ["sgd", "adagrad", "rowwise-adagrad"] as const) {
    const state = createEmbeddingOptimizerState(device, set, kind);
    const bw = prepareEmbeddingBagBackward(device, { tables: set, state, bags, gradOut, gradStride: stride, gradOffset: c.d, maxIndices: n, optim });
    const ds = bw.dispatches;
    const nUpd = set.chunks.length;
    const keysEnd = 1;
    // Sort ends where the run bookkeeping starts: heads (scalar path) or key-ranges (vec4 path).
    const runsEnd = ds.findIndex((d) => d.label.endsWith(":heads") || d.label.endsWith(":key-ranges"));
    const total = await time(device, ds);
    const parts = [await time(device, ds.slice(0, keysEnd)), await time(device, ds.slice(0, runsEnd)), await time(device, ds.slice(0, ds.length - nUpd))];
    const bytes = n * c.d * 4;
    console.log(`${c.name} B=${c.B} d=${c.d} rows/table=${R} ${kind}: ${total.toFixed(1)} ms (${(n / total / 1e3).toFixed(2)} M lookups/s, gradient bytes ${((bytes / total / 1e6 / copyGBs) * 100).toFixed(1)}% of copy); ` +
      `keys ${parts[0]!.toFixed(1)}, sort ${(parts[1]! - parts[0]!).toFixed(1)}, runs ${(parts[2]! - parts[1]!).toFixed(1)}, update ${(total - parts[2]!).toFixed(1)} ms`);
    bw.destroy();
    for (const b of state.chunks) b.destroy();
  }
  destroyTableSet(set);
  gradOut.destroy();
}
ctx.destroy();
