/**
 * Wrapper for shaders/loss_sigmoid.wgsl: sigmoid + loss + gradient of the mean
 * loss, fused, on the top MLP's logits z [B]. Per-sample losses go to `loss`;
 * the mean is prepareReduceSum(..., scale: 1/B) (src/kernels/reduce.ts).
 *
 * Kinds (dlrm_s_pytorch.py: loss_function mse | bce | wbce, loss_weights "w0-w1"):
 *  - "bce":      BCE with logits, numerically stable; gradient (p - y)/B.
 *  - "bce-prob": what the reference computes, torch.nn.BCELoss on p = sigmoid(z)
 *                (each log clamped at -100, backward (p-y)/max(p(1-p), 1e-12)
 *                times the sigmoid's p(1-p)). Like PyTorch in float32, the
 *                gradient vanishes once p rounds to 0 or 1 (|z| >~ 17).
 *  - "wbce":     the reference's weighted BCE: classWeights[label] * BCELoss(p, y),
 *                mean over the batch (label >= 1 takes classWeights[1]).
 *  - "mse":      torch.nn.MSELoss(mean) on p; gradient 2(p-y)p(1-p)/B.
 * With a threshold t the probability kinds clamp p to [t, 1-t] first, as the
 * reference's --loss-threshold; the gradient is zero where the clamp holds.
 */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { loss_sigmoid } from "../shaders/loss_sigmoid.ts";

export type LossKind = "bce" | "bce-prob" | "wbce" | "mse";

const KIND: Record<LossKind, number> = { bce: 0, "bce-prob": 1, wbce: 2, mse: 3 };
const WG = 256;

export interface LossArgs {
  /** [B] logits z. */
  logits: GPUBuffer;
  /** [B] labels in [0, 1]. */
  labels: GPUBuffer;
  /** out [B]: sigmoid(z). */
  prob: GPUBuffer;
  /** out [B]: dL/dz of the MEAN loss. */
  grad: GPUBuffer;
  /** out [B]: per-sample loss (f32). */
  loss: GPUBuffer;
  batch: number;
  /**
   * The mean is over this many samples (default: batch). A data-parallel
   * slice of a larger global batch passes the global size, so the slices'
   * gradients add up to the global batch's.
   */
  meanOver?: number;
  kind: LossKind;
  /** wbce: weights for label 0 and label 1 (the reference's --loss-weights). */
  classWeights?: [number, number];
  /**
   * Output clamp t (the reference's --loss-threshold): 0 < t < 1 clamps p to
   * [t, 1-t] before the loss (bce-prob, wbce, mse only; 0 = off).
   */
  threshold?: number;
}

export function prepareLoss(device: GPUDevice, args: LossArgs): Dispatch[] {
  const B = args.batch;
  if (!Number.isInteger(B) || B < 1) throw new KernelInputError(`loss: batch must be a positive integer, got ${B}`);
  if (!(args.kind in KIND)) throw new KernelInputError(`loss: unknown kind '${args.kind}' (bce, bce-prob, wbce, mse)`);
  if (args.kind === "wbce" && !args.classWeights) throw new KernelInputError("loss: wbce needs classWeights [w0, w1]");
  for (const [name, buf] of [["logits", args.logits], ["labels", args.labels], ["prob", args.prob], ["grad", args.grad], ["loss", args.loss]] as const) {
    if (buf.size < B * 4) throw new KernelInputError(`loss: ${name} holds ${buf.size} bytes, needs ${B * 4}`);
  }
  const meanOver = args.meanOver ?? B;
  if (!(meanOver >= B) || !Number.isInteger(meanOver)) throw new KernelInputError(`loss: meanOver must be an integer >= batch (${B}), got ${meanOver}`);
  const thr = args.threshold ?? 0;
  if (!(thr >= 0 && thr < 0.5)) throw new KernelInputError(`loss: threshold must be in [0, 0.5), got ${thr}`);
  if (thr > 0 && args.kind === "bce") throw new KernelInputError("loss: the output clamp needs the probability form: use kind 'bce-prob' with a threshold");
  const [w0, w1] = args.classWeights ?? [1, 1];
  const ab = new ArrayBuffer(20);
  new Uint32Array(ab)[0] = B;
  new Float32Array(ab).set([1 / meanOver, w0, w1, thr], 1);
  const params = uploadUniform(device, ab, `loss-${args.kind}:params`);
  const kernel = getKernel(device, { shader: loss_sigmoid, constants: { WG, KIND: KIND[args.kind] } });
  const bg = bindGroup(
    device,
    kernel,
    { params, logits: args.logits, labels: args.labels, prob: args.prob, grad: args.grad, loss: args.loss },
    `loss-${args.kind}`,
  );
  return [{ label: `loss_${args.kind}`, kernel, bindGroups: [bg], workgroups: grid(Math.ceil(B / WG), device.limits.maxComputeWorkgroupsPerDimension) }];
}

export function lossForwardBackward(device: GPUDevice, args: LossArgs): void {
  submitDispatches(device, prepareLoss(device, args), "loss");
}
