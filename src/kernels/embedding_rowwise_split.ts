/**
 * Row-wise Adagrad on COLUMN shards: the embedding backward split around an
 * allreduce of one float per touched row (src/shard/model.ts runs it).
 *
 * Row-wise Adagrad keeps one accumulator per row, s_r += mean over all d
 * columns of g_r,k^2; a column shard holds only some columns, so the fused
 * update (embedding_backward_update.wgsl, embed's kernel, left untouched)
 * cannot run on it. Here, per shard set of column shards:
 *
 *  reduce:  the fused backward's own stages (embedding_segments.ts in its
 *           run-length form: keys, radix sort, heads, scan, segments, ranges:
 *           the sorted unique rows and their gradient positions), then
 *           shard_rowwise_partial: per unique row, sum over the shard's
 *           columns of g^2 into `rowSum` at the row's slot (its rank among
 *           its table's unique rows, plus the table's segment offset);
 *  (caller) allreduce `rowSum` among the devices holding the table's column
 *           shards (they see the same lookups, so the slots line up);
 *  update:  shard_rowwise_update: s_r += rowSum[slot] / d, w -= lr g / (sqrt(s_r) + eps).
 *
 * Deterministic: fixed summation orders everywhere; the allreduce is the
 * deterministic ring (src/shard/collectives.ts).
 */
import { createStorage, uploadStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, type Kernel, getKernel } from "../gpu/pipelines.ts";
import { shard_rowwise_partial } from "../shaders/shard_rowwise_partial.ts";
import { shard_rowwise_update } from "../shaders/shard_rowwise_update.ts";
import type { BagBatch, EmbeddingOptimizerState, EmbeddingTableSet } from "./embedding_types.ts";
import { prepareEmbeddingSegments } from "./embedding_segments.ts";

const WG = 64;
const MAX_WORKGROUPS = 512;

/** Where table k of the set puts its per-row sums in `rowSum`: [offset, offset + capacity). */
export interface RowSlots {
  offset: number;
  /** At least the number of unique rows the table can have in a step (its lookups, or its rows). */
  capacity: number;
}

export interface ColumnRowwiseArgs {
  tables: EmbeddingTableSet;
  state: EmbeddingOptimizerState;
  bags: BagBatch;
  gradOut: GPUBuffer;
  gradStride: number;
  gradOffset: number;
  maxIndices: number;
  optim: GPUBuffer;
  /** The whole row's width d (the mean's divisor); tables.dim is the shard's width. */
  fullDim: number;
  /** One per table of the set. */
  slots: readonly RowSlots[];
  /** Per-row sums (f32), shared by every set of the device; allreduced between reduce and update. */
  rowSum: GPUBuffer;
  label?: string;
}

export interface PreparedColumnRowwise {
  /** Segment reduction and the partial sums (submit, then allreduce rowSum). */
  reduce: Dispatch[];
  /** The update from the reduced rowSum. */
  update: Dispatch[];
  setNumIndices(device: GPUDevice, n: number): void;
  checkIndices(device: GPUDevice): Promise<void>;
  destroy(): void;
}

interface PartialArgs {
  segs: GPUBuffer;
  runRanges: GPUBuffer;
  sortedInfo: GPUBuffer;
  gradOut: GPUBuffer;
  shardInfo: GPUBuffer;
  numShards: number;
  dim: number;
  rowSum: GPUBuffer;
  runSlot: GPUBuffer;
  capacity: number;
  label: string;
}

/** Wrapper of shard_rowwise_partial.wgsl; the uniform's n is rewritten by setCount. */
export function prepareRowwisePartial(device: GPUDevice, a: PartialArgs): { dispatch: Dispatch; params: GPUBuffer; setCount(dev: GPUDevice, n: number): void } {
  const kernel: Kernel = getKernel(device, { shader: shard_rowwise_partial, constants: { WG } });
  const workgroups = Math.min(MAX_WORKGROUPS, Math.ceil(Math.max(1, a.capacity) / WG));
  const params = uploadUniform(device, new Uint32Array([0, a.dim, a.numShards, workgroups * WG]), `${a.label}:params`);
  const dispatch: Dispatch = {
    label: a.label,
    kernel,
    bindGroups: [bindGroup(device, kernel, {
      params, segs: a.segs, run_ranges: a.runRanges, sorted_info: a.sortedInfo, grad_out: a.gradOut,
      shard_info: a.shardInfo, partial: a.rowSum, run_slot: a.runSlot,
    }, a.label)],
    workgroups: [workgroups],
  };
  return { dispatch, params, setCount: (dev, n) => dev.queue.writeBuffer(params, 0, new Uint32Array([n])) };
}

interface UpdateArgs {
  chunk: number;
  rowStart: number;
  dim: number;
  fullDim: number;
  capacity: number;
  optim: GPUBuffer;
  segs: GPUBuffer;
  runRanges: GPUBuffer;
  sortedInfo: GPUBuffer;
  gradOut: GPUBuffer;
  runSlot: GPUBuffer;
  rowSum: GPUBuffer;
  table: GPUBuffer;
  state: GPUBuffer;
  label: string;
}

