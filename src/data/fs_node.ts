/**
 * DataFs over node:fs/promises. Runs in Node and in Deno (which implements
 * node:fs); never imported in a browser (fs.ts loads it lazily).
 */
import * as fsp from "node:fs/promises";
import type { ByteSource, DataFs } from "./fs.ts";
import { DataError } from "./source.ts";

const CHUNK = 1 << 20;

/** A file as a web ReadableStream, read in 1 MiB chunks (no whole-file buffering). */
export function openFileStream(path: string): ReadableStream<Uint8Array> {
  let fh: fsp.FileHandle | undefined;
  return new ReadableStream<Uint8Array>({
    async start() {
      fh = await fsp.open(path, "r");
    },
    async pull(c) {
      const buf = new Uint8Array(CHUNK);
      const { bytesRead } = await fh!.read(buf, 0, CHUNK, null);
      if (bytesRead === 0) {
        await fh!.close();
        fh = undefined;
        c.close();
      } else {
        c.enqueue(bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead));
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
      return { name: path, size: st.size, open: () => openFileStream(path) };
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
