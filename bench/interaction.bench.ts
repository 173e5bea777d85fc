/**
 * Interaction forward + backward speed, with a copy roofline from the same run.
 * Run: DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/interaction.bench.ts   (Deno, lavapipe)
 *      npx tsx bench/interaction.bench.ts                                     (Node, Dawn)
 * Bytes counted: forward reads x, emb and writes out; backward reads x, emb,
 * gradOut and writes gradX, gradEmb (each once).
 */
import { createContext } from "../src/gpu/context.ts";
import { createStorage, uploadStorage } from "../src/gpu/buffers.ts";
import { type Dispatch, encodeDispatches } from "../src/gpu/dispatch.ts";
import { prepareCopy } from "../src/kernels/copy.ts";
import {
  type InteractionVariant,
  interactionOutputDim,
  prepareInteractionBackward,
  prepareInteractionForward,
} from "../src/kernels/interaction.ts";
import { Rng } from "../src/util/rng.ts";

const ctx = await createContext({ label: "bench" });
const device = ctx.device;
console.log(`adapter: ${ctx.adapter.name} (${ctx.adapter.host})`);

/** Best ms per run of `dispatches` over `rounds` (reps runs per submit, after a warm-up): the minimum resists other load on the machine. */
async function time(dispatches: Dispatch[], reps = 5, rounds = 7): Promise<number> {
  const run = async (n: number) => {
    const enc = device.createCommandEncoder();
    for (let r = 0; r < n; r++) encodeDispatches(enc, dispatches);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
  };
  await run(2);
  const ms: number[] = [];
  for (let k = 0; k < rounds; k++) {
    const t0 = performance.now();
    await run(reps);
    ms.push((performance.now() - t0) / reps);
  }
  return Math.min(...ms);
}

// Copy roofline: 16M floats (64 MiB read + 64 MiB written).
{
  const count = 1 << 24;
  const src = createStorage(device, count * 4, "copy-src");
  const dst = createStorage(device, count * 4, "copy-dst");
  const ms = await time([prepareCopy(device, { src, dst, count })], 5, 3);
  console.log(`copy roofline: ${ms.toFixed(2)} ms, ${((2 * count * 4) / ms / 1e6).toFixed(2)} GB/s`);
  src.destroy();
  dst.destroy();
}

const B = 2048;
for (const [n, d] of [[26, 16], [8, 64]] as const) {
  const rng = new Rng(n * d);
  const outDim = interactionOutputDim(n, d, "dot");
  const x = uploadStorage(device, rng.f32(B * d), "x");
  const emb = uploadStorage(device, rng.f32(B * n * d), "emb");
  const out = createStorage(device, B * outDim * 4, "out");
  const gradOut = uploadStorage(device, rng.f32(B * outDim), "gradOut");
  const gradX = createStorage(device, B * d * 4, "gradX");
  const gradEmb = createStorage(device, B * n * d * 4, "gradEmb");
  const tIn = B * (n + 1) * d * 4;
  const fwdBytes = tIn + B * outDim * 4;
  const bwdBytes = tIn + B * outDim * 4 + tIn;
  const pairs = outDim - d;
  const flopsF = 2 * B * pairs * d;
  for (const [variant, vec4] of [["global", false], ["workgroup", false], ["sample", false], ["global", true], ["workgroup", true], ["sample", true], ["auto", true]] as [InteractionVariant, boolean][]) {
    const shape = { x, emb, batch: B, numEmb: n, dim: d, op: "dot" as const, variant, vec4 };
    const fwd = prepareInteractionForward(device, { ...shape, out });
    const bwd = prepareInteractionBackward(device, { ...shape, gradOut, gradX, gradEmb });
    const f = await time(fwd);
    const b = await time(bwd);
    const fb = await time([...fwd, ...bwd]);
    const gb = (bytes: number, ms: number) => (bytes / ms / 1e6).toFixed(2);
    console.log(
      `B=${B} n=${n} d=${d} ${(variant + (vec4 ? "/vec4" : "")).padEnd(14)} fwd ${f.toFixed(2)} ms (${gb(fwdBytes, f)} GB/s, ${(flopsF / f / 1e6).toFixed(2)} GFLOP/s)` +
        ` | bwd ${b.toFixed(2)} ms (${gb(bwdBytes, b)} GB/s) | fwd+bwd ${fb.toFixed(2)} ms (${gb(fwdBytes + bwdBytes, fb)} GB/s)`,
    );
  }
  for (const buf of [x, emb, out, gradOut, gradX, gradEmb]) buf.destroy();
}
ctx.destroy();
