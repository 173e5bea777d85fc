/**
 * Dense optimizers (MLP weights and biases) over a flat parameter buffer and
 * its gradient: shaders/optim_sgd.wgsl, optim_adagrad.wgsl, optim_adam.wgsl.
 * Hyperparameters come from the shared OptimParams uniform
 * (src/kernels/optimizer_params.ts), rewritten once per step.
 *
 * PyTorch semantics (weight decay is L2, added to the gradient):
 *  - "sgd":     torch.optim.SGD, momentum 0.
 *  - "adagrad": torch.optim.Adagrad, lr_decay 0; state [sum], zero-initialised
 *               (initial_accumulator_value 0).
 *  - "adam":    torch.optim.Adam (amsgrad off); state [exp_avg, exp_avg_sq], zero-initialised;
 *               OptimParams.bias1/bias2 must be those of this step (t = 1, 2, ...).
 *  - "rowwise-adagrad": the reference's RWSAdagrad (facebookresearch/dlrm
 *               optim/rwsadagrad.py) on a DENSE gradient keeps a full-size
 *               `sum` (torch.full_like(p)) and applies exactly the element-wise
 *               Adagrad update (sum += g^2; p -= lr g / (sqrt(sum) + eps)); only
 *               its sparse path is row-wise. So it runs the Adagrad kernel with a
 *               state of `count` floats; `rows` is accepted and checked only.
 */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { optim_sgd } from "../shaders/optim_sgd.ts";
import { optim_adam } from "../shaders/optim_adam.ts";
import { optim_adagrad } from "../shaders/optim_adagrad.ts";

/** The shaders this wrapper dispatches (generated modules: see CONTRIBUTING.md). */
const SHADERS = { optim_sgd, optim_adam, optim_adagrad };

export type DenseOptimizerKind = "sgd" | "adagrad" | "adam" | "rowwise-adagrad";

const WG = 256;

/** Floats per state buffer, in the order prepareDenseOptimizer expects them. */
export function denseOptimizerStateSizes(kind: DenseOptimizerKind, count: number, rows?: number): number[] {
  checkCount(kind, count, rows);
  switch (kind) {
    case "sgd":
      return [];
    case "adagrad":
    case "rowwise-adagrad":
      return [count];
    case "adam":
      return [count, count];
    default:
      throw new KernelInputError(`dense optimizer: unknown kind '${kind as string}' (sgd, adagrad, adam, rowwise-adagrad)`);
  }
}

function checkCount(kind: DenseOptimizerKind, count: number, rows?: number): void {
  if (!Number.isInteger(count) || count < 1) throw new KernelInputError(`dense optimizer ${kind}: count must be a positive integer, got ${count}`);
  if (rows !== undefined && (!Number.isInteger(rows) || rows < 1 || count % rows !== 0)) {
    throw new KernelInputError(`dense optimizer ${kind}: rows ${rows} does not divide count ${count}`);
  }
}

export interface DenseOptimizerArgs {
  kind: DenseOptimizerKind;
  param: GPUBuffer;
  grad: GPUBuffer;
  /** Zero-initialised state buffers, sized by denseOptimizerStateSizes(). */
  state: GPUBuffer[];
  /** Elements of param (and grad). */
  count: number;
  /** OptimParams uniform. */
  optim: GPUBuffer;
  /** rowwise-adagrad: param viewed as [rows, count/rows] (checked only, see above). */
  rows?: number;
}

export function prepareDenseOptimizer(device: GPUDevice, args: DenseOptimizerArgs): Dispatch[] {
  const { kind, count } = args;
  const sizes = denseOptimizerStateSizes(kind, count, args.rows);
  const what = `dense optimizer ${kind}`;
  if (args.state.length !== sizes.length) throw new KernelInputError(`${what}: expects ${sizes.length} state buffers, got ${args.state.length}`);
  for (const [name, buf, n] of [["param", args.param, count], ["grad", args.grad, count], ...args.state.map((b, i) => [`state[${i}]`, b, sizes[i]!] as const)] as const) {
    if (buf.size < n * 4) throw new KernelInputError(`${what}: ${name} holds ${buf.size} bytes, needs ${n * 4}`);
  }
  const shader = kind === "sgd" ? "optim_sgd" : kind === "adam" ? "optim_adam" : "optim_adagrad";
  const kernel = getKernel(device, { shader: SHADERS[shader], constants: { WG } });
  const params = uploadUniform(device, new Uint32Array([count]), `${shader}:params`);
  const res: Record<string, GPUBuffer> = { params, optim: args.optim, param: args.param, grad: args.grad };
  if (kind === "adam") {
    res.exp_avg = args.state[0]!;
    res.exp_avg_sq = args.state[1]!;
  } else if (kind !== "sgd") res.sum = args.state[0]!;
  return [{
    label: shader,
    kernel,
    bindGroups: [bindGroup(device, kernel, res, shader)],
    workgroups: grid(Math.ceil(count / WG), device.limits.maxComputeWorkgroupsPerDimension),
  }];
}

export function denseOptimizerStep(device: GPUDevice, args: DenseOptimizerArgs): void {
  submitDispatches(device, prepareDenseOptimizer(device, args), "dense-optimizer");
}
