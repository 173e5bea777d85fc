/**
 * GpuContext: one GPUDevice with what the engine keeps beside it (adapter
 * facts, buffer pool, device-loss state). Kernel wrappers take a plain
 * GPUDevice, so apps with their own device can use them; the context is the
 * engine's own way to get and look after devices.
 */
import { ConfigError, DeviceLostError, GpuError, NoAdapterError, UnsupportedError } from "./errors.ts";
import { detectHost, getGPU, NO_ADAPTER_HELP, type HostName } from "./host.ts";
import { BufferPool } from "./buffers.ts";

export interface AdapterFacts {
  host: HostName;
  /** Human-readable adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)" or "SwiftShader Device". */
  name: string;
  vendor: string;
  architecture: string;
  isFallbackAdapter: boolean;
  features: string[];
  /**
   * The host's own name for the adapter where it has one besides the
   * description (Dawn's adapter list: "SwiftShader Device (Subzero)"); else
   * the same as `name`.
   */
  listedName: string;
  /** Driver text where the host gives one (may be empty). */
  driver: string;
}

export interface DeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** Label prefix for the device(s). */
  label?: string;
  /** Require these optional features (in addition to the ones taken when available). */
  requiredFeatures?: GPUFeatureName[];
}

/** Limits the engine asks for at their adapter maximum instead of the defaults. */
const WANTED_LIMITS = [
  "maxStorageBufferBindingSize",
  "maxBufferSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupSizeX",
  "maxComputeWorkgroupSizeY",
  "maxComputeWorkgroupsPerDimension",
  "maxBindGroups",
] as const;

/** Optional features taken whenever the adapter offers them. */
const OPTIONAL_FEATURES: GPUFeatureName[] = ["timestamp-query"];

export class GpuContext {
  readonly pool: BufferPool;
  /** Set once the device is lost; every later use should fail with it. */
  lostError: DeviceLostError | undefined;
  readonly lost: Promise<DeviceLostError>;

  constructor(
    readonly device: GPUDevice,
    readonly adapter: AdapterFacts,
  ) {
    this.pool = new BufferPool(device);
    this.lost = device.lost.then((info) => {
      this.lostError = new DeviceLostError(info.reason ?? "unknown", info.message || "no detail");
      return this.lostError;
    });
  }

  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  get hasTimestamps(): boolean {
    return this.device.features.has("timestamp-query");
  }

  /** Throws the DeviceLostError if the device is gone. */
  assertAlive(): void {
    if (this.lostError) throw this.lostError;
  }

  /**
   * Runs `fn` inside validation / out-of-memory / internal error scopes and
   * throws a GpuError naming `label` if WebGPU reported one.
   */
  async checked<T>(label: string, fn: () => T | Promise<T>): Promise<T> {
    return withErrorScopes(this.device, label, fn);
  }

  destroy(): void {
    this.pool.destroy();
    this.device.destroy();
  }
}

/** Runs fn in error scopes on `device`; throws GpuError for the first error seen. */
export async function withErrorScopes<T>(device: GPUDevice, label: string, fn: () => T | Promise<T>): Promise<T> {
  device.pushErrorScope("internal");
  device.pushErrorScope("out-of-memory");
  device.pushErrorScope("validation");
  let result: T;
  try {
    result = await fn();
  } finally {
    const validation = await device.popErrorScope();
    const oom = await device.popErrorScope();
    const internal = await device.popErrorScope();
    const first = validation ?? oom ?? internal;
    if (first) {
      const kind = first === validation ? "validation" : first === oom ? "out-of-memory" : "internal";
      // eslint-disable-next-line no-unsafe-finally
      throw new GpuError(kind, label, first.message);
    }
  }
  return result;
}

function adapterFacts(adapter: GPUAdapter, host: HostName, listedName?: string): AdapterFacts {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean; driver?: string };
  const name = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
  return {
    host,
    name,
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    isFallbackAdapter: Boolean(info.isFallbackAdapter),
    features: [...adapter.features].sort(),
    listedName: listedName ?? name,
    driver: info.driver ?? "",
  };
}

