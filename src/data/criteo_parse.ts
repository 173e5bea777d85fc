/**
 * Streaming parser of Criteo click logs, shared by every host: input is a web
 * ReadableStream of bytes (File.stream() in a browser, a file stream in Node
 * or Deno), gzip is detected by its magic bytes and inflated with the
 * web-standard DecompressionStream, and rows are parsed straight from the
 * bytes (no per-line strings) into reused column blocks. Never holds more than
 * one input chunk plus one block.
 *
 * Formats, detected from the first non-blank line (never from the file name):
 * - separator: tab ("tsv": Kaggle train.txt / Terabyte day_N) or comma ("csv");
 * - a UTF-8 byte-order mark is skipped;
 * - a header line (its first field is not a number, e.g. `label,I1,...,C26`)
 *   is skipped;
 * - 40 fields: label, I1..I13, C1..C26; 39 fields: no label column (Kaggle's
 *   test.txt), accepted only with `labels: "optional"` (labels read as NaN);
 * - gzip, by its magic bytes.
 * Any field but the label may be empty. Numbers written as floats are accepted
 * when integral (`260.0`, `1.0`, label `1.0`); a non-integral integer feature
 * (`2.5`) makes the row malformed (the reference's int() would stop on it).
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

/** What was detected in one input, for messages ("tsv, gzip, header skipped"). */
export function describeDetected(s: Pick<ParseStats, "format" | "gzip" | "header" | "bom" | "labeled">): string {
  return [s.format, s.gzip ? "gzip" : "", s.bom ? "UTF-8 BOM" : "", s.header ? "header line skipped" : "", s.labeled ? "" : "no label column"].filter(Boolean).join(", ");
}

/** One block of parsed rows (column-major per kind). Valid only during the onBlock callback. */
export interface RowBlock {
  n: number;
  /** [n] 0 or 1. */
  labels: Float32Array;
  /** [n * 13] raw integers, row-major (missing = 0, negatives kept). */
  ints: Float64Array;
  /** [n * 26] categorical values (hex parsed, missing = 0), row-major. */
  cats: Float64Array;
  /** [n] 1-based line number of each row in its (decompressed) file. */
  lines: Float64Array;
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
  /** "required" (default): 40 fields; "optional": 39-field rows without a label (NaN label) are accepted too. */
  labels?: "required" | "optional";
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
  /** A header line was skipped. */
  header: boolean;
  /** A UTF-8 byte-order mark was skipped. */
  bom: boolean;
  /** Rows carry a label (40 fields) or not (39). */
  labeled: boolean;
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
    lines: new Float64Array(blockRows),
  };
  const stats: ParseStats = { file: src.name, format: opts.format ?? "tsv", gzip: false, header: false, bom: false, labeled: true, rows: 0, lines: 0, malformed: 0, malformedSamples: [] };
  const { stream, gzip } = await decodedStream(src, opts.onBytes);
  stats.gzip = gzip;

  let format: CriteoFormat | undefined;
  let sep = 9;
  let labeled = true;
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
    if (format === undefined) {
      if (e - s >= 3 && buf[s] === 0xef && buf[s + 1] === 0xbb && buf[s + 2] === 0xbf) {
        s += 3; // UTF-8 byte-order mark
        stats.bom = true;
      }
      if (e === s) return false; // blank line
      const d = detectFormat(src.name, buf, s, e, opts.format);
      format = stats.format = d.format;
      sep = d.format === "csv" ? 44 : 9;
      labeled = stats.labeled = d.fields === CRITEO_NUM_FIELDS;
      if (!labeled && opts.labels !== "optional") {
        throw new CriteoFormatError(`${src.name}: rows have ${d.fields} fields, no label column (like Kaggle's test.txt): score such a file with \`predict --raw-data-file\`; training and eval need the label`);
      }
      if (d.header) {
        stats.header = true;
        return false;
      }
    }
    if (e === s) return false; // blank line
    const reason = parseRow(buf, s, e, sep, block, block.n, labeled);
    if (reason !== null) {
      malformed(reason);
      return false;
    }
    block.lines[block.n] = lineNo;
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

