/**
 * Embedding-bag backward fused with the optimizer update, exact and
 * deterministic (DESIGN.md section 5). Per step (stages 1-6 are built by
 * embedding_segments.ts, shared with the column shards' row-wise split):
 *
 *  1. embedding_backward_keys     one thread per bag: key = global row, value = position,
 *                                 pos_info = (gradient address, weight / bag length)
 *  2. radix sort (keys, positions) on ceil(log2(totalRows + 1)) bits (stable)
 *  3. embedding_backward_heads    run heads of equal sorted keys
 *  4. exclusive scan of heads     run (unique row) numbers
 *  5. embedding_backward_segments run starts and rows, number of runs; gradient info in sorted order
 *  6. embedding_backward_ranges   first/last run of each weight chunk (binary search)
 *  7. embedding_backward_update   per chunk, per run: sum the row's gradient in position
 *                                 order, apply sgd / adagrad / rowwise-adagrad in place
 *
 * When d, gradStride and gradOffset are multiples of 4 (updateVariant "vec4", the default then),
 * steps 3-6 are replaced by embedding_backward_key_ranges (chunk ranges over the sorted keys)
 * and step 7 by embedding_backward_update_vec4, which walks the sorted keys itself (the head of
 * each run of equal keys owns the row) with vec4 gradient / table access: fewer passes and
 * accesses, which is what costs on lavapipe (bench/embedding_profile.ts). Same summation order.
 * With sum pooling and no weights (factor 1), the sort carries each position's gradient address
 * instead of the position (sortValues "auto"): the update skips the per-position info gather.
 *
 * Rows outside the batch are untouched. No atomics on floats, fixed summation
 * order: two runs of the same step give bit-identical tables.
 *
 * Variable numIndices: everything is sized for `maxIndices`; setNumIndices(n)
 * rewrites the uniforms and workgroup counts (CPU side, no new bind groups),
 * so call it whenever the batch's index count changes (the bag kernel itself
 * reads the real bag bounds from `offsets`). Bad indices (>= rows of their table)
 * are never clamped: they are skipped and counted; checkIndices() reads the
 * counter and throws a KernelInputError naming the first bad position.
 */
import { createStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { embedding_backward_update } from "../shaders/embedding_backward_update.ts";
import { embedding_backward_update_vec4 } from "../shaders/embedding_backward_update_vec4.ts";
import { embedding_backward_update_vec4_adagrad } from "../shaders/embedding_backward_update_vec4_adagrad.ts";
import type { BagBatch, EmbeddingOptimizerState, EmbeddingTableSet, Pooling } from "./embedding_types.ts";
import { preparedBackward, prepareEmbeddingSegments } from "./embedding_segments.ts";
import { prepareEmbeddingBagBackwardBf16 } from "./embedding_bag_backward_bf16.ts";

const WG = 64;
/** Upper bound on update workgroups per chunk (grid-stride over the runs beyond that). */
const MAX_UPDATE_WORKGROUPS = 512;
/** vec4 update: sorted positions per thread (bench/embedding_profile.ts EMB_AB=segment). */
const UPDATE_SEGMENT = 8;
const OPT_CODE = { sgd: 0, adagrad: 1, "rowwise-adagrad": 2 } as const;

export interface EmbeddingBagBackwardArgs {
  tables: EmbeddingTableSet;
  state: EmbeddingOptimizerState;
  /** Capacity-sized buffers are fine; bags.numIndices is the initial count. */
  bags: BagBatch;
  /** Gradient of bag (t, b) at gradOut[b * gradStride + gradOffset + t * dim + k]. */
  gradOut: GPUBuffer;
  gradStride: number;
  gradOffset: number;
  pooling?: Pooling;
  /** Capacity: the largest numIndices ever passed to setNumIndices. */
  maxIndices: number;
  /** OptimParams uniform (src/kernels/optimizer_params.ts): lr, eps. */
  optim: GPUBuffer;
  label?: string;
  /**
   * Backward path: "vec4" (update walks the sorted keys, vec4 access; needs dim, gradStride and
   * gradOffset multiples of 4), "scalar" (run-length encoding, then one thread per (row, 8-column
   * block); any d), or "auto" (default: vec4 when it applies). Same summation order; deterministic.
   */
  updateVariant?: "auto" | "scalar" | "vec4";
  /** bf16 tables only (embedding_bag_backward_bf16.ts): rounding of updated weights (default "stochastic") and its seed (default 0). */
  rounding?: "stochastic" | "nearest";
  roundingSeed?: number;
  /**
   * vec4 path, sum pooling without weights: what the sort carries beside the keys. "auto" (default):
   * the gradient addresses (the update reads gradient rows without the per-position info gather);
   * "positions": the positions, the update gathers (address, factor) per position (as with weights / mean).
   */
  sortValues?: "auto" | "positions";
  /**
   * vec4 path: the update's grid is sized for this many sorted positions per thread (default 8) when one
   * chunk holds every position; each chunk's positions are spread over all threads (each key loaded once).
   */
  updateSegment?: number;
  /** The radix sort's digit-count scan (prepareRadixSort's `scan`; default "auto": one dispatch per pass when small). */
  sortScan?: "auto" | "fused" | "levels";
}

export interface PreparedEmbeddingBackward {
  dispatches: Dispatch[];
  setNumIndices(device: GPUDevice, n: number): void;
  /** Throws KernelInputError if any index seen since the last check was out of range; resets the counter. */
  checkIndices(device: GPUDevice): Promise<void>;
  destroy(): void;
}

export function prepareEmbeddingBagBackward(device: GPUDevice, args: EmbeddingBagBackwardArgs): PreparedEmbeddingBackward {
  const { tables, state, bags, gradOut, gradStride, gradOffset, maxIndices, optim } = args;
  const label = args.label ?? "embedding-backward";
  const pooling = args.pooling ?? "sum";
  const T = tables.rows.length;
  const B = bags.batchSize;
  const dim = tables.dim;
  const fail = (msg: string): never => {
    throw new KernelInputError(`${label}: ${msg}`);
  };
  if (!Number.isInteger(dim) || dim < 1) fail(`dim must be a positive integer, got ${dim}`);
  if (bags.numTables !== T) fail(`the bag batch has ${bags.numTables} tables, the table set ${T}`);
  if (!Number.isInteger(B) || B < 1) fail(`batch size must be a positive integer, got ${B}`);
  if (!Number.isInteger(maxIndices) || maxIndices < 0) fail(`maxIndices must be a non-negative integer, got ${maxIndices}`);
  if (bags.numIndices > maxIndices) fail(`the batch has ${bags.numIndices} indices, more than maxIndices ${maxIndices}`);
  if (pooling !== "sum" && pooling !== "mean") fail(`pooling must be "sum" or "mean", got ${pooling as string}`);
  if (gradOffset < 0 || gradOffset + T * dim > gradStride) {
    fail(`gradient rows of ${gradStride} floats cannot hold ${T} tables x ${dim} from offset ${gradOffset}`);
  }
  if (gradOut.size < ((B - 1) * gradStride + gradOffset + T * dim) * 4) fail(`gradOut holds ${gradOut.size / 4} floats, too few for batch ${B}`);
  if (bags.offsets.size < (T * B + 1) * 4) fail(`offsets holds ${bags.offsets.size / 4} u32, need T*B+1 = ${T * B + 1}`);
  if (bags.indices.size < maxIndices * 4) fail(`indices holds ${bags.indices.size / 4} u32, need maxIndices = ${maxIndices}`);
  if (bags.weights && bags.weights.size < maxIndices * 4) fail(`weights holds ${bags.weights.size / 4} f32, need maxIndices = ${maxIndices}`);
  const opt = OPT_CODE[state.kind];
  if (opt === undefined) fail(`unknown optimizer '${state.kind as string}'`);
  if (state.kind !== "sgd" && state.chunks.length !== tables.chunks.length) {
    fail(`optimizer state has ${state.chunks.length} chunks, the tables ${tables.chunks.length}: create it with createEmbeddingOptimizerState`);
  }
  const totalRows = tables.rowBase[T - 1]! + tables.rows[T - 1]!;
  let expectStart = 0;
  for (const [i, c] of tables.chunks.entries()) {
    if (c.rowStart !== expectStart) fail(`chunk ${i} starts at row ${c.rowStart}, expected ${expectStart} (chunks must be consecutive)`);
    expectStart += c.rowCount;
  }
  if (expectStart !== totalRows) fail(`chunks hold ${expectStart} rows, the tables ${totalRows}`);
  if (totalRows >= 2 ** 32 - 1) fail(`${totalRows} rows do not fit u32 row ids`);
  if (tables.precision === "bf16") return prepareEmbeddingBagBackwardBf16(device, args); // lowp: bf16 tables

  const owned: GPUBuffer[] = [];
  const own = <X extends GPUBuffer>(b: X): X => (owned.push(b), b);
  const cap = Math.max(1, maxIndices);
  // Update path: "vec4" walks the sorted keys directly (no heads / scan / segments passes);
  // "scalar" run-length encodes them first (any d).
  const vec4Ok = dim % 4 === 0 && gradStride % 4 === 0 && gradOffset % 4 === 0;
  const variant = args.updateVariant ?? "auto";
  if (variant === "vec4" && !vec4Ok) fail(`updateVariant "vec4" needs dim, gradStride and gradOffset multiples of 4 (got ${dim}, ${gradStride}, ${gradOffset})`);
  const vec4 = variant === "vec4" || (variant === "auto" && vec4Ok);
  // 1-6: keys, sort, and the run-length encoding (scalar) or the chunk ranges over the keys (vec4).
  const direct = vec4 && pooling === "sum" && !bags.weights && (args.sortValues ?? "auto") === "auto";
  const seg = prepareEmbeddingSegments(device, {
    tables, bags, gradStride, gradOffset, mean: pooling === "mean", maxIndices, runs: !vec4, direct, sortScan: args.sortScan, label,
  });
  const dummy = own(createStorage(device, 16, `${label}:unused`));

  // 7. update, one dispatch per chunk
  const updShader = !vec4 ? embedding_backward_update : state.kind === "adagrad" ? embedding_backward_update_vec4_adagrad : embedding_backward_update_vec4;
  const segLen = args.updateSegment ?? UPDATE_SEGMENT;
  if (!Number.isInteger(segLen) || segLen < 1 || segLen > 64) fail(`updateSegment must be an integer in 1..64, got ${segLen}`);
  const updK = getKernel(device, { shader: updShader, constants: vec4 ? { WG, OPT: opt, DIRECT: direct ? 1 : 0 } : { WG, OPT: opt } });
  const updWorkgroups = Math.min(MAX_UPDATE_WORKGROUPS, Math.ceil(cap / (WG * (vec4 ? segLen : 1))));
  const updD: Dispatch[] = tables.chunks.map((c, i) => {
    const params = own(uploadUniform(device, new Uint32Array([i, c.rowStart, vec4 ? dim / 4 : dim, updWorkgroups * WG]), `${label}:update${i}:params`));
    const common = { params, optim, run_ranges: seg.runRanges, grad_out: gradOut, table: c.buffer, state: state.kind === "sgd" ? dummy : state.chunks[i]! };
    return {
      label: `${label}:update:${state.kind}:chunk${i}`,
      kernel: updK,
      bindGroups: [bindGroup(device, updK, vec4
        ? { ...common, keys: seg.keys, vals: seg.vals, pos_info: seg.posInfo }
        : { ...common, segs: seg.segs!, sorted_info: seg.sortedInfo! }, `${label}:update${i}`)],
      workgroups: [updWorkgroups],
    };
  });

  return preparedBackward(device, { seg, updates: updD, owned, bags, tables, maxIndices, fail });
}

/** One-shot backward + update for `numIndices` indices. */
export function embeddingBagBackward(device: GPUDevice, args: EmbeddingBagBackwardArgs & { numIndices: number }): void {
  const p = prepareEmbeddingBagBackward(device, { ...args, bags: { ...args.bags, numIndices: args.numIndices } });
  submitDispatches(device, p.dispatches, "embedding-backward");
  p.destroy();
}
