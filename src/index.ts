/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgpu-dlrm: DLRM recommendation models trained and served on WebGPU.
 *
 *   import { createContext, resolveConfig, initParameters, DlrmModel, syntheticSource, train } from "webgpu-dlrm";
 *
 * The kernels alone, for apps with their own device: "webgpu-dlrm/kernels".
 * The whole data pipeline (Criteo parsing, preprocessing, the Arrow cache, which
 * pulls in apache-arrow): "webgpu-dlrm/data". The CLI: "webgpu-dlrm/cli".
 */
export * from "./gpu/index.ts";
export { type DlrmConfig, DEFAULTS, interactionWidth, resolveConfig, type InteractionOp, type LossName, type OptimizerName, type QrOptions, type MdOptions } from "./model/config.ts";
export { initParameters, parameterShapes, type StateDict, type Tensor } from "./model/params.ts";
export { DlrmModel, type DlrmOptions } from "./model/dlrm.ts";
export type { Bf16Rounding, EmbeddingPrecision } from "./model/precision.ts";
export { learningRateAt, type LrSchedule } from "./model/schedule.ts";
export { MetricsAccumulator, rocAuc, type MetricsResult } from "./model/metrics.ts";
export { evaluate, NonFiniteLossError, train, type EvalEvent, type StepEvent, type TrainOptions, type TrainResult } from "./model/trainer.ts";
export { applyCheckpoint, checkpointBytes, loadCheckpointFile, parseCheckpoint, saveCheckpoint, type Checkpoint } from "./io/checkpoint.ts";
export { decodeSafetensors, encodeSafetensors } from "./io/safetensors.ts";
// Generated data sources only: Criteo files and the Arrow cache are in "webgpu-dlrm/data", so this entry never loads apache-arrow.
export type { Batch } from "./data/batch.ts";
export { DataError, type BatchOptions, type DataSource, type SplitName } from "./data/source.ts";
export type { BagOptions } from "./data/bags.ts";
export { randomSource, type RandomSourceOptions } from "./data/random.ts";
export { syntheticSource, makeTeacher, type IndexDistribution, type SyntheticSourceOptions, type Teacher, type TeacherOptions } from "./data/synthetic.ts";
