/**
 * DataFs over node:fs/promises. Runs in Node and in Deno (which implements
 * node:fs); never imported in a browser (fs.ts loads it lazily).
 */
import * as fsp from "node:fs/promises";
import type { ByteSource, DataFs } from "./fs.ts";
import { DataError } from "./source.ts";

const CHUNK = 1 << 22;

/** A file (or bytes [start, end) of it) as a web ReadableStream, read in 4 MiB chunks (no whole-file buffering). */
export function openFileStream(path: string, start?: number, end = Infinity): ReadableStream<Uint8Array> {
  let fh: fsp.FileHandle | undefined;
  let pos = start ?? 0;
  return new ReadableStream<Uint8Array>({
    async start() {
      fh = await fsp.open(path, "r");
    },
    async pull(c) {
      const want = Math.min(CHUNK, end - pos);
      const buf = new Uint8Array(Math.max(0, want));
      const { bytesRead } = want > 0 ? await fh!.read(buf, 0, want, start === undefined ? null : pos) : { bytesRead: 0 };
      pos += bytesRead;
      if (bytesRead === 0 || pos >= end) {
        if (bytesRead > 0) c.enqueue(buf.subarray(0, bytesRead));
        await fh!.close();
        fh = undefined;
        c.close();
      } else {
        c.enqueue(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      }
    },
    async cancel() {
      await fh?.close();
      fh = undefined;
    },
  });
}

export function nodeFs(): DataFs {
  return {
    async source(path): Promise<ByteSource> {
      const st = await fsp.stat(path);
      if (st.isDirectory()) throw new DataError(`${path} is a directory; give a Criteo data file (or, for Terabyte, the day-file prefix)`);
      if (!st.isFile()) throw new DataError(`${path} is not a regular file`);
      return { name: path, size: st.size, open: () => openFileStream(path), openRange: (start, end) => openFileStream(path, start, end) };
    },
    readText: (path) => fsp.readFile(path, "utf8"),
    writeText: (path, text) => fsp.writeFile(path, text),
    async createWriter(path) {
      const fh = await fsp.open(path, "w");
      return {
        async write(bytes) {
          let off = 0;
          while (off < bytes.length) off += (await fh.write(bytes, off, bytes.length - off)).bytesWritten;
        },
        close: () => fh.close(),
      };
    },
    mkdir: async (path) => { await fsp.mkdir(path, { recursive: true }); },
    rename: (from, to) => fsp.rename(from, to),
    remove: (path) => fsp.rm(path, { recursive: true, force: true }),
    exists: (path) => fsp.stat(path).then(() => true, () => false),
  };
}
