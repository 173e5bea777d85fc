/**
 * Reads what PyTorch's torch.save writes for a state dict, without Python:
 * the zip archive (torch >= 1.6: `<name>/data.pkl`, `<name>/data/<key>`
 * records stored uncompressed, zip64 when large) and a restricted unpickler
 * for exactly the objects a state dict and the reference's --save-model dict
 * hold: dicts, OrderedDicts, lists, tuples, str, int, float, bool, None,
 * tensors (torch._utils._rebuild_tensor_v2 / _rebuild_parameter over typed
 * storages), numpy scalars (numpy.core.multiarray.scalar with numpy.dtype,
 * bytes via _codecs.encode) — and nothing else: any other class is refused
 * by name, so loading never runs code.
 */
import { CheckpointError } from "./errors.ts";

/** A tensor read from the archive, as float64 or float32 values in row-major (contiguous) order. */
export interface TorchTensor {
  dtype: "float32" | "float64" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool" | "float16";
  shape: number[];
  /** Contiguous values (int64 as Number; exact below 2^53). */
  data: Float32Array | Float64Array;
}

// ---------------------------------------------------------------- zip

interface ZipEntry {
  name: string;
  method: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

function u16(b: Uint8Array, o: number): number {
  return b[o]! | (b[o + 1]! << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16) | (b[o + 3]! << 24)) >>> 0;
}
function u64(b: Uint8Array, o: number): number {
  return u32(b, o) + u32(b, o + 4) * 2 ** 32;
}

