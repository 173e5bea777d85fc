/**
 * bf16 storage of an EmbeddingTableSet (precision "bf16", src/kernels/embedding_types.ts): each
 * row is ceil(dim/2) u32 words, element 2j in the low half of word j and 2j+1 in the high half,
 * each the upper 16 bits of the f32 value ("brain float"; an odd dim leaves the last high half 0).
 * It halves the tables' memory (software adapters keep buffers in host RAM) and the bytes each
 * lookup reads. Values come in and go out as f32: uploads round to nearest even (f32 -> bf16),
 * reads decode exactly (bf16 -> f32), so checkpoints stay f32 files.
 * Kernels: embedding_bag_forward_bf16.ts, embedding_bag_backward_bf16.ts.
 */
import { readBuffer, requireTypedArray } from "../gpu/buffers.ts";
import type { EmbeddingChunk, EmbeddingTableSet } from "./embedding_types.ts";

/** u32 words per row of a bf16 table of width dim. */
export function bf16Words(dim: number): number {
  return Math.ceil(dim / 2);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bf16 bits (low 16 bits of the result) of x, rounded to nearest even; Inf stays Inf, NaN stays NaN. */
export function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000) return (b >>> 16) | ((b & 0x7fffff) !== 0 ? 0x40 : 0);
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The f32 value of bf16 bits h (exact). */
export function bf16ToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** Packs rows of `dim` f32 values into rows of bf16Words(dim) words (round to nearest even). */
export function packBf16Rows(data: Float32Array, dim: number): Uint32Array {
  const rows = data.length / dim;
  const words = bf16Words(dim);
  const out = new Uint32Array(rows * words);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < dim; k++) {
      const h = f32ToBf16(data[r * dim + k]!);
      const w = r * words + (k >> 1);
      out[w] = (out[w]! | ((k & 1) === 0 ? h : h << 16)) >>> 0;
    }
  }
  return out;
}

/** Unpacks rows of bf16Words(dim) words into rows of `dim` f32 values (exact). */
export function unpackBf16Rows(words: Uint32Array, dim: number): Float32Array {
  const per = bf16Words(dim);
  const rows = words.length / per;
  const out = new Float32Array(rows * dim);
  const outU = new Uint32Array(out.buffer);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < dim; k++) {
      const w = words[r * per + (k >> 1)]!;
      outU[r * dim + k] = (k & 1) === 0 ? (w << 16) >>> 0 : (w & 0xffff0000) >>> 0;
    }
  }
  return out;
}

/** A span of a table's rows held by one chunk (embedding_tables.ts tableSpans()). */
export interface RowSpan {
  chunk: EmbeddingChunk;
  tableRow: number;
  chunkRow: number;
  count: number;
}

/** Uploads f32 rows starting at table row rowStart to the spans holding them, rounded to bf16 (nearest even). */
export function writeRowsBf16(device: GPUDevice, set: EmbeddingTableSet, spans: readonly RowSpan[], rowStart: number, data: Float32Array): void {
  requireTypedArray("writeTableRows (bf16 table) data", data, "Float32Array");
  const d = set.dim;
  const words = bf16Words(d);
  for (const s of spans) {
    const part = data.subarray((s.tableRow - rowStart) * d, (s.tableRow - rowStart + s.count) * d);
    const packed = packBf16Rows(part, d);
    device.queue.writeBuffer(s.chunk.buffer, s.chunkRow * words * 4, packed.buffer, 0, packed.byteLength);
  }
}

/** Reads the spans' rows (starting at table row rowStart, rowCount rows) as f32 (exact). */
export async function readRowsBf16(device: GPUDevice, set: EmbeddingTableSet, spans: readonly RowSpan[], rowStart: number, rowCount: number): Promise<Float32Array> {
  const d = set.dim;
  const words = bf16Words(d);
  const out = new Float32Array(rowCount * d);
  for (const s of spans) {
    const raw = new Uint32Array(await readBuffer(device, s.chunk.buffer, s.count * words * 4, s.chunkRow * words * 4));
    out.set(unpackBf16Rows(raw, d), (s.tableRow - rowStart) * d);
  }
  return out;
}
