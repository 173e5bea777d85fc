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
import { prepareLinearBackward, prepareLinearForward } from "../kernels/gemm.ts";
import { prepareInteractionBackward, prepareInteractionForward } from "../kernels/interaction.ts";
import { prepareLoss, type LossKind } from "../kernels/loss.ts";
import { prepareDenseOptimizer, denseOptimizerStateSizes, type DenseOptimizerKind } from "../kernels/dense_optimizer.ts";
import { prepareReduceSum } from "../kernels/reduce.ts";
import { createOptimizerParams, writeOptimizerParams } from "../kernels/optimizer_params.ts";
import { type DlrmConfig, interactionWidth } from "./config.ts";
import { learningRateAt } from "./schedule.ts";
import { parameterShapes, type StateDict } from "./params.ts";

interface Linear {
  name: string; // state-dict prefix, e.g. "bot_l.0"
  inDim: number;
  outDim: number;
  w: GPUBuffer;
  b: GPUBuffer;
  dw?: GPUBuffer;
  db?: GPUBuffer;
  /** Dense optimizer state of w and of b. */
  stateW: GPUBuffer[];
  stateB: GPUBuffer[];
}

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
}

const LOSS_HISTORY = 256;

const EMB_OPT = { sgd: "sgd", adagrad: "adagrad", rwsadagrad: "rowwise-adagrad" } as const;
// The reference's RWSAdagrad is row-wise only for sparse (embedding) gradients; MLPs get element-wise Adagrad.
const DENSE_OPT: Record<DlrmConfig["optimizer"], DenseOptimizerKind> = { sgd: "sgd", adagrad: "adagrad", rwsadagrad: "adagrad" };
const LOSS: Record<DlrmConfig["loss"], LossKind> = { mse: "mse", bce: "bce", wbce: "wbce" };

export class DlrmModel {
  readonly bottom: Linear[];
  readonly top: Linear[];
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
    const makeLinear = (prefix: string, sizes: number[]) =>
      sizes.slice(1).map((outDim, i): Linear => {
        const name = `${prefix}.${2 * i}`;
        const inDim = sizes[i]!;
        const mk = (data: Float32Array, what: string) => {
          const buf = createStorage(device, data.byteLength, `${name}.${what}`);
          writeBuffer(device, buf, data);
          return buf;
        };
        const kind = DENSE_OPT[config.optimizer];
        const state = (count: number, rows: number, what: string) =>
          training ? denseOptimizerStateSizes(kind, count, rows).map((n, j) => mk(new Float32Array(n), `${what}.state${j}`)) : [];
        return {
          name,
          inDim,
          outDim,
          w: mk(initial[`${name}.weight`]!.data, "weight"),
          b: mk(initial[`${name}.bias`]!.data, "bias"),
          dw: training ? createStorage(device, outDim * inDim * 4, `${name}.weight.grad`) : undefined,
          db: training ? createStorage(device, outDim * 4, `${name}.bias.grad`) : undefined,
          stateW: state(outDim * inDim, outDim, `${name}.weight`),
          stateB: state(outDim, outDim, `${name}.bias`),
        };
      });
    this.bottom = makeLinear("bot_l", config.bottomMlp);
    this.top = makeLinear("top_l", config.topMlp);
    this.embeddings = new ModelEmbeddings(device, config, initial, {
      training,
      embKind: EMB_OPT[config.optimizer],
      denseKind: DENSE_OPT[config.optimizer],
      maxChunkBytes: options.maxChunkBytes,
    });
    this.optim = createOptimizerParams(device, { lr: config.learningRate, eps: 1e-10 }, "optim-params");
    this.lossHistory = createStorage(device, LOSS_HISTORY * 4, "loss-history");
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
    const forward: Dispatch[] = [];
    const backward: Dispatch[] = [];
    const update: Dispatch[] = [];

    // Bottom MLP: ReLU after every layer (the reference's sigmoid_bot = -1).
    const botActs = [dense];
    for (const l of this.bottom) {
      const y = buf(B * l.outDim, `${l.name}.out`);
      forward.push(...prepareLinearForward(device, { x: botActs.at(-1)!, w: l.w, b: l.b, y, m: B, n: l.outDim, k: l.inDim, activation: "relu" }));
      botActs.push(y);
    }
    const x = botActs.at(-1)!;
    forward.push(...embPlan.forward);
    const rDim = interactionWidth(n, d, c.interaction, c.interactionItself);
    const r = buf(B * rDim, "interaction");
    const inter = { x, emb, batch: B, numEmb: n, dim: d, op: c.interaction, self: c.interactionItself };
    forward.push(...prepareInteractionForward(device, { ...inter, out: r }));
    // Top MLP: ReLU after every layer but the last, whose sigmoid is fused into the loss.
    const topActs = [r];
    this.top.forEach((l, i) => {
      const y = buf(B * l.outDim, `${l.name}.out`);
      const last = i === this.top.length - 1;
      forward.push(...prepareLinearForward(device, { x: topActs.at(-1)!, w: l.w, b: l.b, y, m: B, n: l.outDim, k: l.inDim, activation: last ? "none" : "relu" }));
      topActs.push(y);
    });
    const logits = topActs.at(-1)!;
    const prob = buf(B, "prob");
    const dz = buf(B, "dlogits");
    const lossPer = buf(B, "loss");
    const lossMean = buf(1, "loss-mean");
    forward.push(
      ...prepareLoss(device, {
        logits,
        labels,
        prob,
        grad: dz,
        loss: lossPer,
        batch: B,
        // The stable logits form cannot express the output clamp; the reference's own form can.
        kind: c.lossThreshold > 0 && c.loss === "bce" ? "bce-prob" : LOSS[c.loss],
        classWeights: c.lossWeights,
        threshold: c.lossThreshold,
      }),
      ...prepareReduceSum(device, { input: lossPer, output: lossMean, count: B, scale: 1 / B }),
    );

