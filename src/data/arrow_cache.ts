/**
 * The preprocessed Criteo cache: Apache Arrow IPC *stream* files (".arrows",
 * one per input file, record batches of up to 65536 rows; read them with
 * pyarrow.ipc.open_stream) plus manifest.json and one dictionary file per
 * categorical feature. The stream format is used rather than the random-access
 * file format so that every host (browser included) can read it from a byte
 * stream without loading a whole file.
 *
 * Columns: label f32, I1..I13 f32 (already log(1 + max(x, 0))), C1..C26 u32
 * (table-local ids, < manifest.tableRows[t]).
 *
 * Splits ("days", the reference's): Kaggle, whose train.txt is one file,
 * is cut into 7 days of equal count (the first total%7 days one row longer,
 * as data_utils.getCriteoAdData); Terabyte has one day per input file. The
 * last day is held out: its first ceil(n/2) rows are "test", the rest "val"
 * (dlrm_data_pytorch.py CriteoDataset: np.array_split(last_day, 2) ->
 * test, val); all other days are "train". A seeded random split assigns each
 * row by a hash of (seed, row number) instead.
 */
import { Field, Float32, makeData, RecordBatch, RecordBatchReader, RecordBatchStreamWriter, Schema, Struct, Uint32 } from "apache-arrow";
import type { Batch } from "./batch.ts";
import { CRITEO_NUM_CAT, CRITEO_NUM_DENSE } from "./criteo_parse.ts";
import { hostFs, joinPath, type DataFs, type FileWriter } from "./fs.ts";
import { checkBatchOptions, DataError, hashUniform, type BatchOptions, type DataSource, type SplitName } from "./source.ts";
import { checkShuffle, shardRow, shufflePlan, type Randomize, type Shard } from "./shuffle.ts";

export const MANIFEST = "manifest.json";
export const MANIFEST_VERSION = 1;

export interface CacheManifest {
  version: number;
  dataset: "kaggle" | "terabyte";
  numDense: number;
  numTables: number;
  /** Rows of each embedding table (dictionary size, or maxIndRange when hashing). */
  tableRows: number[];
  categorical: "dictionary" | "hash";
  maxIndRange: number;
  minFreq: number;
  /** Id shared by rare values (dictionary with minFreq > 1), else null. */
  rareId: number | null;
  /** Total rows. */
  rows: number;
  /** One Arrow stream per input file, in input order. */
  parts: CachePart[];
  /** Per categorical feature, a JSON array of its values (hex value as a number, after % maxIndRange if set) in id order; dictionary mode only. */
  dictionaries: string[] | null;
  /** Day sizes used by the "days" split. */
  days: number[];
  /** Label-0 rows dropped with this probability when preprocessing (the reference's --data-sub-sample-rate). */
  subSampleRate?: number;
  subSampleSeed?: number;
}

export interface CachePart {
  file: string;
  source: string;
  rows: number;
  /**
   * Byte layout of the stream, for random access (the shuffle reads shards):
   * offsets[0] is the end of the schema message, offsets[i + 1] the end of
   * record batch i, which holds rows[i] rows. Absent in caches written before it existed.
   */
  batches?: { offsets: number[]; rows: number[] };
}

export function cacheSchema(): Schema {
  return new Schema(cacheFields());
}

function cacheFields(): Field[] {
  return [
    new Field("label", new Float32(), false),
    ...Array.from({ length: CRITEO_NUM_DENSE }, (_, i) => new Field(`I${i + 1}`, new Float32(), false)),
    ...Array.from({ length: CRITEO_NUM_CAT }, (_, i) => new Field(`C${i + 1}`, new Uint32(), false)),
  ];
}

/** Column arrays of one record batch. */
export interface CacheColumns {
  n: number;
  label: Float32Array;
  dense: Float32Array[];
  cats: Uint32Array[];
}

export function makeRecordBatch(cols: CacheColumns): RecordBatch {
  const fields = cacheFields();
  const n = cols.n;
  const children = [
    makeData({ type: new Float32(), length: n, data: cols.label.subarray(0, n), nullCount: 0 }),
    ...cols.dense.map((d) => makeData({ type: new Float32(), length: n, data: d.subarray(0, n), nullCount: 0 })),
    ...cols.cats.map((c) => makeData({ type: new Uint32(), length: n, data: c.subarray(0, n), nullCount: 0 })),
  ];
  return new RecordBatch(new Schema(fields), makeData({ type: new Struct(fields), length: n, children, nullCount: 0 }));
}

