/**
 * Wrapper for shaders/embedding_bag_forward_bf16{,_vec4,_rows}.wgsl: the table-batched EmbeddingBag
 * forward over a bf16 EmbeddingTableSet (src/kernels/embedding_tables_bf16.ts), f32 sums in bag
 * order. prepareEmbeddingBagForward() (embedding_bag_forward.ts) routes bf16 sets here after
 * validating the arguments, so callers need no change: same arguments, outputs, chunking
 * (one dispatch per chunk, later chunks add in chunk order) and error reporting.
 * Kernels: _rows (one invocation per bag holding the whole row, vec4<u32> loads: d % 8 == 0,
 * d <= 64, output stride and offset multiples of 4), else a group of lanes per bag reading
 * vec4<u32> (d % 8 == 0, _vec4) or u32 words (any d).
 */
import { STORAGE, uploadStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { embedding_bag_forward_bf16 } from "../shaders/embedding_bag_forward_bf16.ts";
import { embedding_bag_forward_bf16_vec4 } from "../shaders/embedding_bag_forward_bf16_vec4.ts";
import { embedding_bag_forward_bf16_rows } from "../shaders/embedding_bag_forward_bf16_rows.ts";
import type { EmbeddingBagForwardArgs } from "./embedding_bag_forward.ts";
import { bf16Words } from "./embedding_tables_bf16.ts";

const SHADERS = { embedding_bag_forward_bf16, embedding_bag_forward_bf16_vec4, embedding_bag_forward_bf16_rows };
/** Longest row (vec4<u32> units of 8 bf16) the one-invocation-per-bag kernel holds. */
const ROWS_MAX_UNITS = 8;
const ROWS_WG = 64;
const NONE = 0xffffffff;
const dummies = new WeakMap<GPUDevice, { weights: GPUBuffer; errors: GPUBuffer }>();

function dummyFor(device: GPUDevice): { weights: GPUBuffer; errors: GPUBuffer } {
  let d = dummies.get(device);
  if (!d) {
    d = {
      weights: device.createBuffer({ label: "embedding-bag-bf16:no-weights", size: 4, usage: STORAGE }),
      errors: uploadStorage(device, new Uint32Array([NONE, NONE, 0, NONE, NONE]), "embedding-bag-bf16:unchecked-errors"),
    };
    dummies.set(device, d);
  }
  return d;
}

/** Dispatches of the bf16 forward; `args` already validated by prepareEmbeddingBagForward. */
export function prepareEmbeddingBagForwardBf16(device: GPUDevice, args: EmbeddingBagForwardArgs): Dispatch[] {
  const { tables, bags } = args;
  if (tables.precision !== "bf16") throw new KernelInputError("prepareEmbeddingBagForwardBf16 needs a bf16 table set (createTableSet({ precision: \"bf16\" }))");
  const T = tables.rows.length;
  const B = bags.batchSize;
  const d = tables.dim;
  const vec4 = d % 8 === 0;
  const units = vec4 ? d / 8 : bf16Words(d);
  const weighted = bags.weights !== undefined;
  // Kernel: "rows" (one invocation per bag, the whole row: d % 8 == 0, d <= 64, out stride and offset
  // multiples of 4), "general" (a group of lanes per bag, any d), "auto" (rows when it applies).
  const rowsOk = vec4 && units <= ROWS_MAX_UNITS && args.outStride % 4 === 0 && args.outOffset % 4 === 0;
  const variant = args.variant ?? "auto";
  if (variant === "rows" && !rowsOk) {
    throw new KernelInputError(`variant "rows" on bf16 tables needs dim a multiple of 8, at most ${8 * ROWS_MAX_UNITS}, and outStride, outOffset multiples of 4 (got ${d}, ${args.outStride}, ${args.outOffset})`);
  }
  const rows = variant === "rows" || (variant === "auto" && rowsOk);
  let bagsPerWg: number;
  let shader: keyof typeof SHADERS;
  let kernel;
  if (rows) {
    shader = "embedding_bag_forward_bf16_rows";
    bagsPerWg = Math.min(ROWS_WG, device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
    kernel = getKernel(device, { shader: SHADERS[shader], constants: { WG: bagsPerWg, ROWU: units, WEIGHTED: weighted ? 1 : 0 } });
  } else {
    const maxWg = Math.min(256, device.limits.maxComputeInvocationsPerWorkgroup, device.limits.maxComputeWorkgroupSizeX);
    // Lanes per bag: the largest power of two <= units (at most 32), the rest of the workgroup in bags.
    let lanes = 1;
    while (lanes * 2 <= Math.min(units, 32)) lanes *= 2;
    bagsPerWg = Math.max(1, Math.floor(maxWg / lanes));
    shader = vec4 ? "embedding_bag_forward_bf16_vec4" : "embedding_bag_forward_bf16";
    kernel = getKernel(device, { shader: SHADERS[shader], constants: { WG: lanes * bagsPerWg, LANES: lanes, BAGS: bagsPerWg, WEIGHTED: weighted ? 1 : 0 } });
  }
  const tableOf = (g: number): number => {
    let t = 0;
    while (t + 1 < T && tables.rowBase[t + 1]! <= g) t++;
    return t;
  };
  const dummy = dummyFor(device);
  const errors = args.errors ?? dummy.errors;
  const info = new Uint32Array(2 * T);
  tables.rows.forEach((r, t) => info.set([tables.rowBase[t]!, r], 2 * t));
  const tableInfo = uploadStorage(device, info, "embedding-bag-bf16:table-info");
  const maxPerDim = Math.min(args.maxWorkgroupsPerDim ?? Infinity, device.limits.maxComputeWorkgroupsPerDimension);
  const dispatches: Dispatch[] = [];
  let lastGroup: GPUBindGroup | undefined;
  tables.chunks.forEach((chunk, c) => {
    const tBegin = tableOf(chunk.rowStart);
    const tEnd = tableOf(chunk.rowStart + chunk.rowCount - 1) + 1;
    const numBags = (tEnd - tBegin) * B;
    const params = new Uint32Array([
      B, tBegin, numBags, d, units, chunk.rowStart, chunk.rowCount, args.outStride, args.outOffset, args.pooling === "mean" ? 1 : 0, T * B,
    ]);
    const group = bindGroup(device, kernel, {
      params: uploadUniform(device, params, `embedding-bag-bf16:params:chunk${c}`),
      table_info: tableInfo,
      offsets: bags.offsets,
      indices: bags.indices,
      weights: bags.weights ?? dummy.weights,
      table: chunk.buffer,
      out: args.out,
      errors,
    }, `embedding-bag-bf16:chunk${c}`);
    lastGroup = group;
    dispatches.push({ label: `embedding_bag_forward_bf16:chunk${c}`, kernel, bindGroups: [group], workgroups: grid(Math.ceil(numBags / bagsPerWg), maxPerDim) });
  });
  if (args.errors) {
    dispatches.push({
      label: "embedding_bag_forward_bf16:errors",
      kernel: getKernel(device, { shader: SHADERS[shader], entryPoint: "finish_errors" }),
      bindGroups: [lastGroup!],
      workgroups: [1],
    });
  }
  return dispatches;
}
