/**
 * Wrapper for shaders/embedding_bag_forward{,_vec4}.wgsl: table-batched
 * EmbeddingBag forward (sum or mean pooling, optional per-index weights) of
 * all tables of an EmbeddingTableSet, written at a caller-given stride and
 * offset, e.g. straight into the interaction input [B, n+1, d] at offset d.
 *
 * Rows of d <= 64 (d, stride, offset multiples of 4) use embedding_bag_forward_rows.wgsl (one
 * invocation per bag holding the whole row; Criteo-style one-index bags run straight-line code):
 * less CPU than the general kernel on lavapipe, 1.08x on config A (d 16, 1/bag) and 1.19x on
 * config B (d 64, 100/bag), one process each (bench/embedding_profile.ts EMB_AB=forward).
 * One dispatch per chunk of the table set (one in all when the set fits in
 * one binding); the first chunk holding a table's rows writes its outputs,
 * later chunks add their share, in chunk order (deterministic). The rows
 * kernel can bind two consecutive chunks per dispatch (embedding_bag_forward_rows2.wgsl,
 * chunksPerDispatch), so a bag whose table spans both is walked once, not twice: auto when few
 * tables straddle the pair (config A: one dispatch instead of two, faster); not for config B, whose
 * 1M x 64 tables each span two 128 MiB bindings on lavapipe (slower paired: measured).
 * Bad lookups that got past the CPU validation are skipped on the GPU and
 * recorded in an optional error buffer; checkEmbeddingErrors() raises them.
 */
