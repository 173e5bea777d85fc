/**
 * Wrappers for the QR / MD embedding combine kernels:
 *   shaders/embedding_combine_fwd.wgsl  E [B, n, d] from the pooled sub-tables P [B, W]
 *   shaders/embedding_combine_bwd.wgsl  dP [B, W] from dE (no atomics: each P column has one owner)
 *   shaders/embedding_proj_grad.wgsl    d(proj) packed like proj, sum over b in a fixed order
 * The layout (which columns of P each logical table reads, how it combines
 * them) comes from src/model/embedding_layout.ts: packCombine() / uploadCombineDescriptors().
 */
import { STORAGE, uploadStorage, uploadUniform } from "../gpu/buffers.ts";
import { type Dispatch, grid, submitDispatches } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { embedding_combine_fwd } from "../shaders/embedding_combine_fwd.ts";
import { embedding_combine_bwd } from "../shaders/embedding_combine_bwd.ts";
import { embedding_proj_grad } from "../shaders/embedding_proj_grad.ts";

/** The shaders this wrapper dispatches (generated modules: see CONTRIBUTING.md). */
const SHADERS = { embedding_combine_fwd, embedding_combine_bwd, embedding_proj_grad };
import { type EmbeddingLayout, type PackedCombine, packCombine } from "../model/embedding_layout.ts";

const WG = 256;

/** The packed descriptors of a layout on the GPU (upload once per model). */
export interface CombineDescriptors extends Omit<PackedCombine, "data"> {
  buffer: GPUBuffer;
}

export function uploadCombineDescriptors(device: GPUDevice, layout: EmbeddingLayout | PackedCombine, label = "embedding-combine:desc"): CombineDescriptors {
  const packed = "data" in layout ? layout : packCombine(layout);
  const { data, ...rest } = packed;
  return { ...rest, buffer: uploadStorage(device, data, label) };
}

interface Common {
  /** Elements per invocation of the forward / backward kernels: 4 (default when d resp. W is a multiple of 4) or 1. */
  elementsPerInvocation?: 1 | 4;
  /** P [B, W] f32: the pooled sub-tables (forward values). */
  pooled: GPUBuffer;
  desc: CombineDescriptors;
  batch: number;
}

export interface CombineForwardArgs extends Common {
  /** Packed projections (desc.projSize floats); may be omitted when desc.projSize is 0. */
  proj?: GPUBuffer;
  /** E [B, n, d] f32, compact. */
  out: GPUBuffer;
}

export interface CombineBackwardArgs extends Common {
  proj?: GPUBuffer;
  /** dE [B, n, d]. */
  gradOut: GPUBuffer;
  /** dP [B, W], fully overwritten (padding columns get 0). */
  gradPooled: GPUBuffer;
}

export interface ProjGradArgs extends Common {
  gradOut: GPUBuffer;
  /** d(proj), desc.projSize floats, overwritten. */
  gradProj: GPUBuffer;
}

const dummies = new WeakMap<GPUDevice, GPUBuffer>();
function dummy(device: GPUDevice): GPUBuffer {
  let b = dummies.get(device);
  if (!b) dummies.set(device, (b = device.createBuffer({ label: "embedding-combine:no-proj", size: 4, usage: STORAGE })));
  return b;
}

function need(buf: GPUBuffer, floats: number, what: string): void {
  if (buf.size < floats * 4) throw new KernelInputError(`embedding combine: ${what} holds ${Math.floor(buf.size / 4)} floats but needs ${floats}`);
}

function checkCommon(a: Common): void {
  const B = a.batch;
  if (!Number.isInteger(B) || B < 1) throw new KernelInputError(`embedding combine: batch must be a positive integer, got ${B}`);
  const { numTables: n, dim: d, width: W } = a.desc;
  if (B * Math.max(n * d, W) >= 2 ** 32) throw new KernelInputError(`embedding combine: batch ${B} x ${Math.max(n * d, W)} floats exceeds 2^32 elements; split the batch`);
  need(a.pooled, B * W, `pooled P [B=${B}, W=${W}]`);
}

function projOrDummy(device: GPUDevice, desc: CombineDescriptors, proj: GPUBuffer | undefined): GPUBuffer {
  if (desc.projSize === 0) return proj ?? dummy(device);
  if (!proj) throw new KernelInputError(`embedding combine: the layout has ${desc.numProj} MD projections (${desc.projSize} floats); pass proj`);
  need(proj, desc.projSize, "proj");
  return proj;
}

