/**
 * Storage of an EmbeddingTableSet (src/kernels/embedding_types.ts): the rows
 * of all tables of one dimension, numbered globally (table t's row r is
 * rowBase[t] + r), held in chunks of consecutive global rows, one GPUBuffer
 * (f32, row-major) per chunk, each no larger than one storage binding.
 */
import { readBuffer, requireTypedArray, STORAGE, trackBuffer } from "../gpu/buffers.ts";
import { KernelInputError } from "../gpu/errors.ts";
import type { EmbeddingChunk, EmbeddingTableSet } from "./embedding_types.ts";
import { bf16Words, readRowsBf16, writeRowsBf16 } from "./embedding_tables_bf16.ts";

function checkRows(rows: readonly number[], dim: number): void {
  if (!Number.isInteger(dim) || dim < 1) throw new KernelInputError(`embedding dim must be a positive integer, got ${dim}`);
  if (rows.length === 0) throw new KernelInputError("an embedding table set needs at least one table");
  let total = 0;
  rows.forEach((r, t) => {
    if (!Number.isInteger(r) || r < 1) throw new KernelInputError(`table ${t} has ${r} rows; every table needs a positive integer row count`);
    total += r;
  });
  if (total >= 2 ** 32) throw new KernelInputError(`the tables hold ${total} rows in all; a set holds fewer than 2^32 rows: split it into several sets`);
}

/**
 * Splits the global rows of `rows` (tables in order) into chunks of at most
 * maxChunkBytes (floor(maxChunkBytes / (dim*4)) rows each, greedily), so a
 * chunk may start or end inside a table and a large table spans several.
 */
export function planChunks(rows: readonly number[], dim: number, maxChunkBytes: number): { rowStart: number; rowCount: number }[] {
  checkRows(rows, dim);
  const perChunk = Math.floor(maxChunkBytes / (dim * 4));
  if (!(perChunk >= 1)) {
    throw new KernelInputError(`maxChunkBytes ${maxChunkBytes} cannot hold one row of dim ${dim} (${dim * 4} bytes); raise it`);
  }
  const total = rows.reduce((a, r) => a + r, 0);
  const out: { rowStart: number; rowCount: number }[] = [];
  for (let start = 0; start < total; start += perChunk) out.push({ rowStart: start, rowCount: Math.min(perChunk, total - start) });
  return out;
}

/**
 * A zero-filled table set; chunks are capped by the device's binding and buffer limits and by opts.maxChunkBytes.
 * precision "bf16" (src/kernels/embedding_tables_bf16.ts): rows of bf16Words(dim) u32 words instead of dim f32.
 */
export function createTableSet(
  device: GPUDevice,
  opts: { rows: readonly number[]; dim: number; maxChunkBytes?: number; label?: string; precision?: "fp32" | "bf16" },
): EmbeddingTableSet {
  const bf16 = opts.precision === "bf16";
  checkRows(opts.rows, opts.dim);
  const rowValues = bf16 ? bf16Words(opts.dim) : opts.dim; // 4-byte values per stored row
  const cap = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const maxChunkBytes = Math.min(opts.maxChunkBytes ?? cap, cap);
  const plan = planChunks(opts.rows, rowValues, maxChunkBytes);
  const label = bf16 ? `${opts.label ?? "embeddings"}:bf16` : (opts.label ?? "embeddings");
  const rowBase: number[] = [];
  let acc = 0;
  for (const r of opts.rows) {
    rowBase.push(acc);
    acc += r;
  }
  const chunks: EmbeddingChunk[] = plan.map((c, i) => ({
    ...c,
    // WebGPU zero-initialises new buffers.
    buffer: trackBuffer(device, device.createBuffer({ label: `${label}:chunk${i}`, size: c.rowCount * rowValues * 4, usage: STORAGE })),
  }));
  return bf16 ? { dim: opts.dim, rows: [...opts.rows], rowBase, chunks, precision: "bf16" } : { dim: opts.dim, rows: [...opts.rows], rowBase, chunks };
}