export function readZipDirectory(bytes: Uint8Array, source: string): Map<string, ZipEntry> {
  const bad = (what: string) => new CheckpointError(`${source}: not a readable zip archive (${what})`);
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 22 - 65535); i--) {
    if (u32(bytes, i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw bad("no end-of-central-directory record");
  let count = u16(bytes, eocd + 10);
  let cdOffset = u32(bytes, eocd + 16);
  // zip64: the locator sits just before the EOCD record.
  if ((count === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && u32(bytes, eocd - 20) === 0x07064b50) {
    const z = u64(bytes, eocd - 20 + 8);
    if (u32(bytes, z) !== 0x06064b50) throw bad("bad zip64 end record");
    count = u64(bytes, z + 32);
    cdOffset = u64(bytes, z + 48);
  }
  const entries = new Map<string, ZipEntry>();
  let p = cdOffset;
  const dec = new TextDecoder();
  for (let k = 0; k < count; k++) {
    if (p + 46 > bytes.length || u32(bytes, p) !== 0x02014b50) throw bad(`central directory entry ${k}`);
    const method = u16(bytes, p + 10);
    let compressedSize = u32(bytes, p + 20);
    let size = u32(bytes, p + 24);
    const nameLen = u16(bytes, p + 28), extraLen = u16(bytes, p + 30), commentLen = u16(bytes, p + 32);
    let localOffset = u32(bytes, p + 42);
    const name = dec.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // zip64 extended information: the fields that are 0xFFFFFFFF above, in this order.
    let e = p + 46 + nameLen;
    const end = e + extraLen;
    while (e + 4 <= end) {
      const id = u16(bytes, e), len = u16(bytes, e + 2);
      if (id === 1) {
        let q = e + 4;
        if (size === 0xffffffff) { size = u64(bytes, q); q += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = u64(bytes, q); q += 8; }
        if (localOffset === 0xffffffff) { localOffset = u64(bytes, q); q += 8; }
      }
      e += 4 + len;
    }
    entries.set(name, { name, method, compressedSize, size, localOffset });
    p = end + commentLen;
  }
  return entries;
}

export function zipEntryBytes(bytes: Uint8Array, e: ZipEntry, source: string): Uint8Array {
  const o = e.localOffset;
  if (u32(bytes, o) !== 0x04034b50) throw new CheckpointError(`${source}: bad local header for ${e.name}`);
  if (e.method !== 0) throw new CheckpointError(`${source}: ${e.name} is compressed (method ${e.method}); torch.save stores records uncompressed`);
  const start = o + 30 + u16(bytes, o + 26) + u16(bytes, o + 28);
  if (start + e.size > bytes.length) throw new CheckpointError(`${source}: ${e.name} is truncated`);
  return bytes.subarray(start, start + e.size);
}

// ---------------------------------------------------------------- unpickler

const STORAGE_DTYPES: Record<string, TorchTensor["dtype"]> = {
  FloatStorage: "float32",
  DoubleStorage: "float64",
  LongStorage: "int64",
  IntStorage: "int32",
  ShortStorage: "int16",
  CharStorage: "int8",
  ByteStorage: "uint8",
  BoolStorage: "bool",
  HalfStorage: "float16",
};
const ELEM_BYTES: Record<TorchTensor["dtype"], number> = { float32: 4, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1, float16: 2 };

class Global {
  constructor(readonly module: string, readonly name: string) {}
}
class StorageType {
  constructor(readonly dtype: TorchTensor["dtype"]) {}
}
class NumpyDtype {
  constructor(readonly code: string) {}
}
interface StorageRef {
  dtype: TorchTensor["dtype"];
  key: string;
  numel: number;
}
const MARK = Symbol("mark");

/** A pickled Python value: Map for dict/OrderedDict, Array for list, frozen Array for tuple. */
export type PyValue = null | boolean | number | string | Uint8Array | TorchTensor | PyValue[] | Map<PyValue, PyValue>;

export function unpickle(data: Uint8Array, loadStorage: (ref: StorageRef) => Uint8Array, source: string): PyValue {
  const stack: unknown[] = [];
  const memo = new Map<number, unknown>();
  const dec = new TextDecoder();
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let p = 0;
  const refuse = (what: string) => new CheckpointError(`${source}: the pickle holds ${what}, which a state-dict reader does not load (only tensors, numbers, strings, lists, tuples and dicts)`);
  const popMark = (): unknown[] => {
    let i = stack.length - 1;
    while (i >= 0 && stack[i] !== MARK) i--;
    if (i < 0) throw new CheckpointError(`${source}: corrupt pickle (no mark)`);
    const items = stack.slice(i + 1);
    stack.length = i;
    return items;
  };
  const str = (n: number) => {
    const s = dec.decode(data.subarray(p, p + n));
    p += n;
    return s;
  };
  const setItems = (d: unknown, kv: unknown[]) => {
    if (!(d instanceof Map)) throw new CheckpointError(`${source}: corrupt pickle (SETITEM on a non-dict)`);
    for (let i = 0; i + 1 < kv.length; i += 2) d.set(kv[i], kv[i + 1]);
  };
  const call = (fn: unknown, args: unknown): unknown => {
    if (!(fn instanceof Global)) throw refuse("a call of a non-class");
    const a = args as unknown[];
    const full = `${fn.module}.${fn.name}`;
    switch (full) {
      case "collections.OrderedDict":
        return new Map();
      case "torch._utils._rebuild_tensor_v2": {
        const [storage, offset, size, stride] = a as [{ bytes: Uint8Array; dtype: TorchTensor["dtype"] }, number, number[], number[]];
        return materialize(storage.bytes, storage.dtype, offset, size, stride, source);
      }
      case "torch._utils._rebuild_parameter":
        return a[0];
      case "numpy.dtype":
        return new NumpyDtype(String(a[0]));
      case "numpy.core.multiarray.scalar": {
        const [dt, raw] = a as [NumpyDtype, Uint8Array];
        const v = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
        const codes: Record<string, () => number> = { f8: () => v.getFloat64(0, true), f4: () => v.getFloat32(0, true), i8: () => Number(v.getBigInt64(0, true)), i4: () => v.getInt32(0, true) };
        const f = codes[dt.code];
        if (!f) throw refuse(`a numpy scalar of dtype ${dt.code}`);
        return f();
      }
      case "_codecs.encode": {
        const s = String(a[0]);
        return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff); // latin1
      }
      default:
        throw refuse(`an object of class ${full}`);
    }
  };
  for (;;) {
    if (p >= data.length) throw new CheckpointError(`${source}: truncated pickle`);
    const op = data[p++]!;
    switch (op) {
      case 0x80: p++; break; // PROTO
      case 0x95: p += 8; break; // FRAME
      case 0x2e: { // STOP
        return stack.pop() as PyValue;
      }
      case 0x28: stack.push(MARK); break;
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push(Object.freeze([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(Object.freeze(popMark())); break; // TUPLE
      case 0x85: stack.push(Object.freeze(stack.splice(-1, 1))); break;
      case 0x86: stack.push(Object.freeze(stack.splice(-2, 2))); break;
      case 0x87: stack.push(Object.freeze(stack.splice(-3, 3))); break;
      case 0x58: { const n = dv.getUint32(p, true); p += 4; stack.push(str(n)); break; } // BINUNICODE
      case 0x8c: { const n = data[p++]!; stack.push(str(n)); break; } // SHORT_BINUNICODE
      case 0x8d: { const n = Number(dv.getBigUint64(p, true)); p += 8; stack.push(str(n)); break; }
      case 0x43: { const n = data[p++]!; stack.push(data.slice(p, p + n)); p += n; break; } // SHORT_BINBYTES
      case 0x42: { const n = dv.getUint32(p, true); p += 4; stack.push(data.slice(p, p + n)); p += n; break; }
      case 0x71: memo.set(data[p++]!, stack.at(-1)); break; // BINPUT
      case 0x72: memo.set(dv.getUint32(p, true), stack.at(-1)); p += 4; break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, stack.at(-1)); break; // MEMOIZE
      case 0x68: stack.push(memo.get(data[p++]!)); break; // BINGET
      case 0x6a: stack.push(memo.get(dv.getUint32(p, true))); p += 4; break; // LONG_BINGET
      case 0x4a: stack.push(dv.getInt32(p, true)); p += 4; break; // BININT
      case 0x4b: stack.push(data[p++]!); break; // BININT1
      case 0x4d: stack.push(dv.getUint16(p, true)); p += 2; break; // BININT2
      case 0x8a: { // LONG1
        const n = data[p++]!;
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(data[p + i]!);
        if (n > 0 && data[p + n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        p += n;
        stack.push(Number(v));
        break;
      }
      case 0x47: stack.push(dv.getFloat64(p, false)); p += 8; break; // BINFLOAT (big-endian)
      case 0x4e: stack.push(null); break;
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x63: { // GLOBAL "module\nname\n"
        const nl1 = data.indexOf(10, p);
        const module = dec.decode(data.subarray(p, nl1));
        const nl2 = data.indexOf(10, nl1 + 1);
        const name = dec.decode(data.subarray(nl1 + 1, nl2));
        p = nl2 + 1;
        stack.push(module === "torch" && STORAGE_DTYPES[name] ? new StorageType(STORAGE_DTYPES[name]!) : new Global(module, name));
        break;
      }
      case 0x93: { // STACK_GLOBAL
        const name = String(stack.pop());
        const module = String(stack.pop());
        stack.push(module === "torch" && STORAGE_DTYPES[name] ? new StorageType(STORAGE_DTYPES[name]!) : new Global(module, name));
        break;
      }
      case 0x52: { const args = stack.pop(); const fn = stack.pop(); stack.push(call(fn, args)); break; } // REDUCE
      case 0x62: stack.pop(); break; // BUILD: state of an OrderedDict (_metadata) or a numpy dtype; not needed
      case 0x51: { // BINPERSID: ('storage', StorageType, key, location, numel)
        const pid = stack.pop() as unknown[];
        if (!Array.isArray(pid) || pid[0] !== "storage" || !(pid[1] instanceof StorageType)) throw refuse("a persistent object that is not a tensor storage");
        const ref: StorageRef = { dtype: pid[1].dtype, key: String(pid[2]), numel: Number(pid[4]) };
        stack.push({ bytes: loadStorage(ref), dtype: ref.dtype });
        break;
      }
      case 0x73: { const v = stack.pop(); const k = stack.pop(); setItems(stack.at(-1), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(stack.at(-1), kv); break; } // SETITEMS
      case 0x61: { const v = stack.pop(); (stack.at(-1) as unknown[]).push(v); break; } // APPEND
      case 0x65: { const vs = popMark(); (stack.at(-1) as unknown[]).push(...vs); break; } // APPENDS
      default:
        throw new CheckpointError(`${source}: pickle opcode 0x${op.toString(16)} at byte ${p - 1} is not supported by the state-dict reader`);
    }
  }
}

function materialize(bytes: Uint8Array, dtype: TorchTensor["dtype"], offset: number, size: readonly number[], stride: readonly number[], source: string): TorchTensor {
  const eb = ELEM_BYTES[dtype];
  const numel = size.reduce((a, b) => a * b, 1);
  const buf = bytes.slice().buffer; // aligned copy
  const dv = new DataView(buf);
  const read: (i: number) => number =
    dtype === "float32" ? (i) => dv.getFloat32(i * 4, true)
    : dtype === "float64" ? (i) => dv.getFloat64(i * 8, true)
    : dtype === "int64" ? (i) => Number(dv.getBigInt64(i * 8, true))
    : dtype === "int32" ? (i) => dv.getInt32(i * 4, true)
    : dtype === "int16" ? (i) => dv.getInt16(i * 2, true)
    : dtype === "int8" ? (i) => dv.getInt8(i)
    : dtype === "uint8" || dtype === "bool" ? (i) => dv.getUint8(i)
    : () => { throw new CheckpointError(`${source}: float16 tensors are not supported`); };
  const out = dtype === "float32" ? new Float32Array(numel) : new Float64Array(numel);
  const idx = new Array(size.length).fill(0);
  for (let k = 0; k < numel; k++) {
    let s = offset;
    for (let d = 0; d < size.length; d++) s += idx[d] * stride[d]!;
    if ((s + 1) * eb > bytes.length) throw new CheckpointError(`${source}: a tensor reads past its storage`);
    out[k] = read(s);
    for (let d = size.length - 1; d >= 0; d--) {
      if (++idx[d] < size[d]!) break;
      idx[d] = 0;
    }
  }
  return { dtype, shape: [...size], data: out };
}

/** Whether `bytes` look like torch.save output: the zip format, or the legacy pickle format. */
export function torchSaveKind(bytes: Uint8Array): "zip" | "legacy" | undefined {
  if (bytes.length >= 4 && u32(bytes, 0) === 0x04034b50) return "zip";
  // Legacy: a pickle (protocol 2) whose first object is torch's magic number 0x1950a86a20f9469cfc6c (LONG1).
  if (bytes.length >= 14 && bytes[0] === 0x80 && bytes[1] === 0x02 && bytes[2] === 0x8a && bytes[3] === 0x0a && bytes[4] === 0x6c && bytes[5] === 0xfc) return "legacy";
  return undefined;
}

/** Loads the top-level object of a torch.save zip archive. */
export function loadTorchSave(bytes: Uint8Array, source: string): PyValue {
  if (torchSaveKind(bytes) === "legacy") {
    throw new CheckpointError(`${source}: PyTorch's legacy (pre-1.6) torch.save format; save it again with torch >= 1.6 (the default zip format)`);
  }
  const entries = readZipDirectory(bytes, source);
  const pkl = [...entries.keys()].find((n) => n.endsWith("/data.pkl") && n.split("/").length === 2);
  if (!pkl) throw new CheckpointError(`${source}: a zip archive without <name>/data.pkl: not written by torch.save`);
  const prefix = pkl.slice(0, -"data.pkl".length);
  return unpickle(zipEntryBytes(bytes, entries.get(pkl)!, source), (ref) => {
    const e = entries.get(`${prefix}data/${ref.key}`);
    if (!e) throw new CheckpointError(`${source}: storage ${ref.key} is missing from the archive`);
    return zipEntryBytes(bytes, e, source);
  }, source);
}

export function isTensor(v: unknown): v is TorchTensor {
  return typeof v === "object" && v !== null && "shape" in v && "data" in v && "dtype" in v;
}
