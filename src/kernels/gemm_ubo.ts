/**
 * The uniform-buffer GEMM (shaders/gemm_ubo_nt.wgsl + shaders/gemm_pack.wgsl)
 * for the layer forward Y = act(X W^T + b) and the backward dX = dZ W on
 * lavapipe, where a storage-buffer load that differs across SIMD lanes costs a
 * branchy per-lane loop and a uniform-buffer one is a branch-free gather.
 *   pack:   P[s, 0..KP) = W row s (forward) or W column s (dX), zero padded
 *   chunks: one dispatch per SC = 8*TN output columns, binding P's rows of
 *           that chunk (SC*KP floats <= 64 KiB) as the uniform buffer
 * The packed operand buffer is cached per (weight buffer, orientation) and is
 * rewritten by the pack dispatch at every execution, so weights updated by an
 * optimizer are always current.
 */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { gemm_pack } from "../shaders/gemm_pack.ts";
import { gemm_ubo_nt } from "../shaders/gemm_ubo_nt.ts";
import { relu_mask } from "../shaders/relu_mask.ts";
import type { Activation } from "./gemm.ts";

const ACT_CODE: Record<Activation, number> = { none: 0, relu: 1, sigmoid: 2 };
/** Bytes of one uniform binding (the shader's array<vec4<f32>, 4096>). */
export const UBO_BYTES = 65536;
const WG = 8;

export interface UboGemmSpec {
  /** A [m, k] row-major. */
  a: GPUBuffer;
  /** The weight: [n, k] (forward, trans false) or [k, n] read transposed (dX, trans true). */
  w: GPUBuffer;
  trans: boolean;
  c: GPUBuffer;
  m: number;
  n: number;
  k: number;
  mask?: GPUBuffer;
  bias?: GPUBuffer;
  activation?: Activation;
  /** false: never split a long reduction into accumulating slices (A/B benchmarks). */
  split?: boolean;
  label: string;
}

/** Columns per invocation for a padded reduction length, or 0 when one chunk row does not fit a binding. */
export function uboTile(k: number): { TN: number; KP: number } {
  const KP = Math.ceil(k / 8) * 8;
  for (const TN of [4, 2, 1]) if (WG * TN * KP * 4 <= UBO_BYTES) return { TN, KP };
  return { TN: 0, KP };
}

