/**
 * Host-neutral file access for the data pipeline. The core modules only see
 * web streams and this small interface; hosts plug in an adapter:
 * - Node and Deno: nodeFs() in fs_node.ts (node:fs/promises, which Deno also provides),
 * - browser: fileSource(File) for inputs, memoryFs() (or an OPFS adapter) for the cache.
 */
import { detectHost } from "../gpu/host.ts";

/** Something that can be read as a byte stream, possibly several times (preprocessing reads inputs twice). */
export interface ByteSource {
  /** Shown in errors and progress. */
  name: string;
  /** Total bytes, when known (progress percent). */
  size?: number;
  open(): ReadableStream<Uint8Array>;
  /** Bytes [start, end) only (random access; the shuffle reads shards with it). Optional. */
  openRange?(start: number, end: number): ReadableStream<Uint8Array>;
}

export interface FileWriter {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export interface DataFs {
  source(path: string): Promise<ByteSource>;
  readText(path: string): Promise<string>;
  writeText(path: string, text: string): Promise<void>;
  createWriter(path: string): Promise<FileWriter>;
  mkdir(path: string): Promise<void>;
  /** Atomic where the host allows (a directory rename on one file system). */
  rename(from: string, to: string): Promise<void>;
  /** Recursive; no error if missing. */
  remove(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** A browser File or Blob as a ByteSource. */
export function fileSource(file: Blob & { name?: string }): ByteSource {
  return { name: file.name ?? "blob", size: file.size, open: () => file.stream() as ReadableStream<Uint8Array> };
}

/** Bytes in memory as a ByteSource (tests, small uploads). */
export function bytesSource(name: string, bytes: Uint8Array, chunkSize = 64 * 1024): ByteSource {
  const range = (start: number, end: number) => {
    let pos = start;
    return new ReadableStream<Uint8Array>({
      pull(c) {
        if (pos >= end) return c.close();
        c.enqueue(bytes.slice(pos, (pos = Math.min(end, pos + chunkSize))));
      },
    });
  };
  return {
    name,
    size: bytes.length,
    open: () => range(0, bytes.length),
    openRange: (start, end) => range(Math.max(0, start), Math.min(bytes.length, end)),
  };
}

/** An in-memory file system (browser cache without OPFS, tests). Paths are plain strings. */
export function memoryFs(): DataFs & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  const dirs = new Set<string>();
  const norm = (p: string) => p.replace(/\/+$/, "");
  const under = (p: string) => [...files.keys(), ...dirs].filter((k) => k === p || k.startsWith(p + "/"));
  return {
    files,
    async source(path) {
      const b = files.get(norm(path));
      if (!b) throw new Error(`${path}: no such file`);
      return bytesSource(path, b);
    },
    async readText(path) {
      const b = files.get(norm(path));
      if (!b) throw new Error(`${path}: no such file`);
      return new TextDecoder().decode(b);
    },
    async writeText(path, text) {
      files.set(norm(path), new TextEncoder().encode(text));
    },
    async createWriter(path) {
      const parts: Uint8Array[] = [];
      return {
        async write(bytes) { parts.push(bytes.slice()); },
        async close() {
          const n = parts.reduce((s, p) => s + p.length, 0);
          const all = new Uint8Array(n);
          let o = 0;
          for (const p of parts) { all.set(p, o); o += p.length; }
          files.set(norm(path), all);
        },
      };
    },
    async mkdir(path) { dirs.add(norm(path)); },
    async rename(from, to) {
      from = norm(from); to = norm(to);
      for (const k of under(to)) { files.delete(k); dirs.delete(k); }
      for (const k of under(from)) {
        const nk = to + k.slice(from.length);
        if (files.has(k)) { files.set(nk, files.get(k)!); files.delete(k); }
        if (dirs.has(k)) { dirs.add(nk); dirs.delete(k); }
      }
    },
    async remove(path) { for (const k of under(norm(path))) { files.delete(k); dirs.delete(k); } },
    async exists(path) { return under(norm(path)).length > 0; },
  };
}

let defaultFs: Promise<DataFs> | undefined;

/** The host's file system: node:fs in Node and Deno; none in a browser (pass memoryFs() or your own). */
export function hostFs(): Promise<DataFs> {
  if (detectHost() === "browser") {
    return Promise.reject(new Error("no default file system in a browser: pass `fs` (e.g. memoryFs()) and ByteSource inputs (fileSource(file))"));
  }
  // A computed specifier keeps bundlers (Vite) from pulling node:fs into browser builds.
  const adapter = "./fs_node.ts";
  defaultFs ??= (import(/* @vite-ignore */ adapter) as Promise<typeof import("./fs_node.ts")>).then((m) => m.nodeFs());
  return defaultFs;
}
