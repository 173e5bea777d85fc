/**
 * Data pipeline benchmark: writes a Criteo-format TSV file of N rows to /tmp
 * (kept between runs), then measures, each with its RSS high-water mark
 * (sampled every 20 ms and at every progress report):
 *   parse       read + parse only (no output)
 *   hash        preprocessCriteo, hashing (one pass) -> Arrow cache
 *   dictionary  preprocessCriteo, dictionary (two passes) -> Arrow cache
 *   cache read  arrowCacheSource -> Batches of 2048
 *   gzip parse  read + gunzip + parse of a gzip copy of the first 1/4 (Node only writes it)
 * Usage: npx tsx bench/data.ts [rows=3000000]   |   npx deno run -A bench/data.ts [rows]
 */
import { parseCriteo } from "../src/data/criteo_parse.ts";
import { preprocessCriteo } from "../src/data/preprocess.ts";
import { arrowCacheSource } from "../src/data/arrow_cache.ts";
import { nodeFs } from "../src/data/fs_node.ts";
import { ZipfSampler } from "../src/data/zipf.ts";
import { Rng } from "../src/util/rng.ts";
import { detectHost } from "../src/gpu/host.ts";
import * as fsp from "node:fs/promises";

const g = globalThis as { Deno?: { args: string[]; memoryUsage(): { rss: number } }; process?: { argv: string[]; memoryUsage(): { rss: number } } };
const args = g.Deno ? g.Deno.args : g.process!.argv.slice(2);
const ROWS = Number(args[0] ?? 3_000_000);
const rss = () => (g.Deno ? g.Deno.memoryUsage().rss : g.process!.memoryUsage().rss);
const MB = 1 << 20;
const fs = nodeFs();

// Categorical cardinalities (capped version of Kaggle's), values Zipf(1.1) by popularity.
const CARD = [1460, 583, 100000, 100000, 305, 24, 12517, 633, 3, 93145, 5683, 100000, 3194, 27, 14992, 100000, 10, 5652, 2173, 4, 100000, 18, 15, 100000, 105, 100000];

async function generate(path: string, rows: number): Promise<void> {
  if (await fs.exists(path)) return;
  const rng = new Rng(1);
  const zipf = CARD.map((c) => new ZipfSampler(c, 1.1));
  const w = await fs.createWriter(path + ".part");
  const buf = new Uint8Array(8 * MB);
  let p = 0;
  const put = (s: string) => { for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i); };
  const hexd = "0123456789abcdef";
  for (let r = 0; r < rows; r++) {
    buf[p++] = rng.uniform() < 0.25 ? 49 : 48;
    for (let j = 0; j < 13; j++) {
      buf[p++] = 9;
      const u = rng.uniform();
      if (u < 0.2) continue; // missing
      put(String(u < 0.22 ? -1 : Math.floor(Math.exp(rng.uniform() * 8)) - 1));
    }
    for (let j = 0; j < 26; j++) {
      buf[p++] = 9;
      if (rng.uniform() < 0.05) continue; // missing
      let h = Math.imul(zipf[j].sample(rng) + j * 0x10001, 0x9e3779b1) >>> 0;
      for (let k = 0; k < 8; k++) { buf[p++] = hexd.charCodeAt(h >>> 28); h = (h << 4) >>> 0; }
    }
    buf[p++] = 10;
    if (p > buf.length - 1024) { await w.write(buf.slice(0, p)); p = 0; }
  }
  await w.write(buf.slice(0, p));
  await w.close();
  await fs.rename(path + ".part", path);
}

async function measure<T>(name: string, fn: (sample: () => void) => Promise<T>): Promise<{ name: string; sec: number; peak: number; start: number; result: T }> {
  (globalThis as { gc?: () => void }).gc?.();
  const start = rss();
  let peak = start;
  const sample = () => { const r = rss(); if (r > peak) peak = r; };
  const timer = setInterval(sample, 20);
  const t0 = performance.now();
  try {
    const result = await fn(sample);
    return { name, sec: (performance.now() - t0) / 1000, peak, start, result };
  } finally {
    clearInterval(timer);
    sample();
  }
}