/** Streams record batches into a file with bounded buffering. */
export class ArrowPartWriter {
  private readonly writer = new RecordBatchStreamWriter();
  private readonly pump: Promise<void>;
  private waiting = false;
  private current: Promise<void> = Promise.resolve();
  private failure: unknown;
  rows = 0;
  /** Bytes written to `out` so far. */
  private bytes = 0;
  /** See CachePart.batches. */
  readonly batches: { offsets: number[]; rows: number[] } = { offsets: [], rows: [] };

  constructor(private readonly out: FileWriter) {
    this.pump = (async () => {
      const it = this.writer[Symbol.asyncIterator]();
      for (;;) {
        this.waiting = true;
        const r = await it.next();
        this.waiting = false;
        if (r.done) break;
        this.current = out.write(r.value);
        await this.current;
        this.bytes += r.value.length;
      }
    })().catch((e) => { this.failure = e; });
    this.writer.reset(undefined, cacheSchema()); // the schema message first (an empty part still has one)
  }

  /** Waits until the pump has written everything queued (bounded memory). */
  private async drain(): Promise<void> {
    for (;;) {
      await new Promise((r) => setTimeout(r, 0));
      if (this.failure) throw this.failure;
      if (this.waiting) return;
      await this.current;
    }
  }

  async write(cols: CacheColumns): Promise<void> {
    if (cols.n === 0) return;
    if (this.batches.offsets.length === 0) {
      await this.drain();
      this.batches.offsets.push(this.bytes);
    }
    this.writer.write(makeRecordBatch(cols));
    this.rows += cols.n;
    await this.drain();
    this.batches.offsets.push(this.bytes);
    this.batches.rows.push(cols.n);
  }

  async close(): Promise<void> {
    this.writer.finish();
    this.writer.close();
    await this.pump;
    if (this.failure) throw this.failure;
    await this.out.close();
  }
}

/**
 * Reads the cache's record batches of one part as column arrays (zero-copy views).
 * `batchRange` [i, j): only those record batches, by random access (needs
 * part.batches and a source with openRange).
 */
export async function* readPart(fs: DataFs, dir: string, file: string, batchRange?: { part: CachePart; from: number; to: number }): AsyncGenerator<CacheColumns> {
  const src = await fs.source(joinPath(dir, file));
  const ranges: [number, number][] | undefined = batchRange
    ? [[0, batchRange.part.batches!.offsets[0]], // the schema message
      [batchRange.part.batches!.offsets[batchRange.from], batchRange.part.batches!.offsets[batchRange.to]]]
    : undefined;
  // Our own generator over the file's streams: when the consumer stops early (a shard or an
  // evaluation ends inside a part), returning it cancels the open stream, which closes the file
  // now instead of at garbage collection (Node warns about that).
  const bytes = (async function* () {
    for (const range of ranges ?? [undefined]) {
      const r = (range ? src.openRange!(range[0], range[1]) : src.open()).getReader();
      try {
        for (;;) {
          const { done, value } = await r.read();
          if (done) break;
          yield value;
        }
      } finally {
        await r.cancel().catch(() => {});
      }
    }
  })();
  const reader = await RecordBatchReader.from(bytes);
  try {
  for await (const rb of reader as AsyncIterable<RecordBatch>) {
    const n = rb.numRows;
    const col = <A extends Float32Array | Uint32Array>(i: number): A => {
      const d = rb.getChildAt(i)!.data;
      if (d.length !== 1) throw new DataError(`${file}: column ${i} has ${d.length} chunks, expected 1`);
      return (d[0].values as A).subarray(d[0].offset, d[0].offset + n) as A;
    };
    yield {
      n,
      label: col<Float32Array>(0),
      dense: Array.from({ length: CRITEO_NUM_DENSE }, (_, j) => col<Float32Array>(1 + j)),
      cats: Array.from({ length: CRITEO_NUM_CAT }, (_, j) => col<Uint32Array>(1 + CRITEO_NUM_DENSE + j)),
    };
  }
  } finally {
    // Stopped early (a shard ends inside a part): release the file now, not at garbage collection.
    await (reader as unknown as { cancel?(): Promise<void> }).cancel?.();
    await bytes.return(undefined);
  }
}

/** Kaggle: N rows cut into `days` parts (data_utils.getCriteoAdData). */
export function kaggleDays(total: number, days = 7): number[] {
  const base = Math.floor(total / days), extra = total % days;
  return Array.from({ length: days }, (_, i) => base + (i < extra ? 1 : 0));
}

/** Global row range [lo, hi) of a split under the reference's day split. */
export function daySplitRange(days: readonly number[], split: SplitName): [number, number] {
  const total = days.reduce((s, d) => s + d, 0);
  const last = days.length ? days[days.length - 1] : 0;
  const lastStart = total - last;
  const testSize = Math.ceil(last / 2);
  if (split === "train") return [0, lastStart];
  if (split === "test") return [lastStart, lastStart + testSize];
  return [lastStart + testSize, total];
}

