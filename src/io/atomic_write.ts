/**
 * Whole-file reads and crash-safe writes for Node and Deno.
 *
 * writeFileAtomic writes `${path}.tmp-<random>` in the same directory, flushes
 * it to disk (fsync), then renames it over `path`: a reader sees the old file
 * or the new one, never half of one. On failure the temporary file is removed.
 * Deno uses its own API (Deno.open / syncData / rename); Node uses
 * node:fs/promises, loaded lazily so a browser bundle never imports it.
 */
import { detectHost } from "../gpu/host.ts";
import { CheckpointError } from "./errors.ts";

interface DenoFile {
  write(p: Uint8Array): Promise<number>;
  read(p: Uint8Array): Promise<number | null>;
  seek(offset: number, whence: number): Promise<number>;
  stat(): Promise<{ size: number }>;
  syncData?(): Promise<void>;
  close(): void;
}
interface DenoApi {
  open(path: string, options: { write: true; createNew: true } | { read: true }): Promise<DenoFile>;
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  readFile(path: string): Promise<Uint8Array>;
}

function deno(): DenoApi | undefined {
  return detectHost() === "deno" ? (globalThis as unknown as { Deno: DenoApi }).Deno : undefined;
}

function randomSuffix(): string {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function nodeFs(): Promise<typeof import("node:fs/promises")> {
  const name = "node:fs/promises";
  return import(/* @vite-ignore */ name);
}

/**
 * A file written piece by piece to `${path}.tmp-<random>`: close() flushes it
 * to disk (fsync), commit() renames it over `path`, abort() removes it. Used
 * for files too large to build in memory (streamed checkpoints), and for
 * several files that must all be complete before any replaces its old version.
 */
export interface AtomicWriter {
  readonly path: string;
  write(bytes: Uint8Array): Promise<void>;
  /** Flushes and closes the temporary file (commit() calls it if needed). */
  close(): Promise<void>;
  /** Renames the temporary file over `path`. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file; never throws. */
  abort(): Promise<void>;
}

function writeFailure(path: string, e: unknown): CheckpointError {
  return e instanceof CheckpointError ? e : new CheckpointError(`cannot write ${path}: ${(e as Error).message}. Check that the directory exists and is writable.`);
}

export async function openAtomicWriter(path: string): Promise<AtomicWriter> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
  const d = deno();
  let closed = false;
  let write: (b: Uint8Array) => Promise<void>;
  let close: () => Promise<void>;
  let rename: () => Promise<void>;
  let remove: () => Promise<void>;
  try {
    if (d) {
      const f = await d.open(tmp, { write: true, createNew: true });
      write = async (b) => {
        for (let at = 0; at < b.length; ) at += await f.write(b.subarray(at));
      };
      close = async () => {
        try {
          await f.syncData?.();
        } finally {
          f.close();
        }
      };
      rename = () => d.rename(tmp, path);
      remove = () => d.remove(tmp);
    } else {
      const fs = await nodeFs();
      const fh = await fs.open(tmp, "wx");
      write = async (b) => {
        for (let at = 0; at < b.length; ) at += (await fh.write(b, at, Math.min(1 << 26, b.length - at))).bytesWritten;
      };
      close = async () => {
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
      };
      rename = () => fs.rename(tmp, path);
      remove = () => fs.rm(tmp, { force: true });
    }
  } catch (e) {
    throw writeFailure(path, e);
  }
  const w: AtomicWriter = {
    path,
    write: async (b) => {
      try {
        await write(b);
      } catch (e) {
        await w.abort();
        throw writeFailure(path, e);
      }
    },
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        await close();
      } catch (e) {
        await w.abort();
        throw writeFailure(path, e);
      }
    },
    commit: async () => {
      await w.close();
      try {
        await rename();
      } catch (e) {
        await w.abort();
        throw writeFailure(path, e);
      }
    },
    abort: async () => {
      if (!closed) {
        closed = true;
        try {
          await close();
        } catch {
          // already failing: the temporary file goes anyway
        }
      }
      try {
        await remove();
      } catch {
        // the temporary file is already gone
      }
    },
  };
  return w;
}

/** Writes `bytes` to `path` atomically (temporary file, fsync, rename). */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const w = await openAtomicWriter(path);
  await w.write(bytes);
  await w.commit();
}

/** A file read in pieces at given positions. */
export interface FileReader {
  readonly path: string;
  readonly size: number;
  /** Exactly `length` bytes from `position` (into `into` when given). */
  read(position: number, length: number, into?: Uint8Array): Promise<Uint8Array>;
  close(): Promise<void>;
}

export async function openFileReader(path: string): Promise<FileReader> {
  const d = deno();
  try {
    if (d) {
      const f = await d.open(path, { read: true });
      const size = (await f.stat()).size;
      return {
        path,
        size,
        read: async (position, length, into) => {
          const out = into ? into.subarray(0, length) : new Uint8Array(length);
          await f.seek(position, 0);
          for (let at = 0; at < length; ) {
            const n = await f.read(out.subarray(at));
            if (n === null || n === 0) throw new CheckpointError(`cannot read ${path}: the file ends at ${position + at} bytes, ${length - at} bytes short (truncated?)`);
            at += n;
          }
          return out;
        },
        close: async () => f.close(),
      };
    }
    const fs = await nodeFs();
    const fh = await fs.open(path, "r");
    const size = (await fh.stat()).size;
    return {
      path,
      size,
      read: async (position, length, into) => {
        const out = into ? into.subarray(0, length) : new Uint8Array(length);
        for (let at = 0; at < length; ) {
          const { bytesRead } = await fh.read(out, at, Math.min(1 << 26, length - at), position + at);
          if (bytesRead === 0) throw new CheckpointError(`cannot read ${path}: the file ends at ${position + at} bytes, ${length - at} bytes short (truncated?)`);
          at += bytesRead;
        }
        return out;
      },
      close: () => fh.close(),
    };
  } catch (e) {
    throw e instanceof CheckpointError ? e : new CheckpointError(`cannot read ${path}: ${(e as Error).message}`);
  }
}

/** The whole file as bytes. */
export async function readFileBytes(path: string): Promise<Uint8Array> {
  try {
    const d = deno();
    if (d) return await d.readFile(path);
    const fs = await nodeFs();
    const fh = await fs.open(path, "r");
    try {
      // Read in pieces: fs.readFile refuses files over 2 GiB (an uncapped Kaggle model's checkpoint is larger).
      const size = (await fh.stat()).size;
      const out = new Uint8Array(size);
      for (let at = 0; at < size; ) {
        const { bytesRead } = await fh.read(out, at, Math.min(1 << 26, size - at), at);
        if (bytesRead === 0) throw new Error(`file shrank while reading (${at} of ${size} bytes)`);
        at += bytesRead;
      }
      return out;
    } finally {
      await fh.close();
    }
  } catch (e) {
    throw new CheckpointError(`cannot read ${path}: ${(e as Error).message}`);
  }
}
