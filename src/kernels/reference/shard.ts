/** Float64 references of src/kernels/shard.ts (plain loops). */
import type { RouteColumn } from "../shard.ts";

export function addRef(x: ArrayLike<number>, y: ArrayLike<number>, count: number, xOffset = 0, yOffset = 0): Float64Array {
  const out = Float64Array.from(y as ArrayLike<number>);
  for (let i = 0; i < count; i++) out[yOffset + i] = out[yOffset + i]! + x[xOffset + i]!;
  return out;
}

/** output (a copy of `output`) with every routed column written for samples 0..batch-1. */
export function routeRef(input: ArrayLike<number>, output: ArrayLike<number>, batch: number, columns: RouteColumn[]): Float64Array {
  const out = Float64Array.from(output as ArrayLike<number>);
  for (let b = 0; b < batch; b++) {
    for (const c of columns) {
      let acc = 0;
      for (const s of c.sources) acc += input[s.offset + b * s.stride]!;
      out[c.offset + b * c.stride] = acc;
    }
  }
  return out;
}
