/**
 * Exclusive prefix sum of u32 (shaders/scan_reduce.wgsl + shaders/scan_downsweep.wgsl),
 * any length, multi-level and barrier-free:
 *
 *   level k: thread t owns the contiguous run [t*PER, (t+1)*PER) of that level's input;
 *            scan_reduce writes each run's sum, the next level scans those sums, then
 *            scan_downsweep rewalks each run starting from its scanned offset.
 *
 * The top level (<= PER elements) is one thread. Levels are built for a capacity;
 * setCount() rewrites the per-level uniforms and workgroup counts for any n <= capacity
 * without new buffers or bind groups (the backward pass uses this every step).
 * input and output must be different buffers (WebGPU forbids aliasing a writable binding).
 */
import { createStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { scan_reduce } from "../shaders/scan_reduce.ts";
import { scan_downsweep } from "../shaders/scan_downsweep.ts";

/** Elements per thread run. */
export const SCAN_PER = 64;
const WG = 64;

export interface ExclusiveScanArgs {
  input: GPUBuffer;
  output: GPUBuffer;
  count: number;
}

export interface ScanPlan {
  /** Encode in order; reusable every step. */
  dispatches: Dispatch[];
  readonly capacity: number;
  /** Scans the first n (<= capacity) elements from now on. */
  setCount(device: GPUDevice, n: number): void;
  destroy(): void;
}

interface Level {
  params: GPUBuffer;
  reduce?: Dispatch;
  downsweep: Dispatch;
}

/** A scan plan over up to `capacity` elements (initially set to `capacity`). */
export function createScanPlan(
  device: GPUDevice,
  args: { input: GPUBuffer; output: GPUBuffer; capacity: number; label?: string; per?: number },
): ScanPlan {
  const { input, output, capacity } = args;
  /** Elements per thread run (default SCAN_PER): larger means fewer levels (dispatches) and fewer threads. */
  const per = args.per ?? SCAN_PER;
  const label = args.label ?? "scan";
  if (!Number.isInteger(capacity) || capacity < 0) throw new KernelInputError(`${label}: count must be a non-negative integer, got ${capacity}`);
  if (input === output) throw new KernelInputError(`${label}: input and output must be different buffers`);
  if (!Number.isInteger(per) || per < 2) throw new KernelInputError(`${label}: per must be an integer >= 2, got ${per}`);
  if (input.size < capacity * 4 || output.size < capacity * 4) {
    throw new KernelInputError(`${label}: buffers hold ${input.size / 4} / ${output.size / 4} u32, need ${capacity}`);
  }
  const reduceK = getKernel(device, { shader: scan_reduce, constants: { WG } });
  const downK = getKernel(device, { shader: scan_downsweep, constants: { WG } });
  const owned: GPUBuffer[] = [];
  const levels: Level[] = [];
  const dispatches: Dispatch[] = [];
  const maxPerDim = device.limits.maxComputeWorkgroupsPerDimension;
  let dummy: GPUBuffer | undefined;

  // Recursively builds level `k` scanning `src` (cap elements) into `dst`, appending dispatches in order.
  const build = (k: number, src: GPUBuffer, dst: GPUBuffer, cap: number): void => {
    const params = uploadUniform(device, new Uint32Array(4), `${label}:L${k}:params`);
    owned.push(params);
    if (cap <= per) {
      dummy ??= createStorage(device, 4, `${label}:no-offsets`);
      const downsweep: Dispatch = {
        label: `${label}:downsweep:L${k}`,
        kernel: downK,
        bindGroups: [bindGroup(device, downK, { params, input: src, offsets: dummy, output: dst }, `${label}:downsweep:L${k}`)],
        workgroups: [1],
      };
      levels.push({ params, downsweep });
      dispatches.push(downsweep);
      return;
    }
    const runs = Math.ceil(cap / per);
    const sums = createStorage(device, runs * 4, `${label}:L${k}:sums`);
    const scanned = createStorage(device, runs * 4, `${label}:L${k}:scanned`);
    owned.push(sums, scanned);
    const reduce: Dispatch = {
      label: `${label}:reduce:L${k}`,
      kernel: reduceK,
      bindGroups: [bindGroup(device, reduceK, { params, input: src, sums }, `${label}:reduce:L${k}`)],
      workgroups: [1],
    };
    const downsweep: Dispatch = {
      label: `${label}:downsweep:L${k}`,
      kernel: downK,
      bindGroups: [bindGroup(device, downK, { params, input: src, offsets: scanned, output: dst }, `${label}:downsweep:L${k}`)],
      workgroups: [1],
    };
    levels.push({ params, reduce, downsweep });
    dispatches.push(reduce);
    build(k + 1, sums, scanned, runs);
    dispatches.push(downsweep);
  };
  build(0, input, output, capacity);

  const plan: ScanPlan = {
    dispatches,
    capacity,
    setCount(dev: GPUDevice, n: number) {
      if (!Number.isInteger(n) || n < 0 || n > capacity) {
        throw new KernelInputError(`${label}: count ${n} outside [0, ${capacity}] (the capacity it was prepared for)`);
      }
      let count = n;
      levels.forEach((lv, k) => {
        const threads = Math.ceil(count / per);
        const top = k === levels.length - 1;
        dev.queue.writeBuffer(lv.params, 0, new Uint32Array([count, per, threads, top ? 0 : 1]));
        const wg: [number, number] = threads === 0 ? [0, 1] : grid(Math.ceil(threads / WG), maxPerDim);
        if (lv.reduce) lv.reduce.workgroups = wg;
        lv.downsweep.workgroups = wg;
        count = threads;
      });
    },
    destroy() {
      for (const b of owned) b.destroy();
      dummy?.destroy();
    },
  };
  plan.setCount(device, capacity);
  return plan;
}

/**
 * output[i] = sum(input[0..i)) for i < count. The returned dispatches own small
 * uniform and scratch buffers (garbage-collected with them); use createScanPlan()
 * to resize per step or destroy them explicitly.
 */
export function prepareExclusiveScan(device: GPUDevice, args: ExclusiveScanArgs): Dispatch[] {
  return createScanPlan(device, { input: args.input, output: args.output, capacity: args.count }).dispatches;
}

/** One-shot exclusive scan. */
export function exclusiveScan(device: GPUDevice, args: ExclusiveScanArgs): void {
  submitDispatches(device, prepareExclusiveScan(device, args), "scan");
}
