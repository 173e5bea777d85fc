/**
 * bench:scale helper: one Terabyte-shaped day (tools' generator, 195.8M rows
 * planned) streamed straight into preprocessCriteo with hashing modulo 40M,
 * sampling RSS as rows go by (constant memory means flat samples). The
 * generator runs in a worker thread (gen_parallel.ts), parsing, hashing and
 * writing on the main thread.
 *   tsx bench/scale_tbday.ts OUTDIR [ROWS] [MAX_SECONDS]
 * ROWS 0 or absent: the whole day. MAX_SECONDS: stop the generator after this
 * long (a prefix of the day; reported with full: false).
 */
import { TERABYTE_DAY_ROWS } from "../src/data/criteo_gen.ts";
import { criteoStreamInWorker } from "../src/data/gen_parallel.ts";
import { preprocessCriteo } from "../src/data/preprocess.ts";

const [out, rowsArg, secondsArg] = process.argv.slice(2);
const rows = Number(rowsArg) > 0 ? Number(rowsArg) : TERABYTE_DAY_ROWS;
const maxSeconds = Number(secondsArg) > 0 ? Number(secondsArg) : Infinity;
const g = criteoStreamInWorker({ shape: "terabyte", rows, plannedRows: TERABYTE_DAY_ROWS, seed: 5 }, 1 << 22, maxSeconds * 1000);
const mib = () => Math.round(process.memoryUsage().rss / 2 ** 20);
const samples: [number, number][] = [];
const step = Math.ceil(rows / 40);
let nextSample = 0;
const t0 = performance.now();
let last = t0;
const rep = await preprocessCriteo({
  input: { name: "generated terabyte day", open: () => g.stream },
  outDir: out,
  dataset: "terabyte",
  categorical: "hash",
  maxIndRange: 40_000_000,
  onProgress: (p) => {
    if (p.rows >= nextSample) {
      samples.push([p.rows, mib()]);
      nextSample += step;
    }
    const now = performance.now();
    if (now - last > 30000) { last = now; console.error(`${new Date().toISOString()} ${p.rows} rows, ${Math.round(p.rows / ((now - t0) / 1000))} rows/s, rss ${mib()} MiB`); }
  },
});
const s = (performance.now() - t0) / 1000;
samples.push([rep.rows, mib()]);
const full = rep.rows === TERABYTE_DAY_ROWS;
const at10 = samples.find(([r]) => r >= rep.rows * 0.1) ?? samples[0];
console.log(JSON.stringify({ rows: rep.rows, plannedRows: TERABYTE_DAY_ROWS, full, rowsPerSec: rep.rows / s, preprocessSeconds: s, liveFirst: at10[1], liveLast: samples.at(-1)![1], rssSamplesMiB: samples }));
