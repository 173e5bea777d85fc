/**
 * GEMM wrappers for the register-blocked kernels (no workgroup memory:
 * fastest on CPU emulators) — shaders/gemm_nt4.wgsl (A [m,k] times B [n,k]^T,
 * the layer forward), shaders/gemm_rb_nn4.wgsl (B [k,n] with n % 4 == 0, vec4
 * columns), shaders/gemm_rb.wgsl (any layout, scalar) — and
 * shaders/gemm_tiled.wgsl (workgroup memory tiles: for real GPUs). All compute
 *   C(r, s) = act( sum_k A(r, k) B(k, s) + bias )
 * with any of the four operand layouts, an optional ReLU mask folded into one
 * operand's loads, and a bias + activation epilogue. The variant, the
 * orientation (C or C^T, so that the long dimension runs across SIMD lanes)
 * and the register tile are chosen here per shape and adapter, not by callers.
 *
 * The layer-level API (nn.Linear forward / backward) is in ./linear.ts.
 */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { gemm_rb } from "../shaders/gemm_rb.ts";
import { gemm_rb_nn4 } from "../shaders/gemm_rb_nn4.ts";
import { gemm_nt4 } from "../shaders/gemm_nt4.ts";
import { gemm_tiled } from "../shaders/gemm_tiled.ts";

/** The shaders this wrapper dispatches (generated modules: see CONTRIBUTING.md). */
const SHADERS = { gemm_rb, gemm_rb_nn4, gemm_nt4, gemm_tiled };

export type Activation = "none" | "relu" | "sigmoid";
/** "ubo": the uniform-buffer kernel of ./gemm_ubo.ts for the layer forward and dX (linear.ts); plain GEMMs treat it as "rb". */
export type GemmVariant = "rb" | "tiled" | "ubo";

const ACT_CODE: Record<Activation, number> = { none: 0, relu: 1, sigmoid: 2 };

/** Everything one GEMM dispatch needs, in the caller's (untransposed-output) terms. */
export interface GemmSpec {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  /** C is m x n, the reduction has k terms. */
  m: number;
  n: number;
  k: number;
  /** A stored [k, m] instead of [m, k]. */
  transA?: boolean;
  /** B stored [n, k] instead of [k, n]. */
  transB?: boolean;
  /** Multiply A (or B) by (mask > 0) read at the same index as the operand. */
  mask?: { buffer: GPUBuffer; operand: "a" | "b" };
  /** Per-column bias (length n) added before the activation. */
  bias?: GPUBuffer;
  activation?: Activation;
  /** Force a kernel style (tests, benchmarks); default: chosen per adapter. */
  variant?: GemmVariant;
  /** Force the register tile of the rb variant (benchmarks; TM, TN <= 8, WG <= 256; nt4 / nn4 use TM and WG only). */
  tile?: { TM: number; TN: number; WG: number };
  /** Allow the 4-wide register-blocked kernels (nt4, nn4) where legal (default true; false forces the scalar gemm_rb). */
  vec4?: boolean;
  label?: string;
}

// ---------------------------------------------------------------- variant choice

const forced = new WeakMap<GPUDevice, GemmVariant>();

/** Forces (or with undefined, un-forces) the GEMM style for every later prepare on `device`. */
export function setGemmVariant(device: GPUDevice, variant: GemmVariant | undefined): void {
  if (variant) forced.set(device, variant);
  else forced.delete(device);
}

/**
 * True for the CPU emulators (lavapipe / llvmpipe, SwiftShader), which run
 * invocations as SIMD lanes: there barriers and per-lane loads are costly
 * and the register-blocked kernel wins. Unknown adapters count as emulators
 * (every host this engine targets without a GPU is one).
 */