/**
 * The parts of rows [rowStart, rowStart + rowCount) of table `table` held by each
 * chunk (default: the whole table): chunk, first table row, first chunk row, row count.
 */
export function tableSpans(set: EmbeddingTableSet, table: number, rowStart = 0, rowCount?: number): { chunk: EmbeddingChunk; tableRow: number; chunkRow: number; count: number }[] {
  if (!Number.isInteger(table) || table < 0 || table >= set.rows.length) {
    throw new KernelInputError(`table ${table} does not exist (the set has ${set.rows.length} tables)`);
  }
  const rows = set.rows[table]!;
  const count = rowCount ?? rows - rowStart;
  if (!Number.isInteger(rowStart) || !Number.isInteger(count) || rowStart < 0 || count < 0 || rowStart + count > rows) {
    throw new KernelInputError(`rows [${rowStart}, ${rowStart + count}) are not inside table ${table} (${rows} rows)`);
  }
  const lo = set.rowBase[table]! + rowStart;
  const hi = lo + count;
  const spans = [];
  for (const chunk of set.chunks) {
    const a = Math.max(lo, chunk.rowStart);
    const b = Math.min(hi, chunk.rowStart + chunk.rowCount);
    if (a < b) spans.push({ chunk, tableRow: a - set.rowBase[table]!, chunkRow: a - chunk.rowStart, count: b - a });
  }
  return spans;
}

/** Uploads table `table` (rows[table] * dim floats, row-major), split across its chunks. */
export function writeTable(device: GPUDevice, set: EmbeddingTableSet, table: number, data: Float32Array): void {
  requireTypedArray(`writeTable: table ${table} data`, data, "Float32Array");
  tableSpans(set, table); // the table exists
  const want = set.rows[table]! * set.dim;
  if (data.length !== want) {
    throw new KernelInputError(`writeTable: table ${table} needs ${want} floats (${set.rows[table]} rows x ${set.dim}), got ${data.length}`);
  }
  writeTableRows(device, set, table, 0, data);
}

/** Uploads rows [rowStart, rowStart + data.length / dim) of table `table` (row-major), split across its chunks. */
export function writeTableRows(device: GPUDevice, set: EmbeddingTableSet, table: number, rowStart: number, data: Float32Array): void {
  requireTypedArray(`writeTableRows: table ${table} data`, data, "Float32Array");
  const d = set.dim;
  if (data.length % d !== 0) throw new KernelInputError(`writeTableRows: table ${table} rows are ${d} floats; got ${data.length} floats (not whole rows)`);
  if (set.precision === "bf16") return writeRowsBf16(device, set, tableSpans(set, table, rowStart, data.length / d), rowStart, data); // lowp
  for (const s of tableSpans(set, table, rowStart, data.length / d)) {
    device.queue.writeBuffer(s.chunk.buffer, s.chunkRow * d * 4, data.buffer, data.byteOffset + (s.tableRow - rowStart) * d * 4, s.count * d * 4);
  }
}

/** Reads table `table` back (rows[table] * dim floats). */
export async function readTable(device: GPUDevice, set: EmbeddingTableSet, table: number): Promise<Float32Array> {
  return readTableRows(device, set, table, 0, set.rows[table]!);
}

/** Reads rows [rowStart, rowStart + rowCount) of table `table` back (rowCount * dim floats). */
export async function readTableRows(device: GPUDevice, set: EmbeddingTableSet, table: number, rowStart: number, rowCount: number): Promise<Float32Array> {
  const spans = tableSpans(set, table, rowStart, rowCount);
  if (set.precision === "bf16") return readRowsBf16(device, set, spans, rowStart, rowCount); // lowp
  const d = set.dim;
  const out = new Float32Array(rowCount * d);
  for (const s of spans) {
    out.set(new Float32Array(await readBuffer(device, s.chunk.buffer, s.count * d * 4, s.chunkRow * d * 4)), (s.tableRow - rowStart) * d);
  }
  return out;
}

export function destroyTableSet(set: EmbeddingTableSet): void {
  for (const c of set.chunks) c.buffer.destroy();
}
