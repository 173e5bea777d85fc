/**
 * GpuContext: one GPUDevice with what the engine keeps beside it (adapter
 * facts, buffer pool, device-loss state). Kernel wrappers take a plain
 * GPUDevice, so apps with their own device can use them; the context is the
 * engine's own way to get and look after devices.
 */
import { DeviceLostError, GpuError, NoAdapterError, UnsupportedError } from "./errors.ts";
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

function adapterFacts(adapter: GPUAdapter, host: HostName): AdapterFacts {
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const name = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unknown adapter";
  return {
    host,
    name,
    vendor: info.vendor ?? "",
    architecture: info.architecture ?? "",
    isFallbackAdapter: Boolean(info.isFallbackAdapter),
    features: [...adapter.features].sort(),
  };
}

/** Requests the adapter (first one the host offers for the power preference). */
export async function requestAdapter(options: DeviceOptions = {}): Promise<GPUAdapter> {
  const gpu = await getGPU();
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference });
  if (!adapter) throw new NoAdapterError(`${detectHost()}: ${NO_ADAPTER_HELP}`);
  return adapter;
}

async function deviceFrom(adapter: GPUAdapter, options: DeviceOptions, index: number): Promise<GpuContext> {
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
  return new GpuContext(device, adapterFacts(adapter, detectHost()));
}

/** One device on the first adapter, with the limits the engine needs. */
export async function createContext(options: DeviceOptions = {}): Promise<GpuContext> {
  const [ctx] = await createContexts(1, options);
  return ctx!;
}

/**
 * `count` independent devices, each with its own memory and queue. Hosts
 * that expose one adapter give several devices on it; a GPUAdapter can hand
 * out only one device, so the adapter is requested again for each.
 */
export async function createContexts(count: number, options: DeviceOptions = {}): Promise<GpuContext[]> {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`device count must be a positive integer, got ${count}`);
  const out: GpuContext[] = [];
  for (let i = 0; i < count; i++) {
    const adapter = await requestAdapter(options);
    out.push(await deviceFrom(adapter, options, i));
  }
  return out;
}