    if (training) {
      // Top MLP backward, last layer first.
      let dy = dz;
      for (let i = this.top.length - 1; i >= 0; i--) {
        const l = this.top[i]!;
        const dx = buf(B * l.inDim, `${l.name}.dx`);
        backward.push(...prepareLinearBackward(device, { x: topActs[i]!, w: l.w, y: topActs[i + 1]!, dy, dx, dw: l.dw!, db: l.db!, m: B, n: l.outDim, k: l.inDim, activation: i === this.top.length - 1 ? "none" : "relu" }));
        dy = dx;
      }
      const gradX = buf(B * d, "interaction.dx");
      backward.push(...prepareInteractionBackward(device, { ...inter, gradOut: dy, gradX, gradEmb: gradEmb! }));
      dy = gradX;
      for (let i = this.bottom.length - 1; i >= 0; i--) {
        const l = this.bottom[i]!;
        const dx = i > 0 ? buf(B * l.inDim, `${l.name}.dx`) : undefined;
        backward.push(...prepareLinearBackward(device, { x: botActs[i]!, w: l.w, y: botActs[i + 1]!, dy, dx, dw: l.dw!, db: l.db!, m: B, n: l.outDim, k: l.inDim, activation: "relu" }));
        if (dx) dy = dx;
      }
      backward.push(...embPlan.backward, ...embPlan.setBackward.flatMap((s) => s.dispatches));
      update.push(...embPlan.update);
      const kind = DENSE_OPT[c.optimizer];
      for (const l of [...this.bottom, ...this.top]) {
        update.push(...prepareDenseOptimizer(device, { kind, param: l.w, grad: l.dw!, state: l.stateW, count: l.outDim * l.inDim, rows: l.outDim, optim: this.optim }));
        update.push(...prepareDenseOptimizer(device, { kind, param: l.b, grad: l.db!, state: l.stateB, count: l.outDim, rows: l.outDim, optim: this.optim }));
      }
    }
    return { batchSize: B, dense, labels, emb: embPlan, forward, backward, update, prob, lossMean, buffers };
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
    const sd: StateDict = {};
    for (const l of [...this.bottom, ...this.top]) {
      sd[`${l.name}.weight`] = { shape: [l.outDim, l.inDim], data: await readF32(this.device, l.w, l.outDim * l.inDim) };
      sd[`${l.name}.bias`] = { shape: [l.outDim], data: await readF32(this.device, l.b, l.outDim) };
    }
    return { ...sd, ...(await this.embeddings.stateDict()) };
  }

  /** Gradients of the dense parameters from the last step (for checks against PyTorch). */
  async denseGradients(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const l of [...this.bottom, ...this.top]) {
      if (!l.dw || !l.db) throw new Error("no gradients in an inference-only model");
      sd[`${l.name}.weight`] = { shape: [l.outDim, l.inDim], data: await readF32(this.device, l.dw, l.outDim * l.inDim) };
      sd[`${l.name}.bias`] = { shape: [l.outDim], data: await readF32(this.device, l.db, l.outDim) };
    }
    return { ...sd, ...(await this.embeddings.projectionGradients()) };
  }

  /**
   * Replaces the parameters by `sd`. Every name and shape is checked before
   * anything is written, so a mismatched state dict leaves the model as it was.
   */
  loadStateDict(sd: StateDict): void {
    this.validateStateDict(sd);
    for (const l of [...this.bottom, ...this.top]) {
      writeBuffer(this.device, l.w, sd[`${l.name}.weight`]!.data);
      writeBuffer(this.device, l.b, sd[`${l.name}.bias`]!.data);
    }
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
    const out: [string, number[]][] = [];
    for (const l of [...this.bottom, ...this.top]) {
      l.stateW.forEach((_, i) => out.push([`optim.${l.name}.weight.${i}`, [l.outDim, l.inDim]]));
      l.stateB.forEach((_, i) => out.push([`optim.${l.name}.bias.${i}`, [l.outDim]]));
    }
    return [...out, ...this.embeddings.optimizerStateShapes()];
  }

  async optimizerState(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const l of [...this.bottom, ...this.top]) {
      for (let i = 0; i < l.stateW.length; i++) sd[`optim.${l.name}.weight.${i}`] = { shape: [l.outDim, l.inDim], data: await readF32(this.device, l.stateW[i]!, l.outDim * l.inDim) };
      for (let i = 0; i < l.stateB.length; i++) sd[`optim.${l.name}.bias.${i}`] = { shape: [l.outDim], data: await readF32(this.device, l.stateB[i]!, l.outDim) };
    }
    return { ...sd, ...(await this.embeddings.optimizerState()) };
  }

  /** Restores optimizer state saved by optimizerState(); validated before writing. */
  loadOptimizerState(sd: StateDict): void {
    this.validateOptimizerState(sd);
    for (const l of [...this.bottom, ...this.top]) {
      l.stateW.forEach((b, i) => writeBuffer(this.device, b, sd[`optim.${l.name}.weight.${i}`]!.data));
      l.stateB.forEach((b, i) => writeBuffer(this.device, b, sd[`optim.${l.name}.bias.${i}`]!.data));
    }
    this.embeddings.loadOptimizerState(sd);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) this.destroyPlan(p);
    for (const l of [...this.bottom, ...this.top]) for (const b of [l.w, l.b, l.dw, l.db, ...l.stateW, ...l.stateB]) b?.destroy();
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
