/**
 * Wrappers for the DLRM feature interaction (DESIGN.md section 4):
 * shaders/interaction_dot_fwd.wgsl, interaction_dot_bwd.wgsl (op "dot") and
 * interaction_cat_fwd.wgsl, interaction_cat_bwd.wgsl (op "cat").
 *
 * Layout: x [B, d], emb [B, n, d] (compact, table-major inside a sample),
 * out [B, outDim] with outDim = interactionOutputDim(n, d, op, self).
 * "dot": out[b] = cat(x_b, Zflat_b), Zflat in the reference's li/lj order
 * (row i = 1..n, or 0..n with self, j = 0..i-1, or 0..i with self).
 *
 * Three variants of the dot kernels (same results; "sample" and "global" are
 * bit-identical; "workgroup" may differ in the last bits):
 *  - "sample": one invocation per sample running the whole (i, j) loop nest;
 *    every lane follows the same control flow, no per-pair index arithmetic.
 *    Any n; any d forward, d <= 128 backward. The fastest forward on the
 *    software adapters (1.3-2x "global"), but only B invocations: on a real
 *    GPU prefer "global" or "workgroup".
 *  - "workgroup": NVIDIA's design: several samples per workgroup, T (and in the
 *    backward the flat gradient) staged in 16 KiB of workgroup memory, one
 *    barrier, invocations over pairs / (row, column). Needs (n+1)*d (+ pairs in
 *    the backward) <= 4096 floats (vec4 backward: each <= 2048); throws otherwise.
 *    Slightly ahead on lavapipe, 3-8x slower on SwiftShader (barriers).
 *  - "global": one invocation per output element, no workgroup memory, no barrier.
 * "auto" takes "sample" for the forward and "global" for the backward: the
 * fastest or near-fastest on both lavapipe and SwiftShader (bench/interaction.bench.ts).
 * When d % 4 == 0 the *_vec4 shaders run (vec4 loads; x, emb, gradX and gradEmb
 * must then be 16-byte aligned, which compact buffers are).
 */
import { uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { interaction_cat_fwd } from "../shaders/interaction_cat_fwd.ts";
import { interaction_cat_bwd } from "../shaders/interaction_cat_bwd.ts";
import { interaction_dot_fwd } from "../shaders/interaction_dot_fwd.ts";
import { interaction_dot_fwd_vec4 } from "../shaders/interaction_dot_fwd_vec4.ts";
import { interaction_dot_bwd } from "../shaders/interaction_dot_bwd.ts";
import { interaction_dot_bwd_vec4 } from "../shaders/interaction_dot_bwd_vec4.ts";

/** The shaders this wrapper dispatches (generated modules: see CONTRIBUTING.md). */
const SHADERS = { interaction_cat_fwd, interaction_cat_bwd, interaction_dot_fwd, interaction_dot_fwd_vec4, interaction_dot_bwd, interaction_dot_bwd_vec4 };

export type InteractionOp = "dot" | "cat";
export type InteractionVariant = "auto" | "sample" | "workgroup" | "global";

/** Floats of workgroup memory the dot kernels stage (TCAP in the shaders). */
export const INTERACTION_TILE_FLOATS = 4096;
const WG_TILE = 128;
const WG_FLAT = 256;
const WG_SAMPLE = 64;
/** Largest d of the backward's "sample" variant ("auto" falls back to "global" above it). */
export const SAMPLE_BWD_MAX_DIM = 128;

/** Number of Zflat entries: (n+1)n/2, or (n+1)(n+2)/2 with self interaction. */
export function interactionPairs(numEmb: number, self = false): number {
  const rows = numEmb + 1;
  return self ? (rows * (rows + 1)) / 2 : (rows * (rows - 1)) / 2;
}

/** Width of the interaction output (the top MLP's input). */
export function interactionOutputDim(numEmb: number, dim: number, op: InteractionOp, self = false): number {
  return op === "dot" ? dim + interactionPairs(numEmb, self) : (numEmb + 1) * dim;
}

export interface InteractionArgs {
  /** [B, d] bottom MLP output. */
  x: GPUBuffer;
  /** [B, n, d] pooled embeddings, compact. */
  emb: GPUBuffer;
  /** [B, outDim]. */
  out: GPUBuffer;
  batch: number;
  numEmb: number;
  dim: number;
  op: InteractionOp;
  /** Keep Z[i][i] (the reference's arch_interaction_itself). */
  self?: boolean;
  /** Dot kernels only; default "auto". */
  variant?: InteractionVariant;
  /** Workgroup variant: samples per workgroup (default: as many as fit in workgroup memory). */
  samplesPerWorkgroup?: number;
  /** Use the vec4 shaders (default: when d % 4 == 0). */
  vec4?: boolean;
}

export interface InteractionBackwardArgs extends Omit<InteractionArgs, "out"> {
  /** [B, outDim]. */
  gradOut: GPUBuffer;
  /** [B, d] written (not accumulated). */
  gradX: GPUBuffer;
  /** [B, n, d] written (not accumulated). */
  gradEmb: GPUBuffer;
}

function checkShape(what: string, a: Omit<InteractionArgs, "out" | "x" | "emb">): void {
  for (const [k, v] of [["batch", a.batch], ["numEmb", a.numEmb], ["dim", a.dim]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new KernelInputError(`${what}: ${k} must be a positive integer, got ${v}`);
  }
  if (a.op !== "dot" && a.op !== "cat") throw new KernelInputError(`${what}: unknown op '${a.op}' (use "dot" or "cat")`);
  if (a.self && a.op !== "dot") throw new KernelInputError(`${what}: self interaction applies to op "dot" only`);
}

function checkSize(what: string, name: string, buf: GPUBuffer, floats: number): void {
  if (buf.size < floats * 4) {
    throw new KernelInputError(`${what}: ${name} holds ${buf.size} bytes, needs ${floats * 4} (${floats} f32)`);
  }
}

/** Whether the vec4 shaders run. */
function useVec4(what: string, a: InteractionArgs | InteractionBackwardArgs): boolean {
  const v = a.vec4 ?? a.dim % 4 === 0;
  if (v && a.dim % 4 !== 0) throw new KernelInputError(`${what}: vec4 needs dim % 4 == 0, got dim ${a.dim}`);
  return v;
}

/**
 * Resolves the variant and samples per workgroup. `staged` lists, per
 * workgroup-memory array, [floats per sample, capacity in floats].
 */
function plan(
  what: string, a: InteractionArgs | InteractionBackwardArgs, staged: [number, number][], auto: "sample" | "global",
): { kind: "sample" | "workgroup" | "global"; spw: number } {
  const variant = a.variant ?? "auto";
  const maxSpw = Math.min(...staged.map(([per, cap]) => Math.floor(cap / per)));
  if (variant === "workgroup" && maxSpw < 1) {
    throw new KernelInputError(
      `${what}: one sample (n=${a.numEmb}, d=${a.dim}) does not fit the ${INTERACTION_TILE_FLOATS}-float workgroup tile; use variant "global" or "auto"`,
    );
  }
  if (!["auto", "sample", "workgroup", "global"].includes(variant)) {
    throw new KernelInputError(`${what}: unknown variant '${variant}' (auto, sample, workgroup, global)`);
  }
  const kind: "sample" | "workgroup" | "global" = variant === "auto" ? auto : variant;
  const spw = Math.max(1, Math.min(a.samplesPerWorkgroup ?? maxSpw, maxSpw, a.batch));
  if (!Number.isInteger(spw) || spw < 1) throw new KernelInputError(`${what}: samplesPerWorkgroup must be a positive integer`);
  return { kind, spw };
}

export function prepareInteractionForward(device: GPUDevice, args: InteractionArgs): Dispatch[] {
  const what = "interaction forward";
  checkShape(what, args);
  const { batch: B, numEmb: n, dim: d, op } = args;
  const outDim = interactionOutputDim(n, d, op, args.self);
  checkSize(what, "x", args.x, B * d);
  checkSize(what, "emb", args.emb, B * n * d);
  checkSize(what, "out", args.out, B * outDim);
  const maxWg = device.limits.maxComputeWorkgroupsPerDimension;
  if (op === "cat") {
    const total = B * outDim;
    const kernel = getKernel(device, { shader: SHADERS.interaction_cat_fwd, constants: { WG: WG_FLAT } });
    const params = uploadUniform(device, new Uint32Array([B, n, d, total]), "interaction-cat-fwd:params");
    return [{
      label: "interaction_cat_fwd",
      kernel,
      bindGroups: [bindGroup(device, kernel, { params, x: args.x, emb: args.emb, out: args.out }, "interaction-cat-fwd")],
      workgroups: grid(Math.ceil(total / WG_FLAT), maxWg),
    }];
  }
  const pairs = interactionPairs(n, args.self);
  const { kind, spw } = plan(what, args, [[(n + 1) * d, INTERACTION_TILE_FLOATS]], "sample");
  const v4 = useVec4(what, args);
  const total = B * outDim;
  const WG = kind === "workgroup" ? WG_TILE : kind === "sample" ? WG_SAMPLE : WG_FLAT;
  const entryPoint = `main_${kind === "workgroup" ? "wg" : kind}`;
  const shader = v4 ? "interaction_dot_fwd_vec4" : "interaction_dot_fwd";
  const kernel = getKernel(device, { shader: SHADERS[shader], entryPoint, constants: { WG } });
  const dd = v4 ? d / 4 : d;
  const params = uploadUniform(device, new Uint32Array([B, n, dd, outDim, pairs, args.self ? 1 : 0, spw, total]), "interaction-dot-fwd:params");
  return [{
    label: `${shader}(${kind})`,
    kernel,
    bindGroups: [bindGroup(device, kernel, { params, x: args.x, emb: args.emb, out: args.out }, "interaction-dot-fwd")],
    workgroups: grid(kind === "workgroup" ? Math.ceil(B / spw) : kind === "sample" ? Math.ceil(B / WG) : Math.ceil(total / WG), maxWg),
  }];
}

export function prepareInteractionBackward(device: GPUDevice, args: InteractionBackwardArgs): Dispatch[] {
  const what = "interaction backward";
  checkShape(what, args);
  const { batch: B, numEmb: n, dim: d, op } = args;
  const outDim = interactionOutputDim(n, d, op, args.self);
  checkSize(what, "gradOut", args.gradOut, B * outDim);
  checkSize(what, "gradX", args.gradX, B * d);
  checkSize(what, "gradEmb", args.gradEmb, B * n * d);
  const maxWg = device.limits.maxComputeWorkgroupsPerDimension;
  const total = B * (n + 1) * d;
  if (op === "cat") {
    const kernel = getKernel(device, { shader: SHADERS.interaction_cat_bwd, constants: { WG: WG_FLAT } });
    const params = uploadUniform(device, new Uint32Array([B, n, d, total]), "interaction-cat-bwd:params");
    const bg = bindGroup(device, kernel, { params, grad_out: args.gradOut, grad_x: args.gradX, grad_emb: args.gradEmb }, "interaction-cat-bwd");
    return [{ label: "interaction_cat_bwd", kernel, bindGroups: [bg], workgroups: grid(Math.ceil(total / WG_FLAT), maxWg) }];
  }
  checkSize(what, "x", args.x, B * d);
  checkSize(what, "emb", args.emb, B * n * d);
  const pairs = interactionPairs(n, args.self);
  const v4 = useVec4(what, args);
  const half = INTERACTION_TILE_FLOATS / 2;
  const planned = plan(what, args, v4 ? [[(n + 1) * d, half], [pairs, half]] : [[(n + 1) * d + pairs, INTERACTION_TILE_FLOATS]], "global");
  const spw = planned.spw;
  let kind = planned.kind;
  if (kind === "sample" && d > SAMPLE_BWD_MAX_DIM) {
    // Its accumulators hold one row of T (SAMPLE_MAX_D in the shader).
    if (args.variant === "sample") throw new KernelInputError(`${what}: variant "sample" supports dim <= ${SAMPLE_BWD_MAX_DIM}, got ${d}; use "auto"`);
    kind = "global";
  }
  const WG = kind === "workgroup" ? WG_TILE : kind === "sample" ? WG_SAMPLE : WG_FLAT;
  const entryPoint = `main_${kind === "workgroup" ? "wg" : kind}`;
  const shader = v4 ? "interaction_dot_bwd_vec4" : "interaction_dot_bwd";
  const kernel = getKernel(device, { shader: SHADERS[shader], entryPoint, constants: { WG } });
  const dd = v4 ? d / 4 : d;
  const work = B * (n + 1) * dd;
  const params = uploadUniform(device, new Uint32Array([B, n, dd, outDim, pairs, args.self ? 1 : 0, spw, work]), "interaction-dot-bwd:params");
  const bg = bindGroup(
    device,
    kernel,
    { params, x: args.x, emb: args.emb, grad_out: args.gradOut, grad_x: args.gradX, grad_emb: args.gradEmb },
    "interaction-dot-bwd",
  );
  return [{
    label: `${shader}(${kind})`,
    kernel,
    bindGroups: [bg],
    workgroups: grid(kind === "workgroup" ? Math.ceil(B / spw) : kind === "sample" ? Math.ceil(B / WG) : Math.ceil(work / WG), maxWg),
  }];
}

export function interactionForward(device: GPUDevice, args: InteractionArgs): void {
  submitDispatches(device, prepareInteractionForward(device, args), "interaction-forward");
}

export function interactionBackward(device: GPUDevice, args: InteractionBackwardArgs): void {
  submitDispatches(device, prepareInteractionBackward(device, args), "interaction-backward");
}