function params(device: GPUDevice, desc: CombineDescriptors, batch: number, total: number, label: string): GPUBuffer {
  const p = new Uint32Array([batch, desc.numTables, desc.dim, desc.width, total, desc.colMapOffset, desc.projListOffset, desc.numProj]);
  return uploadUniform(device, p, label);
}

/** `invocations` invocations of `shader`, each handling `per` elements (PER override; proj grad has none). */
function dispatch(
  device: GPUDevice,
  shader: "embedding_combine_fwd" | "embedding_combine_bwd" | "embedding_proj_grad",
  resources: Record<string, GPUBuffer>,
  invocations: number,
  per?: number,
): Dispatch {
  const kernel = getKernel(device, { shader: SHADERS[shader], constants: per === undefined ? { WG } : { WG, PER: per } });
  return {
    label: shader,
    kernel,
    bindGroups: [bindGroup(device, kernel, resources, shader)],
    workgroups: grid(Math.ceil(invocations / WG), device.limits.maxComputeWorkgroupsPerDimension),
  };
}

/** E[b, t, :] for every logical table from P (see shaders/embedding_combine_fwd.wgsl). */
export function prepareEmbeddingCombineForward(device: GPUDevice, args: CombineForwardArgs): Dispatch[] {
  checkCommon(args);
  const { desc, batch: B } = args;
  const total = B * desc.numTables * desc.dim;
  need(args.out, total, `out E [B=${B}, n=${desc.numTables}, d=${desc.dim}]`);
  const proj = projOrDummy(device, desc, args.proj);
  const per = args.elementsPerInvocation ?? (desc.dim % 4 === 0 ? 4 : 1);
  if (per !== 1 && (per !== 4 || desc.dim % 4 !== 0)) throw new KernelInputError(`embedding combine: elementsPerInvocation must be 1, or 4 when d % 4 == 0; got ${per} for d = ${desc.dim}`);
  const u = params(device, desc, B, total / per, "embedding-combine-fwd:params");
  return [dispatch(device, "embedding_combine_fwd", { params: u, desc: desc.buffer, pooled: args.pooled, proj, out: args.out }, total / per, per)];
}

/** dP from dE (see shaders/embedding_combine_bwd.wgsl); uses P (mult) and proj (project) as in the forward. */
export function prepareEmbeddingCombineBackward(device: GPUDevice, args: CombineBackwardArgs): Dispatch[] {
  checkCommon(args);
  const { desc, batch: B } = args;
  need(args.gradOut, B * desc.numTables * desc.dim, "gradOut dE");
  const total = B * desc.width;
  need(args.gradPooled, total, "gradPooled dP");
  const proj = projOrDummy(device, desc, args.proj);
  const per = args.elementsPerInvocation ?? (desc.width % 4 === 0 ? 4 : 1);
  if (per !== 1 && (per !== 4 || desc.width % 4 !== 0)) throw new KernelInputError(`embedding combine: elementsPerInvocation must be 1, or 4 when W % 4 == 0; got ${per} for W = ${desc.width}`);
  const u = params(device, desc, B, total / per, "embedding-combine-bwd:params");
  return [
    dispatch(device, "embedding_combine_bwd", { params: u, desc: desc.buffer, pooled: args.pooled, proj, grad_out: args.gradOut, grad_pooled: args.gradPooled }, total / per, per),
  ];
}

/** Gradient of the packed MD projections (see shaders/embedding_proj_grad.wgsl); no dispatch when there are none. */
export function prepareEmbeddingProjGrad(device: GPUDevice, args: ProjGradArgs): Dispatch[] {
  checkCommon(args);
  const { desc, batch: B } = args;
  if (desc.projSize === 0) return [];
  need(args.gradOut, B * desc.numTables * desc.dim, "gradOut dE");
  need(args.gradProj, desc.projSize, "gradProj");
  const u = params(device, desc, B, desc.projSize, "embedding-proj-grad:params");
  return [dispatch(device, "embedding_proj_grad", { params: u, desc: desc.buffer, pooled: args.pooled, grad_out: args.gradOut, grad_proj: args.gradProj }, desc.projSize)];
}

export function embeddingCombineForward(device: GPUDevice, args: CombineForwardArgs): void {
  submitDispatches(device, prepareEmbeddingCombineForward(device, args), "embedding_combine_fwd");
}

export function embeddingCombineBackward(device: GPUDevice, args: CombineBackwardArgs): void {
  submitDispatches(device, prepareEmbeddingCombineBackward(device, args), "embedding_combine_bwd");
}

export function embeddingProjGrad(device: GPUDevice, args: ProjGradArgs): void {
  submitDispatches(device, prepareEmbeddingProjGrad(device, args), "embedding_proj_grad");
}
