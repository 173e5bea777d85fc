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
  syncData?(): Promise<void>;
  close(): void;
}
interface DenoApi {
  open(path: string, options: { write: true; createNew: true }): Promise<DenoFile>;
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

/** Writes `bytes` to `path` atomically (temporary file, fsync, rename). */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${randomSuffix()}`;
  const d = deno();
  try {
    if (d) {
      const f = await d.open(tmp, { write: true, createNew: true });
      try {
        for (let at = 0; at < bytes.length; ) at += await f.write(bytes.subarray(at));
        await f.syncData?.();
      } finally {
        f.close();
      }
      await d.rename(tmp, path);
    } else {
      const fs = await nodeFs();
      const fh = await fs.open(tmp, "wx");
      try {
        await fh.writeFile(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fs.rename(tmp, path);
    }
  } catch (e) {
    try {
      if (d) await d.remove(tmp);
      else await (await nodeFs()).rm(tmp, { force: true });
    } catch {
      // the temporary file was never created, or is already gone
    }
    throw new CheckpointError(`cannot write ${path}: ${(e as Error).message}. Check that the directory exists and is writable.`);
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