function detectFormat(file: string, buf: Uint8Array, s: number, e: number, forced?: CriteoFormat): { format: CriteoFormat; fields: number; header: boolean } {
  let tabs = 0, commas = 0;
  for (let i = s; i < e; i++) {
    if (buf[i] === 9) tabs++;
    else if (buf[i] === 44) commas++;
  }
  const text = () => JSON.stringify(new TextDecoder().decode(buf.subarray(s, Math.min(e, s + 120))));
  const format: CriteoFormat = forced ?? (tabs >= 2 ? "tsv" : commas >= 2 ? "csv" : "tsv");
  let fields = (format === "tsv" ? tabs : commas) + 1;
  if (fields < 3) {
    throw new CriteoFormatError(`${file}: first line has ${fields} ${format === "tsv" ? "tab" : "comma"}-separated fields, not ${CRITEO_NUM_FIELDS} (or ${CRITEO_NUM_FIELDS - 1} without the label); expected ${EXPECTED}. First line: ${text()}`);
  }
  // A first line of another width is a malformed labelled row (counted like any other).
  const width = fields === CRITEO_NUM_FIELDS || fields === CRITEO_NUM_FIELDS - 1;
  if (fields !== CRITEO_NUM_FIELDS - 1) fields = CRITEO_NUM_FIELDS;
  // A header: the first field is not a number (e.g. "label", "I1", "\"label\"").
  const sep = format === "tsv" ? 9 : 44;
  let q = s;
  while (q < e && buf[q] !== sep) q++;
  const first = new TextDecoder().decode(buf.subarray(s, q)).trim();
  const header = width && first !== "" && !Number.isFinite(Number(first));
  return { format, fields, header };
}

/** Byte -> decimal digit value, or -1. */
const DEC = new Int8Array(256).fill(-1);
/** Byte -> hexadecimal digit value (either case), or -1. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) DEC[48 + i] = HEX[48 + i] = i;
for (let i = 0; i < 6; i++) HEX[97 + i] = HEX[65 + i] = 10 + i;

/** Parses one row into block row `r`; returns null or why it is malformed. */
function parseRow(buf: Uint8Array, s: number, e: number, sep: number, block: RowBlock, r: number, labeled: boolean): string | null {
  const nFields = labeled ? CRITEO_NUM_FIELDS : CRITEO_NUM_FIELDS - 1;
  let p = s;
  let q = p;
  let field = 0;
  if (labeled) {
    // label: 0 or 1, also written as 0.0 / 1.0
    while (q < e && buf[q] !== sep) q++;
    let k = p + 1;
    if (k < q && buf[k] === 46) for (k++; k < q && buf[k] === 48; k++);
    if (q === p || k !== q || (buf[p] !== 48 && buf[p] !== 49)) return `label must be 0 or 1, got ${show(buf, p, q)}`;
    block.labels[r] = buf[p] - 48;
    field = 1;
  } else {
    block.labels[r] = NaN;
    q = s - 1; // the first integer field starts the line
  }
  const ints = block.ints, ib = r * CRITEO_NUM_DENSE;
  for (let j = 0; j < CRITEO_NUM_DENSE; j++, field++) {
    if (q >= e) return `expected ${nFields} fields, got ${field}`;
    p = q + 1;
    q = p;
    let neg = false;
    if (q < e && buf[q] === 45) { neg = true; q++; }
    const d0 = q;
    let v = 0;
    while (q < e) {
      const c = DEC[buf[q]];
      if (c < 0) break;
      v = v * 10 + c;
      q++;
    }
    if (q < e && buf[q] === 46 && q > d0) {
      // An integer written as a float (260.0): only zeros may follow the point.
      q++;
      let frac = false;
      while (q < e && buf[q] >= 48 && buf[q] <= 57) {
        if (buf[q] !== 48) frac = true;
        q++;
      }
      if (frac && (q >= e || buf[q] === sep)) return `I${j + 1} is not a whole number: ${show(buf, p, q)} (integers written as floats such as 260.0 are accepted; a fraction is not)`;
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
    if (q >= e) return `expected ${nFields} fields, got ${field}`;
    p = q + 1;
    q = p;
    // Up to 8 digits in 32-bit integer arithmetic, then (rare: > 8 digits) in float64.
    let v = 0;
    const p8 = Math.min(e, p + 8);
    while (q < p8) {
      const d = HEX[buf[q]];
      if (d < 0) break;
      v = ((v << 4) | d) >>> 0;
      q++;
    }
    if (q === p8) {
      while (q < e) {
        const d = HEX[buf[q]];
        if (d < 0) break;
        v = v * 16 + d;
        q++;
      }
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
    return `expected ${nFields} fields, got ${n}`;
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
