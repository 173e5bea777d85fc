/**
 * Criteo parsing, preprocessing and the Arrow cache, on small files written
 * here: exact batches (TSV, CSV with header, gzip), missing and negative
 * values, malformed rows, truncated gzip, empty and foreign files, splits,
 * dictionary determinism, hashing, atomic writes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtemp, readdir, rm, writeFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import type { Batch } from "../../src/data/batch.ts";
import { arrowCacheSource, daySplitRange, kaggleDays } from "../../src/data/arrow_cache.ts";
import { CRITEO_CSV_HEADER, CriteoFormatError, MalformedRowError, parseCriteo } from "../../src/data/criteo_parse.ts";
import { bytesSource, memoryFs } from "../../src/data/fs.ts";
import { preprocessCriteo, type PreprocessProgress } from "../../src/data/preprocess.ts";
import type { DataSource } from "../../src/data/source.ts";

let dir: string;
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), "dlrm-data-test-")); });
afterAll(async () => { await rm(dir, { recursive: true, force: true }); });

type Row = { label: number; ints: (number | "")[]; cats: string[] };

/** Row r: I1 = r (identifies it), other ints varied, some missing/negative; categoricals from small pools. */
function makeRows(n: number, seed = 0): Row[] {
  const rows: Row[] = [];
  for (let r = 0; r < n; r++) {
    const ints: (number | "")[] = [r];
    for (let j = 1; j < 13; j++) {
      const v = ((r + 1) * (j + 3) * 7 + seed) % 23;
      ints.push(v === 0 ? "" : v % 5 === 0 ? -v : v * 1000 + j);
    }
    const cats: string[] = [];
    for (let j = 0; j < 26; j++) {
      const pool = 1 + (j % 4);
      const k = (r * (j + 1) + seed) % (pool + 1);
      cats.push(k === pool ? "" : ((0x1000 * (j + 1) + k * 0x9e37) >>> 0).toString(16).padStart(8, "0"));
    }
    rows.push({ label: (r * 7 + seed) % 3 === 0 ? 1 : 0, ints, cats });
  }
  return rows;
}

const tsv = (rows: Row[]) => rows.map((r) => [r.label, ...r.ints, ...r.cats].join("\t")).join("\n") + "\n";
const csv = (rows: Row[]) => CRITEO_CSV_HEADER + "\r\n" + rows.map((r) => [r.label, ...r.ints, ...r.cats].join(",")).join("\r\n") + "\r\n";

/** Independent expectation: dense f32 log(1 + max(x, 0)), categoricals to dense ids in order of first appearance. */
function expected(rows: Row[], opts: { hash?: number; minFreq?: number } = {}) {
  const hexOf = (s: string) => (s === "" ? 0 : parseInt(s, 16));
  const key = (s: string) => (opts.hash ? hexOf(s) % opts.hash : hexOf(s));
  const minFreq = opts.minFreq ?? 1;
  const ids: Map<number, number>[] = [];
  const tableRows: number[] = [];
  for (let j = 0; j < 26; j++) {
    const count = new Map<number, number>();
    for (const r of rows) count.set(key(r.cats[j]), (count.get(key(r.cats[j])) ?? 0) + 1);
    const m = new Map<number, number>();
    let next = minFreq > 1 ? 1 : 0;
    for (const [k, c] of count) m.set(k, c >= minFreq ? next++ : 0);
    ids.push(m);
    tableRows.push(opts.hash && !opts.minFreq ? opts.hash : next);
  }
  return {
    tableRows,
    row: (r: Row) => ({
      label: r.label,
      dense: r.ints.map((x) => Math.fround(Math.log(1 + Math.max(0, x === "" ? 0 : x)))),
      ids: r.cats.map((c, j) => (opts.hash && !opts.minFreq ? key(c) : ids[j].get(key(c))!)),
    }),
  };
}

/** Checks batches against expected rows in order (one-hot bags). */
function expectBatches(batches: Batch[], rows: ReturnType<ReturnType<typeof expected>["row"]>[], B: number): void {
  expect(batches.map((b) => b.size)).toEqual(Array.from({ length: Math.ceil(rows.length / B) }, (_, i) => Math.min(B, rows.length - i * B)));
  let r = 0;
  for (const b of batches) {
    expect(b.numDense).toBe(13);
    expect(b.numTables).toBe(26);
    expect(Array.from(b.offsets)).toEqual(Array.from({ length: 26 * b.size + 1 }, (_, i) => i));
    for (let i = 0; i < b.size; i++, r++) {
      const e = rows[r];
      expect(b.labels[i]).toBe(e.label);
      expect(Array.from(b.dense.subarray(i * 13, i * 13 + 13))).toEqual(e.dense);
      expect(Array.from({ length: 26 }, (_, t) => b.indices[t * b.size + i])).toEqual(e.ids);
    }
  }
}

