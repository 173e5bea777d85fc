/**
 * parseCriteo on a second core: a worker thread (parse_worker.ts) reads and
 * parses the file while the caller's thread consumes the blocks (counting
 * categoricals, transforming, writing Arrow). Same blocks, same order, same
 * statistics and errors as parseCriteo on the same file. Node and Deno only
 * (node:worker_threads), files given by path only.
 */
import { Worker } from "node:worker_threads";
import { CriteoFormatError, MalformedRowError, type MalformedRow, type ParseOptions, type ParseStats, type RowBlock } from "./criteo_parse.ts";
import type { BlockMessage, ParseWorkerData } from "./parse_worker.ts";
import { DataError } from "./source.ts";

/** Blocks in flight between the threads (each ~21 MB at 65536 rows). */
const POOL = 3;

export async function parseCriteoInWorker(path: string, opts: ParseOptions, onBlock: (block: RowBlock) => void | Promise<void>): Promise<ParseStats> {
  const workerData: ParseWorkerData = { path, opts: { format: opts.format, labels: opts.labels, strict: opts.strict, blockRows: opts.blockRows }, pool: POOL };
  const worker = startWorker("parse_worker", workerData);
  type Msg = BlockMessage | { type: "malformed"; row: MalformedRow } | { type: "done"; stats: ParseStats; bytesRead: number } | { type: "error"; name: string; message: string; row?: MalformedRow };
  const queue: Msg[] = [];
  let wake: (() => void) | null = null;
  let failure: Error | null = null;
  const push = (m: Msg) => {
    queue.push(m);
    const w = wake;
    wake = null;
    w?.();
  };
  worker.on("message", push);
  worker.on("error", (e) => push({ type: "error", name: "Error", message: `parse worker: ${(e as Error).message}` }));
  worker.on("exit", (code) => { if (code !== 0) push({ type: "error", name: "Error", message: `parse worker exited with code ${code}` }); });
  try {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      const m = queue.shift()!;
      if (m.type === "malformed") opts.onMalformed?.(m.row);
      else if (m.type === "block") {
        opts.onBytes?.(m.bytesRead);
        const blk: RowBlock = { n: m.n, labels: m.labels, ints: m.ints, cats: m.cats, lines: m.lines };
        await onBlock(blk);
        worker.postMessage({ type: "free", labels: m.labels, ints: m.ints, cats: m.cats, lines: m.lines }, [m.labels.buffer, m.ints.buffer, m.cats.buffer, m.lines.buffer] as ArrayBuffer[]);
      } else if (m.type === "done") {
        opts.onBytes?.(m.bytesRead);
        return m.stats;
      } else {
        failure =
          m.name === "MalformedRowError" && m.row ? new MalformedRowError(m.row)
          : m.name === "CriteoFormatError" ? new CriteoFormatError(m.message)
          : m.name === "DataError" ? new DataError(m.message)
          : new Error(m.message);
        throw failure;
      }
    }
  } finally {
    worker.postMessage({ type: "stop" });
    await worker.terminate();
  }
}

/** Starts the worker module `./${name}.ts` (sources) or `.js` (the built package) next to this file. */
export function startWorker(name: string, workerData: unknown): Worker {
  const ext = import.meta.url.endsWith(".ts") ? ".ts" : ".js";
  const url = new URL(`./${name}${ext}`, import.meta.url);
  // Node running the TypeScript sources (tsx): the worker registers tsx's loader before importing the .ts entry.
  const viaTsx = ext === ".ts" && !("Deno" in globalThis);
  return viaTsx
    ? new Worker(`import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`, { eval: true, workerData })
    : new Worker(url, { workerData });
}
