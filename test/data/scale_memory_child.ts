/**
 * Child process of scale.test.ts ("bounded memory"), run with --expose-gc:
 * preprocesses N generated rows (hashing; the generator streams straight into
 * the preprocessor) or reads a cache's training split shuffled, and samples the
 * live memory (heap + array buffers after a full GC) as rows go by. Prints one
 * JSON line: rows, samples [[rows, bytes]...], peakRss.
 *   node --expose-gc --import tsx scale_memory_child.ts pre N OUTDIR | shuf OUTDIR
 */
import { arrowCacheSource } from "../../src/data/arrow_cache.ts";
import { criteoGenerator } from "../../src/data/criteo_gen.ts";
import { preprocessCriteo } from "../../src/data/preprocess.ts";

const gc = (globalThis as { gc?: () => void }).gc!;
const live = () => {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};
const [mode, a, b] = process.argv.slice(2);
let rows = 0;
const samples: [number, number][] = [];
if (mode === "pre") {
  const n = Number(a);
  const g = criteoGenerator({ shape: "kaggle", rows: n, seed: 3 });
  let chunks = 0;
  const open = () => new ReadableStream<Uint8Array>({
    pull(c) {
      if (chunks++ % 2 === 0) samples.push([g.written, live()]);
      const buf = new Uint8Array(1 << 20);
      const k = g.fill(buf);
      if (k === 0) c.close();
      else c.enqueue(buf.subarray(0, k));
    },
  });
  const rep = await preprocessCriteo({ input: { name: "generated", open }, outDir: b, dataset: "kaggle", categorical: "hash", maxIndRange: 1 << 20, recordBatchRows: 8192 });
  rows = rep.rows;
} else {
  const src = await arrowCacheSource(a, { randomize: "total", shuffleSeed: 1, shardRows: 16384 });
  let k = 0;
  for await (const batch of src.batches({ batchSize: 2048, split: "train" })) {
    rows += batch.size;
    if (k++ % 4 === 0) samples.push([rows, live()]);
  }
}
console.log(JSON.stringify({ rows, samples, peakRss: process.resourceUsage().maxRSS * 1024 }));