export function isCpuEmulator(device: GPUDevice): boolean {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  if (!info) return true;
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`;
  return /llvmpipe|lavapipe|swiftshader|mesa.*software|cpu/i.test(text);
}

/** The style forced by setGemmVariant() on `device`, if any. */
export function forcedGemmVariant(device: GPUDevice): GemmVariant | undefined {
  return forced.get(device);
}

/** The kernel style used on `device` unless a spec forces one. */
export function gemmVariant(device: GPUDevice): GemmVariant {
  return forced.get(device) ?? (isCpuEmulator(device) ? "rb" : "tiled");
}

// ---------------------------------------------------------------- planning

/** A concrete launch of one of the two shaders. */
export interface GemmPlan {
  variant: GemmVariant;
  shader: "gemm_rb" | "gemm_rb_nn4" | "gemm_nt4" | "gemm_tiled";
  /** Computing C^T = op(B)^T op(A)^T (rows of the kernel = columns of C). */
  swapped: boolean;
  R: number;
  S: number;
  constants: Record<string, number>;
  workgroups: [number, number];
}

const MAXT = 8;

function pow2ceil(x: number): number {
  return 2 ** Math.ceil(Math.log2(Math.max(1, x)));
}

/** Register-blocked tile for a kernel problem of R rows x S columns. */
function rbTile(R: number, S: number): { TM: number; TN: number; WG: number; cost: number } {
  const TM = Math.min(MAXT, pow2ceil(R));
  const WG = Math.min(64, Math.max(8, pow2ceil(S)));
  // Several columns per invocation amortize the uniform A loads (measured on lavapipe: 2-3x for 1024^3).
  const TN = S >= 4 * WG ? 4 : S >= 2 * WG ? 2 : 1;
  const cost = Math.ceil(R / TM) * TM * Math.ceil(S / (WG * TN)) * WG * TN;
  return { TM, TN, WG, cost };
}

/** Chooses variant, orientation and tile for `spec` (pure; exported for tests and benchmarks). */
export function planGemm(device: GPUDevice, spec: GemmSpec): GemmPlan {
  const chosen = spec.variant ?? gemmVariant(device);
  const variant = chosen === "ubo" ? "rb" : chosen;
  const { m, n } = spec;
  let swapped = false;
  const flags = layoutFlags(spec, false);
  if (variant === "tiled") {
    const workgroups: [number, number] = [Math.ceil(n / 64), Math.ceil(m / 64)];
    return { variant, shader: "gemm_tiled", swapped, R: m, S: n, constants: flags, workgroups };
  }
  // Both operands contiguous along K (the layer forward X W^T), unmasked: gemm_nt4.
  if (spec.vec4 !== false && !spec.transA && spec.transB && !spec.mask) return planNt4(spec);
  // vec4 columns: B rows and C rows must be whole vec4s, B untransposed and unmasked.
  if (spec.vec4 !== false && !spec.transB && n % 4 === 0 && spec.mask?.operand !== "b" && n >= 16) {
    // One vec4 column and TM <= 8 rows per invocation, WG 16 (written-out tile; measured on lavapipe and SwiftShader).
    const WG = Math.min(16, pow2ceil(n / 4));
    const t = { TM: spec.tile?.TM ?? Math.min(MAXT, m), WG: spec.tile?.WG ?? WG };
    if (t.TM < 1 || t.TM > MAXT || t.WG > 256) throw new KernelInputError(`gemm: nn4 tile TM ${t.TM} (WG ${t.WG}) outside 1..${MAXT} (256)`);
    const { TA, MASK_A, BIAS, ACT } = flags;
    return {
      variant, shader: "gemm_rb_nn4", swapped, R: m, S: n,
      constants: { TA: TA!, MASK_A: MASK_A!, BIAS: BIAS!, ACT: ACT!, WG: t.WG, TM: t.TM },
      workgroups: [Math.ceil(n / (4 * t.WG)), Math.ceil(m / t.TM)],
    };
  }
  let tile = rbTile(m, n);
  const alt = rbTile(n, m);
  if (alt.cost < tile.cost) {
    swapped = true;
    tile = alt;
  }
  if (spec.tile) {
    const { TM, TN, WG } = spec.tile;
    if (TM > MAXT || TN > MAXT || WG > 256) throw new KernelInputError(`gemm: tile ${TM}x${TN} (WG ${WG}) exceeds ${MAXT}x${MAXT} (256)`);
    tile = { ...spec.tile, cost: 0 };
  }
  const [R, S] = swapped ? [n, m] : [m, n];
  const constants = { ...layoutFlags(spec, swapped), WG: tile.WG, TM: tile.TM, TN: tile.TN };
  return { variant, shader: "gemm_rb", swapped, R, S, constants, workgroups: [Math.ceil(S / (tile.WG * tile.TN)), Math.ceil(R / tile.TM)] };
}

/** Rows per invocation and lanes per workgroup of gemm_nt4 (measured best on lavapipe, 1024^3: 8 x 4 columns, WG 8). */
const NT4_TM = 8;
const NT4_WG = 8;

/**
 * gemm_nt4 plan: C = A B^T with A [m, k] and B [n, k], or C^T = B A^T
 * (swapped, stored transposed) when that wastes fewer lanes (n small:
 * the N=1 output layer runs as a GEMV with the batch across lanes).
 */
function planNt4(spec: GemmSpec): GemmPlan {
  const { m, n } = spec;
  const fit = (R: number, S: number, TM: number, WG: number) => Math.ceil(R / TM) * TM * Math.ceil(S / (4 * WG)) * 4 * WG;
  const tm = (R: number) => spec.tile?.TM ?? Math.min(NT4_TM, R);
  const wg = spec.tile?.WG ?? NT4_WG;
  if (tm(m) < 1 || tm(m) > 8 || tm(n) > 8 || wg > 256) throw new KernelInputError(`gemm: nt4 tile TM ${tm(m)} (WG ${wg}) outside 1..8 (256)`);
  const swapped = fit(n, m, tm(n), wg) < fit(m, n, tm(m), wg);
  const [R, S] = swapped ? [n, m] : [m, n];
  const TM = tm(R);
  const constants = { WG: wg, TM, TC: Number(swapped), BIAS: spec.bias ? (swapped ? 2 : 1) : 0, ACT: ACT_CODE[spec.activation ?? "none"] };
  return { variant: "rb", shader: "gemm_nt4", swapped, R, S, constants, workgroups: [Math.ceil(S / (4 * wg)), Math.ceil(R / TM)] };
}

/** Override flags of the shaders for `spec`, in the kernel's orientation. */
function layoutFlags(spec: GemmSpec, swapped: boolean): Record<string, number> {
  const ta = Boolean(spec.transA);
  const tb = Boolean(spec.transB);
  const maskOn = spec.mask?.operand;
  // Swapped: A' = op(B)^T (stored transposed iff B was not), B' = op(A)^T.
  return {
    TA: Number(swapped ? !tb : ta),
    TB: Number(swapped ? !ta : tb),
    TC: Number(swapped),
    MASK_A: Number(maskOn === (swapped ? "b" : "a")),
    MASK_B: Number(maskOn === (swapped ? "a" : "b")),
    BIAS: spec.bias ? (swapped ? 2 : 1) : 0,
    ACT: ACT_CODE[spec.activation ?? "none"],
  };
}

// ---------------------------------------------------------------- validation

function checkDim(label: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new KernelInputError(`${label}: ${name} must be a positive integer, got ${v}`);
}

export function checkBuffer(label: string, name: string, buf: GPUBuffer, elems: number): void {
  if (buf.size < elems * 4) {
    throw new KernelInputError(`${label}: buffer '${name}' (${buf.label || "unlabeled"}) has ${buf.size} bytes, needs ${elems * 4} (${elems} f32)`);
  }
}

// ---------------------------------------------------------------- dispatch

/** One dispatch computing the GEMM in `spec`. Uniforms and bind groups are created once here. */
export function prepareGemmDispatch(device: GPUDevice, spec: GemmSpec): Dispatch {
  const label = spec.label ?? "gemm";
  checkDim(label, "m", spec.m);
  checkDim(label, "n", spec.n);
  checkDim(label, "k", spec.k);
  checkBuffer(label, "a", spec.a, spec.m * spec.k);
  checkBuffer(label, "b", spec.b, spec.k * spec.n);
  checkBuffer(label, "c", spec.c, spec.m * spec.n);
  if (spec.mask) checkBuffer(label, "mask", spec.mask.buffer, spec.mask.operand === "a" ? spec.m * spec.k : spec.k * spec.n);
  if (spec.bias) checkBuffer(label, "bias", spec.bias, spec.n);
  if (spec.c === spec.a || spec.c === spec.b) throw new KernelInputError(`${label}: the output buffer must not alias an input`);

  const plan = planGemm(device, spec);
  const maxWg = device.limits.maxComputeWorkgroupsPerDimension;
  if (plan.workgroups[0] > maxWg || plan.workgroups[1] > maxWg) {
    throw new KernelInputError(`${label}: ${spec.m}x${spec.n} needs ${plan.workgroups.join("x")} workgroups, over the limit ${maxWg}; split the batch`);
  }
  const kernel = getKernel(device, { shader: SHADERS[plan.shader], constants: plan.constants });
  const params = uploadUniform(device, new Uint32Array([plan.R, plan.S, spec.k, 0]), `${label}:params`);
  const [a, b] = plan.swapped ? [spec.b, spec.a] : [spec.a, spec.b];
  // Unused mask / bias bindings get a read-only input (never read; b is vec4-sized for gemm_rb_nn4).
  const resources: Record<string, GPUBuffer> = { params, a, b, bias: spec.bias ?? b, c: spec.c };
  if (plan.shader !== "gemm_nt4") resources.mask = spec.mask?.buffer ?? spec.a;
  const group = bindGroup(device, kernel, resources, label);
  return { label, kernel, bindGroups: [group], workgroups: plan.workgroups };
}

export interface GemmArgs {
  a: GPUBuffer;
  b: GPUBuffer;
  c: GPUBuffer;
  m: number;
  n: number;
  k: number;
  transA?: boolean;
  transB?: boolean;
  variant?: GemmVariant;
  tile?: { TM: number; TN: number; WG: number };
  vec4?: boolean;
}

/** C[m, n] = op(A) · op(B); op(A) is A[m, k] or (transA) A stored [k, m]; op(B) is B[k, n] or (transB) B stored [n, k]. */
export function prepareGemm(device: GPUDevice, args: GemmArgs): Dispatch[] {
  return [prepareGemmDispatch(device, { ...args, label: "gemm" })];
}

/** One-shot prepareGemm + submit. */
export function gemm(device: GPUDevice, args: GemmArgs): void {
  submitDispatches(device, prepareGemm(device, args), "gemm");
}

// The layer-level API lives in ./linear.ts; re-exported so either module path works.
export {
  type LinearBackwardArgs,
  type LinearForwardArgs,
  linearBackward,
  linearForward,
  prepareBiasGrad,
  prepareLinearBackward,
  prepareLinearForward,
} from "./linear.ts";
