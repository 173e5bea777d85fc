/**
 * The training-order shuffle (the reference's --data-randomize) in bounded
 * memory, deterministic for a (seed, epoch):
 * - "none": rows in file order;
 * - "day": each training day on its own, days in order (the reference permutes
 *   the rows of each day);
 * - "total": across all training days (the reference permutes all training rows).
 * The reference holds a whole permutation and gathers rows at random; here the
 * rows to shuffle (a day, or the whole training range) are cut into pieces of
 * `pieceRows` consecutive rows (default 65536, one record batch of the cache),
 * the pieces are permuted over the whole group, and each run of K = shardRows /
 * pieceRows consecutive pieces of that order is a shard: read whole (its pieces
 * come from anywhere in the group, e.g. 16 places spread over all training
 * days) and emitted in a permuted row order. So a batch mixes rows from K
 * random places of the group, not from one stretch of it. Memory is two shards
 * (about 160 bytes per row for Criteo) whatever the data size. Validation and
 * test rows are never shuffled.
 *
 * Definition (what the in-memory reference in the tests reimplements), with
 * S = shardRows, P = min(S, pieceRows), K = max(1, round(S / P)):
 * - groups: "total" one group = the training range; "day" one group per day
 *   (the day's part of the training range); "none" nothing is permuted (file
 *   order, read S rows at a time);
 * - group g with rows [a, b) has pieces k = floor(a/P) .. ceil(b/P) - 1, piece k
 *   = rows [max(a, kP), min(b, (k+1)P)) (aligned to global multiples of P);
 * - piece order = fisherYates(count, Rng(mixSeed(seed, epoch, 1, g))); shard i =
 *   pieces i*K .. i*K + K - 1 of that order, their rows concatenated in order;
 * - a shard of n rows whose first piece starts at row r0 is emitted as its
 *   rows taken in the order p = fisherYates(n, Rng(mixSeed(seed, epoch, 2, r0))).
 * fisherYates(n, rng): p = [0..n); for i = n-1 down to 1: j = rng.int(i + 1), swap p[i], p[j].
 */
import { Rng } from "../util/rng.ts";
import { DataError } from "./source.ts";

export type Randomize = "total" | "day" | "none";
export const RANDOMIZE_CHOICES: readonly Randomize[] = ["total", "day", "none"];

/** Default shard: 2^20 rows (about 160 MiB of Criteo columns). */
export const DEFAULT_SHARD_ROWS = 1 << 20;
/** Default piece: 2^16 rows (the cache's record batch), so a default shard gathers 16 pieces. */
export const DEFAULT_PIECE_ROWS = 1 << 16;

export interface ShuffleOptions {
  randomize: Randomize;
  seed: number;
  /** Rows per shard (default DEFAULT_SHARD_ROWS). */
  shardRows?: number;
  /** Rows per piece (default DEFAULT_PIECE_ROWS; at most shardRows). */
  pieceRows?: number;
}

export function checkShuffle(o: ShuffleOptions): void {
  if (!RANDOMIZE_CHOICES.includes(o.randomize)) throw new DataError(`randomize must be one of ${RANDOMIZE_CHOICES.join(", ")}, got ${JSON.stringify(o.randomize)}`);
  if (o.shardRows !== undefined && !(Number.isInteger(o.shardRows) && o.shardRows >= 1)) throw new DataError(`shardRows must be a positive integer, got ${o.shardRows}`);
  if (o.pieceRows !== undefined && !(Number.isInteger(o.pieceRows) && o.pieceRows >= 1)) throw new DataError(`pieceRows must be a positive integer, got ${o.pieceRows}`);
}

/** A 32-bit seed from (seed, epoch, kind, index). */
export function mixSeed(seed: number, epoch: number, kind: number, index: number): number {
  let h = (seed >>> 0) ^ 0x2545f491;
  for (const v of [epoch >>> 0, kind >>> 0, index >>> 0, Math.floor(index / 2 ** 32) >>> 0]) {
    h = Math.imul(h ^ v, 0x9e3779b1);
    h ^= h >>> 15;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
  }
  return h >>> 0;
}

/** A uniformly random permutation of 0..n-1 (Fisher-Yates). */
export function fisherYates(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export interface Shard {
  /** Row ranges (global row numbers), concatenated in this order: local row k is the k-th row of the concatenation. */
  pieces: { start: number; rows: number }[];
  /** Total rows. */
  rows: number;
  /** Row order inside the shard (local rows), or null for file order. */
  order(): Uint32Array | null;
}

/** Global row number of local row `k` of a shard. */
export function shardRow(sh: Shard, k: number): number {
  for (const p of sh.pieces) {
    if (k < p.rows) return p.start + k;
    k -= p.rows;
  }
  throw new DataError(`row ${k} past the end of a shard`);
}

/**
 * The shards of a range [lo, hi) of training rows, in emission order.
 * `days`: the day sizes of the whole cache (days[0] starts at row 0).
 */
export function shufflePlan(lo: number, hi: number, days: readonly number[], epoch: number, o: ShuffleOptions): Shard[] {
  checkShuffle(o);
  const S = o.shardRows ?? DEFAULT_SHARD_ROWS;
  if (hi <= lo) return [];
  if (o.randomize === "none") {
    const out: Shard[] = [];
    for (let a = lo; a < hi; a += S) { const rows = Math.min(S, hi - a); out.push({ pieces: [{ start: a, rows }], rows, order: () => null }); }
    return out;
  }
  const P = Math.min(S, o.pieceRows ?? DEFAULT_PIECE_ROWS);
  const K = Math.max(1, Math.round(S / P));
  const groups: [number, number][] = [];
  if (o.randomize === "total") groups.push([lo, hi]);
  else {
    let d0 = 0;
    for (const n of days) {
      const a = Math.max(lo, d0), b = Math.min(hi, d0 + n);
      if (a < b) groups.push([a, b]);
      d0 += n;
    }
    if (d0 < hi) groups.push([Math.max(lo, d0), hi]); // rows past the listed days (should not happen)
  }
  const out: Shard[] = [];
  groups.forEach(([a, b], g) => {
    const k0 = Math.floor(a / P);
    const count = Math.ceil(b / P) - k0;
    const perm = fisherYates(count, new Rng(mixSeed(o.seed, epoch, 1, g)));
    for (let i = 0; i < count; i += K) {
      const pieces: { start: number; rows: number }[] = [];
      let rows = 0;
      for (let q = i; q < Math.min(count, i + K); q++) {
        const k = k0 + perm[q];
        const start = Math.max(a, k * P);
        const n = Math.min(b, (k + 1) * P) - start;
        pieces.push({ start, rows: n });
        rows += n;
      }
      const r0 = pieces[0].start;
      out.push({ pieces, rows, order: () => fisherYates(rows, new Rng(mixSeed(o.seed, epoch, 2, r0))) });
    }
  });
  return out;
}
