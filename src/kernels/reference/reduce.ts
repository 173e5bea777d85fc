/** float64 reference for reduce_sum: scale * sum, and the sum of |x| for tolerances. */
export function reduceSumRef(x: ArrayLike<number>, count: number, scale = 1): { sum: number; sumAbs: number } {
  let s = 0;
  let a = 0;
  for (let i = 0; i < count; i++) {
    s += x[i]!;
    a += Math.abs(x[i]!);
  }
  return { sum: s * scale, sumAbs: a * Math.abs(scale) };
}
