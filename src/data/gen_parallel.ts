/**
 * The generator (criteo_gen.ts) on a second core: criteoStream's bytes,
 * produced by a worker thread (gen_worker.ts) at most CREDITS chunks ahead of
 * the reader. Same bytes as criteoStream with the same options. Node and Deno.
 */
import type { CriteoGenOptions } from "./criteo_gen.ts";
import { startWorker } from "./parse_parallel.ts";

const CREDITS = 4;

export interface WorkerCriteoStream {
  stream: ReadableStream<Uint8Array>;
  /** Rows in the chunks handed out so far. */
  readonly written: number;
}

/** `stopAfterMs`: end the stream (at a row boundary) once this much time has passed since the first read. */
export function criteoStreamInWorker(opts: CriteoGenOptions, chunkBytes = 1 << 22, stopAfterMs = Infinity): WorkerCriteoStream {
  let worker: ReturnType<typeof startWorker> | null = null;
  const queue: { bytes: Uint8Array; written: number }[] = [];
  let failure: Error | null = null;
  let wake: (() => void) | null = null;
  let written = 0;
  let t0 = 0;
  const poke = () => { const w = wake; wake = null; w?.(); };
  const stop = async () => {
    const w = worker;
    worker = null;
    if (w) { w.postMessage({ type: "stop" }); await w.terminate(); }
  };
  const stream = new ReadableStream<Uint8Array>({
    start() {
      worker = startWorker("gen_worker", { opts, chunkBytes, credits: CREDITS });
      worker.on("message", (m: { type: "chunk"; bytes: Uint8Array; written: number }) => { queue.push(m); poke(); });
      worker.on("error", (e) => { failure = e as Error; poke(); });
      t0 = performance.now();
    },
    async pull(c) {
      while (queue.length === 0 && !failure) await new Promise<void>((r) => (wake = r));
      if (failure) { await stop(); throw failure; }
      const m = queue.shift()!;
      if (m.bytes.length === 0 || performance.now() - t0 > stopAfterMs) {
        if (m.bytes.length) { c.enqueue(m.bytes); written = m.written; }
        await stop();
        c.close();
        return;
      }
      worker?.postMessage({ type: "credit" });
      written = m.written;
      c.enqueue(m.bytes);
    },
    cancel: () => stop(),
  }, { highWaterMark: 0 });
  return { stream, get written() { return written; } };
}
