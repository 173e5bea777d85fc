/**
 * Wrapper for shaders/reduce_sum.wgsl: deterministic sum of `count` floats
 * (fixed order: per-invocation strided runs, then a fixed pairwise tree, pass
 * after pass), written as scale * sum to output[outputOffset]. Used for the
 * mean loss (scale 1/B) and metrics. Scratch buffers for the partial sums are
 * created once here, so the dispatches can be reused every step.
 */
import { createStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { reduce_sum } from "../shaders/reduce_sum.ts";

export interface ReduceSumArgs {
  input: GPUBuffer;
  output: GPUBuffer;
  /** Elements of input to sum (>= 1). */
  count: number;
  /** Element index in output (default 0). */
  outputOffset?: number;
  /** Multiplies the sum (default 1), e.g. 1/B for a mean. */
  scale?: number;
  /** Elements each invocation adds before the tree (default 16; tuning and tests). */
  perInvocation?: number;
}

const WG = 256;
const PER = 16;

export function prepareReduceSum(device: GPUDevice, args: ReduceSumArgs): Dispatch[] {
  const { count } = args;
  const outputOffset = args.outputOffset ?? 0;
  const scale = args.scale ?? 1;
  if (!Number.isInteger(count) || count < 1) throw new KernelInputError(`reduce: count must be a positive integer, got ${count}`);
  if (count > 2 ** 31) throw new KernelInputError(`reduce: count ${count} too large (max 2^31)`);
  if (args.input.size < count * 4) throw new KernelInputError(`reduce: input holds ${args.input.size} bytes, needs ${count * 4}`);
  if (!Number.isInteger(outputOffset) || outputOffset < 0 || args.output.size < (outputOffset + 1) * 4) {
    throw new KernelInputError(`reduce: output (${args.output.size} bytes) has no element ${outputOffset}`);
  }
  const per = args.perInvocation ?? PER;
  if (!Number.isInteger(per) || per < 1) throw new KernelInputError(`reduce: perInvocation must be a positive integer, got ${per}`);
  const chunk = WG * per;
  const kernel = getKernel(device, { shader: reduce_sum, constants: { PER: per } });
  const maxWg = device.limits.maxComputeWorkgroupsPerDimension;
  const dispatches: Dispatch[] = [];
  let src = args.input;
  let n = count;
  let pass = 0;
  const scratch: GPUBuffer[] = [];
  for (;;) {
    const groups = Math.ceil(n / chunk);
    const last = groups === 1;
    let dst: GPUBuffer;
    if (last) dst = args.output;
    else {
      // Ping-pong between two scratch buffers sized for the first pass's partials.
      if (scratch.length < 2) scratch.push(createStorage(device, groups * 4, `reduce:scratch${scratch.length}`));
      dst = scratch[pass % 2]!;
    }
    const ab = new ArrayBuffer(16);
    new Uint32Array(ab).set([n, last ? outputOffset : 0]);
    new Float32Array(ab)[2] = last ? scale : 1;
    const params = uploadUniform(device, ab, `reduce:params${pass}`);
    dispatches.push({
      label: `reduce_sum[${pass}]`,
      kernel,
      bindGroups: [bindGroup(device, kernel, { params, input: src, output: dst }, `reduce${pass}`)],
      workgroups: grid(groups, maxWg),
    });
    if (last) break;
    src = dst;
    n = groups;
    pass++;
  }
  return dispatches;
}

export function reduceSum(device: GPUDevice, args: ReduceSumArgs): void {
  submitDispatches(device, prepareReduceSum(device, args), "reduce");
}
