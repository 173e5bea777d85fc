/** Recorded dispatches and how they are encoded (optionally timed). */
import type { Kernel } from "./pipelines.ts";
import type { Profiler } from "./timing.ts";

export interface Dispatch {
  label: string;
  kernel: Kernel;
  bindGroups: GPUBindGroup[];
  /** Workgroup counts; see grid() for more than 65535 workgroups. */
  workgroups: readonly [number, number?, number?];
}

/**
 * Workgroup counts for `n` workgroups, folded into y when n exceeds the
 * per-dimension limit. Shaders compute the linear workgroup index as
 * `wid.x + wid.y * nwg.x` and return when it is >= the real count.
 */
export function grid(n: number, maxPerDim = 65535): [number, number] {
  if (n <= maxPerDim) return [Math.max(1, n), 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y];
}

/** Encodes `dispatches` in order into `encoder`: one pass, or one timed pass each under a profiler. */
export function encodeDispatches(encoder: GPUCommandEncoder, dispatches: readonly Dispatch[], profiler?: Profiler): void {
  if (profiler?.timestamps) {
    for (const d of dispatches) {
      const pass = encoder.beginComputePass({ label: d.label, timestampWrites: profiler.timestampWrites(d.label) });
      encodeOne(pass, d);
      pass.end();
    }
    return;
  }
  const pass = encoder.beginComputePass({ label: dispatches.length === 1 ? dispatches[0]!.label : "dispatches" });
  // Consecutive dispatches of one pipeline (the column chunks of a GEMM) set it once: fewer host calls per step.
  let last: GPUComputePipeline | undefined;
  for (const d of dispatches) if (encodeOne(pass, d, last)) last = d.kernel.pipeline;
  pass.end();
}

/** Encodes `d` (skipping setPipeline when `current` is already its pipeline); false when it has no workgroups. */
function encodeOne(pass: GPUComputePassEncoder, d: Dispatch, current?: GPUComputePipeline): boolean {
  const [x, y = 1, z = 1] = d.workgroups;
  if (x === 0 || y === 0 || z === 0) return false;
  if (d.kernel.pipeline !== current) pass.setPipeline(d.kernel.pipeline);
  d.bindGroups.forEach((g, i) => pass.setBindGroup(i, g));
  pass.dispatchWorkgroups(x, y, z);
  return true;
}

/** Encodes and submits `dispatches` in one command buffer. */
export function submitDispatches(device: GPUDevice, dispatches: readonly Dispatch[], label = "dispatch"): void {
  const enc = device.createCommandEncoder({ label });
  encodeDispatches(enc, dispatches);
  device.queue.submit([enc.finish()]);
}