async function collect(src: DataSource, opts: Parameters<DataSource["batches"]>[0]): Promise<Batch[]> {
  const out: Batch[] = [];
  for await (const b of src.batches(opts)) out.push(b);
  return out;
}

describe("preprocessCriteo + arrowCacheSource", () => {
  it("TSV (terabyte days): exact batches per split, missing and negative values", async () => {
    const rows = makeRows(19);
    const day0 = rows.slice(0, 12), day1 = rows.slice(12);
    await writeFile(join(dir, "day_0"), tsv(day0));
    await writeFile(join(dir, "day_1"), tsv(day1));
    const out = join(dir, "tb");
    const rep = await preprocessCriteo({ input: [join(dir, "day_0"), join(dir, "day_1")], outDir: out, dataset: "terabyte" });
    expect(rep.rows).toBe(19);
    expect(rep.malformed).toBe(0);
    const exp = expected(rows);
    expect(rep.tableRows).toEqual(exp.tableRows);
    const src = await arrowCacheSource(out);
    expect(src.tableRows).toEqual(exp.tableRows);
    expect(src.manifest.days).toEqual([12, 7]);
    expectBatches(await collect(src, { batchSize: 5 }), day0.map(exp.row), 5);
    // day 1 held out: test = first ceil(7/2) = 4 rows, val = last 3
    expectBatches(await collect(src, { batchSize: 3, split: "test" }), day1.slice(0, 4).map(exp.row), 3);
    expectBatches(await collect(src, { batchSize: 3, split: "val" }), day1.slice(4).map(exp.row), 3);
    expect((await collect(src, { batchSize: 5, dropLast: true })).map((b) => b.size)).toEqual([5, 5]);
    expect((await collect(src, { batchSize: 5, limit: 1 })).length).toBe(1);
  });

  it("CSV with header (CRLF) and gzip give the same cache as TSV", async () => {
    const rows = makeRows(23, 5);
    await writeFile(join(dir, "k.txt"), tsv(rows));
    await writeFile(join(dir, "k.csv"), csv(rows));
    await writeFile(join(dir, "k.csv.gz"), gzipSync(csv(rows)));
    const exp = expected(rows);
    for (const [name, fmt] of [["k.txt", "tsv"], ["k.csv", "csv"], ["k.csv.gz", "csv"]] as const) {
      const out = join(dir, `k-${name}`);
      const rep = await preprocessCriteo({ input: join(dir, name), outDir: out, dataset: "kaggle" });
      expect(rep.files[0].format).toBe(fmt);
      expect(rep.files[0].gzip).toBe(name.endsWith(".gz"));
      const src = await arrowCacheSource(out);
      // Kaggle: 23 rows -> days [4,4,3,3,3,3,3]; train = first 20, test = rows 20-21, val = row 22.
      expect(src.manifest.days).toEqual([4, 4, 3, 3, 3, 3, 3]);
      expectBatches(await collect(src, { batchSize: 8 }), rows.slice(0, 20).map(exp.row), 8);
      expectBatches(await collect(src, { batchSize: 8, split: "test" }), rows.slice(20, 22).map(exp.row), 8);
      expectBatches(await collect(src, { batchSize: 8, split: "val" }), rows.slice(22).map(exp.row), 8);
    }
  });

  it("re-running gives identical ids and files; the Arrow round trip is exact over record batch boundaries", async () => {
    const rows = makeRows(50, 3);
    await writeFile(join(dir, "det.txt"), tsv(rows));
    const a = join(dir, "det-a"), b = join(dir, "det-b");
    await preprocessCriteo({ input: join(dir, "det.txt"), outDir: a, dataset: "terabyte", recordBatchRows: 7 });
    await preprocessCriteo({ input: join(dir, "det.txt"), outDir: b, dataset: "terabyte", recordBatchRows: 7 });
    for (const f of await readdir(a)) expect(await readFile(join(b, f))).toEqual(await readFile(join(a, f)));
    // Re-run into the same directory (replaces it, no temporary left behind).
    await preprocessCriteo({ input: join(dir, "det.txt"), outDir: a, dataset: "terabyte", recordBatchRows: 7 });
    expect((await readdir(dir)).filter((f) => f.includes(".tmp-"))).toEqual([]);
    const src = await arrowCacheSource(a);
    // one day: everything is held out; test = first 25 rows
    const exp = expected(rows);
    expectBatches(await collect(src, { batchSize: 4, split: "test" }), rows.slice(0, 25).map(exp.row), 4);
    // dictionaries list values in id order
    const d1 = JSON.parse(await readFile(join(a, "dict_C2.json"), "utf8")) as number[];
    expect(d1.length).toBe(exp.tableRows[1]);
    rows.forEach((r) => expect(d1[exp.row(r).ids[1]]).toBe(r.cats[1] === "" ? 0 : parseInt(r.cats[1], 16)));
  });

  it("minFreq maps rare values to the shared id 0; hashing maps hex % maxIndRange", async () => {
    const rows = makeRows(40, 1);
    rows[3].cats[25] = "deadbeef"; // seen once
    await writeFile(join(dir, "mf.txt"), tsv(rows));
    const rep = await preprocessCriteo({ input: join(dir, "mf.txt"), outDir: join(dir, "mf"), dataset: "terabyte", minFreq: 3 });
    const exp = expected(rows, { minFreq: 3 });
    expect(rep.tableRows).toEqual(exp.tableRows);
    expect(rep.manifest.rareId).toBe(0);
    const src = await arrowCacheSource(join(dir, "mf"));
    const test = await collect(src, { batchSize: 64, split: "test" });
    expectBatches(test, rows.slice(0, 20).map(exp.row), 64);
    expect(test[0].indices[25 * 20 + 3]).toBe(0);

    const h = await preprocessCriteo({ input: join(dir, "mf.txt"), outDir: join(dir, "hash"), dataset: "terabyte", categorical: "hash", maxIndRange: 1000 });
    expect(h.tableRows).toEqual(new Array(26).fill(1000));
    const eh = expected(rows, { hash: 1000 });
    expectBatches(await collect(await arrowCacheSource(join(dir, "hash")), { batchSize: 64, split: "val" }), rows.slice(20).map(eh.row), 64);

    // dictionary after modulo, as the reference with max_ind_range
    const dm = await preprocessCriteo({ input: join(dir, "mf.txt"), outDir: join(dir, "dm"), dataset: "terabyte", maxIndRange: 7 });
    const edm = expected(rows, { hash: 7, minFreq: 1 });
    expect(dm.tableRows).toEqual(edm.tableRows);
  });

  it("random split is seeded, disjoint and covers every row once", async () => {
    const rows = makeRows(60, 2);
    await writeFile(join(dir, "rs.txt"), tsv(rows));
    await preprocessCriteo({ input: join(dir, "rs.txt"), outDir: join(dir, "rs"), dataset: "kaggle", recordBatchRows: 16 });
    const split = { seed: 7, val: 0.2, test: 0.2 };
    const src = await arrowCacheSource(join(dir, "rs"), { split });
    const seen: number[] = [];
    for (const s of ["train", "val", "test"] as const) {
      const bs = await collect(src, { batchSize: 9, split: s });
      const ids = bs.flatMap((b) => Array.from({ length: b.size }, (_, i) => Math.round(Math.expm1(b.dense[i * 13]))));
      expect(ids.length).toBe(src.splitRows(s));
      expect(ids).toEqual([...ids].sort((a, b) => a - b)); // file order kept
      seen.push(...ids);
    }
    expect(seen.sort((a, b) => a - b)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    const again = await arrowCacheSource(join(dir, "rs"), { split });
    expect(await collect(again, { batchSize: 100, split: "val" })).toEqual(await collect(src, { batchSize: 100, split: "val" }));
  });

  it("reports progress by bytes, both passes, ending at 100%", async () => {
    const rows = makeRows(200, 4);
    await writeFile(join(dir, "pg.txt"), tsv(rows));
    const seen: PreprocessProgress[] = [];
    await preprocessCriteo({ input: join(dir, "pg.txt"), outDir: join(dir, "pg"), dataset: "kaggle", onProgress: (p) => seen.push(p) });
    const last = seen[seen.length - 1];
    expect(last.pass).toBe(2);
    expect(last.percent).toBe(100);
    expect(last.rows).toBe(200);
    expect(last.rowsPerSec).toBeGreaterThan(0);
    for (let i = 1; i < seen.length; i++) expect(seen[i].percent!).toBeGreaterThanOrEqual(seen[i - 1].percent!);
  });

  it("works on an in-memory file system with ByteSource inputs (the browser path)", async () => {
    const rows = makeRows(9);
    const fs = memoryFs();
    const rep = await preprocessCriteo({ input: bytesSource("upload.csv", new TextEncoder().encode(csv(rows)), 13), outDir: "/cache", dataset: "terabyte", fs });
    expect(rep.rows).toBe(9);
    expect([...fs.files.keys()].every((k) => k.startsWith("/cache/"))).toBe(true);
    const src = await arrowCacheSource("/cache", { fs });
    expectBatches(await collect(src, { batchSize: 4, split: "test" }), rows.slice(0, 5).map(expected(rows).row), 4);
  });
});

describe("bad input", () => {
  const good = makeRows(6);
  const lines = tsv(good).trimEnd().split("\n");
  const bad = [
    lines[0],
    lines[1].split("\t").slice(0, 39).join("\t"), // 2: 39 fields
    lines[2].replace(/^0|^1/, "2"), // 3: label 2
    lines[3],
    "", // 5: blank, ignored
    lines[4].split("\t").map((f, i) => (i === 3 ? "12x" : f)).join("\t"), // 6: I3 not an integer
    lines[5].split("\t").map((f, i) => (i === 20 ? "zz12" : f)).join("\t"), // 7: C7 not hex
    lines[5] + "\textra", // 8: 41 fields
    lines[5],
  ].join("\n");

  // The same with parsing in a worker thread (parseInWorker: what the CLI does).
  for (const w of ["", " (parsed in a worker thread)"]) {
    it(`skips malformed rows and reports each with its line number${w}`, async () => {
      await writeFile(join(dir, "bad.txt"), bad);
      const rep = await preprocessCriteo({ input: join(dir, "bad.txt"), outDir: join(dir, `bad${w.length}`), dataset: "terabyte", parseInWorker: w !== "" });
      expect(rep.rows).toBe(3);
      expect(rep.malformed).toBe(5);
      expect(rep.malformedSamples.map((m) => m.line)).toEqual([2, 3, 6, 7, 8]);
      expect(rep.malformedSamples.map((m) => m.reason)).toEqual([
        "expected 40 fields, got 39",
        'label must be 0 or 1, got "2"',
        'I3 is not an integer: "12x"',
        'C7 is not hexadecimal: "zz12"',
        "expected 40 fields, got 41",
      ]);
      expect(rep.malformedSamples[0].file).toBe(join(dir, "bad.txt"));
      const src = await arrowCacheSource(join(dir, `bad${w.length}`));
      const exp = expected([good[0], good[3], good[5]]);
      const all = [...(await collect(src, { batchSize: 8, split: "test" })), ...(await collect(src, { batchSize: 8, split: "val" }))];
      expectBatches(all.slice(0, 1), [good[0], good[3]].map(exp.row), 8);
      expectBatches(all.slice(1), [good[5]].map(exp.row), 8);
    });

    it(`strict: the first malformed row is an error naming file and line; no cache is left${w}`, async () => {
      const out = join(dir, `strict${w.length}`);
      const err = await preprocessCriteo({ input: join(dir, "bad.txt"), outDir: out, dataset: "terabyte", strict: true, parseInWorker: w !== "" }).catch((e) => e);
      expect(err).toBeInstanceOf(MalformedRowError);
      expect(err.message).toContain(`${join(dir, "bad.txt")}:2: malformed Criteo row: expected 40 fields, got 39`);
      expect((await readdir(dir)).filter((f) => f.startsWith("strict"))).toEqual([]);
    });
  }

  it("truncated gzip is an error naming the file", async () => {
    const gz = gzipSync(tsv(makeRows(300)));
    await writeFile(join(dir, "trunc.gz"), gz.subarray(0, Math.floor(gz.length * 0.6)));
    const err = await preprocessCriteo({ input: join(dir, "trunc.gz"), outDir: join(dir, "trunc"), dataset: "kaggle" }).catch((e) => e);
    expect(err).toBeInstanceOf(CriteoFormatError);
    expect(err.message).toMatch(new RegExp(`^${join(dir, "trunc.gz")}: truncated or corrupt gzip`));
    expect((await readdir(dir)).filter((f) => f.startsWith("trunc") && f !== "trunc.gz")).toEqual([]);
  });

  it("empty file, gzip of nothing, foreign text, binary and header-less CSV are clear errors", async () => {
    const cases: [string, Uint8Array | string, RegExp][] = [
      ["empty.txt", "", /empty.txt: file is empty; expected Criteo click logs: 40 tab-separated fields/],
      ["empty.gz", gzipSync(""), /empty.gz: file is empty \(after gunzip\)/],
      ["notes.md", "# hello\nworld\n", /notes.md: first line has 1 tab-separated fields, not 40 \(or 39 without the label\); expected Criteo/],
      ["img.png", new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]), /img.png: looks like a binary file \(starts with 89 50 4e 47/],
      ["short.csv", "1,2\n", /short.csv: first line has 1 tab-separated fields, not 40/],
    ];
    for (const [name, content, re] of cases) {
      await writeFile(join(dir, name), content);
      const err = await preprocessCriteo({ input: join(dir, name), outDir: join(dir, "x"), dataset: "kaggle" }).catch((e) => e);
      expect(err, name).toBeInstanceOf(CriteoFormatError);
      expect(err.message, name).toMatch(re);
    }
    // a file of only malformed rows is not an empty cache
    await writeFile(join(dir, "allbad.txt"), "1\t2\t3\n0\t3\t4\n");
    await expect(preprocessCriteo({ input: join(dir, "allbad.txt"), outDir: join(dir, "x"), dataset: "kaggle" })).rejects.toThrow(/no valid rows in .*allbad.txt \(2 malformed rows skipped; first: line 1: expected 40 fields, got 3\)/);
    await expect(arrowCacheSource(join(dir, "x"))).rejects.toThrow(/no manifest.json; not a preprocessed cache/);
  });

  it("parseCriteo: rows spanning chunk boundaries parse exactly (1-byte chunks)", async () => {
    const rows = makeRows(5);
    const got: number[][] = [];
    const st = await parseCriteo(bytesSource("tiny", new TextEncoder().encode(tsv(rows)), 1), { blockRows: 2 }, (b) => {
      for (let i = 0; i < b.n; i++) got.push([b.labels[i], ...b.ints.subarray(i * 13, i * 13 + 13), ...b.cats.subarray(i * 26, i * 26 + 26)]);
    });
    expect(st.rows).toBe(5);
    expect(got).toEqual(rows.map((r) => [r.label, ...r.ints.map((x) => (x === "" ? 0 : x)), ...r.cats.map((c) => (c === "" ? 0 : parseInt(c, 16)))]));
  });
});

