/**
 * Streaming safetensors for checkpoints of any size: tensors go between the
 * model (TensorRows: row ranges read from / written to the GPU where they
 * live) and the file in pieces of at most `chunkBytes`, so host memory during
 * a save or a load stays bounded (about two pieces, plus the runtime's staging
 * copy of one) whatever the model's size. The files are byte-identical to
 * encodeSafetensors' (same header, same order; safetensorsLayout).
 *
 * Saving checks every piece for NaN/Inf before it is written and hashes the
 * file (SHA-256) as it goes; loading checks a whole file (header, finiteness,
 * hash) in a first pass before the second pass writes anything to the model.
 */
import { NonFiniteTensorError, SafetensorsError } from "./errors.ts";
import { type AtomicWriter, type FileReader, openFileReader } from "./atomic_write.ts";
import { decodeSafetensorsHeader, headerLength, type PlacedTensor, safetensorsLayout } from "./safetensors.ts";
import { rowSize, type TensorRows } from "../model/params.ts";

/** Default piece size: 64 MiB (a checkpoint of any size saves and loads within a few hundred MiB of host memory). */
export const DEFAULT_CHUNK_BYTES = 64 << 20;

interface Hash {
  update(b: Uint8Array): void;
  digest(enc: "hex"): string;
}

/** An incremental SHA-256 (node:crypto, which Node and Deno both provide; loaded lazily so a browser bundle never imports it). */
export async function sha256Stream(): Promise<Hash> {
  const name = "node:crypto";
  const crypto = (await import(/* @vite-ignore */ name)) as { createHash(alg: string): Hash };
  return crypto.createHash("sha256");
}

/** Rows of a tensor and how many fit in one piece (at least one). */
function pieces(shape: readonly number[], chunkBytes: number): { rows: number; perRow: number; step: number } {
  const perRow = rowSize(shape);
  const rows = shape.length === 0 ? 1 : shape[0]!;
  return { rows, perRow, step: Math.max(1, Math.floor(chunkBytes / Math.max(1, perRow * 4))) };
}

/** The first non-finite value of `data` as its index, or -1. */
function firstBad(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    // x - x is NaN for NaN and +-Infinity, 0 otherwise (faster than Number.isFinite on a hot loop).
    if (x - x !== 0) return i;
  }
  return -1;
}

/**
 * `p`, marked as handled: a read started ahead fails only when awaited (an
 * unhandled rejection while the current piece is written would end the
 * process before the temporary files are removed).
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function bytesOf(f: Float32Array): Uint8Array {
  return new Uint8Array(f.buffer, f.byteOffset, f.byteLength);
}

/**
 * Writes `tensors` (F32) with `metadata` to `writer` as one safetensors file,
 * reading each tensor in pieces of at most `chunkBytes`; the next piece is read
 * from the model while the current one is written to the file. Throws
 * NonFiniteTensorError (from `onNonFinite`) on the first NaN/Inf, before
 * writing it. Returns the file's SHA-256 (hex) and size.
 */
export async function writeTensorStream(
  writer: AtomicWriter,
  tensors: readonly TensorRows[],
  metadata: Record<string, string>,
  opts: { chunkBytes?: number; onNonFinite: (name: string, index: number, value: number) => Error },
): Promise<{ sha256: string; bytes: number }> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const layout = safetensorsLayout(
    tensors.map((t) => ({ name: t.name, dtype: "F32" as const, shape: t.shape })),
    metadata,
  );
  const hash = await sha256Stream();
  const put = async (b: Uint8Array) => {
    hash.update(b);
    await writer.write(b);
  };
  await put(layout.header);
  for (const placed of layout.tensors) {
    const t = byName.get(placed.name)!;
    const { rows, perRow, step } = pieces(t.shape, chunkBytes);
    const expect = (start: number, count: number, data: Float32Array) => {
      if (data.length !== count * perRow) throw new SafetensorsError("encode", `tensor '${t.name}': rows [${start}, ${start + count}) gave ${data.length} floats, expected ${count * perRow}`);
      return data;
    };
    let next = rows > 0 ? handled(t.read(0, Math.min(step, rows)).then((d) => expect(0, Math.min(step, rows), d))) : undefined;
    for (let start = 0; start < rows; start += step) {
      const data = await next!;
      const after = start + step;
      next = after < rows ? handled(t.read(after, Math.min(step, rows - after)).then((d) => expect(after, Math.min(step, rows - after), d))) : undefined;
      const bad = firstBad(data);
      if (bad >= 0) {
        await next?.catch(() => undefined);
        throw opts.onNonFinite(t.name, start * perRow + bad, data[bad]!);
      }
      await put(bytesOf(data));
    }
  }
  return { sha256: hash.digest("hex"), bytes: layout.header.length + layout.dataBytes };
}

