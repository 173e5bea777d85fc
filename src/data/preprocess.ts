/**
 * Criteo preprocessing into the Arrow cache (arrow_cache.ts), as the
 * reference (data_utils.py getCriteoAdData / processCriteoAdData,
 * dlrm_data_pytorch.py) does it:
 * - label 0/1 kept; integers: missing -> 0, negative -> 0, then log(1 + x)
 *   (computed in float64, stored as f32);
 * - categoricals, per feature, either
 *   "dictionary" (default, two passes over the input): the hex value (modulo
 *   maxIndRange when given, as the reference) -> a dense id in order of first
 *   appearance over all inputs in the order given; with minFreq > 1, values
 *   seen fewer than minFreq times share the "rare" id 0 and frequent values
 *   get 1, 2, ...; counted in typed-array hash tables (dictionary.ts: 15-31
 *   bytes per distinct value, no Map limits); or
 *   "hash" (one pass): id = hex value % maxIndRange.
 *   A missing categorical is the hex value 0 (the reference reads it as "0"),
 *   so under hashing it is id 0.
 * - subSampleRate (the reference's --data-sub-sample-rate): a row with label 0
 *   is dropped when a uniform draw is below the rate (the draw hashed from
 *   (seed, file, line), so both passes drop the same rows). Kaggle's seven days
 *   are cut on the raw rows, as the reference does before sub-sampling.
 * Everything is written to `${outDir}.tmp-*` and renamed to outDir at the end:
 * an interrupted run leaves no cache at outDir (and removes its temporary dir
 * when it fails with an error).
 */
import { ArrowPartWriter, kaggleDays, MANIFEST, MANIFEST_VERSION, type CacheColumns, type CacheManifest } from "./arrow_cache.ts";
import { CRITEO_NUM_CAT, CRITEO_NUM_DENSE, parseCriteo, type CriteoFormat, type MalformedRow, type ParseOptions, type ParseStats, type RowBlock } from "./criteo_parse.ts";
import { hostFs, joinPath, type ByteSource, type DataFs } from "./fs.ts";
import { CategoryCounter } from "./dictionary.ts";
import { DataError } from "./source.ts";

export interface PreprocessProgress {
  /** 1 = counting categoricals (dictionary mode), 2 = writing the cache; hashing has only pass 2. */
  pass: 1 | 2;
  passes: 1 | 2;
  file: string;
  /** Rows parsed so far in this pass. */
  rows: number;
  /** Raw (possibly compressed) bytes read so far in this pass, over all inputs. */
  bytesRead: number;
  totalBytes: number | undefined;
  /** Percent of the whole job (both passes), by bytes; undefined if sizes are unknown. */
  percent: number | undefined;
  rowsPerSec: number;
}

export interface PreprocessOptions {
  /** Paths (Node/Deno) or ByteSources (any host, e.g. fileSource(File)), in day order. */
  input: string | ByteSource | readonly (string | ByteSource)[];
  outDir: string;
  dataset: "kaggle" | "terabyte";
  format?: CriteoFormat;
  categorical?: "dictionary" | "hash";
  /** Modulo applied to hex values (required for "hash"). */
  maxIndRange?: number;
  /** Dictionary mode: values seen fewer times share one rare id. Default 1 (no rare id). */
  minFreq?: number;
  strict?: boolean;
  onProgress?(p: PreprocessProgress): void;
  onMalformed?(m: MalformedRow): void;
  fs?: DataFs;
  /** Rows per Arrow record batch (default 65536). */
  recordBatchRows?: number;
  /** Drop each label-0 row with this probability (the reference's --data-sub-sample-rate). Default 0. */
  subSampleRate?: number;
  /** Seed of the sub-sampling draws. Default 0. */
  seed?: number;
  /**
   * Parse inputs given by path in a worker thread (Node/Deno: parse_parallel.ts),
   * so reading and parsing run on a second core while this thread counts,
   * transforms and writes. Same results. Default false.
   */
  parseInWorker?: boolean;
}

/** Uniform in [0, 1) from (seed, file, row): murmur3-style mix, allocation-free. */
function rowUniform(seed: number, file: number, row: number): number {
  let h = Math.imul((seed ^ 0x5bd1e995) >>> 0, 0xcc9e2d51) ^ Math.imul(file + 1, 0x1b873593);
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b) ^ row;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) ^ Math.floor(row / 2 ** 32);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 2 ** 32;
}

