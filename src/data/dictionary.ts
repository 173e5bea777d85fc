/**
 * Bounded-memory categorical dictionaries: one open-addressing hash table per
 * feature over typed arrays (no JavaScript Map, so no 2^24-entry limit and no
 * per-entry object overhead).
 *
 * Keys are the categorical values (Criteo's 32-bit hex hashes, after
 * % maxIndRange when given); values up to 2^52 are accepted (their high bits
 * go to a lazily allocated second key array, so ordinary 32-bit data never
 * pays for it). Each key gets a sequence number in order of first appearance
 * and a count. After counting, `assignIds(minFreq)` gives ids in order of
 * first appearance: with minFreq > 1, values seen fewer than minFreq times
 * share the rare id 0 and the others get 1, 2, ...; otherwise 0, 1, 2, ...
 * (the reference, data_utils.py: ids by dict insertion order over days).
 *
 * Memory: slots (key u32 + seq u32 = 8 bytes) at a load factor kept in
 * (0.35, 0.7], plus one u32 per distinct value (count, then id; its array
 * doubles, so 4-8 bytes), so between 15.4 and 30.9 bytes per distinct value,
 * and briefly 1.5x the slot bytes while a table grows (old and new slot arrays
 * coexist). Writing the dictionary out adds 8 bytes per value of one feature.
 */
import { DataError } from "./source.ts";

const MAX_LOAD = 0.7;
const TWO32 = 2 ** 32;

export class CategoryCounter {
  private keys: Uint32Array;
  private hi: Uint32Array | null = null;
  /** seq + 1 of the key in each slot; 0 = empty. */
  private seqs: Uint32Array;
  /** Per sequence number: the count (while counting), then the id (after assignIds). */
  private perSeq: Uint32Array;
  private mask: number;
  private shift: number;
  /** Distinct values seen. */
  size = 0;
  private idsAssigned = false;

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap * MAX_LOAD < initialCapacity) cap *= 2;
    this.keys = new Uint32Array(cap);
    this.seqs = new Uint32Array(cap);
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    this.perSeq = new Uint32Array(Math.max(16, initialCapacity));
  }

  /** Bytes held by the typed arrays now. */
  get bytes(): number {
    return this.keys.byteLength + this.seqs.byteLength + this.perSeq.byteLength + (this.hi?.byteLength ?? 0);
  }

  private slotOf(lo: number, h: number): number {
    // Fibonacci hashing of (lo, h); linear probing.
    const x = Math.imul((lo ^ Math.imul(h, 0x27d4eb2d)) >>> 0, 0x9e3779b1) >>> 0;
    let s = this.shift === 32 ? 0 : x >>> this.shift;
    const keys = this.keys, seqs = this.seqs, hi = this.hi, mask = this.mask;
    for (;;) {
      if (seqs[s] === 0) return s;
      if (keys[s] === lo && (hi === null ? h === 0 : hi[s] === h)) return s;
      s = (s + 1) & mask;
    }
  }

  /** Counts one occurrence of `v` (a non-negative integer < 2^52). */
  add(v: number): void {
    let lo: number, h: number;
    if (v < TWO32) { lo = v >>> 0; h = 0; }
    else { lo = v % TWO32; h = Math.floor(v / TWO32); if (!this.hi) this.hi = new Uint32Array(this.keys.length); }
    const s = this.slotOf(lo, h);
    const q = this.seqs[s];
    if (q !== 0) {
      this.perSeq[q - 1]++;
      return;
    }
    if (this.idsAssigned) throw new DataError("CategoryCounter: add after assignIds");
    const seq = this.size++;
    this.keys[s] = lo;
    if (this.hi) this.hi[s] = h;
    this.seqs[s] = seq + 1;
    if (seq >= this.perSeq.length) {
      const grown = new Uint32Array(Math.min(2 ** 32 - 1, this.perSeq.length * 2));
      grown.set(this.perSeq);
      this.perSeq = grown;
    }
    this.perSeq[seq] = 1;
    if (this.size > this.keys.length * MAX_LOAD) this.grow();
  }

  private grow(): void {
    const oldKeys = this.keys, oldSeqs = this.seqs, oldHi = this.hi;
    const cap = oldKeys.length * 2;
    if (cap > 2 ** 31) throw new DataError(`a categorical feature has more than ${Math.floor(2 ** 31 * MAX_LOAD)} distinct values; use --max-ind-range to hash them`);
    this.keys = new Uint32Array(cap);
    this.seqs = new Uint32Array(cap);
    this.hi = oldHi ? new Uint32Array(cap) : null;
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    for (let s = 0; s < oldKeys.length; s++) {
      const q = oldSeqs[s];
      if (q === 0) continue;
      const h = oldHi ? oldHi[s] : 0;
      const t = this.slotOf(oldKeys[s], h);
      this.keys[t] = oldKeys[s];
      this.seqs[t] = q;
      if (this.hi) this.hi[t] = h;
    }
  }

  /** Count of `v` (0 if unseen); counting phase only. */
  count(v: number): number {
    if (this.idsAssigned) throw new DataError("CategoryCounter: count after assignIds");
    const q = this.find(v);
    return q < 0 ? 0 : this.perSeq[q];
  }

  private find(v: number): number {
    const lo = v < TWO32 ? v >>> 0 : v % TWO32;
    const h = v < TWO32 ? 0 : Math.floor(v / TWO32);
    if (h !== 0 && !this.hi) return -1;
    const s = this.slotOf(lo, h);
    return this.seqs[s] === 0 ? -1 : this.seqs[s] - 1;
  }

  /**
   * Turns counts into ids (first-appearance order); returns the table size
   * (at least 1). The counts are overwritten (memory reused).
   */
  assignIds(minFreq: number): number {
    if (this.idsAssigned) throw new DataError("CategoryCounter: assignIds called twice");
    this.idsAssigned = true;
    let next = minFreq > 1 ? 1 : 0;
    const p = this.perSeq;
    for (let q = 0; q < this.size; q++) p[q] = p[q] >= minFreq ? next++ : 0;
    // Frequent-ness is recoverable: rare values have id 0 only when minFreq > 1.
    this.rows = Math.max(next, 1);
    return this.rows;
  }

  rows = 0;

  /** Id of `v` after assignIds; -1 if never seen in counting. */
  id(v: number): number {
    const q = this.find(v);
    return q < 0 ? -1 : this.perSeq[q];
  }

  /** The kept values in id order (ids 1.. with minFreq > 1, else 0..); rare values are left out. */
  keptValues(minFreq: number): Float64Array | Uint32Array {
    if (!this.idsAssigned) throw new DataError("CategoryCounter: keptValues before assignIds");
    const hi = this.hi;
    const out = hi ? new Float64Array(this.size) : new Uint32Array(this.size);
    // Seq order = first-appearance order = id order of the kept values.
    for (let s = 0; s < this.keys.length; s++) {
      const q = this.seqs[s];
      if (q !== 0) out[q - 1] = hi ? hi[s] * TWO32 + this.keys[s] : this.keys[s];
    }
    if (minFreq <= 1) return out;
    let m = 0;
    for (let q = 0; q < this.size; q++) if (this.perSeq[q] !== 0) out[m++] = out[q];
    return out.subarray(0, m);
  }
}
