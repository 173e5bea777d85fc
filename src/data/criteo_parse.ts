/**
 * Streaming parser of Criteo click logs, shared by every host: input is a web
 * ReadableStream of bytes (File.stream() in a browser, a file stream in Node
 * or Deno), gzip is detected by its magic bytes and inflated with the
 * web-standard DecompressionStream, and rows are parsed straight from the
 * bytes (no per-line strings) into reused column blocks. Never holds more than
 * one input chunk plus one block.
 *
 * Formats:
 * - "tsv": Kaggle train.txt / Terabyte day_N: label \t I1..I13 \t C1..C26,
 *   40 tab-separated fields, any field but the label may be empty.
 * - "csv": the same fields comma-separated after a header line
 *   `label,I1,...,I13,C1,...,C26`.
 * Values as the reference (data_utils.py process_one_file) reads them: a
 * missing field is "0", so a missing integer is 0 and a missing categorical
 * is the hex value 0. Integers are kept raw here (negatives included);
 * preprocessing clamps and log-transforms them.
 *
 * Malformed rows (wrong field count, non-integer I, non-hex C or longer than
 * 13 hex digits, label not 0/1) are skipped and reported with their 1-based
 * line number, or thrown at the first one with `strict`.
 */
import type { ByteSource } from "./fs.ts";
import { DataError } from "./source.ts";

export const CRITEO_NUM_DENSE = 13;
export const CRITEO_NUM_CAT = 26;
export const CRITEO_NUM_FIELDS = 1 + CRITEO_NUM_DENSE + CRITEO_NUM_CAT;
export const CRITEO_CSV_HEADER = [
  "label",
  ...Array.from({ length: CRITEO_NUM_DENSE }, (_, i) => `I${i + 1}`),
  ...Array.from({ length: CRITEO_NUM_CAT }, (_, i) => `C${i + 1}`),
].join(",");

export type CriteoFormat = "tsv" | "csv";

/** One block of parsed rows (column-major per kind). Valid only during the onBlock callback. */
export interface RowBlock {
  n: number;
  /** [n] 0 or 1. */
  labels: Float32Array;
  /** [n * 13] raw integers, row-major (missing = 0, negatives kept). */
  ints: Float64Array;
  /** [n * 26] categorical values (hex parsed, missing = 0), row-major. */
  cats: Float64Array;
}

export interface MalformedRow {
  file: string;
  /** 1-based line number in the (decompressed) file. */
  line: number;
  reason: string;
}

export interface ParseOptions {
  /** Default: detected from the first line. */
  format?: CriteoFormat;
  /** Throw at the first malformed row instead of skipping it. */
  strict?: boolean;
  /** Rows per block (default 65536). */
  blockRows?: number;
  /** Called for every malformed row. */
  onMalformed?(m: MalformedRow): void;
  /** Called with the total raw (possibly compressed) bytes read so far. */
  onBytes?(bytesRead: number): void;
}

export interface ParseStats {
  file: string;
  format: CriteoFormat;
  gzip: boolean;
  rows: number;
  lines: number;
  malformed: number;
  /** The first 100 malformed rows. */
  malformedSamples: MalformedRow[];
}

/** The input is not usable at all (empty, truncated, wrong format). */
export class CriteoFormatError extends DataError {}

/** A malformed row under `strict`. */
export class MalformedRowError extends DataError {
  constructor(readonly row: MalformedRow) {
    super(`${row.file}:${row.line}: malformed Criteo row: ${row.reason} (strict mode; drop \`strict\` to skip and count such rows)`);
  }
}

const MAX_LINE = 1 << 20;
const EXPECTED = `Criteo click logs: ${CRITEO_NUM_FIELDS} tab-separated fields per line (label, I1..I13, C1..C26), or CSV with the header ${CRITEO_CSV_HEADER.slice(0, 24)}...C26; gzip allowed`;

