/**
 * Worker side of parseCriteoInWorker (parse_parallel.ts): parses one file
 * with parseCriteo and posts each block to the parent, copied into one of a
 * few transferable buffer sets that the parent hands back when it is done
 * with them (bounded memory: at most POOL blocks in flight).
 * Node and Deno (node:worker_threads).
 */
import { parentPort, workerData } from "node:worker_threads";
import { parseCriteo, type ParseOptions, type RowBlock } from "./criteo_parse.ts";
import { nodeFs } from "./fs_node.ts";

export interface ParseWorkerData {
  path: string;
  opts: Pick<ParseOptions, "format" | "labels" | "strict" | "blockRows">;
  pool: number;
}

export interface BlockMessage {
  type: "block";
  n: number;
  bytesRead: number;
  labels: Float32Array;
  ints: Float64Array;
  cats: Float64Array;
  lines: Float64Array;
}

const port = parentPort!;
const data = workerData as ParseWorkerData;
const free: RowBlock[] = [];
let made = 0;
let wake: (() => void) | null = null;
let stopped = false;
port.on("message", (m: { type: "free"; labels: Float32Array; ints: Float64Array; cats: Float64Array; lines: Float64Array } | { type: "stop" }) => {
  if (m.type === "stop") stopped = true;
  else free.push({ n: 0, labels: m.labels, ints: m.ints, cats: m.cats, lines: m.lines });
  const w = wake;
  wake = null;
  w?.();
});

async function take(like: RowBlock): Promise<RowBlock> {
  for (;;) {
    if (stopped) throw new Error("parse worker stopped");
    const b = free.pop();
    if (b) return b;
    if (made < data.pool) {
      made++;
      return { n: 0, labels: new Float32Array(like.labels.length), ints: new Float64Array(like.ints.length), cats: new Float64Array(like.cats.length), lines: new Float64Array(like.lines.length) };
    }
    await new Promise<void>((r) => (wake = r));
  }
}

try {
  const src = await nodeFs().source(data.path);
  let bytesRead = 0;
  const stats = await parseCriteo(
    src,
    { ...data.opts, onBytes: (n) => (bytesRead = n), onMalformed: (m) => port.postMessage({ type: "malformed", row: m }) },
    async (blk) => {
      const b = await take(blk);
      const n = blk.n;
      b.labels.set(blk.labels.subarray(0, n));
      b.ints.set(blk.ints.subarray(0, n * blk.ints.length / blk.labels.length));
      b.cats.set(blk.cats.subarray(0, n * blk.cats.length / blk.labels.length));
      b.lines.set(blk.lines.subarray(0, n));
      const msg: BlockMessage = { type: "block", n, bytesRead, labels: b.labels, ints: b.ints, cats: b.cats, lines: b.lines };
      port.postMessage(msg, [b.labels.buffer, b.ints.buffer, b.cats.buffer, b.lines.buffer] as ArrayBuffer[]);
    },
  );
  port.postMessage({ type: "done", stats, bytesRead });
} catch (e) {
  const err = e as Error;
  port.postMessage({ type: "error", name: err.name, message: err.message, row: (err as { row?: unknown }).row });
}
