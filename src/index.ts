/**
 * webgpu-dlrm: DLRM recommendation models trained and served on WebGPU.
 *
 *   import { createContext, resolveConfig, initParameters, DlrmModel, syntheticSource, train } from "webgpu-dlrm";
 *
 * The kernels alone, for apps with their own device: "webgpu-dlrm/kernels".
 */
export * from "./gpu/index.ts";
export { type DlrmConfig, DEFAULTS, interactionWidth, resolveConfig, type InteractionOp, type LossName, type OptimizerName, type QrOptions, type MdOptions } from "./model/config.ts";
export { initParameters, parameterShapes, type StateDict, type Tensor } from "./model/params.ts";
export { DlrmModel, type DlrmOptions } from "./model/dlrm.ts";
export { learningRateAt, type LrSchedule } from "./model/schedule.ts";
export { MetricsAccumulator, rocAuc, type MetricsResult } from "./model/metrics.ts";
export { evaluate, NonFiniteLossError, train, type EvalEvent, type StepEvent, type TrainOptions, type TrainResult } from "./model/trainer.ts";
export { applyCheckpoint, checkpointBytes, loadCheckpointFile, parseCheckpoint, saveCheckpoint, type Checkpoint } from "./io/checkpoint.ts";
export { decodeSafetensors, encodeSafetensors } from "./io/safetensors.ts";
export * from "./data/index.ts";
