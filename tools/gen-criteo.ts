/**
 * Writes a generated Criteo-format TSV file with the real per-feature
 * cardinalities (src/data/criteo_gen.ts).
 *
 *   npx tsx tools/gen-criteo.ts --shape kaggle --out /tmp/kaggle/train.txt            # 45.8M rows, ~11 GB
 *   npx tsx tools/gen-criteo.ts --shape terabyte --out /tmp/tb/day_0 [--rows N]       # one day (195.8M rows)
 *   npx tsx tools/gen-criteo.ts --shape kaggle --rows 100000 --out small.txt          # cardinalities scaled by rows
 */
import { closeSync, openSync, writeSync } from "node:fs";
import { criteoGenerator } from "../src/data/criteo_gen.ts";

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const shape = (opt("shape") ?? "kaggle") as "kaggle" | "terabyte";
const out = opt("out");
if (!out || (shape !== "kaggle" && shape !== "terabyte")) {
  console.error("usage: gen-criteo.ts --shape kaggle|terabyte --out FILE [--rows N] [--planned-rows N] [--seed N]");
  process.exit(2);
}
const rows = opt("rows") ? Number(opt("rows")) : undefined;
const plannedRows = opt("planned-rows") ? Number(opt("planned-rows")) : undefined;
const g = criteoGenerator({ shape, rows, plannedRows, seed: Number(opt("seed") ?? 1) });
const fd = openSync(out, "w");
const buf = new Uint8Array(1 << 23);
const t0 = performance.now();
let bytes = 0, last = t0;
for (;;) {
  const n = g.fill(buf);
  if (n === 0) break;
  let off = 0;
  while (off < n) off += writeSync(fd, buf, off, n - off);
  bytes += n;
  const now = performance.now();
  if (now - last > 10000) {
    last = now;
    console.error(`${g.written} / ${g.rows} rows, ${(bytes / 2 ** 30).toFixed(2)} GiB, ${Math.round(g.written / ((now - t0) / 1000))} rows/s`);
  }
}
closeSync(fd);
const s = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ out, shape, rows: g.written, bytes, seconds: +s.toFixed(1), rowsPerSec: Math.round(g.written / s), distinct: g.cardinalities.reduce((a, b) => a + b, 0), cardinalities: g.cardinalities }));