describe("real-world Criteo files (issue 10)", () => {
  // As CSV exports are commonly shared: a header of other names, integers written as floats, a BOM.
  const floats = (rows: Row[], sep: string) =>
    rows.map((r) => [`${r.label}.0`, ...r.ints.map((x) => (x === "" ? "" : `${x}.0`)), ...r.cats].join(sep)).join("\n") + "\n";
  const header = (sep: string) => ["Label", ...Array.from({ length: 13 }, (_, i) => `int_${i}`), ...Array.from({ length: 26 }, (_, i) => `cat_${i}`)].join(sep);

  it("detects CSV/TSV, any header, a UTF-8 BOM and gzip; integral floats (260.0) are integers", async () => {
    const rows = makeRows(23, 3);
    const exp = expected(rows);
    const bom = "\ufeff";
    const variants: [string, string | Uint8Array, { format: string; header: boolean; bom: boolean; gzip: boolean }][] = [
      ["f1.csv", bom + header(",") + "\r\n" + floats(rows, ",").replaceAll("\n", "\r\n"), { format: "csv", header: true, bom: true, gzip: false }],
      ["f2.csv", floats(rows, ","), { format: "csv", header: false, bom: false, gzip: false }],
      ["f3.tsv", bom + tsv(rows), { format: "tsv", header: false, bom: true, gzip: false }],
      ["f4.tsv.gz", gzipSync(header("\t") + "\n" + floats(rows, "\t")), { format: "tsv", header: true, bom: false, gzip: true }],
    ];
    for (const [name, content, want] of variants) {
      await writeFile(join(dir, name), content);
      const out = join(dir, `rw-${name}`);
      const rep = await preprocessCriteo({ input: join(dir, name), outDir: out, dataset: "kaggle" });
      expect(rep.malformed, `${name}: ${rep.malformedSamples[0]?.reason}`).toBe(0);
      expect(rep.rows, name).toBe(23); // the first row is never lost to a BOM or taken for a header
      const f = rep.files[0]!;
      expect({ format: f.format, header: f.header, bom: f.bom, gzip: f.gzip }, name).toEqual(want);
      const src = await arrowCacheSource(out);
      expectBatches(await collect(src, { batchSize: 8 }), rows.slice(0, 20).map(exp.row), 8);
    }
  });

  it("a fraction in an integer feature makes the row malformed (policy); label 1.0 is a label", async () => {
    const rows = makeRows(4, 1);
    const lines = tsv(rows).trimEnd().split("\n");
    lines[1] = lines[1]!.split("\t").map((f, i) => (i === 2 ? "2.5" : f)).join("\t");
    lines[2] = lines[2]!.split("\t").map((f, i) => (i === 0 ? `${f}.00` : i === 3 ? "7." : f)).join("\t");
    await writeFile(join(dir, "frac.txt"), lines.join("\n"));
    const rep = await preprocessCriteo({ input: join(dir, "frac.txt"), outDir: join(dir, "frac"), dataset: "terabyte" });
    expect(rep.rows).toBe(3);
    expect(rep.malformedSamples.map((m) => [m.line, m.reason])).toEqual([[2, 'I2 is not a whole number: "2.5" (integers written as floats such as 260.0 are accepted; a fraction is not)']]);
  });

  it("rows without a label (Kaggle's test.txt): refused for preprocessing, parsed with labels optional", async () => {
    const rows = makeRows(5, 2);
    const text = rows.map((r) => [...r.ints, ...r.cats].join("\t")).join("\n") + "\n";
    await writeFile(join(dir, "test.txt"), text);
    await expect(preprocessCriteo({ input: join(dir, "test.txt"), outDir: join(dir, "t"), dataset: "kaggle" })).rejects.toThrow(/39 fields, no label column .*predict --raw-data-file/);
    const got: { lines: number[]; labels: number[]; i1: number[] } = { lines: [], labels: [], i1: [] };
    const st = await parseCriteo(bytesSource("test.txt", new TextEncoder().encode(text)), { labels: "optional" }, (b) => {
      for (let i = 0; i < b.n; i++) {
        got.lines.push(b.lines[i]!);
        got.labels.push(b.labels[i]!);
        got.i1.push(b.ints[i * 13]!);
      }
    });
    expect(st.labeled).toBe(false);
    expect(got.lines).toEqual([1, 2, 3, 4, 5]);
    expect(got.labels.every(Number.isNaN)).toBe(true);
    expect(got.i1).toEqual([0, 1, 2, 3, 4]);
  });

  it("a directory as input is a one-line data error", async () => {
    const err = await preprocessCriteo({ input: dir, outDir: join(dir, "d"), dataset: "kaggle" }).catch((e) => e);
    expect(err.constructor.name).toBe("DataError");
    expect(err.message).toMatch(/is a directory; give a Criteo data file/);
  });
});

