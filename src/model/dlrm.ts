/**
 * The DLRM network on one GPU device: parameters, optimizer state and the
 * recorded forward / backward / update dispatches of a training step.
 *
 *   dense [B, m] -> bottom MLP (ReLU after every layer) -> x [B, d]
 *   bags         -> embedding bags (sum) -> E [B, n, d]
 *   interaction(x, E) -> R [B, top input] -> top MLP (ReLU, last layer linear) -> z [B]
 *   loss(sigmoid(z), labels) -> mean loss, dL/dz
 *
 * A step is one command buffer: forward, backward, the embedding update
 * fused into the embedding backward, the dense optimizer; only the mean loss
 * is copied into a small history buffer, read back when asked.
 */
import { readF32, createStorage, writeBuffer } from "../gpu/buffers.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { ConfigError, KernelInputError } from "../gpu/errors.ts";
import type { Profiler } from "../gpu/timing.ts";
import type { Batch } from "../data/batch.ts";
import { type EmbeddingPlan, ModelEmbeddings } from "./embeddings.ts";
import { createOptimizerParams, writeOptimizerParams } from "../kernels/optimizer_params.ts";
import { type Bf16Rounding, checkPrecision, type EmbeddingPrecision } from "./precision.ts";
import type { DlrmConfig } from "./config.ts";
import { DENSE_OPT, DenseMlp, type Linear } from "./dense.ts";
import { learningRateAt } from "./schedule.ts";
import { parameterShapes, type StateDict, type TensorRows } from "./params.ts";

/** Buffers and dispatches for one batch size. */
interface StepPlan {
  batchSize: number;
  dense: GPUBuffer;
  labels: GPUBuffer;
  emb: EmbeddingPlan;
  forward: Dispatch[];
  backward: Dispatch[];
  update: Dispatch[];
  prob: GPUBuffer;
  lossMean: GPUBuffer;
  buffers: GPUBuffer[];
}

export interface DlrmOptions {
  /** No gradients or optimizer state: prediction only. */
  inferenceOnly?: boolean;
  /** Cap on bytes per embedding buffer (default: the device's binding limit). */
  maxChunkBytes?: number;
  /** Embedding table storage "fp32" (default) or "bf16", and bf16's rounding (src/model/precision.ts). */
  embeddingPrecision?: EmbeddingPrecision;
  bf16Rounding?: Bf16Rounding;
}

const LOSS_HISTORY = 256;

const EMB_OPT = { sgd: "sgd", adagrad: "adagrad", rwsadagrad: "rowwise-adagrad" } as const;

export class DlrmModel {
  /** Bottom and top MLP (src/model/dense.ts), shared with the sharded model's replicas. */
  readonly dense: DenseMlp;
  readonly embeddings: ModelEmbeddings;
  readonly optim: GPUBuffer;
  /** Optimizer steps taken (drives the learning-rate schedule). */
  step = 0;
  private plans = new Map<number, StepPlan>();
  private lossHistory: GPUBuffer;
  private lossCount = 0;
  private destroyed = false;

  constructor(
    readonly device: GPUDevice,
    readonly config: DlrmConfig,
    initial: StateDict,
    readonly options: DlrmOptions = {},
  ) {
    const training = !options.inferenceOnly;
    checkTensors(initial, parameterShapes(config), "initial parameters");
    this.dense = new DenseMlp(device, config, initial, training);
    this.embeddings = new ModelEmbeddings(device, config, initial, {
      training,
      embKind: EMB_OPT[config.optimizer],
      denseKind: DENSE_OPT[config.optimizer],
      maxChunkBytes: options.maxChunkBytes,
      ...checkPrecision(options), // lowp
      seed: config.seed,
    });
    this.optim = createOptimizerParams(device, { lr: config.learningRate, eps: 1e-10 }, "optim-params");
    this.lossHistory = createStorage(device, LOSS_HISTORY * 4, "loss-history");
  }

  get bottom(): Linear[] {
    return this.dense.bottom;
  }

  get top(): Linear[] {
    return this.dense.top;
  }

  get numTables(): number {
    return this.config.tableRows.length;
  }

  /** Learning rate of the next step. */
  get learningRate(): number {
    const c = this.config;
    return learningRateAt({ baseLr: c.learningRate, warmupSteps: c.lrWarmupSteps, decayStartStep: c.lrDecayStartStep, decaySteps: c.lrDecaySteps }, this.step);
  }