export interface PreprocessReport {
  outDir: string;
  rows: number;
  tableRows: number[];
  malformed: number;
  malformedSamples: MalformedRow[];
  files: ParseStats[];
  seconds: number;
  rowsPerSec: number;
  manifest: CacheManifest;
}

export async function preprocessCriteo(opts: PreprocessOptions): Promise<PreprocessReport> {
  const fs = opts.fs ?? (await hostFs());
  const mode = opts.categorical ?? "dictionary";
  const range = opts.maxIndRange ?? 0;
  const minFreq = opts.minFreq ?? 1;
  if (mode === "hash" && !(Number.isInteger(range) && range > 0)) throw new DataError(`categorical "hash" needs maxIndRange > 0, got ${opts.maxIndRange}`);
  if (!(Number.isInteger(range) && range >= 0 && range <= 2 ** 32)) throw new DataError(`maxIndRange must be an integer in [0, 2^32], got ${range}`);
  if (!(Number.isInteger(minFreq) && minFreq >= 1)) throw new DataError(`minFreq must be an integer >= 1, got ${minFreq}`);
  if (mode === "hash" && minFreq > 1) throw new DataError("minFreq applies to the dictionary mode only");
  const subRate = opts.subSampleRate ?? 0;
  if (!(subRate >= 0 && subRate < 1)) throw new DataError(`subSampleRate must be in [0, 1), got ${opts.subSampleRate}`);
  const subSeed = (opts.seed ?? 0) >>> 0;
  /** Keep row `line` (0-based among valid rows) of input `file` with label y? */
  const keep = subRate > 0 ? (file: number, line: number, y: number) => y !== 0 || rowUniform(subSeed, file, line) >= subRate : null;
  const inputs = (Array.isArray(opts.input) ? opts.input : [opts.input]) as (string | ByteSource)[];
  if (inputs.length === 0) throw new DataError("preprocessCriteo: no input files");
  const sources = await Promise.all(inputs.map((i) => (typeof i === "string" ? fs.source(i) : i)));
  // A computed specifier keeps bundlers (Vite) from pulling node:worker_threads into browser builds (as hostFs does).
  const parallel = "./parse_parallel.ts";
  const parseWorker = opts.parseInWorker ? ((await import(/* @vite-ignore */ parallel)) as typeof import("./parse_parallel.ts")).parseCriteoInWorker : null;
  /** parseCriteo, or its worker-thread version for inputs given by path. */
  const parse = (f: number, po: ParseOptions, onBlock: (blk: RowBlock) => void | Promise<void>): Promise<ParseStats> => {
    const input = inputs[f];
    return parseWorker && typeof input === "string" ? parseWorker(input, po, onBlock) : parseCriteo(sources[f], po, onBlock);
  };
  const sizes = sources.map((s) => s.size);
  const totalBytes = sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b!, 0) : undefined;
  const passes: 1 | 2 = mode === "dictionary" ? 2 : 1;
  const t0 = performance.now();
  // Keys: the value, after % maxIndRange when given.
  const key = range > 0 ? (v: number) => v % range : (v: number) => v;

  // Progress over both passes, by bytes.
  let lastReport = 0;
  const progress = (pass: 1 | 2, file: string, rows: number, bytesRead: number, passStart: number, force = false) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!force && now - lastReport < 200) return;
    lastReport = now;
    const done = (passes === 2 && pass === 2 ? totalBytes ?? 0 : 0) + bytesRead;
    opts.onProgress({
      pass, passes, file, rows, bytesRead, totalBytes,
      percent: totalBytes ? Math.min(100, (100 * done) / (totalBytes * passes)) : undefined,
      rowsPerSec: rows / Math.max(1e-9, (now - passStart) / 1000),
    });
  };

  // Pass 1 (dictionary): count each feature's values in order of first appearance.
  let maps: CategoryCounter[] | null = null;
  let tableRows: number[];
  let rareId: number | null = null;
  if (mode === "dictionary") {
    const counts = Array.from({ length: CRITEO_NUM_CAT }, () => new CategoryCounter());
    const passStart = performance.now();
    let rows = 0, before = 0;
    const pass1: ParseStats[] = [];
    for (let f = 0; f < sources.length; f++) {
      const src = sources[f];
      let fileBytes = 0;
      let line = 0;
      const st = await parse(f, { format: opts.format, strict: opts.strict, onBytes: (n) => (fileBytes = n) }, (blk) => {
        for (let j = 0; j < CRITEO_NUM_CAT; j++) {
          const m = counts[j];
          for (let i = 0; i < blk.n; i++) {
            if (keep && !keep(f, line + i, blk.labels[i])) continue;
            m.add(key(blk.cats[i * CRITEO_NUM_CAT + j]));
          }
        }
        line += blk.n;
        rows += blk.n;
        progress(1, src.name, rows, before + fileBytes, passStart);
      });
      before += fileBytes;
      pass1.push(st);
    }
    if (rows === 0) throw noRows(sources, pass1);
    rareId = minFreq > 1 ? 0 : null;
    tableRows = counts.map((m) => m.assignIds(minFreq));
    maps = counts;
  } else {
    tableRows = new Array(CRITEO_NUM_CAT).fill(range);
  }

  // Pass 2: transform and write one Arrow stream per input into a temporary directory.
  const out = opts.outDir.replace(/\/+$/, "");
  const tmp = `${out}.tmp-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e9).toString(36)}`;
  await fs.remove(tmp);
  await fs.mkdir(tmp);
  const files: ParseStats[] = [];
  const parts: CacheManifest["parts"] = [];
  let malformed = 0;
  const malformedSamples: MalformedRow[] = [];
  let rows = 0;
  let rawRows = 0;
  // Kaggle with sub-sampling: which raw rows were kept (1 bit each), to cut the days on raw rows.
  let keptBits = keep && opts.dataset === "kaggle" ? new Uint8Array(1 << 16) : null;
  try {
    const rbRows = opts.recordBatchRows ?? 65536;
    const cols: CacheColumns = {
      n: 0,
      label: new Float32Array(rbRows),
      dense: Array.from({ length: CRITEO_NUM_DENSE }, () => new Float32Array(rbRows)),
      cats: Array.from({ length: CRITEO_NUM_CAT }, () => new Uint32Array(rbRows)),
    };
    const passStart = performance.now();
    let before = 0;
    for (let f = 0; f < sources.length; f++) {
      const src = sources[f];
      const file = `part_${String(f).padStart(3, "0")}.arrows`;
      const writer = new ArrowPartWriter(await fs.createWriter(joinPath(tmp, file)));
      let fileBytes = 0;
      let line = 0;
      let partRows = 0;
      const st = await parse(
        f,
        { format: opts.format, strict: opts.strict, blockRows: rbRows, onBytes: (n) => (fileBytes = n), onMalformed: opts.onMalformed },
        async (blk) => {
          let sel: Int32Array | null = null;
          if (keep) {
            sel = new Int32Array(blk.n);
            let m = 0;
            for (let i = 0; i < blk.n; i++) {
              const k = keep(f, line + i, blk.labels[i]);
              if (k) sel[m++] = i;
              if (keptBits) {
                const r = rawRows + i;
                if (r >> 3 >= keptBits.length) { const g = new Uint8Array(keptBits.length * 2); g.set(keptBits); keptBits = g; }
                if (k) keptBits[r >> 3] |= 1 << (r & 7);
              }
            }
            sel = sel.subarray(0, m);
          }
          line += blk.n;
          rawRows += blk.n;
          transformBlock(blk, cols, maps, key, sel);
          await writer.write(cols);
          rows += cols.n;
          partRows += cols.n;
          progress(2, src.name, rows, before + fileBytes, passStart);
        },
      );
      await writer.close();
      before += fileBytes;
      files.push(st);
      parts.push({ file, source: src.name, rows: partRows, batches: writer.batches });
      malformed += st.malformed;
      for (const m of st.malformedSamples) if (malformedSamples.length < 100) malformedSamples.push(m);
    }
    progress(2, sources[sources.length - 1].name, rows, before, passStart, true);
    if (rows === 0) throw noRows(sources, files);

    let dictionaries: string[] | null = null;
    if (maps) {
      dictionaries = [];
      for (let j = 0; j < CRITEO_NUM_CAT; j++) {
        const name = `dict_C${j + 1}.json`;
        await writeDictionary(fs, joinPath(tmp, name), maps[j], minFreq);
        dictionaries.push(name);
      }
    }
    let days: number[];
    if (opts.dataset === "kaggle") {
      days = kaggleDays(keptBits ? rawRows : rows);
      if (keptBits) {
        // Kept rows per raw day.
        let r = 0;
        days = days.map((n) => {
          let k = 0;
          for (const end = r + n; r < end; r++) k += (keptBits![r >> 3] >> (r & 7)) & 1;
          return k;
        });
      }
    } else {
      days = parts.map((p) => p.rows);
    }
    const manifest: CacheManifest = {
      version: MANIFEST_VERSION,
      dataset: opts.dataset,
      numDense: CRITEO_NUM_DENSE,
      numTables: CRITEO_NUM_CAT,
      tableRows,
      categorical: mode,
      maxIndRange: range,
      minFreq,
      rareId,
      rows,
      parts,
      dictionaries,
      days,
      ...(subRate > 0 ? { subSampleRate: subRate, subSampleSeed: subSeed } : {}),
    };
    await fs.writeText(joinPath(tmp, MANIFEST), JSON.stringify(manifest, null, 1));
    await fs.remove(out);
    await fs.rename(tmp, out);
    const seconds = (performance.now() - t0) / 1000;
    return { outDir: out, rows, tableRows, malformed, malformedSamples, files, seconds, rowsPerSec: rows / seconds, manifest };
  } catch (e) {
    await fs.remove(tmp).catch(() => {});
    throw e;
  }
}

