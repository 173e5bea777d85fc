/** What each device of a sharded model (model.ts) holds: its MLP replica, its embedding shard sets and the QR/MD tables it holds whole. */
import type { GpuContext } from "../gpu/context.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "../kernels/embedding_types.ts";
import type { DenseMlp } from "../model/dense.ts";
import type { ModelEmbeddings } from "../model/embeddings.ts";
import type { DeviceLayout, ShardSet } from "./routing.ts";

/** The embedding optimizer kind of each run optimizer. */
export const EMB_OPT = { sgd: "sgd", adagrad: "adagrad", rwsadagrad: "rowwise-adagrad" } as const;
export type EmbeddingKind = (typeof EMB_OPT)[keyof typeof EMB_OPT];

/** A plain shard set on one device: its tables and their optimizer state. */
export interface ReplicaSet {
  set: ShardSet;
  tables: EmbeddingTableSet;
  state: EmbeddingOptimizerState;
}

/** The QR/MD tables a device holds whole, in table order, and the ModelEmbeddings that runs them. */
export interface CompositeTables {
  set: ShardSet;
  tables: number[];
  emb: ModelEmbeddings;
}

/** One device of the sharded model. */
export interface Replica {
  ctx: GpuContext;
  device: GPUDevice;
  dense: DenseMlp;
  optim: GPUBuffer;
  layout: DeviceLayout;
  /** Plain shard sets (EmbeddingTableSets of their own). */
  sets: ReplicaSet[];
  /** QR/MD tables held whole by this device. */
  composite: CompositeTables | undefined;
  gradFlat: GPUBuffer;
  lossHistory: GPUBuffer;
  /** The dense optimizer on every MLP parameter (same on every replica). */
  update: Dispatch[];
}