export interface RandomSplit {
  seed: number;
  /** Fractions of rows in val and test; the rest is train. */
  val: number;
  test: number;
}

export interface ArrowCacheOptions {
  fs?: DataFs;
  /** "days" (default, the reference's) or a seeded random split. */
  split?: "days" | RandomSplit;
  /** Training-row order (shuffle.ts): "none" (default here; the CLI defaults to the reference's "total"), "day" or "total". */
  randomize?: Randomize;
  /** Seed of the shuffle (each epoch draws its own order from it). Default 0. */
  shuffleSeed?: number;
  /** Rows per shuffle shard (default shuffle.ts DEFAULT_SHARD_ROWS). */
  shardRows?: number;
  /** Rows per shuffled piece, gathered shardRows / pieceRows at a time into a shard (default shuffle.ts DEFAULT_PIECE_ROWS). */
  pieceRows?: number;
}

/** Rows [start, start + n) of the cache, row-major, for the shuffle. */
interface RowBlockBuffer {
  labels: Float32Array;
  dense: Float32Array;
  cats: Uint32Array;
}

/** Reads global rows [start, start + n) into `into` (row-major), seeking to the record batches when the cache records them. */
/** Reads rows [start, start + n) into `into` from its row `at` on. */
async function readRows(fs: DataFs, dir: string, m: CacheManifest, start: number, n: number, into: RowBlockBuffer, at = 0): Promise<void> {
  const D = m.numDense, T = m.numTables;
  const end = start + n;
  let base = 0;
  for (const part of m.parts) {
    const pEnd = base + part.rows;
    if (pEnd <= start) { base = pEnd; continue; }
    if (base >= end) break;
    // Record batches of this part overlapping [start, end).
    let from = 0, to = 0, row = base;
    let range: { part: CachePart; from: number; to: number } | undefined;
    const src = part.batches ? await fs.source(joinPath(dir, part.file)) : undefined;
    if (part.batches && src?.openRange) {
      const rows = part.batches.rows;
      while (from < rows.length && row + rows[from] <= start) row += rows[from++];
      to = from;
      let r = row;
      while (to < rows.length && r < end) r += rows[to++];
      range = { part, from, to };
    } else {
      row = base;
    }
    for await (const cols of readPart(fs, dir, part.file, range)) {
      const r0 = Math.max(start - row, 0), r1 = Math.min(end - row, cols.n);
      for (let r = r0; r < r1; r++) {
        const o = at + row + r - start;
        into.labels[o] = cols.label[r];
        for (let j = 0; j < D; j++) into.dense[o * D + j] = cols.dense[j][r];
        for (let t = 0; t < T; t++) into.cats[o * T + t] = cols.cats[t][r];
      }
      row += cols.n;
      if (row >= end) break;
    }
    base = pEnd;
  }
}

export type ArrowCacheSource = DataSource & { manifest: CacheManifest; splitRows(split: SplitName): number };

export async function readManifest(dir: string, fs?: DataFs): Promise<CacheManifest> {
  fs ??= await hostFs();
  const path = joinPath(dir, MANIFEST);
  if (!(await fs.exists(path))) throw new DataError(`${dir}: no ${MANIFEST}; not a preprocessed cache (run preprocessCriteo first)`);
  const m = JSON.parse(await fs.readText(path)) as CacheManifest;
  if (m.version !== MANIFEST_VERSION) throw new DataError(`${path}: cache version ${m.version}, this code reads ${MANIFEST_VERSION}; preprocess again`);
  return m;
}