  /** The plan for this batch size whose bag buffers hold `counts` indices per table set (grown as needed). */
  private plan(batchSize: number, counts: number[]): StepPlan {
    let p = this.plans.get(batchSize);
    if (p && counts.every((c, i) => p!.emb.bags[i]!.capacityIndices >= c)) return p;
    const old = p?.emb.bags.map((b) => b.capacityIndices);
    if (p) this.destroyPlan(p);
    const capacities = counts.map((c, i) => Math.max(c, old ? 2 * old[i]! : batchSize * this.embeddings.layout.sets[i]!.rows.length));
    p = this.buildPlan(batchSize, capacities);
    this.plans.set(batchSize, p);
    return p;
  }

  private buildPlan(B: number, capacities: number[]): StepPlan {
    const { device, config: c } = this;
    const training = !this.options.inferenceOnly;
    const d = c.embeddingDim;
    const n = this.numTables;
    const buffers: GPUBuffer[] = [];
    const buf = (floats: number, label: string) => {
      const b = createStorage(device, floats * 4, `${label}[B=${B}]`);
      buffers.push(b);
      return b;
    };
    const dense = buf(B * c.bottomMlp[0]!, "dense");
    const labels = buf(B, "labels");
    const emb = buf(B * n * d, "emb");
    const gradEmb = training ? buf(B * n * d, "emb.grad") : undefined;
    const embPlan = this.embeddings.createPlan(B, capacities, emb, gradEmb, this.optim);
    const step = this.dense.buildStep(B, { dense, labels, emb, gradEmb, optim: this.optim });
    buffers.push(...step.buffers);
    const forward: Dispatch[] = [...step.bottomForward, ...embPlan.forward, ...step.topForward];
    const backward: Dispatch[] = [];
    const update: Dispatch[] = [];
    if (training) {
      backward.push(...step.topBackward, ...step.bottomBackward, ...embPlan.backward, ...embPlan.setBackward.flatMap((s) => s.dispatches));
      update.push(...embPlan.update, ...step.update);
    }
    return { batchSize: B, dense, labels, emb: embPlan, forward, backward, update, prob: step.prob, lossMean: step.lossMean, buffers };
  }

  private destroyPlan(p: StepPlan): void {
    for (const b of p.buffers) b.destroy();
    this.embeddings.destroyPlan(p.emb);
  }

  private upload(batch: Batch): StepPlan {
    if (this.destroyed) throw new Error("DlrmModel was destroyed");
    const c = this.config;
    if (batch.numDense !== c.bottomMlp[0]) throw new KernelInputError(`batch has ${batch.numDense} dense features, the model expects ${c.bottomMlp[0]} (--arch-mlp-bot starts with the dense width)`);
    if (batch.numTables !== this.numTables) throw new KernelInputError(`batch has ${batch.numTables} sparse features, the model has ${this.numTables} embedding tables`);
    const split = this.embeddings.split(batch);
    const p = this.plan(batch.size, split.map((b) => b.indices.length));
    this.embeddings.write(p.emb, split);
    writeBuffer(this.device, p.dense, batch.dense);
    writeBuffer(this.device, p.labels, batch.labels);
    return p;
  }

  /**
   * One training step on `batch`: forward, backward, update. Returns at once;
   * the mean loss goes to the loss history (see readLosses()).
   */
  trainStep(batch: Batch, profiler?: Profiler): void {
    if (this.options.inferenceOnly) throw new Error("this model was created inference-only; create it without inferenceOnly to train");
    const p = this.upload(batch);
    writeOptimizerParams(this.device, this.optim, { lr: this.learningRate, eps: 1e-10, step: this.step + 1 });
    const enc = this.device.createCommandEncoder({ label: `train-step-${this.step}` });
    encodeDispatches(enc, p.forward, profiler);
    encodeDispatches(enc, p.backward, profiler);
    encodeDispatches(enc, p.update, profiler);
    if (this.lossCount >= LOSS_HISTORY) throw new Error("loss history full: call readLosses() at least every 256 steps");
    enc.copyBufferToBuffer(p.lossMean, 0, this.lossHistory, this.lossCount * 4, 4);
    profiler?.resolve(enc);
    this.device.queue.submit([enc.finish()]);
    this.lossCount++;
    this.step++;
  }

