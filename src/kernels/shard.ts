/**
 * Wrappers for the two small kernels of the multi-device step (src/shard/):
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
