/**
 * Optimizer state of an EmbeddingTableSet, chunked exactly like its weights
 * (src/kernels/embedding_types.ts): adagrad keeps one f32 accumulator per weight,
 * rowwise-adagrad one per row (the mean of squared row gradients, as dlrm's
 * RWSAdagrad "momentum"), sgd none. All start at zero (PyTorch's default
 * initial_accumulator_value).
 */
import { createStorage } from "../gpu/buffers.ts";
import { ConfigError } from "../gpu/errors.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "./embedding_types.ts";

export type EmbeddingOptimizerKind = EmbeddingOptimizerState["kind"];

/** f32 values of optimizer state per row for `kind` at dimension `dim`. */
export function stateValuesPerRow(kind: EmbeddingOptimizerKind, dim: number): number {
  if (kind === "adagrad") return dim;
  if (kind === "rowwise-adagrad") return 1;
  if (kind === "sgd") return 0;
  throw new ConfigError(`unknown embedding optimizer '${kind as string}': use "sgd", "adagrad" or "rowwise-adagrad"`);
}

export function createEmbeddingOptimizerState(device: GPUDevice, tables: EmbeddingTableSet, kind: EmbeddingOptimizerKind): EmbeddingOptimizerState {
  const per = stateValuesPerRow(kind, tables.dim);
  if (per === 0) return { kind, chunks: [] };
  // createStorage buffers are zero-initialised by WebGPU.
  const chunks = tables.chunks.map((c, i) => createStorage(device, c.rowCount * per * 4, `embedding-${kind}-state:chunk${i}`));
  return { kind, chunks };
}

export function destroyEmbeddingOptimizerState(state: EmbeddingOptimizerState): void {
  for (const b of state.chunks) b.destroy();
}
