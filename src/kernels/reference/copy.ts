/** float64 reference for copy_f32. */
export function copyRef(src: ArrayLike<number>, count: number): Float64Array {
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) out[i] = src[i]!;
  return out;
}