export async function arrowCacheSource(dir: string, opts: ArrowCacheOptions = {}): Promise<ArrowCacheSource> {
  const fs = opts.fs ?? (await hostFs());
  const manifest = await readManifest(dir, fs);
  const split = opts.split ?? "days";
  const randomize = opts.randomize ?? "none";
  checkShuffle({ randomize, seed: opts.shuffleSeed ?? 0, shardRows: opts.shardRows, pieceRows: opts.pieceRows });
  if (split !== "days") {
    if (!(split.val >= 0 && split.test >= 0 && split.val + split.test <= 1)) {
      throw new DataError(`random split: val (${split.val}) and test (${split.test}) must be >= 0 and sum to at most 1`);
    }
  }
  const which = (row: number): SplitName => {
    const s = split as RandomSplit;
    const u = hashUniform(s.seed >>> 0, row, 0x5151);
    return u < s.test ? "test" : u < s.test + s.val ? "val" : "train";
  };
  const splitRows = (name: SplitName): number => {
    if (split === "days") {
      const [lo, hi] = daySplitRange(manifest.days, name);
      return hi - lo;
    }
    let n = 0;
    for (let r = 0; r < manifest.rows; r++) if (which(r) === name) n++;
    return n;
  };
  return {
    numDense: manifest.numDense,
    tableRows: manifest.tableRows,
    manifest,
    splitRows,
    async *batches(b: BatchOptions): AsyncGenerator<Batch> {
      checkBatchOptions(b);
      const name = b.split ?? "train";
      const [lo, hi] = split === "days" ? daySplitRange(manifest.days, name) : [0, manifest.rows];
      const B = b.batchSize, D = manifest.numDense, T = manifest.numTables;
      const limit = b.limit ?? Infinity;
      let made = 0;
      let cur = newBatch(B, D, T);
      let fill = 0;
      let row = 0; // global row number of the first row of the current record batch
      if (limit === 0) return;
      if (name === "train" && randomize !== "none") {
        // Shuffled: shards in a permuted order, each read whole and emitted in a permuted row order.
        const plan = shufflePlan(lo, hi, manifest.days, b.epoch ?? 0, { randomize, seed: opts.shuffleSeed ?? 0, shardRows: opts.shardRows, pieceRows: opts.pieceRows });
        // Two shard buffers: the next shard is read while this one is emitted.
        const maxRows = plan.reduce((a, s) => Math.max(a, s.rows), 0);
        const bufs: RowBlockBuffer[] = (plan.length > 1 ? [0, 1] : [0]).map(() => ({ labels: new Float32Array(maxRows), dense: new Float32Array(maxRows * D), cats: new Uint32Array(maxRows * T) }));
        const readShard = async (sh: Shard, buf: RowBlockBuffer) => {
          let at = 0;
          for (const p of sh.pieces) {
            await readRows(fs, dir, manifest, p.start, p.rows, buf, at);
            at += p.rows;
          }
        };
        let reading = plan.length ? readShard(plan[0], bufs[0]) : Promise.resolve();
        for (let s = 0; s < plan.length; s++) {
          const shard = plan[s];
          await reading;
          const buf = bufs[s % bufs.length];
          if (s + 1 < plan.length) {
            reading = readShard(plan[s + 1], bufs[(s + 1) % bufs.length]);
            reading.catch(() => {}); // awaited next round; avoid an unhandled rejection if the consumer stops first
          }
          const order = shard.order();
          for (let k = 0; k < shard.rows; k++) {
            const o = order ? order[k] : k;
            if (split !== "days" && which(shardRow(shard, o)) !== name) continue;
            cur.labels[fill] = buf.labels[o];
            for (let j = 0; j < D; j++) cur.dense[fill * D + j] = buf.dense[o * D + j];
            for (let t = 0; t < T; t++) cur.indices[t * B + fill] = buf.cats[o * T + t];
            if (++fill === B) {
              yield cur;
              if (++made >= limit) return;
              cur = newBatch(B, D, T);
              fill = 0;
            }
          }
        }
        if (fill > 0 && !b.dropLast) yield shrink(cur, fill);
        return;
      }
      for (const part of manifest.parts) {
        if (row + part.rows <= lo) { row += part.rows; continue; }
        if (row >= hi) break;
        for await (const cols of readPart(fs, dir, part.file)) {
          const r0 = Math.max(lo - row, 0), r1 = Math.min(hi - row, cols.n);
          for (let r = r0; r < r1; r++) {
            if (split !== "days" && which(row + r) !== name) continue;
            cur.labels[fill] = cols.label[r];
            for (let j = 0; j < D; j++) cur.dense[fill * D + j] = cols.dense[j][r];
            for (let t = 0; t < T; t++) cur.indices[t * B + fill] = cols.cats[t][r];
            if (++fill === B) {
              yield cur;
              if (++made >= limit) return;
              cur = newBatch(B, D, T);
              fill = 0;
            }
          }
          row += cols.n;
          if (row >= hi) break;
        }
        if (row >= hi) break;
      }
      if (fill > 0 && !b.dropLast) yield shrink(cur, fill);
    },
  };
}

/** A one-hot batch: every bag holds one index, so offsets are 0..T*B. */
function newBatch(B: number, D: number, T: number): Batch {
  const offsets = new Uint32Array(T * B + 1);
  for (let i = 0; i <= T * B; i++) offsets[i] = i;
  return { size: B, numDense: D, numTables: T, dense: new Float32Array(B * D), offsets, indices: new Uint32Array(T * B), labels: new Float32Array(B) };
}

function shrink(b: Batch, n: number): Batch {
  const out = newBatch(n, b.numDense, b.numTables);
  out.dense.set(b.dense.subarray(0, n * b.numDense));
  out.labels.set(b.labels.subarray(0, n));
  for (let t = 0; t < b.numTables; t++) out.indices.set(b.indices.subarray(t * b.size, t * b.size + n), t * n);
  return out;
}
