/**
 * Worker side of criteoStreamInWorker (gen_parallel.ts): runs the generator
 * and posts chunks of whole rows, as many as the parent has granted credits
 * for (bounded memory).
 */
import { parentPort, workerData } from "node:worker_threads";
import { criteoGenerator, type CriteoGenOptions } from "./criteo_gen.ts";

const port = parentPort!;
const { opts, chunkBytes, credits: initial } = workerData as { opts: CriteoGenOptions; chunkBytes: number; credits: number };
let credits = initial;
let stopped = false;
let wake: (() => void) | null = null;
port.on("message", (m: { type: "credit" } | { type: "stop" }) => {
  if (m.type === "stop") stopped = true;
  else credits++;
  const w = wake;
  wake = null;
  w?.();
});
const g = criteoGenerator(opts);
for (;;) {
  while (credits === 0 && !stopped) await new Promise<void>((r) => (wake = r));
  if (stopped) break;
  const buf = new Uint8Array(chunkBytes);
  const n = g.fill(buf);
  credits--;
  port.postMessage({ type: "chunk", bytes: buf.subarray(0, n), written: g.written }, [buf.buffer]);
  if (n === 0) break;
  // Let credit messages in.
  await new Promise<void>((r) => setImmediate(r));
}
port.close();
