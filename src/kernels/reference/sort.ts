/** CPU references for the scan and radix sort kernels (plain loops). */

/** out[i] = sum(input[0..i)) mod 2^32. */
export function exclusiveScanRef(input: ArrayLike<number>, count: number): Uint32Array {
  const out = new Uint32Array(count);
  let acc = 0;
  for (let i = 0; i < count; i++) {
    out[i] = acc;
    acc = (acc + input[i]!) >>> 0;
  }
  return out;
}

/**
 * Stable sort of (key, value) pairs by the low `bits` bits of the key
 * (insertion into per-key buckets in input order, then buckets in key order).
 */
export function stableSortRef(keys: ArrayLike<number>, values: ArrayLike<number>, count: number, bits = 32): { keys: Uint32Array; values: Uint32Array } {
  const idx: number[] = [];
  for (let i = 0; i < count; i++) idx.push(i);
  const mask = bits === 32 ? 0xffffffff : 2 ** bits - 1;
  const sortKey = (i: number) => (keys[i]! & mask) >>> 0;
  // Array.prototype.sort is stable (ES2019); ties keep input order.
  idx.sort((a, b) => sortKey(a) - sortKey(b));
  const k = new Uint32Array(count);
  const v = new Uint32Array(count);
  idx.forEach((src, dst) => {
    k[dst] = keys[src]!;
    v[dst] = values[src]!;
  });
  return { keys: k, values: v };
}