function noRows(sources: ByteSource[], stats: ParseStats[]): DataError {
  const bad = stats.reduce((n, s) => n + s.malformed, 0);
  const first = stats.flatMap((s) => s.malformedSamples)[0];
  return new DataError(
    `no valid rows in ${sources.map((s) => s.name).join(", ")} (${bad} malformed rows skipped${first ? `; first: line ${first.line}: ${first.reason}` : ""})`,
  );
}

/** A dictionary as a JSON array of its kept values in id order, formatted straight into bytes in 1 MiB pieces. */
async function writeDictionary(fs: DataFs, path: string, counter: CategoryCounter, minFreq: number): Promise<void> {
  const values = counter.keptValues(minFreq);
  const w = await fs.createWriter(path);
  const PIECE = 1 << 20;
  let buf = new Uint8Array(PIECE);
  let o = 0;
  buf[o++] = 91; // [
  const digits = new Uint8Array(24);
  for (let i = 0; i < values.length; i++) {
    if (o > PIECE - 32) {
      await w.write(buf.subarray(0, o));
      buf = new Uint8Array(PIECE); // the writer may still hold the previous piece
      o = 0;
    }
    if (i) buf[o++] = 44; // ,
    let v = values[i];
    if (v < 2 ** 31) {
      let n = 0;
      let x = v | 0;
      do { digits[n++] = 48 + (x % 10); x = (x / 10) | 0; } while (x > 0);
      while (n > 0) buf[o++] = digits[--n];
    } else {
      let n = 0;
      do { digits[n++] = 48 + (v % 10); v = Math.floor(v / 10); } while (v > 0);
      while (n > 0) buf[o++] = digits[--n];
    }
  }
  buf[o++] = 93; // ]
  await w.write(buf.subarray(0, o));
  await w.close();
}

