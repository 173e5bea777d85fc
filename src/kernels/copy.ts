/** Wrapper for shaders/copy_f32.wgsl: a vec4 copy, used as the bandwidth roofline. */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { copy_f32 } from "../shaders/copy_f32.ts";

export interface CopyArgs {
  src: GPUBuffer;
  dst: GPUBuffer;
  /** Number of f32 elements; must be a multiple of 4. */
  count: number;
}

const WG = 256;

export function prepareCopy(device: GPUDevice, args: CopyArgs): Dispatch {
  if (args.count % 4 !== 0) throw new KernelInputError(`copy: count ${args.count} is not a multiple of 4`);
  const kernel = getKernel(device, { shader: copy_f32, constants: { WG } });
  const n4 = args.count / 4;
  const params = uploadUniform(device, new Uint32Array([n4]), "copy:params");
  return {
    label: "copy_f32",
    kernel,
    bindGroups: [bindGroup(device, kernel, { params, src: args.src, dst: args.dst }, "copy")],
    workgroups: grid(Math.ceil(n4 / WG), device.limits.maxComputeWorkgroupsPerDimension),
  };
}

export function copyF32(device: GPUDevice, args: CopyArgs): void {
  submitDispatches(device, [prepareCopy(device, args)], "copy");
}
