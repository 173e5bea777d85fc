/**
 * The OptimParams uniform (shaders/include/optim_params.wgsl) shared by the
 * embedding and dense optimizer kernels. The caller owns one buffer and
 * rewrites it each step; kernels bound to it see the new learning rate
 * without new pipelines or bind groups.
 */
import { UNIFORM } from "../gpu/buffers.ts";

export interface OptimizerHyper {
  lr: number;
  /** Adagrad / Adam epsilon. PyTorch defaults: Adagrad 1e-10, Adam 1e-8. */
  eps?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  /** 1-based step number (Adam bias correction). */
  step?: number;
}

export const OPTIM_PARAMS_BYTES = 32;

export function createOptimizerParams(device: GPUDevice, hyper: OptimizerHyper, label = "optim-params"): GPUBuffer {
  const buf = device.createBuffer({ label, size: OPTIM_PARAMS_BYTES, usage: UNIFORM });
  writeOptimizerParams(device, buf, hyper);
  return buf;
}

export function encodeOptimizerParams(hyper: OptimizerHyper): ArrayBuffer {
  const ab = new ArrayBuffer(OPTIM_PARAMS_BYTES);
  const f = new Float32Array(ab);
  const u = new Uint32Array(ab);
  const beta1 = hyper.beta1 ?? 0.9;
  const beta2 = hyper.beta2 ?? 0.999;
  const step = hyper.step ?? 1;
  f[0] = hyper.lr;
  f[1] = hyper.eps ?? 1e-10;
  f[2] = beta1;
  f[3] = beta2;
  f[4] = 1 - beta1 ** step;
  f[5] = 1 - beta2 ** step;
  f[6] = hyper.weightDecay ?? 0;
  u[7] = step;
  return ab;
}

export function writeOptimizerParams(device: GPUDevice, buffer: GPUBuffer, hyper: OptimizerHyper): void {
  device.queue.writeBuffer(buffer, 0, encodeOptimizerParams(hyper));
}