/** Wrapper of shard_rowwise_update.wgsl (one weight chunk). */
export function prepareRowwiseUpdate(device: GPUDevice, a: UpdateArgs): { dispatch: Dispatch; params: GPUBuffer } {
  const kernel = getKernel(device, { shader: shard_rowwise_update, constants: { WG } });
  const workgroups = Math.min(MAX_WORKGROUPS, Math.ceil(Math.max(1, a.capacity) / WG));
  const params = uploadUniform(device, new Uint32Array([a.chunk, a.rowStart, a.dim, workgroups * WG, a.fullDim, 0, 0, 0]), `${a.label}:params`);
  return {
    params,
    dispatch: {
      label: a.label,
      kernel,
      bindGroups: [bindGroup(device, kernel, {
        params, optim: a.optim, segs: a.segs, run_ranges: a.runRanges, sorted_info: a.sortedInfo, grad_out: a.gradOut,
        run_slot: a.runSlot, row_sum: a.rowSum, table: a.table, state: a.state,
      }, a.label)],
      workgroups: [workgroups],
    },
  };
}

/** The split backward of one set of column shards under row-wise Adagrad (see the file header). */
export function prepareColumnRowwiseBackward(device: GPUDevice, args: ColumnRowwiseArgs): PreparedColumnRowwise {
  const { tables, state, bags, gradOut, gradStride, gradOffset, maxIndices, optim, fullDim, slots, rowSum } = args;
  const label = args.label ?? "column-rowwise-backward";
  const T = tables.rows.length;
  const B = bags.batchSize;
  const dim = tables.dim;
  const fail = (msg: string): never => {
    throw new KernelInputError(`${label}: ${msg}`);
  };
  if (state.kind !== "rowwise-adagrad") fail(`the optimizer state is ${state.kind}, this backward is for rowwise-adagrad`);
  if (state.chunks.length !== tables.chunks.length) fail(`optimizer state has ${state.chunks.length} chunks, the tables ${tables.chunks.length}`);
  if (!Number.isInteger(dim) || dim < 1 || !Number.isInteger(fullDim) || fullDim < dim) fail(`shard width ${dim} must be a positive integer no larger than the row width ${fullDim}`);
  if (bags.numTables !== T) fail(`the bag batch has ${bags.numTables} tables, the table set ${T}`);
  if (slots.length !== T) fail(`${slots.length} slot ranges for ${T} tables`);
  for (const [k, s] of slots.entries()) {
    if (!Number.isInteger(s.offset) || s.offset < 0 || !Number.isInteger(s.capacity) || s.capacity < 0 || (s.offset + s.capacity) * 4 > rowSum.size) {
      fail(`table ${k}'s row slots [${s.offset}, ${s.offset + s.capacity}) do not fit rowSum (${rowSum.size / 4} floats)`);
    }
  }
  if (!Number.isInteger(maxIndices) || maxIndices < 0) fail(`maxIndices must be a non-negative integer, got ${maxIndices}`);
  if (bags.numIndices > maxIndices) fail(`the batch has ${bags.numIndices} indices, more than maxIndices ${maxIndices}`);
  if (gradOffset < 0 || gradOffset + T * dim > gradStride) fail(`gradient rows of ${gradStride} floats cannot hold ${T} tables x ${dim} from offset ${gradOffset}`);
  if (gradOut.size < ((B - 1) * gradStride + gradOffset + T * dim) * 4) fail(`gradOut holds ${gradOut.size / 4} floats, too few for batch ${B}`);
  const totalRows = tables.rowBase[T - 1]! + tables.rows[T - 1]!;
  if (totalRows >= 2 ** 32 - 1) fail(`${totalRows} rows do not fit u32 row ids`);

  const owned: GPUBuffer[] = [];
  const cap = Math.max(1, maxIndices);
  // The fused backward's segment reduction in its run-length form (same kernels, same bindings).
  const seg = prepareEmbeddingSegments(device, { tables, bags, gradStride, gradOffset, mean: false, maxIndices, runs: true, label });
  const segs = seg.segs!, sortedInfo = seg.sortedInfo!, runRanges = seg.runRanges;
  const runSlot = createStorage(device, cap * 4, `${label}:run-slots`);
  owned.push(runSlot);
  const shardInfo = new Uint32Array(4 * T);
  for (let t = 0; t < T; t++) shardInfo.set([tables.rowBase[t]!, tables.rows[t]!, slots[t]!.offset, slots[t]!.capacity], 4 * t);
  const shardInfoBuf = uploadStorage(device, shardInfo, `${label}:shard-info`);
  owned.push(shardInfoBuf);
  const partial = prepareRowwisePartial(device, {
    segs, runRanges, sortedInfo, gradOut, shardInfo: shardInfoBuf, numShards: T, dim, rowSum, runSlot, capacity: cap, label: `${label}:partial`,
  });
  owned.push(partial.params);
  const update = tables.chunks.map((c, i) => {
    const u = prepareRowwiseUpdate(device, {
      chunk: i, rowStart: c.rowStart, dim, fullDim, capacity: cap, optim, segs, runRanges, sortedInfo, gradOut, runSlot, rowSum,
      table: c.buffer, state: state.chunks[i]!, label: `${label}:update:chunk${i}`,
    });
    owned.push(u.params);
    return u.dispatch;
  });

  let current = -1;
  const prepared: PreparedColumnRowwise = {
    reduce: [...seg.dispatches, partial.dispatch],
    update,
    setNumIndices(dev, n) {
      if (!Number.isInteger(n) || n < 0 || n > maxIndices) fail(`numIndices ${n} outside [0, ${maxIndices}] (maxIndices it was prepared for)`);
      if (n === current) return;
      current = n;
      seg.setNumIndices(dev, n);
      partial.setCount(dev, n);
    },
    async checkIndices(dev) {
      const bad = await seg.badIndices(dev);
      if (bad) {
        fail(`${bad.count} embedding indices out of range; the first at position ${bad.first}. Indices must be table-local rows below each table's row count [${tables.rows.join(", ")}]; those rows were not updated.`);
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
