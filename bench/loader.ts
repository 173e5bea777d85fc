/**
 * Loader overlap (issue 14): training from a dataset cache against training on
 * generated data, same model and batch size, in one process, alternating rounds.
 *   1. the first ROWS rows of a Criteo-format file (default /tmp/scale/head2m.txt, or --input)
 *      preprocessed once (hash, --max-ind-range) into /tmp/perf-loader/cache
 *   2. the Kaggle MLPs on those tables; rounds of N steps from
 *      (a) randomSource (paper 4.1 random data, the same table sizes) and
 *      (b) arrowCacheSource (the cache's train split), each through prefetch() as the trainer does
 * Reports ms/step of each, the cache/generated ratio, and the time the loop waited for batches.
 *   npx deno run -A bench/loader.ts [--batch 128] [--steps 20] [--rounds 3] [--rows 200000]
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/loader.ts
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync, openSync, readSync, closeSync } from "node:fs";
import type { Batch } from "../src/data/batch.ts";
import { arrowCacheSource, readManifest } from "../src/data/arrow_cache.ts";
import { prefetch } from "../src/data/prefetch.ts";
import { preprocessCriteo } from "../src/data/preprocess.ts";
import { randomSource } from "../src/data/random.ts";
import { createContext } from "../src/gpu/context.ts";
import { interactionWidth, resolveConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";
import { argValue } from "./report.ts";

const g = globalThis as { Deno?: { args: string[] } };
const argv = g.Deno ? g.Deno.args : process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : (argValue(name) ?? fallback);
};
const B = Number(opt("batch", "128"));
const steps = Number(opt("steps", "20"));
const rounds = Number(opt("rounds", "3"));
const rows = Number(opt("rows", "200000"));
const input = opt("input", "/tmp/scale/head2m.txt");
const range = Number(opt("max-ind-range", "100000"));
const dir = "/tmp/perf-loader";
const text = `${dir}/train-${rows}.txt`;
const cache = `${dir}/cache-${rows}-${range}`;
mkdirSync(dir, { recursive: true });
if (!existsSync(text)) {
  // The first `rows` lines of the input.
  const fd = openSync(input, "r");
  const buf = new Uint8Array(1 << 20);
  const parts: Uint8Array[] = [];
  let lines = 0;
  outer: for (;;) {
    const n = readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    for (let i = 0; i < n; i++) {
      if (buf[i] === 10 && ++lines === rows) {
        parts.push(buf.slice(0, i + 1));
        break outer;
      }
    }
    parts.push(buf.slice(0, n));
  }
  closeSync(fd);
  writeFileSync(text, Buffer.concat(parts));
}
if (!existsSync(`${cache}/manifest.json`)) {
  const t = performance.now();
  await preprocessCriteo({ input: text, outDir: cache, dataset: "kaggle", categorical: "hash", maxIndRange: range });
  console.log(`preprocessed ${rows} rows in ${((performance.now() - t) / 1000).toFixed(1)} s`);
}
const m = await readManifest(cache);
const ctx = await createContext({ label: "bench-loader" });
const config = resolveConfig({
  embeddingDim: 16, tableRows: m.tableRows, bottomMlp: [13, 512, 256, 64, 16],
  topMlp: [interactionWidth(26, 16, "dot", false), 512, 256, 1], loss: "bce", optimizer: "sgd", learningRate: 0.01, miniBatchSize: B,
});
const model = new DlrmModel(ctx.device, config, initParameters(config));
const cacheSrc = await arrowCacheSource(cache);
const genSrc = randomSource({ numDense: 13, tableRows: m.tableRows, seed: 1, bagSize: 1 });

/** The next `n` steps from `it` (a prefetch(4) iterator kept open across rounds, as the trainer's epoch loop): ms per step, ms waited per step. */
async function run(it: AsyncIterator<Batch>, stats: { waitMs: number }, n: number): Promise<{ ms: number; wait: number }> {
  await ctx.device.queue.onSubmittedWorkDone();
  const w0 = stats.waitMs;
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) throw new Error("source ran out of batches");
    model.trainStep(r.value);
    if ((i + 1) % 8 === 0) await model.readLosses();
  }
  await model.readLosses();
  return { ms: (performance.now() - t) / n, wait: (stats.waitMs - w0) / n };
}
const total = (rounds + 1) * steps;
const gen = (epoch: number, limit = total) => genSrc.batches({ batchSize: B, limit, epoch });
const fromCache = (epoch: number, limit = total) => cacheSrc.batches({ batchSize: B, split: "train", limit, epoch });
const pa = prefetch(gen(0), 4);
const pc = prefetch(fromCache(0), 4);
const ia = pa[Symbol.asyncIterator]();
const ic = pc[Symbol.asyncIterator]();
await run(ia, pa.stats, steps); // warm-up: pipelines, the cache's first record batches
await run(ic, pc.stats, steps);
const a: { ms: number; wait: number }[] = [];
const c: { ms: number; wait: number }[] = [];
for (let r = 0; r < rounds; r++) {
  a.push(await run(ia, pa.stats, steps));
  c.push(await run(ic, pc.stats, steps));
}
await ia.return?.();
await ic.return?.();
const f = (xs: { ms: number; wait: number }[]) => xs.map((x) => `${x.ms.toFixed(1)} (waited ${x.wait.toFixed(1)})`).join(", ");
const sum = (xs: { ms: number }[]) => xs.reduce((s, x) => s + x.ms, 0);
console.log(`${ctx.adapter.name}; Kaggle MLPs, ${m.tableRows.length} tables of the cache (max ${Math.max(...m.tableRows)} rows), batch ${B}, ${steps} steps per round`);
console.log(`generated: ${f(a)} ms/step`);
console.log(`cache:     ${f(c)} ms/step`);
console.log(`cache / generated (sum of rounds): ${(sum(c) / sum(a)).toFixed(3)}; best rounds ${(Math.min(...c.map((x) => x.ms)) / Math.min(...a.map((x) => x.ms))).toFixed(3)}`);
// Host cost of producing the batches alone (no training): what the step loop pays when production cannot overlap.
const produce = async (it: AsyncIterable<Batch>) => {
  const t = performance.now();
  let n = 0;
  for await (const _ of it) n++;
  return (performance.now() - t) / n;
};
console.log(`producing a batch alone (${total} batches, opening included): generated ${(await produce(gen(99))).toFixed(1)} ms, cache ${(await produce(fromCache(99))).toFixed(1)} ms`);
model.destroy();
ctx.destroy();
