/**
 * QR / MD embedding combine throughput (forward, backward, projection gradient) at
 * Criteo-like sizes, with the copy_f32 roofline measured in the same run.
 *   node:  npx tsx bench/embedding_combine.ts
 *   deno:  DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/embedding_combine.ts
 * Env: EMB_B (batch, 2048), EMB_REPS (5).
 */
import { createContext } from "../src/gpu/context.ts";
import { createStorage, uploadStorage } from "../src/gpu/buffers.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { prepareCopy } from "../src/kernels/copy.ts";
import {
  prepareEmbeddingCombineBackward,
  prepareEmbeddingCombineForward,
  prepareEmbeddingProjGrad,
  uploadCombineDescriptors,
} from "../src/kernels/embedding_combine.ts";
import { type EmbeddingLayoutOptions, embeddingLayout } from "../src/model/embedding_layout.ts";
import { Rng } from "../src/util/rng.ts";
import { copyRoofline, envNumber, wallTime } from "./util.ts";

const env = envNumber;
const REPS = env("EMB_REPS", 5);
const B = env("EMB_B", 2048);

const time = (device: GPUDevice, ds: Dispatch[]) => wallTime(device, ds, REPS);

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
console.log(`adapter: ${ctx.adapter.name}`);
const { ms: copyMs, gbs: copyGBs } = await copyRoofline(device, REPS);
console.log(`copy_f32 64 MiB: ${copyMs.toFixed(2)} ms, ${copyGBs.toFixed(2)} GB/s (read+write)`);

const rows = Array.from({ length: 26 }, (_, t) => 10 ** (2 + (t % 5)));
const configs: [string, EmbeddingLayoutOptions][] = [
  ["QR mult c=64 (rows > 1000), d=16", { embeddingDim: 16, tableRows: rows, qr: { operation: "mult", collisions: 64, threshold: 1000 } }],
  ["MD T=0.3 d=16", { embeddingDim: 16, tableRows: rows, md: { temperature: 0.3, roundDims: false, threshold: 0 } }],
];
const rng = new Rng(1);
for (const [name, opts] of configs) {
  const layout = embeddingLayout(opts);
  const { numTables: n, dim: d, width: W, projSize } = layout;
  const desc = uploadCombineDescriptors(device, layout);
  const P = uploadStorage(device, rng.f32(B * W), "P");
  const proj = uploadStorage(device, rng.f32(Math.max(1, projSize)), "proj");
  const E = uploadStorage(device, rng.f32(B * n * d), "E");
  const dE = uploadStorage(device, rng.f32(B * n * d), "dE");
  const dP = createStorage(device, B * W * 4, "dP");
  const dproj = createStorage(device, Math.max(1, projSize) * 4, "dproj");
  const fwd = await time(device, prepareEmbeddingCombineForward(device, { pooled: P, desc, proj, out: E, batch: B }));
  const bwd = await time(device, prepareEmbeddingCombineBackward(device, { pooled: P, desc, proj, gradOut: dE, gradPooled: dP, batch: B }));
  const pg = projSize ? await time(device, prepareEmbeddingProjGrad(device, { pooled: P, desc, gradOut: dE, gradProj: dproj, batch: B })) : 0;
  const bytes = (B * W + B * n * d) * 4;
  // A copy of the same bytes: the roofline at this size (dispatch overhead included).
  const cn = Math.ceil(bytes / 8 / 4) * 4;
  const cs = createStorage(device, cn * 4, "cs"), cd = createStorage(device, cn * 4, "cd");
  const sameCopy = await time(device, [prepareCopy(device, { src: cs, dst: cd, count: cn })]);
  cs.destroy();
  cd.destroy();
  const gbs = (ms: number) => `${(bytes / ms / 1e6).toFixed(2)} GB/s (${((bytes / ms / 1e6 / copyGBs) * 100).toFixed(0)}% of copy)`;
  console.log(`${name}: B=${B} n=${n} d=${d} W=${W} proj=${projSize} floats (dims ${layout.tables.map((t) => t.mdDim ?? "-").join(",")}); copy of the same bytes ${sameCopy.toFixed(2)} ms`);
  console.log(`  forward ${fwd.toFixed(2)} ms ${gbs(fwd)}; backward ${bwd.toFixed(2)} ms ${gbs(bwd)}${projSize ? `; proj grad ${pg.toFixed(2)} ms` : ""}`);
  for (const b of [desc.buffer, P, proj, E, dE, dP, dproj]) b.destroy();
}
