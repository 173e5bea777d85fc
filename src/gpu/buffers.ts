/** Buffer creation, upload, readback and a small reuse pool. */
import { DeviceMismatchError, GpuError, KernelInputError } from "./errors.ts";

export const STORAGE = 0x0080 | 0x0008 | 0x0004; // STORAGE | COPY_DST | COPY_SRC
export const UNIFORM = 0x0040 | 0x0008; // UNIFORM | COPY_DST

export type TypedArray = Float32Array | Uint32Array | Int32Array | Uint8Array | Uint16Array;

const owners = new WeakMap<GPUBuffer, GPUDevice>();

/**
 * Remembers that `buffer` lives on `device` (every buffer the engine creates is
 * tracked), so that a kernel or readback given another device throws
 * DeviceMismatchError instead of failing later with a WebGPU validation message.
 * Call it on your own buffers to get the same check.
 */
export function trackBuffer<B extends GPUBuffer>(device: GPUDevice, buffer: B): B {
  owners.set(buffer, device);
  return buffer;
}

/** The device a tracked buffer belongs to (undefined when not tracked). */
export function bufferDevice(buffer: GPUBuffer): GPUDevice | undefined {
  return owners.get(buffer);
}

const name = (o: { label?: string }, what: string) => (o.label ? `${what} '${o.label}'` : `an unlabelled ${what}`);

/** Throws DeviceMismatchError when `buffer` is known to belong to another device than `device`. */
export function checkBufferDevice(device: GPUDevice, buffer: GPUBuffer, what: string): void {
  if (typeof buffer !== "object" || buffer === null || typeof (buffer as GPUBuffer).size !== "number") {
    throw new KernelInputError(`${what}: expected a GPUBuffer, got ${buffer === null ? "null" : typeof buffer}`);
  }
  const owner = owners.get(buffer);
  if (owner && owner !== device) {
    throw new DeviceMismatchError(
      `${what}: ${name(buffer, "buffer")} belongs to ${name(owner, "GPUDevice")}, not to the ${name(device, "GPUDevice")} passed here. ` +
        "Buffers are never shared between devices: create the buffer on this device, or copy it through the CPU (readF32, then uploadStorage).",
    );
  }
}

const TYPED_NAMES = ["Float32Array", "Uint32Array", "Int32Array", "Uint8Array", "Uint16Array"];

/**
 * Throws KernelInputError naming the fix when `value` is not a typed array (of
 * `kind`, when given): a plain array, a number, a Float64Array...
 */
export function requireTypedArray(what: string, value: unknown, kind?: "Float32Array" | "Uint32Array"): void {
  const got = Array.isArray(value)
    ? `a plain Array of ${value.length}`
    : ArrayBuffer.isView(value)
      ? (value as object).constructor.name
      : value === null ? "null" : typeof value;
  const ok = ArrayBuffer.isView(value) && (kind ? (value as object).constructor.name === kind : TYPED_NAMES.includes((value as object).constructor.name));
  if (!ok) {
    const want = kind ?? "a typed array (Float32Array, Uint32Array, ...)";
    throw new KernelInputError(`${what} must be ${want}, got ${got}${Array.isArray(value) ? `: wrap it, e.g. new ${kind ?? "Float32Array"}(values)` : ""}`);
  }
}

/** Rounds up to a multiple of 4 bytes, with a 4-byte minimum (WebGPU rejects zero-size bindings). */
export function alignSize(bytes: number, align = 4): number {
  return Math.max(align, Math.ceil(bytes / align) * align);
}

/** A storage buffer (usable as copy source and destination) of `bytes` bytes. */
export function createStorage(device: GPUDevice, bytes: number, label: string): GPUBuffer {
  return trackBuffer(device, device.createBuffer({ label, size: alignSize(bytes), usage: STORAGE }));
}

