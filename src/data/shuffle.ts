/**
 * The training-order shuffle (the reference's --data-randomize) in bounded
 * memory, deterministic for a (seed, epoch):
 * - "none": rows in file order;
 * - "day": each training day on its own, days in order (the reference permutes
 *   the rows of each day);
 * - "total": across all training days (the reference permutes all training rows).
 * The reference holds a whole permutation and gathers rows at random; here the
 * rows to shuffle (a day, or the whole training range) are cut into shards of
 * `shardRows` consecutive rows; the shard order is permuted, and each shard is
 * read whole and its rows permuted in memory. Memory is one shard (about 160
 * bytes per row for Criteo) whatever the data size. Validation and test rows
 * are never shuffled.
 *
 * Definition (what the in-memory reference in the tests reimplements):
 * - groups: "total" one group = the training range; "day" one group per day
 *   (the day's part of the training range); "none" nothing is permuted;
 * - group g with rows [lo, hi) has shards [lo + k*S, min(lo + (k+1)*S, hi));
 *   shard order = fisherYates(count, Rng(mixSeed(seed, epoch, 1, g)));
 * - a shard starting at row r0 with n rows is emitted as r0 + p[0..n) with
 *   p = fisherYates(n, Rng(mixSeed(seed, epoch, 2, r0))).
 * fisherYates(n, rng): p = [0..n); for i = n-1 down to 1: j = rng.int(i + 1), swap p[i], p[j].
 */
import { Rng } from "../util/rng.ts";
import { DataError } from "./source.ts";

export type Randomize = "total" | "day" | "none";
export const RANDOMIZE_CHOICES: readonly Randomize[] = ["total", "day", "none"];

/** Default shard: 2^20 rows (about 160 MiB of Criteo columns). */
export const DEFAULT_SHARD_ROWS = 1 << 20;

export interface ShuffleOptions {
  randomize: Randomize;
  seed: number;
  /** Rows per shard (default DEFAULT_SHARD_ROWS). */
  shardRows?: number;
}

export function checkShuffle(o: ShuffleOptions): void {
  if (!RANDOMIZE_CHOICES.includes(o.randomize)) throw new DataError(`randomize must be one of ${RANDOMIZE_CHOICES.join(", ")}, got ${JSON.stringify(o.randomize)}`);
  if (o.shardRows !== undefined && !(Number.isInteger(o.shardRows) && o.shardRows >= 1)) throw new DataError(`shardRows must be a positive integer, got ${o.shardRows}`);
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
  /** First row (global row number) and row count. */
  start: number;
  rows: number;
  /** Row order inside the shard (offsets from start), or null for file order. */
  order(): Uint32Array | null;
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
    for (let a = lo; a < hi; a += S) out.push({ start: a, rows: Math.min(S, hi - a), order: () => null });
    return out;
  }
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
    const count = Math.ceil((b - a) / S);
    const perm = fisherYates(count, new Rng(mixSeed(o.seed, epoch, 1, g)));
    for (const k of perm) {
      const start = a + k * S;
      const rows = Math.min(S, b - start);
      out.push({ start, rows, order: () => fisherYates(rows, new Rng(mixSeed(o.seed, epoch, 2, start))) });
    }
  });
  return out;
}
