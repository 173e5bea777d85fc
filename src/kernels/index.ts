/// <reference types="@webgpu/types" preserve="true" />
/**
 * webgpu-dlrm's kernels as a library: each wrapper takes the app's own
 * GPUDevice and GPUBuffers. `prepareX(device, args)` validates the
 * arguments and returns Dispatch objects (pipelines cached per device,
 * uniforms and bind groups made once) that `encodeDispatches(encoder, ...)`
 * records into the app's command encoder; `x(device, args)` is the one-shot
 * form that submits. Buffer layouts are documented on each Args type and in
 * the README ("Kernels as a library"). Readback: `readF32(device, buffer)`.
 * Buffers made by the engine are tracked, so a buffer used with another device
 * throws DeviceMismatchError (call trackBuffer() on your own buffers for the
 * same check); a plain array where a typed array is needed throws
 * KernelInputError.
 */
export { encodeDispatches, submitDispatches, grid, type Dispatch } from "../gpu/dispatch.ts";
export {
  checkBufferDevice, createStorage, readBuffer, readF32, readU32, requireTypedArray, trackBuffer, uploadStorage, writeBuffer,
  type TypedArray,
} from "../gpu/buffers.ts";
export { DeviceLostError, DeviceMismatchError, DlrmError, GpuError, KernelInputError, NoAdapterError, UnsupportedError } from "../gpu/errors.ts";
export { withErrorScopes } from "../gpu/context.ts";
export { Profiler, type TimingRow } from "../gpu/timing.ts";
export type { BagBatch, EmbeddingChunk, EmbeddingOptimizerState, EmbeddingTableSet, Pooling } from "./embedding_types.ts";
export { createTableSet, destroyTableSet, planChunks, readTable, tableSpans, writeTable } from "./embedding_tables.ts";
export { createBagBatchBuffers, uploadBagBatch, validateBags, writeBagBatch, type BagBatchBuffers, type HostBags } from "./bag_batch.ts";
export {
  checkEmbeddingErrors,
  createEmbeddingErrorBuffer,
  embeddingBagForward,
  prepareEmbeddingBagForward,
  type EmbeddingBagForwardArgs,
} from "./embedding_bag_forward.ts";
export { embeddingBagBackward, prepareEmbeddingBagBackward, type EmbeddingBagBackwardArgs, type PreparedEmbeddingBackward } from "./embedding_bag_backward.ts";
export { createEmbeddingOptimizerState, destroyEmbeddingOptimizerState, type EmbeddingOptimizerKind } from "./embedding_optimizer_state.ts";
export {
  embeddingCombineBackward,
  embeddingCombineForward,
  embeddingProjGrad,
  prepareEmbeddingCombineBackward,
  prepareEmbeddingCombineForward,
  prepareEmbeddingProjGrad,
  uploadCombineDescriptors,
} from "./embedding_combine.ts";
export { exclusiveScan, prepareExclusiveScan, createScanPlan } from "./scan.ts";
export { prepareRadixSort, radixSort } from "./radix_sort.ts";
export { gemm, prepareGemm, type Activation, type GemmArgs } from "./gemm.ts";
export { linearBackward, linearForward, prepareBiasGrad, prepareLinearBackward, prepareLinearForward, type LinearBackwardArgs, type LinearForwardArgs } from "./linear.ts";
export { interactionBackward, interactionForward, interactionOutputDim, prepareInteractionBackward, prepareInteractionForward, type InteractionArgs, type InteractionBackwardArgs, type InteractionOp } from "./interaction.ts";
export { lossForwardBackward, prepareLoss, type LossArgs, type LossKind } from "./loss.ts";
export { denseOptimizerStateSizes, denseOptimizerStep, prepareDenseOptimizer, type DenseOptimizerArgs, type DenseOptimizerKind } from "./dense_optimizer.ts";
export { prepareReduceSum, reduceSum, type ReduceSumArgs } from "./reduce.ts";
export { createOptimizerParams, writeOptimizerParams, type OptimizerHyper } from "./optimizer_params.ts";
export { copyF32, prepareCopy } from "./copy.ts";