/** A storage buffer holding `data`. */
export function uploadStorage(device: GPUDevice, data: TypedArray, label: string, usage = STORAGE): GPUBuffer {
  requireTypedArray(`uploadStorage(${label})`, data);
  const size = alignSize(data.byteLength);
  const buf = device.createBuffer({ label, size, usage, mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  buf.unmap();
  return trackBuffer(device, buf);
}

/** A uniform buffer holding `data` (padded to 16 bytes). */
export function uploadUniform(device: GPUDevice, data: ArrayBuffer | TypedArray, label: string): GPUBuffer {
  const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const buf = device.createBuffer({ label, size: alignSize(bytes.byteLength, 16), usage: UNIFORM, mappedAtCreation: true });
  new Uint8Array(buf.getMappedRange()).set(bytes);
  buf.unmap();
  return trackBuffer(device, buf);
}

/** Writes `data` into `buffer` at `offset` through the queue. */
export function writeBuffer(device: GPUDevice, buffer: GPUBuffer, data: TypedArray, offset = 0): void {
  checkBufferDevice(device, buffer, "writeBuffer");
  requireTypedArray("writeBuffer: data", data);
  device.queue.writeBuffer(buffer, offset, data.buffer, data.byteOffset, data.byteLength);
}

/**
 * Copies `size` bytes of `buffer` from `offset` to the CPU (the readback
 * helper: `buffer` needs COPY_SRC usage). A WebGPU validation error of the copy
 * (e.g. a buffer of another device, or without COPY_SRC) throws GpuError.
 */
export async function readBuffer(device: GPUDevice, buffer: GPUBuffer, size = buffer.size, offset = 0): Promise<ArrayBuffer> {
  checkBufferDevice(device, buffer, "readBuffer");
  const padded = alignSize(size);
  const staging = device.createBuffer({ label: `${buffer.label}:readback`, size: padded, usage: 0x0001 | 0x0008 });
  device.pushErrorScope("validation");
  const enc = device.createCommandEncoder({ label: `${buffer.label}:readback` });
  enc.copyBufferToBuffer(buffer, offset, staging, 0, padded);
  device.queue.submit([enc.finish()]);
  const invalid = await device.popErrorScope();
  if (invalid) {
    staging.destroy();
    throw new GpuError(
      "validation",
      `readback of ${name(buffer, "buffer")}`,
      `${invalid.message} (the buffer must belong to this device and have COPY_SRC usage; bytes ${offset}..${offset + padded} must lie within its ${buffer.size})`,
    );
  }
  await staging.mapAsync(0x0001);
  const out = staging.getMappedRange().slice(0, size);
  staging.unmap();
  staging.destroy();
  return out;
}

export async function readF32(device: GPUDevice, buffer: GPUBuffer, count?: number, offsetElems = 0): Promise<Float32Array> {
  const n = count ?? buffer.size / 4 - offsetElems;
  return new Float32Array(await readBuffer(device, buffer, n * 4, offsetElems * 4));
}

export async function readU32(device: GPUDevice, buffer: GPUBuffer, count?: number, offsetElems = 0): Promise<Uint32Array> {
  const n = count ?? buffer.size / 4 - offsetElems;
  return new Uint32Array(await readBuffer(device, buffer, n * 4, offsetElems * 4));
}

/**
 * Reuses buffers of equal usage and (power-of-two rounded) size, so that
 * per-step scratch space does not churn GPU allocations.
 */
export class BufferPool {
  private free = new Map<string, GPUBuffer[]>();
  private live = new Set<GPUBuffer>();

  constructor(private readonly device: GPUDevice) {}

  acquire(bytes: number, label: string, usage = STORAGE): GPUBuffer {
    const size = 2 ** Math.ceil(Math.log2(alignSize(bytes, 256)));
    const key = `${usage}:${size}`;
    const buf = this.free.get(key)?.pop() ?? trackBuffer(this.device, this.device.createBuffer({ label, size, usage }));
    this.live.add(buf);
    return buf;
  }

  release(buf: GPUBuffer): void {
    if (!this.live.delete(buf)) throw new Error(`buffer '${buf.label}' was not acquired from this pool`);
    const key = `${buf.usage}:${buf.size}`;
    let list = this.free.get(key);
    if (!list) this.free.set(key, (list = []));
    list.push(buf);
  }

  get liveCount(): number {
    return this.live.size;
  }

  destroy(): void {
    for (const list of this.free.values()) for (const b of list) b.destroy();
    for (const b of this.live) b.destroy();
    this.free.clear();
    this.live.clear();
  }
}
