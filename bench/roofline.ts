/**
 * The adapter's roofline, measured on the device under test:
 *  - arithmetic: shaders/roofline_fma.wgsl, 8 independent vec4 FMA chains per
 *    invocation (64 flops per loop round), registers only;
 *  - bandwidth: src/kernels/copy.ts (copy_f32, vec4), 64 MiB read + 64 MiB
 *    written, counted as 128 MiB moved.
 * Every dispatch stays within maxComputeWorkgroupsPerDimension (65535).
 * Used by bench/kernels.ts; run alone to print it:
 *   npx deno run -A bench/roofline.ts  |  npx tsx bench/roofline.ts
 */
import { createStorage, uploadUniform } from "../src/gpu/buffers.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { bindGroup, getKernel } from "../src/gpu/pipelines.ts";
import { roofline_fma } from "../src/shaders/roofline_fma.ts";
import { prepareCopy } from "../src/kernels/copy.ts";
import { KernelTimer, type Timing } from "./kernels/timing.ts";

export interface Roofline {
  /** Best FMA rate over the tried shapes (GFLOP/s). */
  fmaGflops: number;
  fmaShape: string;
  fmaTiming: Timing;
  /** copy_f32 bandwidth, read + write bytes (GB/s, 1e9). */
  copyGBs: number;
  copyBytes: number;
  copyTiming: Timing;
}

/** FMA microkernel dispatch: `groups` workgroups of `wg` invocations, `iters` rounds. */
function fmaDispatch(device: GPUDevice, wg: number, groups: number, iters: number, out: GPUBuffer): Dispatch {
  if (groups > device.limits.maxComputeWorkgroupsPerDimension) throw new RangeError(`fma: ${groups} workgroups exceed the per-dimension limit`);
  const kernel = getKernel(device, { shader: roofline_fma, constants: { WG: wg } });
  const ab = new ArrayBuffer(16);
  new Uint32Array(ab)[0] = iters;
  new Float32Array(ab)[1] = 0.5;
  const params = uploadUniform(device, ab, "roofline-fma:params");
  return { label: "roofline_fma", kernel, bindGroups: [bindGroup(device, kernel, { params, out }, "roofline-fma")], workgroups: [groups] };
}

export async function measureRoofline(device: GPUDevice, timer: KernelTimer, quick = false): Promise<Roofline> {
  // FMA: a few shapes (work per invocation vs number of invocations); the best counts.
  const shapes: [number, number, number][] = quick ? [[64, 1024, 512]] : [[64, 2048, 512], [256, 512, 512]];
  const out = createStorage(device, Math.max(...shapes.map(([wg, g]) => wg * g)) * 4, "roofline-fma:out");
  let fmaGflops = 0;
  let fmaShape = "";
  let fmaTiming: Timing | undefined;
  for (const [wg, groups, iters] of shapes) {
    const t = await timer.time([fmaDispatch(device, wg, groups, iters, out)], "roofline_fma");
    const g = (64 * iters * wg * groups) / (t.ms * 1e6);
    if (g > fmaGflops) {
      fmaGflops = g;
      fmaShape = `WG ${wg} x ${groups} workgroups x ${iters} rounds`;
      fmaTiming = t;
    }
  }
  out.destroy();

  const count = 16 << 20; // floats: 64 MiB each way
  const src = createStorage(device, count * 4, "roofline-copy:src");
  const dst = createStorage(device, count * 4, "roofline-copy:dst");
  const copyTiming = await timer.time([prepareCopy(device, { src, dst, count })], "copy_f32");
  src.destroy();
  dst.destroy();
  const copyBytes = 2 * count * 4;
  return { fmaGflops, fmaShape, fmaTiming: fmaTiming!, copyGBs: copyBytes / (copyTiming.ms * 1e6), copyBytes, copyTiming };
}

// Standalone: print the roofline of the default device.
const self = (globalThis as { process?: { argv?: string[] } }).process?.argv?.[1] ?? "";
const isMain = (import.meta as ImportMeta & { main?: boolean }).main ?? /roofline\.ts$/.test(self);
if (isMain) {
  const { createContext } = await import("../src/gpu/context.ts");
  const ctx = await createContext({ label: "roofline" });
  const timer = new KernelTimer(ctx.device, { targetMs: 500, slowMs: 2000, minReps: 3, maxReps: 20 });
  const r = await measureRoofline(ctx.device, timer, false);
  console.log(`${ctx.adapter.name}: FMA ${r.fmaGflops.toFixed(2)} GFLOP/s (${r.fmaShape}), copy ${r.copyGBs.toFixed(2)} GB/s (${r.copyTiming.method})`);
  timer.destroy();
  ctx.destroy();
}
