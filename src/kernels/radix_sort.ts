/**
 * Stable LSD radix sort of u32 keys carrying u32 values
 * (shaders/radix_sort_histogram.wgsl, scan of the digit counts with shaders/radix_sort_offsets.wgsl
 * (one dispatch, small histograms) or src/kernels/scan.ts,
 * shaders/radix_sort_scatter.wgsl), any length.
 *
 * Only the low `bits` key bits are sorted (default 32), in ceil(bits / 8) passes of
 * (nearly) equal digit widths, so sorting global row ids of 8M rows takes 3 passes.
 * Each pass: thread t counts the digits of its contiguous run of `per` keys into
 * hist[digit * threads + t]; an exclusive scan of hist gives every (digit, thread) its
 * first output slot; thread t rewalks its run and scatters in order. Stable by
 * construction, barrier-free (software GPUs run lanes as SIMD; barriers are costly).
 *
 * Passes ping-pong between (keys, values) and internal scratch; the sorted result is
 * in `keysOut` / `valuesOut` (the input buffers when the number of passes is even,
 * including 0 passes for count <= 1, otherwise the scratch buffers). Keys' high bits
 * above `bits` are carried along but not sorted on.
 */
import { createStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { radix_sort_histogram } from "../shaders/radix_sort_histogram.ts";
import { radix_sort_offsets } from "../shaders/radix_sort_offsets.ts";
import { radix_sort_scatter } from "../shaders/radix_sort_scatter.ts";
import { createScanPlan, type ScanPlan } from "./scan.ts";

const WG = 64;
/** Threads per pass aimed at for large inputs (enough lanes for a CPU; bounds the histogram). */
const TARGET_THREADS = 1024;
/**
 * Elements per thread of the digit-count scans: 256 instead of scan.ts's 64 gives 3 dispatches
 * instead of 5 per pass for 26k..16M counts (fewer passes cost more than longer runs on CPU
 * adapters; bench/embedding_profile.ts).
 */
const HIST_SCAN_PER = 256;
/**
 * Largest digit-count histogram (radix x threads words) scanned by radix_sort_offsets (one dispatch,
 * one workgroup) rather than by scan.ts's levels (3 dispatches, all cores): config A's backward
 * (53k keys, 104 threads x 256 digits) is dispatch-bound there (bench/embedding_profile.ts EMB_AB=sortscan).
 */
const FUSED_SCAN_MAX = 65536;

export interface RadixSortArgs {
  keys: GPUBuffer;
  values: GPUBuffer;
  /** Elements (the capacity when setCount() is used later). */
  count: number;
  /** Low key bits to sort on, 1..32 (default 32). */
  bits?: number;
  /** Elements per thread of the digit-count scans (default 256; see HIST_SCAN_PER). */
  scanPer?: number;
  /**
   * Digit-count scan: "fused" (radix_sort_offsets, one dispatch per pass), "levels" (scan.ts, 3+
   * dispatches per pass), "auto" (default: fused when radix x threads <= 65536).
   */
  scan?: "auto" | "fused" | "levels";
  label?: string;
}

export interface PreparedRadixSort {
  dispatches: Dispatch[];
  /** Where the sorted keys / values land (see the module comment). */
  keysOut: GPUBuffer;
  valuesOut: GPUBuffer;
  passes: number;
  /** Sorts the first n (<= count) elements from now on, without new bind groups. */
  setCount(device: GPUDevice, n: number): void;
  destroy(): void;
}

/** Digit widths of the passes: ceil(bits / 8) passes, widths differing by at most 1. */
export function radixPasses(bits: number): number[] {
  const p = Math.ceil(bits / 8);
  const base = Math.floor(bits / p);
  const extra = bits % p;
  return Array.from({ length: p }, (_, i) => base + (i < extra ? 1 : 0));
}

/** Keys per thread run for n elements and a largest radix of `radix`. */
function runLength(n: number, radix: number): number {
  return Math.max(Math.ceil(n / TARGET_THREADS), 2 * radix);
}

export function prepareRadixSort(device: GPUDevice, args: RadixSortArgs): PreparedRadixSort {
  const { keys, values, count } = args;
  const bits = args.bits ?? 32;
  const label = args.label ?? "radix-sort";
  if (!Number.isInteger(count) || count < 0) throw new KernelInputError(`${label}: count must be a non-negative integer, got ${count}`);
  if (!Number.isInteger(bits) || bits < 1 || bits > 32) throw new KernelInputError(`${label}: bits must be an integer in 1..32, got ${bits}`);
  if (keys === values) throw new KernelInputError(`${label}: keys and values must be different buffers`);
  if (keys.size < count * 4 || values.size < count * 4) {
    throw new KernelInputError(`${label}: keys/values hold ${keys.size / 4}/${values.size / 4} u32, need ${count}`);
  }
  const widths = radixPasses(bits);
  const maxRadix = 2 ** Math.max(...widths);
  const maxThreads = Math.max(1, Math.min(TARGET_THREADS, Math.ceil(count / (2 * maxRadix))));
  const owned: GPUBuffer[] = [];
  const keys2 = createStorage(device, count * 4, `${label}:keys-scratch`);
  const vals2 = createStorage(device, count * 4, `${label}:values-scratch`);
  const hist = createStorage(device, maxRadix * maxThreads * 4, `${label}:hist`);
  const histScan = createStorage(device, maxRadix * maxThreads * 4, `${label}:hist-scan`);
  owned.push(keys2, vals2, hist, histScan);
  const histK = getKernel(device, { shader: radix_sort_histogram, constants: { WG } });
  const scatterK = getKernel(device, { shader: radix_sort_scatter, constants: { WG } });
  const maxPerDim = device.limits.maxComputeWorkgroupsPerDimension;

  const scanMode = args.scan ?? "auto";
  if (scanMode !== "auto" && scanMode !== "fused" && scanMode !== "levels") throw new KernelInputError(`${label}: scan must be "auto", "fused" or "levels", got ${scanMode as string}`);
  const fused = scanMode === "fused" || (scanMode === "auto" && maxRadix * maxThreads <= FUSED_SCAN_MAX);
  const offsetsK = fused ? getKernel(device, { shader: radix_sort_offsets, constants: { WG: 256 } }) : undefined;
  interface Pass { params: GPUBuffer; shift: number; radix: number; scan?: ScanPlan; hist: Dispatch; scatter: Dispatch }
  const passes: Pass[] = [];
  const dispatches: Dispatch[] = [];
  let src = { k: keys, v: values };
  let dst = { k: keys2, v: vals2 };
  let shift = 0;
  widths.forEach((w, i) => {
    const radix = 2 ** w;
    const params = uploadUniform(device, new Uint32Array(8), `${label}:pass${i}:params`);
    owned.push(params);
    const scan = fused ? undefined : createScanPlan(device, { input: hist, output: histScan, capacity: radix * maxThreads, label: `${label}:pass${i}:scan`, per: args.scanPer ?? HIST_SCAN_PER });
    const scanD: Dispatch[] = scan ? scan.dispatches : [{
      label: `${label}:offsets:${i}`,
      kernel: offsetsK!,
      bindGroups: [bindGroup(device, offsetsK!, { params, hist, offsets: histScan }, `${label}:offsets:${i}`)],
      workgroups: [1],
    }];
    const h: Dispatch = {
      label: `${label}:histogram:${i}`,
      kernel: histK,
      bindGroups: [bindGroup(device, histK, { params, keys: src.k, hist }, `${label}:histogram:${i}`)],
      workgroups: [1],
    };
    const s: Dispatch = {
      label: `${label}:scatter:${i}`,
      kernel: scatterK,
      bindGroups: [bindGroup(device, scatterK, {
        params, keys_in: src.k, vals_in: src.v, offsets: histScan, keys_out: dst.k, vals_out: dst.v,
      }, `${label}:scatter:${i}`)],
      workgroups: [1],
    };
    passes.push({ params, shift, radix, scan, hist: h, scatter: s });
    dispatches.push(h, ...scanD, s);
    shift += w;
    [src, dst] = [dst, src];
  });
  // With count <= 1 nothing moves: skip the passes entirely (result stays in place).
  const trivial = count <= 1;

  const prepared: PreparedRadixSort = {
    dispatches: trivial ? [] : dispatches,
    keysOut: trivial ? keys : src.k,
    valuesOut: trivial ? values : src.v,
    passes: trivial ? 0 : widths.length,
    setCount(dev: GPUDevice, n: number) {
      if (!Number.isInteger(n) || n < 0 || n > count) {
        throw new KernelInputError(`${label}: count ${n} outside [0, ${count}] (the capacity it was prepared for)`);
      }
      if (trivial) return;
      const per = runLength(n, maxRadix);
      const threads = Math.ceil(n / per);
      for (const p of passes) {
        dev.queue.writeBuffer(p.params, 0, new Uint32Array([n, per, threads, p.shift, p.radix, 0, 0, 0]));
        const wg: [number, number] = threads === 0 ? [0, 1] : grid(Math.ceil(threads / WG), maxPerDim);
        p.hist.workgroups = wg;
        p.scatter.workgroups = wg;
        p.scan?.setCount(dev, p.radix * threads);
        // (the fused offsets dispatch is always 1 workgroup; it reads threads from params)
      }
    },
    destroy() {
      for (const p of passes) p.scan?.destroy();
      for (const b of owned) b.destroy();
    },
  };
  prepared.setCount(device, count);
  return prepared;
}

/** One-shot sort; returns where the result landed (destroy() it once read). */
export function radixSort(device: GPUDevice, args: RadixSortArgs): PreparedRadixSort {
  const p = prepareRadixSort(device, args);
  submitDispatches(device, p.dispatches, "radix-sort");
  return p;
}
