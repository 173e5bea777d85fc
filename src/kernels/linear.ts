/**
 * nn.Linear on the GEMM kernels (weight stored [out, in] row-major, as in
 * PyTorch):
 *   forward   Y[M,N] = act(X[M,K] · W[N,K]^T + b[N])            bias + activation fused
 *   backward  dZ = dY ⊙ (Y > 0) (relu, mask read from the forward output Y
 *             inside the GEMM loads) or dZ = dY (none);
 *             dX[M,K] = dZ · W (optional), dW[N,K] = dZ^T · X, db[N] = Σ_m dZ[m, :]
 * Gradients are overwritten, not accumulated.
 */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { gemm_bias_grad } from "../shaders/gemm_bias_grad.ts";
import { type Activation, checkBuffer, forcedGemmVariant, type GemmVariant, prepareGemmDispatch } from "./gemm.ts";
import { LPS_MIN_COLS, lpsOn, prepareLpsGemm } from "./gemm_lps.ts";
import { prefersUboGemm, prepareReluMask, prepareTranspose, prepareUboGemm as prepareUbo, uboTile, type UboGemmSpec } from "./gemm_ubo.ts";

/** The uniform-buffer GEMM, or the lps kernel where tuned so (./gemm_lps.ts; wide enough outputs). */
function prepareUboGemm(device: GPUDevice, spec: UboGemmSpec): Dispatch[] {
  const lps = lpsOn(device);
  return lps && spec.n >= LPS_MIN_COLS ? prepareLpsGemm(device, spec, lps) : prepareUbo(device, spec);
}

/**
 * Whether a layer GEMM with `cols` output columns and reduction length `k` runs on the
 * uniform-buffer kernel: forced by variant "ubo", or by default on the adapters of its
 * tuning table (lavapipe); narrow outputs (the N=1 layer) keep the GEMV-style rb plan.
 */
function useUbo(device: GPUDevice, variant: GemmVariant | undefined, cols: number, k: number): boolean {
  const v = variant ?? forcedGemmVariant(device);
  const want = v === "ubo" || (v === undefined && prefersUboGemm(device));
  return want && cols >= 16 && uboTile(k).TN > 0;
}

const noUboDw = new WeakSet<GPUDevice>();

/** Turns the uniform-buffer dW path off (false) or back on for later prepares on `device` (A/B benchmarks). */
export function setUboDw(device: GPUDevice, on: boolean): void {
  if (on) noUboDw.delete(device);
  else noUboDw.add(device);
}

export interface LinearForwardArgs {
  x: GPUBuffer;
  w: GPUBuffer;
  b: GPUBuffer;
  y: GPUBuffer;
  m: number;
  n: number;
  k: number;
  activation: Activation;
  /** Force a kernel style (tests, benchmarks). */
  variant?: GemmVariant;
}

export interface LinearBackwardArgs {
  /** Forward input [m, k]. */
  x: GPUBuffer;
  /** Weight [n, k]. */
  w: GPUBuffer;
  /** Forward output [m, n] (after the activation); read for the ReLU mask. */
  y: GPUBuffer;
  /** Gradient of the loss w.r.t. y [m, n]. */
  dy: GPUBuffer;
  /** Gradient w.r.t. x [m, k]; omit when not wanted (first layer). */
  dx?: GPUBuffer;
  dw: GPUBuffer;
  db: GPUBuffer;
  m: number;
  n: number;
  k: number;
  activation: "none" | "relu";
  variant?: GemmVariant;
}

export function prepareLinearForward(device: GPUDevice, args: LinearForwardArgs): Dispatch[] {
  if (!(args.activation in { none: 1, relu: 1, sigmoid: 1 })) {
    throw new KernelInputError(`linear forward: unknown activation '${args.activation}' (none, relu or sigmoid)`);
  }
  const label = `linear-fwd ${args.m}x${args.k}->${args.n}`;
  if (useUbo(device, args.variant, args.n, args.k)) {
    checkBuffer(label, "x", args.x, args.m * args.k);
    checkBuffer(label, "w", args.w, args.n * args.k);
    checkBuffer(label, "b", args.b, args.n);
    checkBuffer(label, "y", args.y, args.m * args.n);
    return prepareUboGemm(device, { a: args.x, w: args.w, trans: false, c: args.y, m: args.m, n: args.n, k: args.k, bias: args.b, activation: args.activation, label });
  }
  return [
    prepareGemmDispatch(device, {
      a: args.x, b: args.w, c: args.y, m: args.m, n: args.n, k: args.k, transB: true,
      bias: args.b, activation: args.activation, variant: args.variant, label,
    }),
  ];
}

