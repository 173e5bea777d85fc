/**
 * bench:scale helper: one Terabyte-shaped day (tools' generator, 195.8M rows
 * planned) streamed straight into preprocessCriteo with hashing modulo 40M,
 * sampling RSS as rows go by (constant memory means flat samples).
 *   tsx bench/scale_tbday.ts OUTDIR [ROWS]   (ROWS 0 or absent: the whole day)
 */
import { criteoGenerator, TERABYTE_DAY_ROWS } from "../src/data/criteo_gen.ts";
import { preprocessCriteo } from "../src/data/preprocess.ts";

const [out, rowsArg] = process.argv.slice(2);
const rows = Number(rowsArg) > 0 ? Number(rowsArg) : TERABYTE_DAY_ROWS;
const g = criteoGenerator({ shape: "terabyte", rows, plannedRows: TERABYTE_DAY_ROWS, seed: 5 });
const samples: [number, number][] = [];
let nextSample = 0;
const open = () => new ReadableStream<Uint8Array>({
  pull(c) {
    if (g.written >= nextSample) {
      samples.push([g.written, Math.round(process.memoryUsage().rss / 2 ** 20)]);
      nextSample += Math.ceil(rows / 20);
    }
    const buf = new Uint8Array(1 << 22);
    const n = g.fill(buf);
    if (n === 0) c.close();
    else c.enqueue(buf.subarray(0, n));
  },
});
const t0 = performance.now();
let last = t0;
const rep = await preprocessCriteo({
  input: { name: "generated terabyte day", open },
  outDir: out,
  dataset: "terabyte",
  categorical: "hash",
  maxIndRange: 40_000_000,
  onProgress: (p) => {
    const now = performance.now();
    if (now - last > 30000) { last = now; console.error(`${p.rows} rows, ${Math.round(p.rowsPerSec)} rows/s, rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`); }
  },
});
const s = (performance.now() - t0) / 1000;
samples.push([g.written, Math.round(process.memoryUsage().rss / 2 ** 20)]);
const at10 = samples.find(([r]) => r >= rows * 0.1) ?? samples[0];
console.log(JSON.stringify({ rows: rep.rows, plannedRows: TERABYTE_DAY_ROWS, full: rows === TERABYTE_DAY_ROWS, rowsPerSec: rep.rows / s, preprocessSeconds: s, liveFirst: at10[1], liveLast: samples.at(-1)![1], rssSamplesMiB: samples }));