/** Dense: log(1 + max(x, 0)); categoricals: dictionary id or hash. `sel`: the block rows to keep (all when null). */
function transformBlock(blk: RowBlock, cols: CacheColumns, maps: CategoryCounter[] | null, key: (v: number) => number, sel: Int32Array | null): void {
  const n = sel ? sel.length : blk.n;
  cols.n = n;
  for (let i = 0; i < n; i++) cols.label[i] = blk.labels[sel ? sel[i] : i];
  for (let j = 0; j < CRITEO_NUM_DENSE; j++) {
    const d = cols.dense[j];
    for (let i = 0; i < n; i++) {
      const x = blk.ints[(sel ? sel[i] : i) * CRITEO_NUM_DENSE + j];
      d[i] = Math.log1p(x > 0 ? x : 0);
    }
  }
  for (let j = 0; j < CRITEO_NUM_CAT; j++) {
    const c = cols.cats[j];
    const m = maps?.[j];
    for (let i = 0; i < n; i++) {
      const k = key(blk.cats[(sel ? sel[i] : i) * CRITEO_NUM_CAT + j]);
      if (m) {
        const id = m.id(k);
        if (id < 0) throw new DataError(`value ${k} of C${j + 1} was not seen in the counting pass: the input changed between passes`);
        c[i] = id;
      } else {
        c[i] = k; // hash: k = v % range < 2^32 (stored as u32)
      }
    }
  }
}
