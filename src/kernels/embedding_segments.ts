/**
 * The embedding backward's segment reduction: the stages before an update kernel, shared by the
 * fused backward (embedding_bag_backward.ts) and the column shards' row-wise Adagrad split
 * (embedding_rowwise_split.ts). Per step:
 *
 *  1. embedding_backward_keys     one thread per bag: key = global row, value = position,
 *                                 pos_info = (gradient address, weight / bag length)
 *  2. radix sort (keys, positions) on ceil(log2(totalRows + 1)) bits (stable)
 *  then either the run-length form (`runs: true`):
 *  3. embedding_backward_heads    run heads of equal sorted keys
 *  4. exclusive scan of heads     run (unique row) numbers
 *  5. embedding_backward_segments run starts and rows, number of runs; gradient info in sorted order
 *  6. embedding_backward_ranges   first/last run of each weight chunk (binary search)
 *  or the key form (`runs: false`, for updates that walk the sorted keys themselves):
 *  3. embedding_backward_key_ranges first/last sorted position of each weight chunk
 *
 * Everything is sized for `maxIndices`; setNumIndices(n) rewrites uniforms and workgroup counts.
 * Bad indices are skipped and counted in `status`; checkIndices() reports them.
 */
import { createStorage, readU32, uploadStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { embedding_backward_heads } from "../shaders/embedding_backward_heads.ts";
import { embedding_backward_key_ranges } from "../shaders/embedding_backward_key_ranges.ts";
import { embedding_backward_keys } from "../shaders/embedding_backward_keys.ts";
import { embedding_backward_ranges } from "../shaders/embedding_backward_ranges.ts";
import { embedding_backward_segments } from "../shaders/embedding_backward_segments.ts";
import type { PreparedEmbeddingBackward } from "./embedding_bag_backward.ts";
import type { BagBatch, EmbeddingTableSet } from "./embedding_types.ts";
import { prepareRadixSort } from "./radix_sort.ts";
import { createScanPlan, type ScanPlan } from "./scan.ts";

const WG = 64;

export interface EmbeddingSegmentArgs {
  tables: EmbeddingTableSet;
  bags: BagBatch;
  /** Gradient of bag (t, b) at b * gradStride + gradOffset + t * dim (pos_info's addresses). */
  gradStride: number;
  gradOffset: number;
  /** Mean pooling: pos_info's factor is weight / bag length. */
  mean: boolean;
  maxIndices: number;
  /** Run-length form (stages 3-6) or key form (key ranges only). */
  runs: boolean;
  /**
   * Key form only, sum pooling without weights: the sort's values are the gradient addresses
   * (floats) instead of the positions, and pos_info is not written (factor 1). Default false.
   */
  direct?: boolean;
  /** The radix sort's digit-count scan (prepareRadixSort's `scan`; default "auto"). */
  sortScan?: "auto" | "fused" | "levels";
  label: string;
}

export interface PreparedEmbeddingSegments {
  dispatches: Dispatch[];
  /** Sorted keys (global rows) and positions (gradient addresses when `direct`). */
  keys: GPUBuffer;
  vals: GPUBuffer;
  /** Per position: (gradient address, factor), in position order. */
  posInfo: GPUBuffer;
  /** [count, then first/last (runs, or sorted positions in the key form) per weight chunk]. */
  runRanges: GPUBuffer;
  /** Run-length form only: run starts and rows, and pos_info in sorted order. */
  segs?: GPUBuffer;
  sortedInfo?: GPUBuffer;
  setNumIndices(device: GPUDevice, n: number): void;
  /** Reads and resets the bad-index counter: undefined, or the count and the first bad position. */
  badIndices(device: GPUDevice): Promise<{ count: number; first: number } | undefined>;
  destroy(): void;
}

export function prepareEmbeddingSegments(device: GPUDevice, args: EmbeddingSegmentArgs): PreparedEmbeddingSegments {
  const { tables, bags, gradStride, gradOffset, maxIndices, label } = args;
  const T = tables.rows.length;
  const B = bags.batchSize;
  const totalRows = tables.rowBase[T - 1]! + tables.rows[T - 1]!;
  const owned: GPUBuffer[] = [];
  const own = <X extends GPUBuffer>(b: X): X => (owned.push(b), b);
  const cap = Math.max(1, maxIndices);
  const keys = own(createStorage(device, cap * 4, `${label}:keys`));
  const vals = own(createStorage(device, cap * 4, `${label}:positions`));
  const posInfo = own(createStorage(device, cap * 8, `${label}:pos-info`));
  const runRanges = own(createStorage(device, (1 + 2 * tables.chunks.length) * 4, `${label}:run-ranges`));
  const status = own(uploadStorage(device, new Uint32Array([0, 0xffffffff]), `${label}:status`));
  const dummy = own(createStorage(device, 16, `${label}:unused`));
  const tableInfo = new Uint32Array(2 * T);
  for (let t = 0; t < T; t++) tableInfo.set([tables.rowBase[t]!, tables.rows[t]!], 2 * t);
  const tableInfoBuf = own(uploadStorage(device, tableInfo, `${label}:table-info`));
  const chunkRows = new Uint32Array(tables.chunks.length + 1);
  tables.chunks.forEach((c, i) => (chunkRows[i + 1] = c.rowStart + c.rowCount));
  const chunkRowsBuf = own(uploadStorage(device, chunkRows, `${label}:chunk-rows`));
  const maxPerDim = device.limits.maxComputeWorkgroupsPerDimension;

  if (args.direct && (args.runs || args.mean || bags.weights)) {
    throw new KernelInputError(`${label}: direct sort values need the key form, sum pooling and no weights`);
  }
  // 1. keys
  const keysK = getKernel(device, { shader: embedding_backward_keys, constants: { WG, DIRECT: args.direct ? 1 : 0 } });
  const keysParams = own(uploadUniform(device, new Uint32Array([
    T * B, B, totalRows, tables.dim, gradStride, gradOffset, args.mean ? 1 : 0, bags.weights ? 1 : 0,
  ]), `${label}:keys:params`));
  const keysD: Dispatch = {
    label: `${label}:keys`,
    kernel: keysK,
    bindGroups: [bindGroup(device, keysK, {
      params: keysParams, offsets: bags.offsets, indices: bags.indices, weights: bags.weights ?? dummy,
      table_info: tableInfoBuf, keys, vals, pos_info: posInfo, status,
    }, `${label}:keys`)],
    workgroups: grid(Math.ceil((T * B) / WG), maxPerDim),
  };
  // 2. sort
  const bits = Math.max(1, Math.ceil(Math.log2(totalRows + 1)));
  const sort = prepareRadixSort(device, { keys, values: vals, count: cap, bits, label: `${label}:sort`, scan: args.sortScan });
  const runParams = own(uploadUniform(device, new Uint32Array([0, tables.chunks.length]), `${label}:runs:params`));
  const rangesWorkgroups: [number] = [Math.ceil(tables.chunks.length / WG)];

  let tail: Dispatch[];
  let runs: { headsD: Dispatch; scan: ScanPlan; segD: Dispatch; segs: GPUBuffer; sortedInfo: GPUBuffer } | undefined;
  if (args.runs) {
    // 3-6: run heads, their scan, run-length encoding, chunk ranges over the runs.
    const flags = own(createStorage(device, cap * 4, `${label}:run-heads`));
    const segId = own(createStorage(device, cap * 4, `${label}:run-ids`));
    const segs = own(createStorage(device, (cap + 1) * 8, `${label}:runs`));
    const sortedInfo = own(createStorage(device, cap * 8, `${label}:sorted-pos-info`));
    const headsK = getKernel(device, { shader: embedding_backward_heads, constants: { WG } });
    const headsD: Dispatch = {
      label: `${label}:heads`,
      kernel: headsK,
      bindGroups: [bindGroup(device, headsK, { params: runParams, keys: sort.keysOut, flags }, `${label}:heads`)],
      workgroups: [1],
    };
    const scan = createScanPlan(device, { input: flags, output: segId, capacity: cap, label: `${label}:scan` });
    const segK = getKernel(device, { shader: embedding_backward_segments, constants: { WG } });
    const segD: Dispatch = {
      label: `${label}:segments`,
      kernel: segK,
      bindGroups: [bindGroup(device, segK, {
        params: runParams, keys: sort.keysOut, flags, seg_id: segId, segs, run_ranges: runRanges,
        vals: sort.valuesOut, pos_info: posInfo, sorted_info: sortedInfo,
      }, `${label}:segments`)],
      workgroups: [1],
    };
    const rangesK = getKernel(device, { shader: embedding_backward_ranges, constants: { WG } });
    const rangesD: Dispatch = {
      label: `${label}:ranges`,
      kernel: rangesK,
      bindGroups: [bindGroup(device, rangesK, { params: runParams, segs, chunk_rows: chunkRowsBuf, run_ranges: runRanges }, `${label}:ranges`)],
      workgroups: rangesWorkgroups,
    };
    runs = { headsD, scan, segD, segs, sortedInfo };
    tail = [headsD, ...scan.dispatches, segD, rangesD];
  } else {
    // 3: chunk ranges over the sorted keys.
    const k = getKernel(device, { shader: embedding_backward_key_ranges, constants: { WG } });
    tail = [{
      label: `${label}:key-ranges`,
      kernel: k,
      bindGroups: [bindGroup(device, k, { params: runParams, keys: sort.keysOut, chunk_rows: chunkRowsBuf, run_ranges: runRanges }, `${label}:key-ranges`)],
      workgroups: rangesWorkgroups,
    }];
  }

  return {
    dispatches: [keysD, ...sort.dispatches, ...tail],
    keys: sort.keysOut,
    vals: sort.valuesOut,
    posInfo,
    runRanges,
    segs: runs?.segs,
    sortedInfo: runs?.sortedInfo,
    setNumIndices(dev: GPUDevice, n: number) {
      sort.setCount(dev, n);
      dev.queue.writeBuffer(runParams, 0, new Uint32Array([n, tables.chunks.length]));
      if (runs) {
        runs.scan.setCount(dev, n);
        const wg: [number, number] = n === 0 ? [0, 1] : grid(Math.ceil(n / WG), maxPerDim);
        runs.headsD.workgroups = wg;
        runs.segD.workgroups = wg;
      }
    },
    async badIndices(dev: GPUDevice) {
      const [count, first] = await readU32(dev, status, 2);
      if (count! === 0) return undefined;
      dev.queue.writeBuffer(status, 0, new Uint32Array([0, 0xffffffff]));
      return { count: count!, first: first! };
    },
    destroy() {
      sort.destroy();
      runs?.scan.destroy();
      for (const b of owned) b.destroy();
    },
  };
}

/**
 * The prepared backward over the segment passes `seg` and the update dispatches that follow them
 * (the f32 and bf16 updates share it): the batch's index count (uniforms written only when it
 * changes), the bad-index check (the first bad index's value read back for the message), and
 * destroy (seg and the buffers the update owns). Sets the count of `bags` before returning.
 */
export function preparedBackward(
  device: GPUDevice,
  p: { seg: PreparedEmbeddingSegments; updates: Dispatch[]; owned: GPUBuffer[]; bags: BagBatch; tables: EmbeddingTableSet; maxIndices: number; fail: (msg: string) => never },
): PreparedEmbeddingBackward {
  const { seg, owned, bags, tables, maxIndices, fail } = p;
  let current = -1; // the count the uniforms hold: an unchanged count (fixed-size bags) writes nothing
  const prepared: PreparedEmbeddingBackward = {
    dispatches: [...seg.dispatches, ...p.updates],
    setNumIndices(dev: GPUDevice, n: number) {
      if (!Number.isInteger(n) || n < 0 || n > maxIndices) fail(`numIndices ${n} outside [0, ${maxIndices}] (maxIndices it was prepared for)`);
      if (n === current) return;
      current = n;
      seg.setNumIndices(dev, n);
    },
    async checkIndices(dev: GPUDevice) {
      const bad = await seg.badIndices(dev);
      if (bad) {
        const idx = (await readU32(dev, bags.indices, 1, bad.first))[0];
        fail(`${bad.count} embedding indices out of range; the first at position ${bad.first} (index ${idx}). ` +
          `Indices must be table-local rows below each table's row count [${tables.rows.join(", ")}]; those rows were not updated.`);
      }
    },
    destroy() {
      seg.destroy();
      for (const b of owned) b.destroy();
    },
  };
  prepared.setNumIndices(device, bags.numIndices);
  return prepared;
}