/** Requests the adapter (first one the host offers for the power preference). */
export async function requestAdapter(options: DeviceOptions = {}): Promise<GPUAdapter> {
  const gpu = await getGPU();
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) throw new NoAdapterError(`${detectHost()}: ${NO_ADAPTER_HELP}`);
  return adapter;
}

async function deviceFrom(adapter: GPUAdapter, options: DeviceOptions, index: number, listedName?: string): Promise<GpuContext> {
  const requiredLimits: Record<string, number> = {};
  for (const k of WANTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === "number") requiredLimits[k] = v;
  }
  const features = OPTIONAL_FEATURES.filter((f) => adapter.features.has(f));
  for (const f of options.requiredFeatures ?? []) {
    if (!adapter.features.has(f)) throw new UnsupportedError(`adapter lacks the WebGPU feature '${f}'`);
    if (!features.includes(f)) features.push(f);
  }
  const device = await adapter.requestDevice({
    label: `${options.label ?? "dlrm"}-device-${index}`,
    requiredLimits,
    requiredFeatures: features,
  });
  return new GpuContext(device, adapterFacts(adapter, detectHost(), listedName));
}

/** One device on the first adapter, with the limits the engine needs. */
export async function createContext(options: DeviceOptions = {}): Promise<GpuContext> {
  const [ctx] = await createContexts(1, options);
  return ctx!;
}

/**
 * Independent devices, each with its own memory and queue.
 *
 * - `createContexts(n)`: n devices on the host's first adapter (hosts that
 *   expose one adapter give several devices on it; a GPUAdapter hands out
 *   only one device, so the adapter is requested again for each).
 * - `createContexts(["llvmpipe", "swiftshader"])`: one device per entry, on
 *   the adapter whose name contains the entry (case-insensitive; a name may
 *   repeat for two devices on one adapter). See `listAdapters` for what the
 *   host offers; an entry that matches none fails with the list.
 */
export async function createContexts(count: number | readonly string[], options: DeviceOptions = {}): Promise<GpuContext[]> {
  if (typeof count !== "number") return contextsOn(count, options);
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`device count must be a positive integer, got ${count}`);
  const out: GpuContext[] = [];
  for (let i = 0; i < count; i++) {
    const adapter = await requestAdapter(options);
    out.push(await deviceFrom(adapter, options, i));
  }
  return out;
}

/** One adapter the host offers, and how to ask for it again (each device needs its own GPUAdapter). */
export interface AdapterEntry {
  facts: AdapterFacts;
  limits: Record<string, number>;
  /** A fresh GPUAdapter for this entry. */
  request(): Promise<GPUAdapter>;
}

/** Limits `dlrm adapters` shows (the ones the engine's kernels and buffers depend on). */
export const LISTED_LIMITS = [
  "maxBufferSize",
  "maxStorageBufferBindingSize",
  "maxStorageBuffersPerShaderStage",
  "maxComputeWorkgroupStorageSize",
  "maxComputeInvocationsPerWorkgroup",
  "maxComputeWorkgroupsPerDimension",
] as const;

/**
 * Node's `webgpu` package: every GPU object create() returns must stay
 * referenced for the life of the process (Dawn crashes when one is collected
 * while its adapters or devices live), so they are kept here, one per flag set.
 */
const nodeGpus = new Map<string, GPU>();

async function nodeGpu(adapterName: string | undefined): Promise<GPU> {
  await getGPU(); // loads the package and installs its globals
  const key = adapterName ?? "";
  let gpu = nodeGpus.get(key);
  if (!gpu) {
    const pkg = "webgpu";
    const mod = (await import(/* @vite-ignore */ pkg)) as { create: (flags: string[]) => GPU };
    gpu = mod.create(adapterName === undefined ? [] : [`adapter=${adapterName}`]);
    nodeGpus.set(key, gpu);
  }
  return gpu;
}

/**
 * Dawn's adapter names ("SwiftShader Device (Subzero)", "llvmpipe (LLVM
 * 15.0.6, 256 bits)"): Dawn lists them when no adapter matches the requested
 * name, which is the only enumeration the package exposes.
 */
