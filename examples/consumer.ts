// A strict TypeScript consumer (tsc --noEmit, strict, skipLibCheck false): one
// embedding-bag forward and one GEMM on the caller's device, checked against a
// small CPU computation. examples/deno.ts runs it.
import {
  createBagBatchBuffers, createTableSet, embeddingBagForward, gemm, readF32, uploadStorage, createStorage,
  writeBagBatch, writeTable, KernelInputError, type EmbeddingTableSet, type GemmArgs,
} from "webgpu-dlrm/kernels";
import { resolveConfig, type DlrmConfig } from "webgpu-dlrm";

/** The engine's entry type-checks too: a small model configuration. */
export const smallModel: DlrmConfig = resolveConfig({ embeddingDim: 4, tableRows: [3, 5], bottomMlp: [13, 8, 4], topMlp: [7, 1] });

export async function typedForward(device: GPUDevice): Promise<{ embMaxErr: number; gemmMaxErr: number }> {
  const rows = [3, 5];
  const d = 4;
  const tables: EmbeddingTableSet = createTableSet(device, { rows, dim: d });
  const values = rows.map((r, t) => Float32Array.from({ length: r * d }, (_, i) => (t + 1) * 0.5 + i * 0.25));
  values.forEach((v, t) => writeTable(device, tables, t, v));
  // Two samples; table 0: bags {0, 2} and {1}; table 1: bags {} and {4, 4}.
  const offsets = new Uint32Array([0, 2, 3, 3, 5]);
  const indices = new Uint32Array([0, 2, 1, 4, 4]);
  const bags = createBagBatchBuffers(device, { batchSize: 2, numTables: 2, maxIndices: indices.length });
  writeBagBatch(device, bags, { batchSize: 2, offsets, indices }, rows);
  const emb = createStorage(device, 2 * 2 * d * 4, "emb");
  embeddingBagForward(device, { tables, bags, out: emb, outStride: 2 * d, outOffset: 0 });

  // C [2, 3] = A [2, 2] · B [2, 3]
  const a = uploadStorage(device, new Float32Array([1, 2, 3, 4]), "a");
  const b = uploadStorage(device, new Float32Array([5, 6, 7, 8, 9, 10]), "b");
  const c = createStorage(device, 6 * 4, "c");
  const args: GemmArgs = { a, b, c, m: 2, n: 3, k: 2 };
  gemm(device, args);

  const gotEmb = await readF32(device, emb);
  const gotC = await readF32(device, c);
  const row = (t: number, r: number): Float32Array => values[t]!.subarray(r * d, (r + 1) * d);
  const want: number[] = [];
  for (const bag of [[[0, 0], [0, 2]], [[0, 1]]] as const) {
    for (let k = 0; k < d; k++) want.push(bag.reduce((s, [t, r]) => s + row(t, r)[k]!, 0));
  }
  // table-major sample layout [B, n, d]: sample 0 = (t0 bag0, t1 bag0), sample 1 = (t0 bag1, t1 bag1)
  const t1 = [Array(d).fill(0) as number[], Array.from({ length: d }, (_, k) => 2 * row(1, 4)[k]!)];
  const wantEmb = [...want.slice(0, d), ...t1[0]!, ...want.slice(d), ...t1[1]!];
  const wantC = [1 * 5 + 2 * 8, 1 * 6 + 2 * 9, 1 * 7 + 2 * 10, 3 * 5 + 4 * 8, 3 * 6 + 4 * 9, 3 * 7 + 4 * 10];
  const maxErr = (got: Float32Array, ref: number[]): number =>
    got.length !== ref.length ? Infinity : ref.reduce((m, v, i) => Math.max(m, Math.abs(got[i]! - v)), 0);

  // A plain array where a typed array is needed is a KernelInputError saying what to pass.
  try {
    writeTable(device, tables, 0, [1, 2, 3] as unknown as Float32Array);
    throw new Error("writeTable accepted a plain array");
  } catch (e) {
    if (!(e instanceof KernelInputError)) throw e;
  }
  return { embMaxErr: maxErr(gotEmb, wantEmb), gemmMaxErr: maxErr(gotC, wantC) };
}
