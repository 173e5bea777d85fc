/**
 * Wrappers for the small kernels of the multi-device step (src/shard/):
 *  - shaders/shard_qr_mult_fwd.wgsl / shard_qr_mult_bwd.wgsl: the "mult" combine of QR tables split by
 *    sub-table rows, on the slice owner (see prepareQrMult);
 *  - shaders/shard_add_f32.wgsl: y[yOffset + i] += x[xOffset + i] (the ring allreduce's add);
 *  - shaders/shard_route.wgsl: column routing between pooled-embedding layouts, each output
 *    column the fixed-order sum of a list of input columns (see Route).
 */
import { uploadStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { shard_add_f32 } from "../shaders/shard_add_f32.ts";
import { shard_route } from "../shaders/shard_route.ts";
import { shard_qr_mult_fwd } from "../shaders/shard_qr_mult_fwd.ts";
import { shard_qr_mult_bwd } from "../shaders/shard_qr_mult_bwd.ts";

const WG = 256;

export interface AddArgs {
  x: GPUBuffer;
  y: GPUBuffer;
  /** Elements (f32) to add. */
  count: number;
  xOffset?: number;
  yOffset?: number;
  label?: string;
}

export function prepareAdd(device: GPUDevice, args: AddArgs): Dispatch[] {
  const { count } = args;
  const xo = args.xOffset ?? 0;
  const yo = args.yOffset ?? 0;
  const label = args.label ?? "shard-add";
  if (!Number.isInteger(count) || count < 0) throw new KernelInputError(`${label}: count must be a non-negative integer, got ${count}`);
  if (count === 0) return [];
  if ((xo + count) * 4 > args.x.size) throw new KernelInputError(`${label}: x (${args.x.size} bytes) has no elements ${xo}..${xo + count - 1}`);
  if ((yo + count) * 4 > args.y.size) throw new KernelInputError(`${label}: y (${args.y.size} bytes) has no elements ${yo}..${yo + count - 1}`);
  const kernel = getKernel(device, { shader: shard_add_f32, constants: { WG } });
  const params = uploadUniform(device, new Uint32Array([count, xo, yo, 0]), `${label}:params`);
  return [{ label, kernel, bindGroups: [bindGroup(device, kernel, { params, x: args.x, y: args.y }, label)], workgroups: grid(Math.ceil(count / WG), device.limits.maxComputeWorkgroupsPerDimension) }];
}

/**
 * One output column o of a route: for every sample b,
 * output[out.offset + b * out.stride] = sum over sources s (in order) of input[s.offset + b * s.stride].
 * Offsets and strides are in floats.
 */
export interface RouteColumn {
  offset: number;
  stride: number;
  sources: { offset: number; stride: number }[];
}

export interface RouteArgs {
  input: GPUBuffer;
  output: GPUBuffer;
  batch: number;
  columns: RouteColumn[];
  label?: string;
}

export interface PreparedRoute {
  dispatches: Dispatch[];
  buffers: GPUBuffer[];
}

export function prepareRoute(device: GPUDevice, args: RouteArgs): PreparedRoute {
  const { batch, columns } = args;
  const label = args.label ?? "shard-route";
  if (!Number.isInteger(batch) || batch < 0) throw new KernelInputError(`${label}: batch must be a non-negative integer, got ${batch}`);
  if (batch === 0 || columns.length === 0) return { dispatches: [], buffers: [] };
  const last = (off: number, stride: number) => off + (batch - 1) * stride;
  const outs = new Uint32Array(columns.length * 4);
  const entries: number[] = [];
  columns.forEach((c, o) => {
    if (last(c.offset, c.stride) * 4 >= args.output.size) throw new KernelInputError(`${label}: output column ${o} (offset ${c.offset}, stride ${c.stride}) runs past the output buffer (${args.output.size} bytes)`);
    outs.set([c.offset, c.stride, entries.length / 2, c.sources.length], o * 4);
    for (const s of c.sources) {
      if (last(s.offset, s.stride) * 4 >= args.input.size) throw new KernelInputError(`${label}: a source of output column ${o} (offset ${s.offset}, stride ${s.stride}) runs past the input buffer (${args.input.size} bytes)`);
      entries.push(s.offset, s.stride);
    }
  });
  const outsBuf = uploadStorage(device, outs, `${label}:outs`);
  const entriesBuf = uploadStorage(device, Uint32Array.from(entries.length ? entries : [0, 0]), `${label}:entries`);
  const params = uploadUniform(device, new Uint32Array([batch, columns.length]), `${label}:params`);
  const kernel = getKernel(device, { shader: shard_route, constants: { WG } });
  const bg = bindGroup(device, kernel, { params, outs: outsBuf, entries: entriesBuf, input: args.input, output: args.output }, label);
  return {
    dispatches: [{ label, kernel, bindGroups: [bg], workgroups: grid(Math.ceil((batch * columns.length) / WG), device.limits.maxComputeWorkgroupsPerDimension) }],
    buffers: [outsBuf, entriesBuf, params],
  };
}

export interface QrMultArgs {
  /** Pooled sub-table sums [batch, 2 * tables.length * d]: table m's pool_q at 2m*d, pool_r at (2m+1)*d. */
  c: GPUBuffer;
  /** E [batch, n, d] (written at the tables' columns). */
  e: GPUBuffer;
  /** dE (read) and dC (written), for the backward; omit both for a forward only. */
  gradE?: GPUBuffer;
  gradC?: GPUBuffer;
  batch: number;
  d: number;
  /** Logical table index t_m of each QR table, in C's order. */
  tables: readonly number[];
  /** n (tables of the model): E's row stride is n * d. */
  numTables: number;
  label?: string;
}

/** Wrappers of shard_qr_mult_fwd.wgsl (E = pool_q * pool_r) and shard_qr_mult_bwd.wgsl (dC from dE). */
export function prepareQrMult(device: GPUDevice, a: QrMultArgs): { forward: Dispatch[]; backward: Dispatch[]; buffers: GPUBuffer[] } {
  const label = a.label ?? "shard-qr-mult";
  const M = a.tables.length;
  if (a.batch === 0 || M === 0) return { forward: [], backward: [], buffers: [] };
  const cStride = 2 * M * a.d;
  const eStride = a.numTables * a.d;
  if (a.c.size < a.batch * cStride * 4) throw new KernelInputError(`${label}: C holds ${a.c.size / 4} floats, need ${a.batch * cStride}`);
  if (a.e.size < a.batch * eStride * 4) throw new KernelInputError(`${label}: E holds ${a.e.size / 4} floats, need ${a.batch * eStride}`);
  for (const t of a.tables) if (!(Number.isInteger(t) && t >= 0 && t < a.numTables)) throw new KernelInputError(`${label}: table ${t} outside 0..${a.numTables - 1}`);
  const params = uploadUniform(device, new Uint32Array([a.batch, a.d, M, eStride, cStride, 0, 0, 0]), `${label}:params`);
  const tables = uploadStorage(device, Uint32Array.from(a.tables), `${label}:tables`);
  const workgroups = grid(Math.ceil((a.batch * M * a.d) / WG), device.limits.maxComputeWorkgroupsPerDimension);
  const fk = getKernel(device, { shader: shard_qr_mult_fwd, constants: { WG } });
  const forward: Dispatch[] = [{ label: `${label}:fwd`, kernel: fk, bindGroups: [bindGroup(device, fk, { params, tables, c: a.c, e: a.e }, `${label}:fwd`)], workgroups }];
  const backward: Dispatch[] = [];
  if (a.gradE && a.gradC) {
    const bk = getKernel(device, { shader: shard_qr_mult_bwd, constants: { WG } });
    backward.push({ label: `${label}:bwd`, kernel: bk, bindGroups: [bindGroup(device, bk, { params, tables, c: a.c, grad_e: a.gradE, grad_c: a.gradC }, `${label}:bwd`)], workgroups });
  }
  return { forward, backward, buffers: [params, tables] };
}
