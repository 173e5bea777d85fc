// The README's "kernels as a library" example, run by test/package/consumer.test.ts
// from the installed tarball under Node, Deno and in a Vite-built page.
// Your device, your buffers: embedding bags -> emb [B, n, d]; a GEMM makes the
// dense part x [B, d] = dense [B, k] · W[d, k]ᵀ; the dot interaction of x and emb
// gives the top MLP's input [B, d + n(n+1)/2].
import {
  createTableSet, writeTable, createBagBatchBuffers, writeBagBatch, createEmbeddingErrorBuffer,
  prepareEmbeddingBagForward, checkEmbeddingErrors, prepareGemm, prepareInteractionForward,
  interactionOutputDim, encodeDispatches, uploadStorage, createStorage, readF32,
} from "webgpu-dlrm/kernels";

/**
 * @param {GPUDevice} device
 * @param {{ rows: number[], d: number, B: number, k: number, tables: Float32Array[],
 *           offsets: Uint32Array, indices: Uint32Array, dense: Float32Array, W: Float32Array }} input
 */
export async function runKernels(device, { rows, d, B, k, tables: weights, offsets, indices, dense, W }) {
  const n = rows.length;
  // Embedding tables (split into chunks by the device's binding limit) and bag buffers reused every step.
  const tables = createTableSet(device, { rows, dim: d });
  rows.forEach((_, t) => writeTable(device, tables, t, weights[t]));
  const bags = createBagBatchBuffers(device, { batchSize: B, numTables: n, maxIndices: indices.length });
  const errors = createEmbeddingErrorBuffer(device);
  // Pooled embeddings, compact [B, n, d]: outStride n*d, outOffset 0.
  const emb = createStorage(device, B * n * d * 4, "emb");
  const x = createStorage(device, B * d * 4, "x");
  const out = createStorage(device, B * interactionOutputDim(n, d, "dot") * 4, "interaction-out");
  const denseBuf = uploadStorage(device, dense, "dense");
  const wBuf = uploadStorage(device, W, "W");

  // Prepared once (pipelines cached per device, bind groups made once), encoded every step.
  const step = [
    ...prepareEmbeddingBagForward(device, { tables, bags, out: emb, outStride: n * d, outOffset: 0, errors }),
    ...prepareGemm(device, { a: denseBuf, b: wBuf, c: x, m: B, n: d, k, transB: true }),
    ...prepareInteractionForward(device, { x, emb, out, batch: B, numEmb: n, dim: d, op: "dot" }),
  ];
  writeBagBatch(device, bags, { batchSize: B, offsets, indices }, rows); // validated on the CPU
  const enc = device.createCommandEncoder();
  encodeDispatches(enc, step);
  device.queue.submit([enc.finish()]);
  await checkEmbeddingErrors(device, errors, rows, B); // throws if the GPU skipped a bad lookup
  return { emb: await readF32(device, emb), x: await readF32(device, x), out: await readF32(device, out) };
}