  /** Mean losses of the steps since the last call, in order. */
  async readLosses(): Promise<number[]> {
    if (this.lossCount === 0) return [];
    const v = await readF32(this.device, this.lossHistory, this.lossCount);
    this.lossCount = 0;
    return [...v];
  }

  /** Forward only: click probabilities (and the mean loss against batch.labels). */
  async evaluate(batch: Batch): Promise<{ prob: Float32Array; loss: number }> {
    const p = this.upload(batch);
    const enc = this.device.createCommandEncoder({ label: "evaluate" });
    encodeDispatches(enc, p.forward);
    this.device.queue.submit([enc.finish()]);
    const [prob, loss] = await Promise.all([readF32(this.device, p.prob, batch.size), readF32(this.device, p.lossMean, 1)]);
    return { prob, loss: loss[0]! };
  }

  async predict(batch: Batch): Promise<Float32Array> {
    return (await this.evaluate(batch)).prob;
  }

  /** Parameters as a state dict with the reference's names. */
  async stateDict(): Promise<StateDict> {
    return { ...(await this.dense.stateDict()), ...(await this.embeddings.stateDict()) };
  }

  /** Gradients of the dense parameters from the last step (for checks against PyTorch). */
  async denseGradients(): Promise<StateDict> {
    return { ...(await this.dense.gradients()), ...(await this.embeddings.projectionGradients()) };
  }

  /**
   * Replaces the parameters by `sd`. Every name and shape is checked before
   * anything is written, so a mismatched state dict leaves the model as it was.
   */
  loadStateDict(sd: StateDict): void {
    this.validateStateDict(sd);
    this.dense.load(sd);
    this.embeddings.load(sd);
  }

  validateStateDict(sd: StateDict): void {
    checkTensors(sd, parameterShapes(this.config), "state dict");
  }

  validateOptimizerState(sd: StateDict): void {
    checkTensors(sd, this.optimizerStateShapes(), "optimizer state");
  }

  /** Names and shapes of the optimizer state tensors ("optim.<param>.<i>" for the MLPs; see ModelEmbeddings). */
  optimizerStateShapes(): [string, number[]][] {
    return [...this.dense.optimizerStateShapes(), ...this.embeddings.optimizerStateShapes()];
  }

  async optimizerState(): Promise<StateDict> {
    return { ...(await this.dense.optimizerState()), ...(await this.embeddings.optimizerState()) };
  }

  /**
   * Every parameter (stateDict() order), then the optimizer state of a
   * training model (optimizerState() order), as TensorRows: checkpoints read
   * and write them in bounded pieces (src/io/checkpoint_stream.ts).
   */
  checkpointTensors(): TensorRows[] {
    const params = [...this.dense.tensorRows("params"), ...this.embeddings.tensorRows("params")];
    return this.options.inferenceOnly ? params : [...params, ...this.dense.tensorRows("optimizer"), ...this.embeddings.tensorRows("optimizer")];
  }

  /** Restores optimizer state saved by optimizerState(); validated before writing. */
  loadOptimizerState(sd: StateDict): void {
    this.validateOptimizerState(sd);
    this.dense.loadOptimizerState(sd);
    this.embeddings.loadOptimizerState(sd);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) this.destroyPlan(p);
    this.dense.destroy();
    this.embeddings.destroy();
    this.optim.destroy();
    this.lossHistory.destroy();
  }
}


/** Every expected tensor present with the expected shape, nothing extra; ConfigError naming the first problem. */
export function checkTensors(sd: StateDict, expected: [string, number[]][], what: string): void {
  const names = new Set(Object.keys(sd));
  for (const [name, shape] of expected) {
    const t = sd[name];
    if (!t) throw new ConfigError(`${what}: missing tensor '${name}' (shape [${shape}])`);
    if (t.shape.join(",") !== shape.join(",")) throw new ConfigError(`${what}: tensor '${name}' has shape [${t.shape}], the model needs [${shape}]`);
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) throw new ConfigError(`${what}: tensor '${name}' holds ${t.data.length} values, shape [${shape}] needs ${n}`);
    names.delete(name);
  }
  if (names.size) throw new ConfigError(`${what}: unexpected tensors ${[...names].slice(0, 5).join(", ")}${names.size > 5 ? " ..." : ""}`);
}
