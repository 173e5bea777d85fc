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
 *   get 1, 2, ...; or
 *   "hash" (one pass): id = hex value % maxIndRange.
 *   A missing categorical is the hex value 0 (the reference reads it as "0"),
 *   so under hashing it is id 0.
 * Everything is written to `${outDir}.tmp-*` and renamed to outDir at the end:
 * an interrupted run leaves no cache at outDir (and removes its temporary dir
 * when it fails with an error).
 */
import { ArrowPartWriter, kaggleDays, MANIFEST, MANIFEST_VERSION, type CacheColumns, type CacheManifest } from "./arrow_cache.ts";
import { CRITEO_NUM_CAT, CRITEO_NUM_DENSE, parseCriteo, type CriteoFormat, type MalformedRow, type ParseStats, type RowBlock } from "./criteo_parse.ts";
import { hostFs, joinPath, type ByteSource, type DataFs } from "./fs.ts";
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
  const inputs = (Array.isArray(opts.input) ? opts.input : [opts.input]) as (string | ByteSource)[];
  if (inputs.length === 0) throw new DataError("preprocessCriteo: no input files");
  const sources = await Promise.all(inputs.map((i) => (typeof i === "string" ? fs.source(i) : i)));
  const sizes = sources.map((s) => s.size);
  const totalBytes = sizes.every((s) => s !== undefined) ? sizes.reduce((a, b) => a + b!, 0) : undefined;
  const passes: 1 | 2 = mode === "dictionary" ? 2 : 1;
  const t0 = performance.now();
  // Map keys: the value (after % maxIndRange), folded to int32 when below 2^32 so V8 keeps it a
  // small integer (much faster Map lookups); values >= 2^32 stay as they are (no collision).
  const key = range > 0 ? (v: number) => (v % range) | 0 : (v: number) => (v <= 0xffffffff ? v | 0 : v);

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
  let maps: Map<number, number>[] | null = null;
  let tableRows: number[];
  let rareId: number | null = null;
  if (mode === "dictionary") {
    const counts = Array.from({ length: CRITEO_NUM_CAT }, () => new Map<number, number>());
    const passStart = performance.now();
    let rows = 0, before = 0;
    const pass1: ParseStats[] = [];
    for (let f = 0; f < sources.length; f++) {
      const src = sources[f];
      let fileBytes = 0;
      const st = await parseCriteo(src, { format: opts.format, strict: opts.strict, onBytes: (n) => (fileBytes = n) }, (blk) => {
        for (let i = 0; i < blk.n; i++) {
          for (let j = 0; j < CRITEO_NUM_CAT; j++) {
            const k = key(blk.cats[i * CRITEO_NUM_CAT + j]);
            const m = counts[j];
            m.set(k, (m.get(k) ?? 0) + 1);
          }
        }
        rows += blk.n;
        progress(1, src.name, rows, before + fileBytes, passStart);
      });
      before += fileBytes;
      pass1.push(st);
    }
    if (rows === 0) throw noRows(sources, pass1);
    rareId = minFreq > 1 ? 0 : null;
    tableRows = counts.map((m) => {
      let next = minFreq > 1 ? 1 : 0;
      for (const [k, c] of m) m.set(k, c >= minFreq ? next++ : -1);
      return Math.max(next, 1);
    });
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
      const st = await parseCriteo(
        src,
        { format: opts.format, strict: opts.strict, blockRows: rbRows, onBytes: (n) => (fileBytes = n), onMalformed: opts.onMalformed },
        async (blk) => {
          transformBlock(blk, cols, maps, key);
          await writer.write(cols);
          rows += blk.n;
          progress(2, src.name, rows, before + fileBytes, passStart);
        },
      );
      await writer.close();
      before += fileBytes;
      files.push(st);
      parts.push({ file, source: src.name, rows: st.rows });
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
        const values: number[] = [];
        for (const [k, id] of maps[j]) if (id >= 0) values.push(k < 0 ? k + 2 ** 32 : k);
        await fs.writeText(joinPath(tmp, name), JSON.stringify(values));
        dictionaries.push(name);
      }
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
      days: opts.dataset === "kaggle" ? kaggleDays(rows) : parts.map((p) => p.rows),
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

/** Dense: log(1 + max(x, 0)); categoricals: dictionary id or hash. */
function transformBlock(blk: RowBlock, cols: CacheColumns, maps: Map<number, number>[] | null, key: (v: number) => number): void {
  const n = blk.n;
  cols.n = n;
  cols.label.set(blk.labels.subarray(0, n));
  for (let j = 0; j < CRITEO_NUM_DENSE; j++) {
    const d = cols.dense[j];
    for (let i = 0; i < n; i++) {
      const x = blk.ints[i * CRITEO_NUM_DENSE + j];
      d[i] = Math.log1p(x > 0 ? x : 0);
    }
  }
  for (let j = 0; j < CRITEO_NUM_CAT; j++) {
    const c = cols.cats[j];
    const m = maps?.[j];
    for (let i = 0; i < n; i++) {
      const k = key(blk.cats[i * CRITEO_NUM_CAT + j]);
      if (m) {
        const id = m.get(k);
        if (id === undefined) throw new DataError(`value ${k} of C${j + 1} was not seen in the counting pass: the input changed between passes`);
        c[i] = id < 0 ? 0 : id;
      } else {
        c[i] = k; // hash: k = v % range < 2^32 (stored as u32)
      }
    }
  }
}