describe("frequency threshold (minFreq)", () => {
  it("a value seen exactly minFreq times keeps its own id; one seen minFreq - 1 times takes the rare id 0", async () => {
    const minFreq = 3;
    const rows = makeRows(9, 4);
    // C1: 0xa seen 3 times (= minFreq), 0xb 2 times (= minFreq - 1), 0xc 4 times; in this order of first appearance.
    const c1 = ["a", "b", "c", "a", "b", "c", "a", "c", "c"];
    rows.forEach((r, i) => (r.cats[0] = c1[i]!));
    await writeFile(join(dir, "freq.txt"), tsv(rows));
    const rep = await preprocessCriteo({ input: join(dir, "freq.txt"), outDir: join(dir, "freq"), dataset: "terabyte", minFreq });
    expect(rep.tableRows[0]).toBe(3); // rare id 0, then a and c
    const src = await arrowCacheSource(join(dir, "freq"));
    // One day file: it is the held-out day, test = its first 5 rows, val = the other 4.
    const all = [...(await collect(src, { batchSize: 16, split: "test" })), ...(await collect(src, { batchSize: 16, split: "val" }))];
    const ids = all.flatMap((b) => Array.from({ length: b.size }, (_, i) => b.indices[i]!)); // table 0
    expect(ids).toEqual([1, 0, 2, 1, 0, 2, 1, 2, 2]);
  });
});

describe("split arithmetic", () => {
  it("kaggle days and held-out halves as the reference", () => {
    expect(kaggleDays(45_840_617)).toEqual([6548660, 6548660, 6548660, 6548660, 6548659, 6548659, 6548659]);
    expect(daySplitRange([10, 10, 7], "train")).toEqual([0, 20]);
    expect(daySplitRange([10, 10, 7], "test")).toEqual([20, 24]);
    expect(daySplitRange([10, 10, 7], "val")).toEqual([24, 27]);
  });
});