/** Parses one input; calls onBlock with each full block and the last partial one. */
export async function parseCriteo(
  src: ByteSource,
  opts: ParseOptions,
  onBlock: (block: RowBlock) => void | Promise<void>,
): Promise<ParseStats> {
  const blockRows = opts.blockRows ?? 65536;
  const block: RowBlock = {
    n: 0,
    labels: new Float32Array(blockRows),
    ints: new Float64Array(blockRows * CRITEO_NUM_DENSE),
    cats: new Float64Array(blockRows * CRITEO_NUM_CAT),
  };
  const stats: ParseStats = { file: src.name, format: opts.format ?? "tsv", gzip: false, rows: 0, lines: 0, malformed: 0, malformedSamples: [] };
  const { stream, gzip } = await decodedStream(src, opts.onBytes);
  stats.gzip = gzip;

  let format: CriteoFormat | undefined = opts.format;
  let sep = 9;
  let headerPending = false;
  let sawData = false;
  let carry: Uint8Array | null = null;
  let lineNo = 0;

  const malformed = (reason: string) => {
    const m: MalformedRow = { file: src.name, line: lineNo, reason };
    if (opts.strict) throw new MalformedRowError(m);
    stats.malformed++;
    if (stats.malformedSamples.length < 100) stats.malformedSamples.push(m);
    opts.onMalformed?.(m);
  };

  // Handles one line buf[s, e) (newline excluded). Returns true if a block filled up.
  const line = (buf: Uint8Array, s: number, e: number): boolean => {
    lineNo++;
    if (e > s && buf[e - 1] === 13) e--; // CRLF
    if (e === s) return false; // blank line
    if (format === undefined) {
      format = detectFormat(src.name, buf, s, e);
      stats.format = format;
      headerPending = format === "csv";
    }
    if (headerPending) {
      headerPending = false;
      sep = 44;
      const header = new TextDecoder().decode(buf.subarray(s, e)).trim();
      if (header.toLowerCase() !== CRITEO_CSV_HEADER.toLowerCase()) {
        throw new CriteoFormatError(`${src.name}: line 1 is not the expected CSV header ${CRITEO_CSV_HEADER}: ${JSON.stringify(header.slice(0, 120))}`);
      }
      return false;
    }
    if (format === "csv") sep = 44;
    const reason = parseRow(buf, s, e, sep, block, block.n);
    if (reason !== null) {
      malformed(reason);
      return false;
    }
    block.n++;
    stats.rows++;
    return block.n === blockRows;
  };

  const reader = stream.getReader();
  try {
    for (;;) {
      let r: ReadableStreamReadResult<Uint8Array>;
      try {
        r = await reader.read();
      } catch (e) {
        throw new CriteoFormatError(`${src.name}: ${gzip ? "truncated or corrupt gzip" : "read failed"} after line ${lineNo} (${(e as Error).message}); expected ${EXPECTED}`);
      }
      if (r.done) break;
      let buf = r.value;
      if (buf.length === 0) continue;
      if (!sawData) {
        sawData = true;
        if (looksBinary(buf)) {
          throw new CriteoFormatError(`${src.name}: looks like a binary file (starts with ${hex(buf.subarray(0, 8))}), expected ${EXPECTED}`);
        }
      }
      let start = 0;
      if (carry) {
        const nl = buf.indexOf(10);
        if (nl < 0) {
          carry = concat(carry, buf);
          if (carry.length > MAX_LINE) throw new CriteoFormatError(`${src.name}: line ${lineNo + 1} is longer than ${MAX_LINE} bytes; expected ${EXPECTED}`);
          continue;
        }
        const joined = concat(carry, buf.subarray(0, nl));
        carry = null;
        if (line(joined, 0, joined.length)) await flush();
        start = nl + 1;
      }
      for (;;) {
        const nl = buf.indexOf(10, start);
        if (nl < 0) break;
        if (line(buf, start, nl)) await flush();
        start = nl + 1;
      }
      if (start < buf.length) {
        if (buf.length - start > MAX_LINE) throw new CriteoFormatError(`${src.name}: line ${lineNo + 1} is longer than ${MAX_LINE} bytes; expected ${EXPECTED}`);
        carry = buf.slice(start);
      }
      buf = new Uint8Array(0);
    }
    if (carry) {
      line(carry, 0, carry.length);
      carry = null;
    }
    if (!sawData) throw new CriteoFormatError(`${src.name}: file is empty${gzip ? " (after gunzip)" : ""}; expected ${EXPECTED}`);
    if (format === undefined) throw new CriteoFormatError(`${src.name}: file has only blank lines; expected ${EXPECTED}`);
    await flush();
  } finally {
    reader.releaseLock();
  }
  return stats;

  async function flush(): Promise<void> {
    if (block.n > 0) await onBlock(block);
    block.n = 0;
  }
}

