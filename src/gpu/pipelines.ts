/**
 * Compute pipelines built from the shaders in shaders/, with explicit bind
 * group layouts derived from each WGSL file by wgsl_reflect (never
 * layout: "auto"). Caches live in WeakMaps keyed by device, so an app's own
 * device works and nothing outlives it. Layouts are shared between kernels
 * whose bindings have the same shape, so forward and backward kernels can
 * share bind groups.
 */
// The package's "main" is CommonJS under "type": "module"; its ES module build works in every host.
import { ResourceType, WgslReflect } from "wgsl_reflect/wgsl_reflect.module.js";
import { shaders, type ShaderName } from "../shaders/generated.ts";
import { KernelInputError } from "./errors.ts";

export type BindingKind = "uniform" | "storage" | "read-only-storage";

export interface BindingInfo {
  group: number;
  binding: number;
  name: string;
  kind: BindingKind;
}

export interface KernelKey {
  shader: ShaderName;
  entryPoint?: string;
  /** Pipeline-overridable constants (workgroup size, tile shape...): part of the cache key. */
  constants?: Record<string, number>;
}

export interface Kernel {
  readonly label: string;
  readonly pipeline: GPUComputePipeline;
  readonly layouts: GPUBindGroupLayout[];
  readonly bindings: BindingInfo[][];
}

const reflected = new Map<ShaderName, BindingInfo[][]>();

/** Bindings of a shader, by group, sorted by binding number. */
export function shaderBindings(shader: ShaderName): BindingInfo[][] {
  let b = reflected.get(shader);
  if (!b) {
    const reflect = new WgslReflect(shaders[shader]);
    b = reflect.getBindGroups().map((group, g) =>
      (group ?? []).filter(Boolean).map((v) => {
        let kind: BindingKind;
        if (v.resourceType === ResourceType.Uniform) kind = "uniform";
        else if (v.resourceType === ResourceType.Storage) kind = v.access === "read_write" ? "storage" : "read-only-storage";
        else throw new Error(`shader ${shader}: binding ${v.name} has a resource type the engine does not use`);
        return { group: g, binding: v.binding, name: v.name, kind };
      }).sort((a, c) => a.binding - c.binding),
    );
    reflected.set(shader, b);
  }
  return b;
}

interface DeviceCache {
  modules: Map<ShaderName, GPUShaderModule>;
  layouts: Map<string, GPUBindGroupLayout>;
  kernels: Map<string, Kernel>;
}

const caches = new WeakMap<GPUDevice, DeviceCache>();

function cacheFor(device: GPUDevice): DeviceCache {
  let c = caches.get(device);
  if (!c) caches.set(device, (c = { modules: new Map(), layouts: new Map(), kernels: new Map() }));
  return c;
}

function layoutFor(device: GPUDevice, cache: DeviceCache, group: BindingInfo[]): GPUBindGroupLayout {
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
  const id = `${key.shader}#${key.entryPoint ?? "main"}${consts.map(([k, v]) => `,${k}=${v}`).join("")}`;
  let kernel = cache.kernels.get(id);
  if (kernel) return kernel;
  let module = cache.modules.get(key.shader);
  if (!module) {
    module = device.createShaderModule({ label: key.shader, code: shaders[key.shader] });
    cache.modules.set(key.shader, module);
  }
  const bindings = shaderBindings(key.shader);
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
    return { binding: b.binding, resource: "buffer" in r ? r : { buffer: r } };
  });
  if (names.size) throw new KernelInputError(`${kernel.label}: unknown bindings ${[...names].join(", ")}`);
  return device.createBindGroup({ label, layout: kernel.layouts[group]!, entries });
}