/** True for the adapters where the uniform-buffer GEMM is the default (tuning table: lavapipe / llvmpipe). */
export function prefersUboGemm(device: GPUDevice): boolean {
  const info = (device as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
  if (!info) return false;
  return /llvmpipe|lavapipe/i.test(`${info.vendor} ${info.architecture} ${info.device} ${info.description}`);
}

const packed = new WeakMap<GPUBuffer, Map<string, GPUBuffer>>();

export function packedBuffer(device: GPUDevice, w: GPUBuffer, trans: boolean, bytes: number, slice = 0): GPUBuffer {
  let m = packed.get(w);
  if (!m) packed.set(w, (m = new Map()));
  const key = `${trans}:${bytes}:${slice}`;
  let buf = m.get(key);
  if (!buf) {
    buf = device.createBuffer({ label: `${w.label || "w"}:packed${trans ? "T" : ""}`, size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM });
    m.set(key, buf);
  }
  return buf;
}

const wide = new WeakMap<GPUDevice, boolean>();

/**
 * Forces the wide tile (TN 8 x TM 4, reductions in slices of 256) on or off for later prepares on
 * `device`, or (undefined) back to the tuning table: on for lavapipe (prefersUboGemm), where it
 * measured 1.4-4.4x faster per layer GEMM than TN 4 x TM 8 (BENCHMARKS.md "GEMM on lavapipe").
 */
export function setUboWide(device: GPUDevice, on: boolean | undefined): void {
  if (on === undefined) wide.delete(device);
  else wide.set(device, on);
}

function wideOn(device: GPUDevice): boolean {
  return wide.get(device) ?? prefersUboGemm(device);
}

/** Reduction slice of the wide tile: uboTile-like 8 * 8 * 256 floats = one 64 KiB binding. */
export const UBO_WIDE_SLICE = 256;

const noA4 = new WeakSet<GPUDevice>();

/** Turns the vec4 A loads (A4) off (false) or back on for later prepares on `device` (A/B benchmarks). */
export function setUboA4(device: GPUDevice, on: boolean): void {
  if (on) noA4.delete(device);
  else noA4.add(device);
}

function a4On(device: GPUDevice): boolean {
  return !noA4.has(device);
}

const noSplit = new WeakSet<GPUDevice>();

/** Turns the K split off (false) or back on for later prepares on `device` (A/B benchmarks). */
export function setUboSplit(device: GPUDevice, on: boolean): void {
  if (on) noSplit.delete(device);
  else noSplit.add(device);
}

/** Reduction slice of a K-split GEMM: 512 keeps 4 columns per invocation (uboTile(512).TN = 4). */
export const UBO_K_SLICE = 512;

/**
 * The pack dispatch and one GEMM dispatch per column chunk (uniforms and bind groups made once here).
 * A reduction too long for 4 columns per invocation (k > 512) is split into slices of 512: per slice
 * a pack and the chunk dispatches, the later slices adding to C in slice order, the last one applying
 * bias and activation.
 */
export function prepareUboGemm(device: GPUDevice, spec: UboGemmSpec): Dispatch[] {
  const { m, n, k, label } = spec;
  for (const [name, v] of [["m", m], ["n", n], ["k", k]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new KernelInputError(`${label}: ${name} must be a positive integer, got ${v}`);
  }
  if (spec.c === spec.a || spec.c === spec.w) throw new KernelInputError(`${label}: the output buffer must not alias an input`);
  // The wide tile where a chunk of 64 columns is filled (narrow outputs keep TN <= 4).
  const isWide = wideOn(device) && n >= 8 * WG;
  const split = isWide ? k > UBO_WIDE_SLICE : uboTile(k).TN < 4 && spec.split !== false && !noSplit.has(device);
  const KS = split ? (isWide ? UBO_WIDE_SLICE : UBO_K_SLICE) : k;
  const { TN, KP } = isWide ? { TN: 8, KP: Math.ceil(KS / 8) * 8 } : uboTile(KS);
  if (!TN) throw new RangeError(`${label}: reduction length ${k} too long for the uniform-buffer GEMM`);
  const SC = WG * TN;
  const chunks = Math.ceil(n / SC);
  const slices = Math.ceil(k / KS);
  // Every chunk's binding holds a full 64 KiB, past the last packed row too.
  const bytes = (chunks - 1) * SC * KP * 4 + UBO_BYTES;
  const TM = Math.min(isWide ? 4 : 8, m);
  const rowGroups = Math.ceil(m / TM);
  if (rowGroups > device.limits.maxComputeWorkgroupsPerDimension) {
    throw new KernelInputError(`${label}: ${m} rows need ${rowGroups} workgroups, over the limit ${device.limits.maxComputeWorkgroupsPerDimension}; split the batch`);
  }
  const packKernel = getKernel(device, { shader: gemm_pack, constants: { WG: 256, TRANS: Number(spec.trans) } });
  const out: Dispatch[] = [];
  const a4 = !spec.mask && k % 4 === 0 && KS % 4 === 0 && a4On(device);
  for (let sl = 0; sl < slices; sl++) {
    const k0 = sl * KS;
    const KL = Math.min(KS, k - k0);
    const p = packedBuffer(device, spec.w, spec.trans, bytes, sl);
    const packParams = uploadUniform(device, new Uint32Array([n, k, KP, k0]), `${label}:pack-params${sl}`);
    out.push({
      label: `${label}:pack`,
      kernel: packKernel,
      bindGroups: [bindGroup(device, packKernel, { params: packParams, src: spec.w, dst: p }, `${label}:pack${sl}`)],
      workgroups: grid(Math.ceil((n * KP) / 256), device.limits.maxComputeWorkgroupsPerDimension),
    });
    const kernel = getKernel(device, {
      shader: gemm_ubo_nt,
      // Bias and activation in the last slice only (C = act(C + sum + bias)).
      constants: { WG, TM, TN, A4: Number(a4), MASK_A: Number(Boolean(spec.mask)), BIAS: spec.bias && sl === slices - 1 ? 1 : 0, ACT: sl === slices - 1 ? ACT_CODE[spec.activation ?? "none"] : 0, ACCUM: Number(sl > 0) },
    });
    for (let ch = 0; ch < chunks; ch++) {
      const s0 = ch * SC;
      const params = uploadUniform(device, new Uint32Array([m, n, k, KP, s0, k0, KL, 0]), `${label}:params${sl}.${ch}`);
      const group = bindGroup(device, kernel, {
        // a4 unused (A4 off): any read-only buffer of at least one vec4 (the packed operand).
        params, a: spec.a, a4: a4 ? spec.a : p, w: { buffer: p, offset: s0 * KP * 4, size: UBO_BYTES },
        mask: spec.mask ?? spec.a, bias: spec.bias ?? spec.a, c: spec.c,
      }, `${label}:chunk${ch}${slices > 1 ? `:slice${sl}` : ""}`);
      out.push({ label, kernel, bindGroups: [group], workgroups: [1, rowGroups] });
    }
  }
  return out;
}

const transposed = new WeakMap<GPUBuffer, GPUBuffer>();

/**
 * dst[c, r] = src[r, c] for src [rows, cols] (shaders/gemm_pack.wgsl with TRANS and KP = K), into a
 * scratch buffer cached per source buffer: the A operand of the dW GEMM, whose reduction runs over the
 * batch (dW[n, k] = dZ^T X needs dZ^T [n, B] row-major).
 */
export function prepareTranspose(device: GPUDevice, args: { src: GPUBuffer; rows: number; cols: number; label: string }): { dispatch: Dispatch; dst: GPUBuffer } {
  const count = args.rows * args.cols;
  let dst = transposed.get(args.src);
  if (!dst || dst.size < count * 4) {
    dst?.destroy();
    dst = device.createBuffer({ label: `${args.src.label || "src"}:T`, size: Math.max(4, count * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    transposed.set(args.src, dst);
  }
  const kernel = getKernel(device, { shader: gemm_pack, constants: { WG: 256, TRANS: 1 } });
  const params = uploadUniform(device, new Uint32Array([args.cols, args.rows, args.rows, 0]), `${args.label}:params`);
  return {
    dst,
    dispatch: {
      label: args.label,
      kernel,
      bindGroups: [bindGroup(device, kernel, { params, src: args.src, dst }, args.label)],
      workgroups: grid(Math.ceil(count / 256), device.limits.maxComputeWorkgroupsPerDimension),
    },
  };
}

const scratch = new WeakMap<GPUBuffer, GPUBuffer>();

/**
 * dZ = dY masked by (Y > 0) into a scratch buffer cached per dY buffer (shaders/relu_mask.wgsl):
 * the dispatch and the buffer the layer's backward GEMMs then read unmasked.
 */
export function prepareReluMask(device: GPUDevice, args: { dy: GPUBuffer; y: GPUBuffer; count: number; label: string }): { dispatch: Dispatch; dz: GPUBuffer } {
  let dz = scratch.get(args.dy);
  if (!dz || dz.size < args.count * 4) {
    dz = device.createBuffer({ label: `${args.dy.label || "dy"}:relu-masked`, size: Math.max(4, args.count * 4), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    scratch.set(args.dy, dz);
  }
  const kernel = getKernel(device, { shader: relu_mask, constants: { WG: 256 } });
  const params = uploadUniform(device, new Uint32Array([args.count]), `${args.label}:params`);
  return {
    dz,
    dispatch: {
      label: args.label,
      kernel,
      bindGroups: [bindGroup(device, kernel, { params, dy: args.dy, y: args.y, dz }, args.label)],
      workgroups: grid(Math.ceil(args.count / 256), device.limits.maxComputeWorkgroupsPerDimension),
    },
  };
}