import { readU32, STORAGE, uploadStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { embedding_bag_forward } from "../shaders/embedding_bag_forward.ts";
import { embedding_bag_forward_vec4 } from "../shaders/embedding_bag_forward_vec4.ts";
import { embedding_bag_forward_rows } from "../shaders/embedding_bag_forward_rows.ts";
import { prepareEmbeddingBagForwardBf16 } from "./embedding_bag_forward_bf16.ts";
import { embedding_bag_forward_rows2 } from "../shaders/embedding_bag_forward_rows2.ts";

/** The shaders this wrapper dispatches (generated modules: see CONTRIBUTING.md). */
const SHADERS = { embedding_bag_forward, embedding_bag_forward_vec4, embedding_bag_forward_rows, embedding_bag_forward_rows2 };
/** Longest row (in vec4s) the one-invocation-per-bag kernel holds in registers. */
const ROWS_MAX_VEC4 = 16;
/** Invocations per workgroup of the one-invocation-per-bag kernel. */
const ROWS_WG = 64;
import type { BagBatch, EmbeddingTableSet, Pooling } from "./embedding_types.ts";

export interface EmbeddingBagForwardArgs {
  tables: EmbeddingTableSet;
  bags: BagBatch;
  /** f32 storage buffer; bag (t, b) lands at out[b*outStride + outOffset + t*dim + k] (in floats). */
  out: GPUBuffer;
  outStride: number;
  outOffset: number;
  /** "sum" (default) or "mean" (an empty bag gives 0). Mean takes no weights. */
  pooling?: Pooling;
  /** Optional buffer from createEmbeddingErrorBuffer(): the kernel records the first bad lookup there. */
  errors?: GPUBuffer;
  /** Workgroups per grid dimension before folding into y (default: the device limit); lower only to test folding. */
  maxWorkgroupsPerDim?: number;
  /**
   * Kernel: "rows" (one invocation per bag holding the whole row; needs d, outStride and outOffset
   * multiples of 4 and d <= 64), "general" (a group of lanes per bag, any d), or "auto" (default:
   * rows when it applies). Same results (same summation order).
   */
  variant?: "auto" | "general" | "rows";
  /**
   * Rows kernel only: chunks bound per dispatch, 1 or 2 (embedding_bag_forward_rows2: a bag whose
   * table spans both chunks is walked once; needs 8 storage buffers per stage). "auto" (default):
   * 2 when under a quarter of a pair's tables straddle its two chunks (config A), else 1 (config B,
   * whose tables all straddle: slower paired); see prepareEmbeddingBagForward.
   */
  chunksPerDispatch?: "auto" | 1 | 2;
}

const NONE = 0xffffffff;
/** Words of the error buffer: first bad position, its bag, its index, first malformed bag, position described. */
const ERROR_WORDS = 5;
const ERROR_RESET = new Uint32Array([NONE, NONE, 0, NONE, NONE]);
/** Most lanes one bag gets (columns beyond LANES * COLS loop within a lane). */
const MAX_LANES = 32;

const dummies = new WeakMap<GPUDevice, { weights: GPUBuffer; errors: GPUBuffer }>();

/** A 5-word u32 buffer (storage, copy src/dst) with no error recorded. */
export function createEmbeddingErrorBuffer(device: GPUDevice, label = "embedding-errors"): GPUBuffer {
  return uploadStorage(device, ERROR_RESET, label);
}

function dummyFor(device: GPUDevice): { weights: GPUBuffer; errors: GPUBuffer } {
  let d = dummies.get(device);
  if (!d) {
    d = {
      weights: device.createBuffer({ label: "embedding-bag:no-weights", size: 4, usage: STORAGE }),
      errors: createEmbeddingErrorBuffer(device, "embedding-bag:unchecked-errors"),
    };
    dummies.set(device, d);
  }
  return d;
}

/**
 * Layout for a row of `units` elements (f32 or vec4): columns per lane (8,
 * 4, 2 or 1, the largest dividing the row), lanes per bag, bags per workgroup.
 */
export function forwardLayout(device: GPUDevice, units: number): { cols: number; lanes: number; bags: number; wg: number } {
  const maxWg = Math.min(256, device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
  const cols = [8, 4, 2, 1].find((c) => units % c === 0)!;
  const lanes = Math.min(units / cols, MAX_LANES, maxWg);
  const bags = Math.floor(maxWg / lanes);
  return { cols, lanes, bags, wg: lanes * bags };
}

/**
 * Consecutive chunks grouped 1 or 2 per dispatch (maxGroup 1 or 2), minimising the bag-dispatch
 * pairs (tables touched per group, summed), fewer groups on ties. tableOf(g) = table of global row g.
 */
export function planChunkGroups(chunks: readonly { rowStart: number; rowCount: number }[], tableOf: (g: number) => number, maxGroup: 1 | 2): { first: number; count: number; tables: number }[] {
  const n = chunks.length;
  const span = (a: number, k: number) => tableOf(chunks[a + k - 1]!.rowStart + chunks[a + k - 1]!.rowCount - 1) - tableOf(chunks[a]!.rowStart) + 1;
  // best[i] = [cost, groups] of chunks i..n-1
  const best: [number, number, number][] = new Array(n + 1);
  best[n] = [0, 0, 0];
  for (let i = n - 1; i >= 0; i--) {
    let pick: [number, number, number] | undefined;
    for (let k = 1; k <= Math.min(maxGroup, n - i); k++) {
      const c: [number, number, number] = [span(i, k) + best[i + k]![0], 1 + best[i + k]![1], k];
      if (!pick || c[0] < pick[0] || (c[0] === pick[0] && c[1] < pick[1])) pick = c;
    }
    best[i] = pick!;
  }
  const out: { first: number; count: number; tables: number }[] = [];
  for (let i = 0; i < n; i += best[i]![2]) out.push({ first: i, count: best[i]![2], tables: span(i, best[i]![2]) });
  return out;
}

function checkArgs(args: EmbeddingBagForwardArgs): void {
  const { tables, bags, out, outStride, outOffset } = args;
  const T = tables.rows.length;
  const B = bags.batchSize;
  const d = tables.dim;
  const pooling = args.pooling ?? "sum";
  if (pooling !== "sum" && pooling !== "mean") throw new KernelInputError(`pooling must be "sum" or "mean", got "${pooling}"`);
  if (pooling === "mean" && bags.weights) {
    throw new KernelInputError("mean pooling takes no per-index weights (as PyTorch's EmbeddingBag); use sum pooling with weights");
  }
  if (bags.numTables !== T) throw new KernelInputError(`the bags are for ${bags.numTables} tables but the table set has ${T}`);
  if (!Number.isInteger(B) || B < 1) throw new KernelInputError(`bags.batchSize must be a positive integer, got ${B}`);
  if (bags.offsets.size < (T * B + 1) * 4) {
    throw new KernelInputError(`bags.offsets holds ${bags.offsets.size / 4} u32 but ${T} tables x batch ${B} need ${T * B + 1}`);
  }
  for (const [name, v] of [["outStride", outStride], ["outOffset", outOffset]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new KernelInputError(`${name} must be a non-negative integer (floats), got ${v}`);
  }
  if (B > 1 && outOffset + T * d > outStride) {
    throw new KernelInputError(`outStride ${outStride} is smaller than outOffset ${outOffset} + tables ${T} x dim ${d}: samples would overlap`);
  }
  const need = (B - 1) * outStride + outOffset + T * d;
  if (out.size < need * 4) throw new KernelInputError(`out holds ${out.size / 4} floats but batch ${B} at stride ${outStride}, offset ${outOffset} needs ${need}`);
}

/**
 * Validates the arguments and builds the dispatches (uniforms and bind groups
 * created once). Encode them every step: new bags written into the same
 * buffers (writeBagBatch) and new table values need no new preparation.
 */
export function prepareEmbeddingBagForward(device: GPUDevice, args: EmbeddingBagForwardArgs): Dispatch[] {
  checkArgs(args);
  if (args.tables.precision === "bf16") return prepareEmbeddingBagForwardBf16(device, args); // lowp: bf16 tables
  const { tables, bags } = args;
  const T = tables.rows.length;
  const B = bags.batchSize;
  const vec4 = tables.dim % 4 === 0 && args.outStride % 4 === 0 && args.outOffset % 4 === 0;
  const unit = vec4 ? 4 : 1;
  // Table containing global row g.
  const tableOf = (g: number): number => {
    let t = 0;
    while (t + 1 < T && tables.rowBase[t + 1]! <= g) t++;
    return t;
  };
  const dimU = tables.dim / unit;
  const rowsOk = vec4 && dimU <= ROWS_MAX_VEC4;
  const variant = args.variant ?? "auto";
  if (variant === "rows" && !rowsOk) {
    throw new KernelInputError(`variant "rows" needs dim <= ${4 * ROWS_MAX_VEC4} and dim, outStride, outOffset multiples of 4 (got ${tables.dim}, ${args.outStride}, ${args.outOffset})`);
  }
  const rows = variant === "rows" || (variant === "auto" && rowsOk);
  const weighted = bags.weights !== undefined;
  const single = planChunkGroups(tables.chunks, tableOf, 1);
  const covered1 = single.reduce((a, g) => a + g.tables, 0);
  const cpd = args.chunksPerDispatch ?? "auto";
  if (cpd !== "auto" && cpd !== 1 && cpd !== 2) throw new KernelInputError(`chunksPerDispatch must be "auto", 1 or 2, got ${cpd}`);
  if (cpd === 2 && !(rows && device.limits.maxStorageBuffersPerShaderStage >= 8)) throw new KernelInputError("chunksPerDispatch 2 needs the rows kernel and 8 storage buffers per shader stage");
  // "auto": pairs when few bags of a paired dispatch have a table straddling its two chunks (the
  // chunk branch is then the same for a whole SIMD group of bags): config A (26 x 100k x d16, 2 chunks
  // on lavapipe, one table straddling) 1.15-1.22x less wall, one dispatch instead of 2. Not when tables
  // span both chunks (config B: every lookup picks its chunk at random, both branch sides run under
  // exec masks: 1.44-1.50x slower wall). bench/embedding_profile.ts EMB_AB=forward.
  let groups = single;
  if (tables.chunks.length > 1 && (cpd === 2 || (cpd === "auto" && rows && device.limits.maxStorageBuffersPerShaderStage >= 8))) {
    const paired = planChunkGroups(tables.chunks, tableOf, 2);
    let straddled = 0;
    let covered2 = 0;
    for (const g of paired) {
      covered2 += g.tables;
      if (g.count === 2) {
        const second = tables.chunks[g.first + 1]!.rowStart;
        if (tableOf(second - 1) === tableOf(second)) straddled++;
      }
    }
    if (cpd === 2 || straddled / covered2 < 0.25) groups = paired;
  }
  const pairs = groups.some((g) => g.count === 2);
  const shader = pairs ? "embedding_bag_forward_rows2" : rows ? "embedding_bag_forward_rows" : vec4 ? "embedding_bag_forward_vec4" : "embedding_bag_forward";
  let bagsPerWg: number;
  let kernel;
  if (rows) {
    bagsPerWg = Math.min(ROWS_WG, device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
    const constants: Record<string, number> = { WG: bagsPerWg, ROWV: dimU, WEIGHTED: weighted ? 1 : 0 };
    if (!pairs) {
      // Bag-dispatch pairs beyond one per bag (tables spanning chunks come back in several dispatches):
      // when they are many, skip out-of-chunk lookups with a branch rather than reading a dummy row.
      constants.BRANCH = (covered1 - T) / T > 0.25 ? 1 : 0;
    }
    kernel = getKernel(device, { shader: SHADERS[shader], constants });
  } else {
    const { cols, lanes, bags: b, wg } = forwardLayout(device, dimU);
    bagsPerWg = b;
    kernel = getKernel(device, {
      shader: SHADERS[shader],
      constants: { WG: wg, LANES: lanes, BAGS: bagsPerWg, COLS: cols, WEIGHTED: weighted ? 1 : 0 },
    });
  }
  const dummy = dummyFor(device);
  const errors = args.errors ?? dummy.errors;
  const info = new Uint32Array(2 * T);
  tables.rows.forEach((r, t) => {
    info[2 * t] = tables.rowBase[t]!;
    info[2 * t + 1] = r;
  });
  const tableInfo = uploadStorage(device, info, "embedding-bag:table-info");
  const maxPerDim = Math.min(args.maxWorkgroupsPerDim ?? Infinity, device.limits.maxComputeWorkgroupsPerDimension);

  const dispatches: Dispatch[] = [];
  let lastGroup: GPUBindGroup | undefined;
  groups.forEach(({ first, count }) => {
    const c = first;
    const chunk = tables.chunks[first]!;
    const second = count === 2 ? tables.chunks[first + 1]! : undefined;
    const rowCount = chunk.rowCount + (second?.rowCount ?? 0);
    const tBegin = tableOf(chunk.rowStart);
    const tEnd = tableOf(chunk.rowStart + rowCount - 1) + 1;
    const numBags = (tEnd - tBegin) * B;
    const params = new Uint32Array([
      B, tBegin, numBags, dimU, chunk.rowStart, rowCount,
      args.outStride / unit, args.outOffset / unit, args.pooling === "mean" ? 1 : 0, T * B,
      ...(pairs ? [chunk.rowCount] : []),
    ]);
    const resources: Record<string, GPUBuffer> = {
      params: uploadUniform(device, params, `embedding-bag:params:chunk${c}`),
      table_info: tableInfo,
      offsets: bags.offsets,
      indices: bags.indices,
      weights: bags.weights ?? dummy.weights,
      out: args.out,
      errors,
    };
    if (pairs) {
      // A lone last chunk binds itself twice with split = its rows (table1 is then never read).
      resources.table0 = chunk.buffer;
      resources.table1 = (second ?? chunk).buffer;
    } else {
      resources.table = chunk.buffer;
    }
    const group = bindGroup(device, kernel, resources, `embedding-bag:chunk${c}`);
    lastGroup = group;
    dispatches.push({
      label: `embedding_bag_forward:chunk${c}`,
      kernel,
      bindGroups: [group],
      workgroups: grid(Math.ceil(numBags / bagsPerWg), maxPerDim),
    });
  });
  if (args.errors) {
    dispatches.push({
      label: "embedding_bag_forward:errors",
      kernel: getKernel(device, { shader: SHADERS[shader], entryPoint: "finish_errors" }),
      bindGroups: [lastGroup!],
      workgroups: [1],
    });
  }
  return dispatches;
}

/** One-shot forward: prepares and submits. */
export function embeddingBagForward(device: GPUDevice, args: EmbeddingBagForwardArgs): void {
  submitDispatches(device, prepareEmbeddingBagForward(device, args), "embedding_bag_forward");
}

/**
 * Reads the error buffer; if the GPU flagged a bad lookup or malformed
 * offsets, resets the flag and throws KernelInputError naming table, sample
 * and index. `rows` and `batchSize` are those of the flagged forward.
 */
export async function checkEmbeddingErrors(device: GPUDevice, errors: GPUBuffer, rows: readonly number[], batchSize: number): Promise<void> {
  const w = await readU32(device, errors, ERROR_WORDS);
  if (w[0] === NONE && w[3] === NONE) return;
  device.queue.writeBuffer(errors, 0, ERROR_RESET);
  const where = (bag: number) => ({ t: Math.floor(bag / batchSize), b: bag % batchSize });
  if (w[3] !== NONE) {
    const { t, b } = where(w[3]!);
    throw new KernelInputError(
      `malformed offsets for table ${t} at sample ${b} (bag ${w[3]}): end before start or past the indices; the bag was treated as empty. Validate bags with validateBags()`,
    );
  }
  const { t, b } = where(w[1]!);
  throw new KernelInputError(
    `index ${w[2]} out of range for table ${t} (${rows[t] ?? "?"} rows) at sample ${b} (lookup ${w[0]}); the lookup was skipped`,
  );
}
