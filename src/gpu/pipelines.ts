/**
 * Compute pipelines built from the shaders in shaders/, with explicit bind
 * group layouts generated beside each shader at build time (never
 * layout: "auto", no WGSL parsing at run time). Caches live in WeakMaps keyed
 * by device, so an app's own device works and nothing outlives it. Layouts
 * are shared between kernels whose bindings have the same shape, so forward
 * and backward kernels can share bind groups.
 */
import { checkBufferDevice } from "./buffers.ts";
import { KernelInputError } from "./errors.ts";
import type { BindingInfo, ShaderSource } from "./shader.ts";

export type { BindingInfo, BindingKind, ShaderSource } from "./shader.ts";

export interface KernelKey {
  /** A generated shader module's export, e.g. `copy_f32` from src/shaders/copy_f32.ts. */
  shader: ShaderSource;
  entryPoint?: string;
  /** Pipeline-overridable constants (workgroup size, tile shape...): part of the cache key. */
  constants?: Record<string, number>;
}

export interface Kernel {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly layouts: GPUBindGroupLayout[];
  readonly bindings: readonly (readonly BindingInfo[])[];
}

/** Bindings of a shader, by group, sorted by binding number (generated at build time). */
export function shaderBindings(shader: ShaderSource): readonly (readonly BindingInfo[])[] {
  return shader.bindings;
}

interface DeviceCache {
  modules: Map<string, GPUShaderModule>;
  layouts: Map<string, GPUBindGroupLayout>;
  kernels: Map<string, Kernel>;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = caches.get(device);
  if (!c) caches.set(device, (c = { modules: new Map(), layouts: new Map(), kernels: new Map() }));
  return c;
}

function layoutFor(device: GPUDevice, cache: DeviceCache, group: readonly BindingInfo[]): GPUBindGroupLayout {
  const sig = group.map((b) => `${b.binding}:${b.kind}`).join(",");
  let layout = cache.layouts.get(sig);
  if (!layout) {
    layout = device.createBindGroupLayout({
      label: `layout[${sig}]`,
      entries: group.map((b) => ({ binding: b.binding, visibility: 0x4 /* COMPUTE */, buffer: { type: b.kind } })),
    });
    cache.layouts.set(sig, layout);
  }
  return layout;
}

/** The cached pipeline for `key` on `device`, built on first use. */
export function getKernel(device: GPUDevice, key: KernelKey): Kernel {
  const cache = cacheFor(device);
  const consts = key.constants ? Object.entries(key.constants).sort(([a], [b]) => a.localeCompare(b)) : [];
  const shader = key.shader;
  if (typeof shader !== "object" || typeof shader?.code !== "string") {
    throw new KernelInputError(`getKernel: 'shader' must be a generated shader module's export (import { name } from "src/shaders/name.ts"), got ${typeof shader === "string" ? `the string "${shader}"` : typeof shader}`);
  }
  const id = `${shader.name}#${key.entryPoint ?? "main"}${consts.map(([k, v]) => `,${k}=${v}`).join("")}`;
  let kernel = cache.kernels.get(id);
  if (kernel) return kernel;
  let module = cache.modules.get(shader.name);
  if (!module) {
    module = device.createShaderModule({ label: shader.name, code: shader.code });
    cache.modules.set(shader.name, module);
  }
  const bindings = shader.bindings;
  const layouts = bindings.map((g) => layoutFor(device, cache, g));
  const pipeline = device.createComputePipeline({
    label: id,
    layout: device.createPipelineLayout({ label: `${id}:layout`, bindGroupLayouts: layouts }),
    compute: { module, entryPoint: key.entryPoint ?? "main", constants: Object.fromEntries(consts) },
  });
  kernel = { label: id, pipeline, layouts, bindings };
  cache.kernels.set(id, kernel);
  return kernel;
}

export type Resource = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

/**
 * A bind group for `group` of `kernel`, resources named as in the WGSL.
 * Missing or unknown names are errors, so a wrapper cannot bind the wrong buffer silently.
 */
export function bindGroup(device: GPUDevice, kernel: Kernel, resources: Record<string, Resource>, label: string, group = 0): GPUBindGroup {
  const infos = kernel.bindings[group] ?? [];
  const names = new Set(Object.keys(resources));
  const entries: GPUBindGroupEntry[] = infos.map((b) => {
    const r = resources[b.name];
    if (!r) throw new KernelInputError(`${kernel.label}: binding '${b.name}' (group ${group}) was not given`);
    names.delete(b.name);
    const res = "buffer" in r ? r : { buffer: r };
    checkBufferDevice(device, res.buffer, `${kernel.label}: binding '${b.name}'`);
    return { binding: b.binding, resource: res };
  });
  if (names.size) throw new KernelInputError(`${kernel.label}: unknown bindings ${[...names].join(", ")}`);
  return device.createBindGroup({ label, layout: kernel.layouts[group]!, entries });
}