/** The raw stream, or its gunzipped version when it starts with the gzip magic 1f 8b. */
async function decodedStream(src: ByteSource, onBytes?: (n: number) => void): Promise<{ stream: ReadableStream<Uint8Array>; gzip: boolean }> {
  const raw = src.open().getReader();
  let read = 0;
  const head: Uint8Array[] = [];
  let headLen = 0;
  let done = false;
  while (headLen < 2) {
    const r = await raw.read();
    if (r.done) { done = true; break; }
    head.push(r.value);
    headLen += r.value.length;
    read += r.value.length;
  }
  onBytes?.(read);
  const first = head.length ? concat(...head) : new Uint8Array(0);
  const gzip = first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b;
  const counted = new ReadableStream<Uint8Array>({
    start(c) {
      if (first.length) c.enqueue(first);
      if (done) c.close();
    },
    async pull(c) {
      const r = await raw.read();
      if (r.done) return c.close();
      read += r.value.length;
      onBytes?.(read);
      c.enqueue(r.value);
    },
    cancel: (reason) => raw.cancel(reason),
  });
  if (!gzip) return { stream: counted, gzip };
  return { stream: counted.pipeThrough(new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>), gzip };
}

function detectFormat(file: string, buf: Uint8Array, s: number, e: number): CriteoFormat {
  let tabs = 0, commas = 0;
  for (let i = s; i < e; i++) {
    if (buf[i] === 9) tabs++;
    else if (buf[i] === 44) commas++;
  }
  const text = () => JSON.stringify(new TextDecoder().decode(buf.subarray(s, Math.min(e, s + 120))));
  if (tabs >= 2) return "tsv";
  if (commas >= 2) {
    if (buf[s] === 0x6c || buf[s] === 0x4c) return "csv"; // 'l' / 'L': a header; checked exactly by the caller
    throw new CriteoFormatError(`${file}: comma-separated without a header line; expected ${EXPECTED}. First line: ${text()}`);
  }
  throw new CriteoFormatError(`${file}: first line has ${tabs + 1} tab-separated fields, not ${CRITEO_NUM_FIELDS}; expected ${EXPECTED}. First line: ${text()}`);
}

/** Parses one row into block row `r`; returns null or why it is malformed. */
function parseRow(buf: Uint8Array, s: number, e: number, sep: number, block: RowBlock, r: number): string | null {
  let p = s;
  // label
  let q = p;
  while (q < e && buf[q] !== sep) q++;
  if (q - p !== 1 || (buf[p] !== 48 && buf[p] !== 49)) return `label must be 0 or 1, got ${show(buf, p, q)}`;
  block.labels[r] = buf[p] - 48;
  let field = 1;
  const ints = block.ints, ib = r * CRITEO_NUM_DENSE;
  for (let j = 0; j < CRITEO_NUM_DENSE; j++, field++) {
    if (q >= e) return `expected ${CRITEO_NUM_FIELDS} fields, got ${field}`;
    p = q + 1;
    q = p;
    let neg = false;
    if (q < e && buf[q] === 45) { neg = true; q++; }
    const d0 = q;
    let v = 0;
    while (q < e) {
      const c = buf[q] - 48;
      if (c < 0 || c > 9) break;
      v = v * 10 + c;
      q++;
    }
    if (q < e && buf[q] !== sep) {
      while (q < e && buf[q] !== sep) q++;
      return `I${j + 1} is not an integer: ${show(buf, p, q)}`;
    }
    if (q === d0 && neg) return `I${j + 1} is not an integer: "-"`;
    ints[ib + j] = neg ? -v : v;
  }
  const cats = block.cats, cb = r * CRITEO_NUM_CAT;
  for (let j = 0; j < CRITEO_NUM_CAT; j++, field++) {
    if (q >= e) return `expected ${CRITEO_NUM_FIELDS} fields, got ${field}`;
    p = q + 1;
    q = p;
    let v = 0;
    while (q < e) {
      const c = buf[q];
      let d: number;
      if (c >= 48 && c <= 57) d = c - 48;
      else if (c >= 97 && c <= 102) d = c - 87;
      else if (c >= 65 && c <= 70) d = c - 55;
      else break;
      v = v * 16 + d;
      q++;
    }
    if (q < e && buf[q] !== sep) {
      while (q < e && buf[q] !== sep) q++;
      return `C${j + 1} is not hexadecimal: ${show(buf, p, q)}`;
    }
    if (q - p > 13) return `C${j + 1} has ${q - p} hex digits (at most 13 supported): ${show(buf, p, q)}`;
    cats[cb + j] = v;
  }
  if (q < e) {
    let n = field;
    for (let i = q; i < e; i++) if (buf[i] === sep) n++;
    return `expected ${CRITEO_NUM_FIELDS} fields, got ${n}`;
  }
  return null;
}

function show(buf: Uint8Array, s: number, e: number): string {
  return JSON.stringify(new TextDecoder().decode(buf.subarray(s, Math.min(e, s + 40))));
}

function looksBinary(b: Uint8Array): boolean {
  const n = Math.min(b.length, 512);
  for (let i = 0; i < n; i++) if (b[i] === 0) return true;
  return false;
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}