async function dawnAdapterNames(): Promise<string[]> {
  const gpu = await nodeGpu("dlrm-list-adapters (no such adapter)");
  try {
    const a = await gpu.requestAdapter();
    if (a) return [];
  } catch (e) {
    const names = [...String((e as Error).message).matchAll(/name: '([^']*)'/g)].map((m) => m[1]!);
    return [...new Set(names)];
  }
  return [];
}

function limitsOf(adapter: GPUAdapter): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of LISTED_LIMITS) {
    const v = (adapter.limits as unknown as Record<string, number>)[k];
    if (typeof v === "number") out[k] = v;
  }
  return out;
}

/**
 * The adapters this host offers. Node: every adapter Dawn sees (all Vulkan
 * ICDs in VK_ICD_FILENAMES). Deno and browsers: the distinct adapters
 * returned for the default, high-performance and low-power preferences.
 */
export async function listAdapters(): Promise<AdapterEntry[]> {
  const host = detectHost();
  const out: AdapterEntry[] = [];
  if (host === "node") {
    for (const listed of await dawnAdapterNames()) {
      const request = async () => {
        const a = await (await nodeGpu(listed)).requestAdapter();
        if (!a) throw new NoAdapterError(`node: adapter '${listed}' went away`);
        return a;
      };
      const a = await request();
      out.push({ facts: adapterFacts(a, host, listed), limits: limitsOf(a), request });
    }
    if (out.length) return out;
  }
  const gpu = await getGPU();
  const seen = new Set<string>();
  for (const powerPreference of [undefined, "high-performance", "low-power"] as const) {
    const a = await gpu.requestAdapter({ powerPreference });
    if (!a) continue;
    const facts = adapterFacts(a, host);
    const id = `${facts.name}|${facts.vendor}|${facts.architecture}`;
    if (seen.has(id)) continue;
    seen.add(id);
    const request = async () => {
      const again = await gpu.requestAdapter({ powerPreference });
      if (!again) throw new NoAdapterError(`${host}: adapter '${facts.name}' went away`);
      return again;
    };
    out.push({ facts, limits: limitsOf(a), request });
  }
  if (!out.length) throw new NoAdapterError(`${host}: ${NO_ADAPTER_HELP}`);
  return out;
}

/** Text an adapter name is matched against: its names, vendor and architecture (plus "lavapipe" for llvmpipe). */
function matchText(f: AdapterFacts): string {
  const t = `${f.listedName} ${f.name} ${f.vendor} ${f.architecture}`.toLowerCase();
  return t.includes("llvmpipe") ? `${t} lavapipe` : t;
}

/** The adapter whose name contains `wanted` (case-insensitive); ConfigError listing the adapters when none does. */
export function matchAdapter<T extends { facts: AdapterFacts }>(entries: readonly T[], wanted: string): T {
  const w = wanted.trim().toLowerCase();
  const hits = w ? entries.filter((e) => matchText(e.facts).includes(w)) : [];
  const list = entries.map((e) => `'${e.facts.listedName}'${e.facts.listedName !== e.facts.name ? ` (${e.facts.name})` : ""}`).join(", ");
  if (hits.length === 0) {
    const hint = detectHost() === "node" ? " Under Node every Vulkan ICD listed in VK_ICD_FILENAMES (colon-separated) is an adapter." : "";
    throw new ConfigError(`no adapter matches '${wanted}'; available: ${list || "none"}.${hint}`);
  }
  if (hits.length > 1 && new Set(hits.map((h) => h.facts.listedName)).size > 1) {
    throw new ConfigError(`'${wanted}' matches ${hits.length} adapters (${hits.map((h) => `'${h.facts.listedName}'`).join(", ")}); give more of the name. Available: ${list}.`);
  }
  return hits[0]!;
}

async function contextsOn(names: readonly string[], options: DeviceOptions): Promise<GpuContext[]> {
  if (names.length < 1) throw new RangeError("the adapter list is empty");
  const entries = await listAdapters();
  const chosen = names.map((n) => matchAdapter(entries, n));
  const out: GpuContext[] = [];
  for (const [i, e] of chosen.entries()) out.push(await deviceFrom(await e.request(), options, i, e.facts.listedName));
  return out;
}