/** An open safetensors file: its header, read, and its data to be read in pieces. */
export interface TensorFile {
  readonly path: string;
  readonly reader: FileReader;
  readonly tensors: PlacedTensor[];
  readonly metadata: Record<string, string>;
  readonly dataStart: number;
  close(): Promise<void>;
}

/** Opens a safetensors file and reads (only) its header; SafetensorsError if it is malformed. */
export async function openTensorFile(path: string): Promise<TensorFile> {
  const reader = await openFileReader(path);
  try {
    const first = await reader.read(0, Math.min(8, reader.size));
    const n = headerLength(first);
    if (8 + n > reader.size) {
      throw new SafetensorsError("header-length", `header length ${n} runs past the end of the ${reader.size}-byte file (truncated or not safetensors?)`);
    }
    const head = await reader.read(0, 8 + n);
    const { tensors, metadata, dataStart } = decodeSafetensorsHeader(head, reader.size);
    return { path, reader, tensors, metadata, dataStart, close: () => reader.close() };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/**
 * Reads every tensor of `file` in pieces of at most `chunkBytes` (F32 only),
 * in file order, calling `each(tensor, rowStart, data)`; the next piece is read
 * from the file while `each` runs. `data` is only valid during the call.
 * With `hash`, returns the SHA-256 of the whole file (header included).
 */
export async function readTensorStream(
  file: TensorFile,
  each: (tensor: PlacedTensor, rowStart: number, data: Float32Array) => void | Promise<void>,
  opts: { chunkBytes?: number; hash?: boolean } = {},
): Promise<string | undefined> {
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  const hash = opts.hash ? await sha256Stream() : undefined;
  if (hash) hash.update(await file.reader.read(0, file.dataStart));
  const jobs: { t: PlacedTensor; start: number; at: number; bytes: number }[] = [];
  for (const t of file.tensors) {
    if (t.dtype !== "F32") throw new SafetensorsError("dtype", `tensor '${t.name}' is ${t.dtype}; webgpu-dlrm checkpoints hold F32 only`);
    const { rows, perRow, step } = pieces(t.shape, chunkBytes);
    for (let start = 0; start < rows; start += step) {
      const count = Math.min(step, rows - start);
      jobs.push({ t, start, at: file.dataStart + t.begin + start * perRow * 4, bytes: count * perRow * 4 });
    }
  }
  let next = jobs.length ? handled(file.reader.read(jobs[0]!.at, jobs[0]!.bytes)) : undefined;
  for (let i = 0; i < jobs.length; i++) {
    const bytes = await next!;
    const j = jobs[i + 1];
    next = j ? handled(file.reader.read(j.at, j.bytes)) : undefined;
    hash?.update(bytes);
    try {
      await each(jobs[i]!.t, jobs[i]!.start, new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4));
    } catch (e) {
      await next?.catch(() => undefined);
      throw e;
    }
  }
  return hash?.digest("hex");
}

/**
 * First pass of a load: every tensor of `file` finite (unless allowed), and
 * the file's SHA-256 when `hash`. Throws NonFiniteTensorError naming the
 * tensor and element.
 */
export async function checkTensorFile(file: TensorFile, opts: { chunkBytes?: number; hash?: boolean; allowNonFinite?: boolean; describe: (name: string, index: number, value: number) => string }): Promise<string | undefined> {
  if (opts.allowNonFinite && !opts.hash) return undefined;
  return readTensorStream(
    file,
    (t, start, data) => {
      if (opts.allowNonFinite) return;
      const bad = firstBad(data);
      if (bad >= 0) {
        const index = start * rowSize(t.shape) + bad;
        throw new NonFiniteTensorError(t.name, index, data[bad]!, opts.describe(t.name, index, data[bad]!));
      }
    },
    opts,
  );
}
