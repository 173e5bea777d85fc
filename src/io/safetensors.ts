/**
 * safetensors reader and writer (Hugging Face's tensor file format), on plain
 * Uint8Arrays so it runs in browsers, Deno and Node alike.
 *
 * Layout: an unsigned 64-bit little-endian header length N; N bytes of UTF-8
 * JSON (an object; the writer pads it with spaces to a multiple of 8); then the
 * data section. Each header entry other than "__metadata__" is
 *   name: { "dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end] }
 * with offsets relative to the start of the data section. "__metadata__" is
 * an optional object of string -> string. Data is little-endian, row-major.
 * Like the reference implementation, the reader requires the tensors to cover
 * the data section exactly (no overlaps, no holes, no trailing bytes), each span
 * to match shape x dtype size, and caps the header at 100 MB.
 *
 * Decoded tensors are views into the input bytes when their offset is aligned to
 * the element size, and copies otherwise (or always, with { copy: true }).
 * F16, BF16 and the F8 types come back as their raw bits (Uint16Array / Uint8Array).
 */
import { SafetensorsError } from "./errors.ts";

export { SafetensorsError } from "./errors.ts";

/** Element type of each safetensors dtype as a typed array. */
export interface SafetensorsArrays {
  F64: Float64Array;
  F32: Float32Array;
  F16: Uint16Array;
  BF16: Uint16Array;
  I64: BigInt64Array;
  U64: BigUint64Array;
  I32: Int32Array;
  U32: Uint32Array;
  I16: Int16Array;
  U16: Uint16Array;
  I8: Int8Array;
  U8: Uint8Array;
  BOOL: Uint8Array;
  F8_E4M3: Uint8Array;
  F8_E5M2: Uint8Array;
}

export type SafetensorsDtype = keyof SafetensorsArrays;

/** A decoded tensor; narrowing on `dtype` gives the typed array type of `data`. */
export type DecodedTensor = {
  [D in SafetensorsDtype]: { dtype: D; shape: number[]; data: SafetensorsArrays[D] };
}[SafetensorsDtype];

/** A tensor to write: any view whose byteLength is product(shape) x the dtype's size. */
export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

export interface DecodedSafetensors {
  tensors: Record<string, DecodedTensor>;
  metadata: Record<string, string>;
}

type Ctor = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): ArrayBufferView; BYTES_PER_ELEMENT: number };

const ARRAY_OF: { [D in SafetensorsDtype]: Ctor } = {
  F64: Float64Array,
  F32: Float32Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I64: BigInt64Array,
  U64: BigUint64Array,
  I32: Int32Array,
  U32: Uint32Array,
  I16: Int16Array,
  U16: Uint16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
  F8_E4M3: Uint8Array,
  F8_E5M2: Uint8Array,
};

/** Bytes per element of a dtype. */
export function dtypeSize(dtype: SafetensorsDtype): number {
  return ARRAY_OF[dtype].BYTES_PER_ELEMENT;
}

export function isSafetensorsDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(ARRAY_OF, s);
}

/** Header limit of the reference implementation. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = "__metadata__";

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function requireLittleEndian(): void {
  if (!LITTLE_ENDIAN) throw new SafetensorsError("encode", "big-endian hosts are not supported (safetensors data is little-endian)");
}

function elementCount(shape: readonly number[], what: string, problem: "entry" | "encode"): number {
  let n = 1;
  for (const s of shape) {
    if (!Number.isSafeInteger(s) || s < 0) throw new SafetensorsError(problem, `${what}: shape [${shape.join(", ")}] has a dimension that is not a non-negative integer`);
    n *= s;
  }
  if (!Number.isSafeInteger(n)) throw new SafetensorsError(problem, `${what}: shape [${shape.join(", ")}] is too large`);
  return n;
}

/** A tensor's name, dtype and shape: what the header says of it. */
export interface TensorEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

/** Where a tensor's bytes lie, relative to the start of the data section. */
export interface PlacedTensor extends TensorEntry {
  begin: number;
  end: number;
}

/**
 * The header of a safetensors file holding `entries` (8-byte length + JSON
 * padded with spaces to a multiple of 8) and where each tensor's bytes go, in
 * file order: by decreasing element size (so every tensor is aligned to its
 * element size), in the given order within a size. encodeSafetensors and the
 * streaming checkpoint writer both use it, so their files are byte-identical.
 */