export function prepareLinearBackward(device: GPUDevice, args: LinearBackwardArgs): Dispatch[] {
  const { m, n, k } = args;
  if (args.activation !== "none" && args.activation !== "relu") {
    throw new KernelInputError(`linear backward: activation '${args.activation}' is not fused here (none or relu); ` +
      "fold a sigmoid into the loss gradient and pass activation 'none'");
  }
  const relu = args.activation === "relu";
  const tag = `${m}x${k}->${n}`;
  const out: Dispatch[] = [];
  const ubo = args.dx !== undefined && useUbo(device, args.variant, k, n);
  // dW [n, k] on the uniform-buffer kernel too: k output columns, a reduction over the m batch rows.
  // Single-output layers (n < 16: the top's last layer) keep the rb GEMV-style plan.
  const uboDw = n >= 16 && !noUboDw.has(device) && useUbo(device, args.variant, k, m);
  // On the uniform-buffer path dZ = dY (Y > 0) is materialized once: the GEMMs then read it without mask loads.
  let dz = args.dy;
  let mask = relu ? { buffer: args.y, operand: "a" as const } : undefined;
  if ((ubo || uboDw) && relu) {
    checkBuffer(`linear-dz ${tag}`, "dy", args.dy, m * n);
    checkBuffer(`linear-dz ${tag}`, "y", args.y, m * n);
    const r = prepareReluMask(device, { dy: args.dy, y: args.y, count: m * n, label: `linear-dz ${tag}` });
    out.push(r.dispatch);
    dz = r.dz;
    mask = undefined;
  }
  if (args.dx && ubo) {
    // dX[m, k] = dZ[m, n] · W[n, k]: W packed transposed.
    const label = `linear-dx ${tag}`;
    checkBuffer(label, "dy", dz, m * n);
    checkBuffer(label, "w", args.w, n * k);
    checkBuffer(label, "dx", args.dx, m * k);
    out.push(...prepareUboGemm(device, { a: dz, w: args.w, trans: true, c: args.dx, m, n: k, k: n, label }));
  } else if (args.dx) {
    // dX[m, k] = dZ[m, n] · W[n, k]
    out.push(prepareGemmDispatch(device, {
      a: dz, b: args.w, c: args.dx, m, n: k, k: n, mask, variant: args.variant, label: `linear-dx ${tag}`,
    }));
  }
  if (uboDw) {
    // dW[n, k] = dZ^T · X: A = dZ^T [n, m] (transposed into scratch), P(s, r) = X[r, s] (X packed transposed).
    const label = `linear-dw ${tag}`;
    checkBuffer(label, "dy", dz, m * n);
    checkBuffer(label, "x", args.x, m * k);
    checkBuffer(label, "dw", args.dw, n * k);
    const t = prepareTranspose(device, { src: dz, rows: m, cols: n, label: `${label}:dzT` });
    out.push(t.dispatch);
    out.push(...prepareUboGemm(device, { a: t.dst, w: args.x, trans: true, c: args.dw, m: n, n: k, k: m, label }));
  } else {
    // dW[n, k] = dZ^T · X: A = dZ stored [m, n] = transposed.
    out.push(prepareGemmDispatch(device, {
      a: dz, b: args.x, c: args.dw, m: n, n: k, k: m, transA: true, mask, variant: args.variant, label: `linear-dw ${tag}`,
    }));
  }
  out.push(prepareBiasGrad(device, { dy: dz, y: mask ? args.y : undefined, db: args.db, m, n }));
  return out;
}

/** db[n] = Σ_m dZ[m, n] (shaders/gemm_bias_grad.wgsl); `y` given = ReLU mask. */
export function prepareBiasGrad(device: GPUDevice, args: { dy: GPUBuffer; y?: GPUBuffer; db: GPUBuffer; m: number; n: number }): Dispatch {
  const label = `bias-grad ${args.m}x${args.n}`;
  checkBuffer(label, "dy", args.dy, args.m * args.n);
  if (args.y) checkBuffer(label, "y", args.y, args.m * args.n);
  checkBuffer(label, "db", args.db, args.n);
  const WG = 64;
  const kernel = getKernel(device, { shader: gemm_bias_grad, constants: { WG, MASK: Number(Boolean(args.y)) } });
  const params = uploadUniform(device, new Uint32Array([args.m, args.n]), `${label}:params`);
  return {
    label,
    kernel,
    bindGroups: [bindGroup(device, kernel, { params, dy: args.dy, y: args.y ?? args.dy, db: args.db }, label)],
    workgroups: grid(Math.ceil(args.n / WG), device.limits.maxComputeWorkgroupsPerDimension),
  };
}

/** One-shot forward. */
export function linearForward(device: GPUDevice, args: LinearForwardArgs): void {
  submitDispatches(device, prepareLinearForward(device, args), "linear-forward");
}

/** One-shot backward. */
export function linearBackward(device: GPUDevice, args: LinearBackwardArgs): void {
  submitDispatches(device, prepareLinearBackward(device, args), "linear-backward");
}