const dir = "/tmp/dlrm-bench-data";
await fs.mkdir(dir);
const input = `${dir}/criteo_${ROWS}.tsv`;
const t0 = performance.now();
await generate(input, ROWS);
const size = (await fsp.stat(input)).size;
console.log(`input ${input}: ${ROWS} rows, ${(size / MB).toFixed(0)} MiB (ready in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
const gzPath = `${input}.q.gz`;
if (!(await fs.exists(gzPath)) && detectHost() === "node") {
  const { createGzip } = await import("node:zlib");
  const { createReadStream, createWriteStream } = await import("node:fs");
  const { pipeline } = await import("node:stream/promises");
  const { Readable } = await import("node:stream");
  const quarter = Readable.from((async function* () {
    let left = Math.floor(size / 4);
    for await (const c of createReadStream(input)) { if (left <= 0) break; const b = c as Buffer; yield b.subarray(0, Math.min(b.length, left)); left -= b.length; }
  })());
  await pipeline(quarter, createGzip({ level: 1 }), createWriteStream(gzPath + ".part"));
  await fs.rename(gzPath + ".part", gzPath);
}

const rowsRun: { name: string; rows: number; sec: number; peak: number; start: number; note: string }[] = [];
const src = await fs.source(input);

const parse = await measure("parse (read + parse)", async (sample) => {
  let n = 0;
  const st = await parseCriteo(src, { onBytes: sample }, (b) => { n += b.n; });
  return { rows: n, malformed: st.malformed };
});
rowsRun.push({ name: parse.name, rows: parse.result.rows, sec: parse.sec, peak: parse.peak, start: parse.start, note: `${parse.result.malformed} malformed` });

const hash = await measure("preprocess, hash (1 pass)", (sample) =>
  preprocessCriteo({ input, outDir: `${dir}/cache_hash`, dataset: "terabyte", categorical: "hash", maxIndRange: 10_000_000, onProgress: sample, fs }));
rowsRun.push({ name: hash.name, rows: hash.result.rows, sec: hash.sec, peak: hash.peak, start: hash.start, note: "-> Arrow" });

const dict = await measure("preprocess, dictionary (2 passes)", (sample) =>
  preprocessCriteo({ input, outDir: `${dir}/cache_dict`, dataset: "kaggle", onProgress: sample, fs }));
const uniques = dict.result.tableRows.reduce((a, b) => a + b, 0);
rowsRun.push({ name: dict.name, rows: dict.result.rows, sec: dict.sec, peak: dict.peak, start: dict.start, note: `${uniques} dictionary entries` });

const read = await measure("cache -> Batches (B=2048)", async (sample) => {
  const s = await arrowCacheSource(`${dir}/cache_dict`, { fs });
  let n = 0;
  for (const split of ["train", "val", "test"] as const) for await (const b of s.batches({ batchSize: 2048, split })) { n += b.size; sample(); }
  return n;
});
rowsRun.push({ name: read.name, rows: read.result, sec: read.sec, peak: read.peak, start: read.start, note: "all splits" });

if (await fs.exists(gzPath)) {
  const gz = await measure("parse gzip (first 1/4)", async (sample) => {
    let n = 0;
    await parseCriteo(await fs.source(gzPath), { onBytes: sample }, (b) => { n += b.n; });
    return n;
  });
  rowsRun.push({ name: gz.name, rows: gz.result, sec: gz.sec, peak: gz.peak, start: gz.start, note: "DecompressionStream" });
}

const lines: string[] = [];
lines.push("| stage | rows | seconds | rows/s | MiB/s (input) | RSS before (MiB) | RSS peak (MiB) | note |");
lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
for (const r of rowsRun) {
  const mbps = r.name.startsWith("cache") ? "" : ((size * (r.name.includes("1/4") ? 0.25 : r.name.includes("2 passes") ? 2 : 1)) / MB / r.sec).toFixed(0);
  lines.push(`| ${r.name} | ${r.rows} | ${r.sec.toFixed(1)} | ${Math.round(r.rows / r.sec).toLocaleString("en-US")} | ${mbps} | ${(r.start / MB).toFixed(0)} | ${(r.peak / MB).toFixed(0)} | ${r.note} |`);
}
const runtime = g.Deno ? `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}` : `Node ${(globalThis as unknown as { process: { versions: { node: string } } }).process.versions.node}`;
const command = g.Deno ? `npx deno run -A bench/data.ts ${ROWS}` : `npx tsx bench/data.ts ${ROWS}`;
console.log(`\nhost: ${runtime}, ${ROWS} rows, input ${(size / MB).toFixed(0)} MiB\n`);
console.log(lines.join("\n"));
if (!args.includes("--no-write")) {
  const { writeSection } = await import("./report.ts");
  writeSection(
    new URL("../BENCHMARKS.md", import.meta.url).pathname,
    `data-${detectHost()}`,
    `## Data pipeline on ${runtime}\n\n\`${command}\` (${new Date().toISOString().slice(0, 10)}): a generated Criteo-format TSV of ${ROWS} rows (${(size / MB).toFixed(0)} MiB). ` +
      `Peak RSS is sampled every 20 ms; it stays flat as rows grow because every stage streams (dictionary mode grows with the number of distinct values only).\n\n${lines.join("\n")}`,
  );
}