export function safetensorsLayout(entries: readonly TensorEntry[], metadata?: Record<string, string>): { header: Uint8Array; tensors: PlacedTensor[]; dataBytes: number } {
  requireLittleEndian();
  const checked = entries.map((t, order) => {
    const name = t.name;
    if (name === METADATA_KEY) throw new SafetensorsError("encode", `'${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (!isSafetensorsDtype(t.dtype)) throw new SafetensorsError("encode", `tensor '${name}': unknown dtype '${String(t.dtype)}'`);
    const size = dtypeSize(t.dtype);
    const count = elementCount(t.shape, `tensor '${name}'`, "encode");
    return { t, order, size, bytes: count * size };
  });
  checked.sort((a, b) => b.size - a.size || a.order - b.order);
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string") throw new SafetensorsError("encode", `metadata '${k}' must be a string, is ${typeof v}`);
    }
    header[METADATA_KEY] = metadata;
  }
  let pos = 0;
  const tensors: PlacedTensor[] = [];
  for (const e of checked) {
    header[e.t.name] = { dtype: e.t.dtype, shape: [...e.t.shape], data_offsets: [pos, pos + e.bytes] };
    tensors.push({ name: e.t.name, dtype: e.t.dtype, shape: [...e.t.shape], begin: pos, end: pos + e.bytes });
    pos += e.bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return { header: out, tensors, dataBytes: pos };
}

/**
 * Writes tensors (and optional string metadata) as a safetensors file.
 * Tensors are laid out by decreasing element size (so every tensor is aligned
 * to its element size), in insertion order within a size.
 */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  requireLittleEndian();
  const named = Object.entries(tensors);
  for (const [name, t] of named) {
    if (name === METADATA_KEY) throw new SafetensorsError("encode", `'${METADATA_KEY}' is reserved and cannot name a tensor`);
    if (!isSafetensorsDtype(t.dtype)) throw new SafetensorsError("encode", `tensor '${name}': unknown dtype '${String(t.dtype)}'`);
    const count = elementCount(t.shape, `tensor '${name}'`, "encode");
    if (!ArrayBuffer.isView(t.data)) throw new SafetensorsError("encode", `tensor '${name}': data must be a typed array or DataView`);
    if (t.data.byteLength !== count * dtypeSize(t.dtype)) {
      throw new SafetensorsError("encode", `tensor '${name}': shape [${t.shape.join(", ")}] ${t.dtype} needs ${count * dtypeSize(t.dtype)} bytes, data has ${t.data.byteLength}`);
    }
  }
  const layout = safetensorsLayout(named.map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape })), metadata);
  const out = new Uint8Array(layout.header.length + layout.dataBytes);
  out.set(layout.header);
  for (const p of layout.tensors) {
    const d = tensors[p.name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), layout.header.length + p.begin);
  }
  return out;
}

interface Span {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(bytes: Uint8Array): { spans: Span[]; metadata: Record<string, string>; dataStart: number } {
  if (bytes.length < 8) {
    throw new SafetensorsError("too-short", `file has ${bytes.length} bytes; a safetensors file starts with an 8-byte header length (truncated or not safetensors?)`);
  }
  const n64 = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError("header-length", `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  }
  const n = Number(n64);
  if (8 + n > bytes.length) {
    throw new SafetensorsError("header-length", `header length ${n} runs past the end of the ${bytes.length}-byte file (truncated or not safetensors?)`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n));
  } catch {
    throw new SafetensorsError("header-json", `the ${n}-byte header is not valid UTF-8`);
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new SafetensorsError("header-json", `the ${n}-byte header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) {
    throw new SafetensorsError("header-json", "the header must be a JSON object of tensor entries");
  }
  const metadata: Record<string, string> = {};
  const spans: Span[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new SafetensorsError("metadata", `'${METADATA_KEY}' must be an object of strings`);
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== "string") throw new SafetensorsError("metadata", `metadata '${k}' must be a string, is ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    if (raw === null || typeof raw !== "object") throw new SafetensorsError("entry", `tensor '${name}': entry must be an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: off } = raw as Record<string, unknown>;
    if (!isSafetensorsDtype(dtype)) throw new SafetensorsError("dtype", `tensor '${name}': unknown dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(shape)) throw new SafetensorsError("entry", `tensor '${name}': shape must be an array, is ${JSON.stringify(shape)}`);
    const count = elementCount(shape as number[], `tensor '${name}'`, "entry");
    if (!Array.isArray(off) || off.length !== 2 || !off.every((v) => Number.isSafeInteger(v) && v >= 0) || off[0] > off[1]) {
      throw new SafetensorsError("entry", `tensor '${name}': data_offsets must be [begin, end] with 0 <= begin <= end, is ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const need = count * dtypeSize(dtype);
    if (end - begin !== need) {
      throw new SafetensorsError("size-mismatch", `tensor '${name}': shape [${shape.join(", ")}] ${dtype} needs ${need} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
    }
    spans.push({ name, dtype, shape: shape as number[], begin, end });
  }
  return { spans, metadata, dataStart: 8 + n };
}

/** Every byte of the data section covered by exactly one tensor. */
function checkCoverage(spans: Span[], dataLength: number): void {
  for (const s of spans) {
    if (s.end > dataLength) {
      throw new SafetensorsError("out-of-bounds", `tensor '${s.name}' ends at data byte ${s.end} but the data section has only ${dataLength} bytes (truncated file?)`);
    }
  }
  const sorted = [...spans].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  let last: Span | undefined;
  for (const s of sorted) {
    if (s.begin < covered) {
      throw new SafetensorsError("overlap", `tensors '${last!.name}' [${last!.begin}, ${last!.end}) and '${s.name}' [${s.begin}, ${s.end}) overlap`);
    }
    if (s.begin > covered) {
      throw new SafetensorsError("hole", `data bytes [${covered}, ${s.begin}) before tensor '${s.name}' belong to no tensor`);
    }
    if (s.end > covered) {
      covered = s.end;
      last = s;
    }
  }
  if (covered !== dataLength) {
    throw new SafetensorsError("trailing", `${dataLength - covered} bytes after the last tensor (data section ${dataLength} bytes, tensors end at ${covered})`);
  }
}

/**
 * The header of a safetensors file of `fileSize` bytes from its first bytes
 * (at least 8 + the header length; headerLength() tells how many): the
 * tensors in file order, the metadata, and where the data section starts.
 * Checks everything decodeSafetensors checks except the data itself.
 */
export function decodeSafetensorsHeader(head: Uint8Array, fileSize: number): { tensors: PlacedTensor[]; metadata: Record<string, string>; dataStart: number } {
  requireLittleEndian();
  if (fileSize < 8) {
    throw new SafetensorsError("too-short", `file has ${fileSize} bytes; a safetensors file starts with an 8-byte header length (truncated or not safetensors?)`);
  }
  const n = headerLength(head);
  if (8 + n > fileSize) {
    throw new SafetensorsError("header-length", `header length ${n} runs past the end of the ${fileSize}-byte file (truncated or not safetensors?)`);
  }
  const { spans, metadata, dataStart } = parseHeader(head.subarray(0, 8 + n));
  checkCoverage(spans, fileSize - dataStart);
  const tensors = [...spans].sort((a, b) => a.begin - b.begin).map((s) => ({ name: s.name, dtype: s.dtype, shape: s.shape, begin: s.begin, end: s.end }));
  return { tensors, metadata, dataStart };
}

/** The JSON header's length from a file's first 8 bytes (checked against the 100 MB limit). */
export function headerLength(first8: Uint8Array): number {
  if (first8.length < 8) throw new SafetensorsError("too-short", `file has ${first8.length} bytes; a safetensors file starts with an 8-byte header length (truncated or not safetensors?)`);
  const n64 = new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError("header-length", `header length ${n64} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  }
  return Number(n64);
}

/**
 * Reads a safetensors file. Throws SafetensorsError (problem + a message naming
 * the tensor and the bytes) on any malformed header, dtype, size or offset.
 */
export function decodeSafetensors(bytes: Uint8Array, options: { copy?: boolean } = {}): DecodedSafetensors {
  requireLittleEndian();
  const { spans, metadata, dataStart } = parseHeader(bytes);
  checkCoverage(spans, bytes.length - dataStart);
  const tensors: Record<string, DecodedTensor> = {};
  for (const s of spans) {
    const Arr = ARRAY_OF[s.dtype];
    const size = Arr.BYTES_PER_ELEMENT;
    const at = bytes.byteOffset + dataStart + s.begin;
    const count = (s.end - s.begin) / size;
    let data: ArrayBufferView;
    if (!options.copy && at % size === 0) {
      data = new Arr(bytes.buffer, at, count);
    } else {
      // Unaligned (or copy requested): copy the bytes into a fresh, aligned buffer.
      const buf = new ArrayBuffer(s.end - s.begin);
      new Uint8Array(buf).set(bytes.subarray(dataStart + s.begin, dataStart + s.end));
      data = new Arr(buf, 0, count);
    }
    tensors[s.name] = { dtype: s.dtype, shape: s.shape, data } as DecodedTensor;
  }
  return { tensors, metadata };
}

/**
 * The tensor `name` of a decoded file, checked to have `dtype` (and `shape` when
 * given); throws SafetensorsError naming what is missing or different.
 */
export function expectTensor<D extends SafetensorsDtype>(
  file: DecodedSafetensors,
  name: string,
  dtype: D,
  shape?: readonly number[],
): { dtype: D; shape: number[]; data: SafetensorsArrays[D] } {
  const t = file.tensors[name];
  if (!t) throw new SafetensorsError("entry", `no tensor '${name}' in the file`);
  if (t.dtype !== dtype) throw new SafetensorsError("dtype", `tensor '${name}' is ${t.dtype}, expected ${dtype}`);
  if (shape && (shape.length !== t.shape.length || shape.some((s, i) => s !== t.shape[i]))) {
    throw new SafetensorsError("size-mismatch", `tensor '${name}' has shape [${t.shape.join(", ")}], expected [${shape.join(", ")}]`);
  }
  return t as { dtype: D; shape: number[]; data: SafetensorsArrays[D] };
}
