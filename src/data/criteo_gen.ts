/**
 * Generated Criteo-format click logs at the real scale, so preprocessing,
 * dictionaries, the shuffle and the uncapped model can be exercised without
 * the real data. Writes TSV (label \t I1..I13 \t C1..C26) byte by byte into
 * reused buffers (no per-row strings), fast enough for 45.8M rows.
 *
 * Per categorical feature j with cardinality N_j over R rows:
 * - row i brings a never-seen value with probability (N_j - seen_j) / (R - i)
 *   (sequential sampling: exactly N_j distinct values after R rows, spread
 *   over the whole file as new ids keep appearing in real logs);
 * - otherwise it repeats an already-seen value of rank k (0 = first seen)
 *   drawn Zipf-like: k = floor(seen^u) - 1, P(k) ~ 1 / ((k + 1) ln seen);
 * - rank k is written as the 8-digit hex of a bijective 32-bit mix of
 *   (k, j), so distinct ranks are distinct values (no collisions).
 * Integers: log-normal-ish counts with per-feature missing rates (missing is an
 * empty field), a few negatives in I2 as in Kaggle. Labels from a hidden teacher
 * of the same form as synthetic.ts's: logit = bias + sum_j w_j (log1p(I_j)/L - 1/2)
 * + sum_t score_t(rank), score hashed from (seed, t, rank), label ~ Bernoulli(sigmoid).
 *
 * Shapes: "kaggle" = the Kaggle train.txt cardinalities (33.8M distinct over
 * 45,840,617 rows); "terabyte" = one day of Terabyte (about 195M rows) with the
 * 24-day cardinalities. Fewer rows scale every cardinality by rows / R (so a
 * small test file keeps the shape), unless `cardinalities` is given.
 */

/** Distinct values per feature in Criteo Kaggle train.txt (as the reference prints them). */
export const KAGGLE_CARDINALITIES = [
  1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
];
export const KAGGLE_ROWS = 45840617;
/** Distinct values per feature over the 24 Terabyte days (MLPerf's counts). */
export const TERABYTE_CARDINALITIES = [
  39884406, 39043, 17289, 7420, 20263, 3, 7120, 1543, 63, 38532951, 2953546, 403346, 10, 2208, 11938, 155, 4, 976, 14, 39979771, 25641295, 39664984, 585935, 12972, 108, 36,
];
/** Rows of one Terabyte day (about 4.37e9 / 24 minus the held-out one; day_0 has 195,841,983). */
export const TERABYTE_DAY_ROWS = 195841983;

export interface CriteoGenOptions {
  shape: "kaggle" | "terabyte";
  /** Rows to write; default the shape's full size. */
  rows?: number;
  /** Rows of the whole file the schedule is planned for (write only a prefix when rows < plannedRows). Default rows. */
  plannedRows?: number;
  seed?: number;
  /** Override the per-feature distinct counts (26 values). */
  cardinalities?: readonly number[];
}

const MISSING_INT = [0.45, 0.0, 0.2, 0.2, 0.03, 0.22, 0.04, 0.0, 0.04, 0.45, 0.04, 0.77, 0.2];
const INT_SCALE = [3, 6, 5, 3, 10, 6, 4, 3, 5, 1, 3, 3, 4];
/** Missing (empty) categoricals, as in Kaggle's C19, C20, C22, C25, C26. */
const MISSING_CAT = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.44, 0.44, 0, 0.76, 0, 0, 0.44, 0.44];

