/**
 * Bags (sparse features) of a mini-batch on the GPU, in the table-major CSR
 * layout of BagBatch (src/kernels/embedding_types.ts): validation on the CPU,
 * persistent buffers reused every step, and a one-shot upload.
 */
import { requireTypedArray, STORAGE, trackBuffer, uploadStorage } from "../gpu/buffers.ts";
import { KernelInputError } from "../gpu/errors.ts";
import type { BagBatch } from "./embedding_types.ts";

export interface HostBags {
  batchSize: number;
  /** [T*B + 1]: bag (t, b) = indices[offsets[t*B+b] .. offsets[t*B+b+1]). */
  offsets: Uint32Array;
  /** Table-local row ids. */
  indices: Uint32Array;
  /** Optional per-index weights (at least offsets[T*B] of them). */
  weights?: Float32Array;
}

/**
 * Throws KernelInputError when the bags do not fit tables of `rows` rows:
 * wrong offsets length, offsets[0] != 0, decreasing offsets, offsets past the
 * indices, an index >= rows[t], too few weights.
 */
export function validateBags(b: HostBags, rows: readonly number[]): void {
  requireTypedArray("bags.offsets", b.offsets, "Uint32Array");
  requireTypedArray("bags.indices", b.indices, "Uint32Array");
  if (b.weights !== undefined) requireTypedArray("bags.weights", b.weights, "Float32Array");
  const B = b.batchSize;
  const T = rows.length;
  if (!Number.isInteger(B) || B < 1) throw new KernelInputError(`batchSize must be a positive integer, got ${B}`);
  const nb = T * B;
  if (b.offsets.length !== nb + 1) {
    throw new KernelInputError(`offsets has ${b.offsets.length} entries; ${T} tables x batch ${B} need T*B+1 = ${nb + 1}`);
  }
  if (b.offsets[0] !== 0) throw new KernelInputError(`offsets[0] is ${b.offsets[0]}; it must be 0`);
  for (let k = 0; k < nb; k++) {
    if (b.offsets[k + 1]! < b.offsets[k]!) {
      throw new KernelInputError(
        `offsets decrease at table ${Math.floor(k / B)}, sample ${k % B}: offsets[${k + 1}] = ${b.offsets[k + 1]} < offsets[${k}] = ${b.offsets[k]}; offsets must be non-decreasing`,
      );
    }
  }
  const n = b.offsets[nb]!;
  if (n > b.indices.length) {
    throw new KernelInputError(`offsets end at ${n} but there are only ${b.indices.length} indices (overrun by ${n - b.indices.length})`);
  }
  if (b.weights && b.weights.length < n) {
    throw new KernelInputError(`${n} indices but only ${b.weights.length} weights; give one weight per index`);
  }
  for (let t = 0; t < T; t++) {
    const r = rows[t]!;
    for (let s = 0; s < B; s++) {
      const end = b.offsets[t * B + s + 1]!;
      for (let p = b.offsets[t * B + s]!; p < end; p++) {
        const idx = b.indices[p]!;
        if (idx >= r) throw new KernelInputError(`index ${idx} out of range for table ${t} (${r} rows) at sample ${s}`);
      }
    }
  }
}

export interface BagBatchBuffers extends BagBatch {
  capacityIndices: number;
  capacityBags: number;
}

/**
 * Persistent bag buffers for `numTables` tables x `batchSize` samples and up
 * to `maxIndices` indices (plus as many weights when `weighted`). Reuse them
 * every step with writeBagBatch(); kernels prepared on them stay valid.
 */
export function createBagBatchBuffers(
  device: GPUDevice,
  opts: { batchSize: number; numTables: number; maxIndices: number; weighted?: boolean; label?: string },
): BagBatchBuffers {
  const { batchSize, numTables, maxIndices } = opts;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new KernelInputError(`batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(numTables) || numTables < 1) throw new KernelInputError(`numTables must be a positive integer, got ${numTables}`);
  if (!Number.isInteger(maxIndices) || maxIndices < 0) throw new KernelInputError(`maxIndices must be a non-negative integer, got ${maxIndices}`);
  const label = opts.label ?? "bags";
  const nb = numTables * batchSize;
  const bufs: BagBatchBuffers = {
    batchSize,
    numTables,
    numIndices: 0,
    // Zero-initialised offsets: every bag empty until the first write.
    offsets: trackBuffer(device, device.createBuffer({ label: `${label}:offsets`, size: (nb + 1) * 4, usage: STORAGE })),
    indices: trackBuffer(device, device.createBuffer({ label: `${label}:indices`, size: Math.max(1, maxIndices) * 4, usage: STORAGE })),
    capacityIndices: maxIndices,
    capacityBags: nb,
  };
  if (opts.weighted) {
    bufs.weights = trackBuffer(device, device.createBuffer({ label: `${label}:weights`, size: Math.max(1, maxIndices) * 4, usage: STORAGE }));
  }
  return bufs;
}

/** Validates `b` against tables of `rows` rows, then writes it into `bufs` and sets bufs.numIndices. */
export function writeBagBatch(device: GPUDevice, bufs: BagBatchBuffers, b: HostBags, rows: readonly number[]): void {
  if (rows.length !== bufs.numTables) {
    throw new KernelInputError(`the bag buffers are for ${bufs.numTables} tables but ${rows.length} table sizes were given`);
  }
  if (b.batchSize !== bufs.batchSize) {
    throw new KernelInputError(
      `the bag buffers are for batch ${bufs.batchSize}, got batch ${b.batchSize}; pad a short batch with empty bags or create buffers for this batch size`,
    );
  }
  validateBags(b, rows);
  const n = b.offsets[b.offsets.length - 1]!;
  if (n > bufs.capacityIndices) {
    throw new KernelInputError(
      `the batch has ${n} indices but the bag buffers hold ${bufs.capacityIndices} (indices capacity exceeded by ${n - bufs.capacityIndices}); create them with maxIndices >= ${n}`,
    );
  }
  if (b.weights && !bufs.weights) throw new KernelInputError("weights given but the bag buffers were created without weights (weighted: true)");
  if (!b.weights && bufs.weights) throw new KernelInputError("the bag buffers were created weighted: pass weights with every batch");
  const q = device.queue;
  q.writeBuffer(bufs.offsets, 0, b.offsets.buffer, b.offsets.byteOffset, b.offsets.byteLength);
  if (n > 0) {
    q.writeBuffer(bufs.indices, 0, b.indices.buffer, b.indices.byteOffset, n * 4);
    if (b.weights) q.writeBuffer(bufs.weights!, 0, b.weights.buffer, b.weights.byteOffset, n * 4);
  }
  bufs.numIndices = n;
}

/** One-shot: validates and uploads `b` into new buffers of exactly its size. */
export function uploadBagBatch(device: GPUDevice, b: HostBags, rows: readonly number[], label = "bags"): BagBatch {
  validateBags(b, rows);
  const n = b.offsets[b.offsets.length - 1]!;
  const batch: BagBatch = {
    batchSize: b.batchSize,
    numTables: rows.length,
    numIndices: n,
    offsets: uploadStorage(device, b.offsets, `${label}:offsets`),
    indices: uploadStorage(device, b.indices.subarray(0, n), `${label}:indices`),
  };
  if (b.weights) batch.weights = uploadStorage(device, b.weights.subarray(0, n), `${label}:weights`);
  return batch;
}