function mix32(x: number): number {
  // Bijective on u32 (xorshift-multiply, murmur3 finalizer).
  x = (x ^ (x >>> 16)) >>> 0;
  x = Math.imul(x, 0x85ebca6b);
  x = (x ^ (x >>> 13)) >>> 0;
  x = Math.imul(x, 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

export interface CriteoGenerator {
  readonly rows: number;
  readonly cardinalities: readonly number[];
  /** Fills `out` with whole rows (at most maxRows); returns bytes written, 0 at the end. */
  fill(out: Uint8Array, maxRows?: number): number;
  /** Rows written so far. */
  readonly written: number;
}

export function criteoGenerator(opts: CriteoGenOptions): CriteoGenerator {
  const full = opts.shape === "kaggle" ? KAGGLE_ROWS : TERABYTE_DAY_ROWS;
  const baseCards = opts.shape === "kaggle" ? KAGGLE_CARDINALITIES : TERABYTE_CARDINALITIES;
  const rows = opts.rows ?? full;
  const planned = Math.max(rows, opts.plannedRows ?? rows);
  if (!(Number.isInteger(rows) && rows >= 1)) throw new Error(`rows must be a positive integer, got ${rows}`);
  const cards = opts.cardinalities ? [...opts.cardinalities] : baseCards.map((c) => Math.max(1, Math.min(planned, Math.round((c * planned) / full))));
  if (cards.length !== 26) throw new Error(`cardinalities: 26 needed, got ${cards.length}`);
  for (const c of cards) if (!(Number.isInteger(c) && c >= 1 && c <= planned && c <= 2 ** 32)) throw new Error(`cardinality ${c} must be an integer in [1, min(rows, 2^32)]`);
  const seed = (opts.seed ?? 1) >>> 0;

  // xorshift128 state (fast u32 stream).
  let s0 = mix32(seed ^ 0x1234567) | 1, s1 = mix32(seed + 0x9e3779b9) | 2, s2 = mix32(seed ^ 0xdeadbeef) | 4, s3 = mix32(seed + 0x7f4a7c15) | 8;
  const next = (): number => {
    let t = s3;
    const s = s0;
    s3 = s2; s2 = s1; s1 = s;
    t ^= t << 11;
    t ^= t >>> 8;
    s0 = (t ^ s ^ (s >>> 19)) >>> 0;
    return s0;
  };
  const U = 1 / 2 ** 32;

  const seen = new Float64Array(26);
  const lnSeen = new Float64Array(26);
  const salt = Array.from({ length: 26 }, (_, j) => mix32(seed * 31 + j + 1));
  const scoreSalt = Array.from({ length: 26 }, (_, j) => mix32(seed ^ (0x5c0de + j * 0x10001)));
  // Teacher weights.
  const w = Array.from({ length: 13 }, (_, j) => ((mix32(seed + 1000 + j) * U) * 2 - 1) * 1.2);
  const a = 3 * Math.sqrt(3 / 26);
  // Logits are centred by a running mean, then shifted to a click rate near Kaggle's (about 1 in 4).
  const bias = -1.6;
  let zMean = 0;
  const intRank = new Float64Array(13);

  let i = 0;
  const HEX = new Uint8Array(16);
  for (let k = 0; k < 16; k++) HEX[k] = k < 10 ? 48 + k : 87 + k;

  return {
    rows,
    cardinalities: cards,
    get written() { return i; },
    fill(out: Uint8Array, maxRows = Infinity): number {
      let p = 0;
      const limit = out.length - 512; // one row is < 400 bytes
      let made = 0;
      while (i < rows && p < limit && made < maxRows) {
        const lineStart = p;
        p++; // label placeholder
        let z = 0;
        for (let j = 0; j < 13; j++) {
          out[p++] = 9;
          if (next() * U < MISSING_INT[j]) { intRank[j] = 0; continue; }
          let v = Math.floor(Math.expm1(next() * U * INT_SCALE[j] * 2.3));
          if (j === 1 && next() < 0x01000000) v = -1 - (next() & 1);
          z += w[j] * (Math.log1p(v > 0 ? v : 0) / (INT_SCALE[j] * 2.3) - 0.5);
          if (v < 0) { out[p++] = 45; v = -v; }
          if (v === 0) out[p++] = 48;
          else {
            let d = 1;
            while (d * 10 <= v) d *= 10;
            for (; d >= 1; d = Math.floor(d / 10)) { const q = Math.floor(v / d); out[p++] = 48 + q; v -= q * d; }
          }
        }
        const left = planned - i;
        for (let j = 0; j < 26; j++) {
          out[p++] = 9;
          if (MISSING_CAT[j] > 0 && next() * U < MISSING_CAT[j]) continue;
          const sj = seen[j];
          let rank: number;
          if (sj === 0 || next() * U * left * (1 - MISSING_CAT[j]) < cards[j] - sj) {
            rank = sj;
            seen[j] = sj + 1;
            lnSeen[j] = Math.log(sj + 1);
          } else {
            rank = Math.floor(Math.exp(next() * U * lnSeen[j])) - 1;
            if (rank >= sj) rank = sj - 1;
          }
          const hv = mix32(((rank ^ salt[j]) + Math.imul(j, 0x9e3779b9)) >>> 0);
          for (let sh = 28; sh >= 0; sh -= 4) out[p++] = HEX[(hv >>> sh) & 15];
          z += a * (2 * (mix32((rank ^ scoreSalt[j]) >>> 0) * U) - 1);
        }
        out[p++] = 10;
        zMean += (z - zMean) / Math.min(i + 1, 4096);
        out[lineStart] = next() * U < 1 / (1 + Math.exp(-(z - zMean + bias))) ? 49 : 48;
        i++;
        made++;
      }
      return p;
    },
  };
}

/** The generator as a web ReadableStream of TSV bytes (feed it to preprocessCriteo as a ByteSource without touching the disk). */
export function criteoStream(opts: CriteoGenOptions, chunkBytes = 1 << 22): ReadableStream<Uint8Array> {
  const g = criteoGenerator(opts);
  return new ReadableStream<Uint8Array>({
    pull(c) {
      const buf = new Uint8Array(chunkBytes);
      const n = g.fill(buf);
      if (n === 0) c.close();
      else c.enqueue(buf.subarray(0, n));
    },
  });
}
