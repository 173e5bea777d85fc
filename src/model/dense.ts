/**
 * The dense part of a DLRM on one device: bottom and top MLP parameters,
 * their gradients and optimizer state, and per batch the recorded dispatches
 *
 *   bottomForward: dense [B, m] -> bottom MLP (ReLU after every layer) -> x [B, d]
 *   topForward:    interaction(x, E) -> top MLP -> loss (mean over `meanOver`
 *                  samples, default B) -> lossMean (the batch's share of it)
 *   topBackward:   top MLP backward, interaction backward -> dE [B, n, d], dx
 *   bottomBackward: bottom MLP backward
 *   update:        the dense optimizer on every MLP parameter
 *
 * E [B, n, d] and dE belong to the caller: DlrmModel fills E with its own
 * embeddings; the sharded model (src/shard/) fills it from the all-to-all and
 * runs the phases separately so the transfers overlap the MLPs.
 */
import { createStorage, readF32, writeBuffer } from "../gpu/buffers.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { prepareLinearBackward, prepareLinearForward } from "../kernels/gemm.ts";
import { prepareInteractionBackward, prepareInteractionForward } from "../kernels/interaction.ts";
import { prepareLoss, type LossKind } from "../kernels/loss.ts";
import { prepareDenseOptimizer, denseOptimizerStateSizes, type DenseOptimizerKind } from "../kernels/dense_optimizer.ts";
import { prepareReduceSum } from "../kernels/reduce.ts";
import { type DlrmConfig, interactionWidth } from "./config.ts";
import { bufferRows, type StateDict, type TensorRows } from "./params.ts";

export interface Linear {
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

export interface DenseStep {
  batchSize: number;
  bottomForward: Dispatch[];
  topForward: Dispatch[];
  topBackward: Dispatch[];
  bottomBackward: Dispatch[];
  update: Dispatch[];
  prob: GPUBuffer;
  lossMean: GPUBuffer;
  buffers: GPUBuffer[];
}

// The reference's RWSAdagrad is row-wise only for sparse (embedding) gradients; MLPs get element-wise Adagrad.
export const DENSE_OPT: Record<DlrmConfig["optimizer"], DenseOptimizerKind> = { sgd: "sgd", adagrad: "adagrad", rwsadagrad: "adagrad" };
// bce is the reference's torch.nn.BCELoss on probabilities; bce-logits the stable logits form.
const LOSS: Record<DlrmConfig["loss"], LossKind> = { mse: "mse", bce: "bce-prob", wbce: "wbce", "bce-logits": "bce" };

export class DenseMlp {
  readonly bottom: Linear[];
  readonly top: Linear[];

  constructor(
    readonly device: GPUDevice,
    readonly config: DlrmConfig,
    initial: StateDict,
    readonly training: boolean,
  ) {
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
  }

  get layers(): Linear[] {
    return [...this.bottom, ...this.top];
  }

  /** Gradient tensors in a fixed order (weight then bias, bottom then top) with their float counts. */
  gradientBuffers(): { buffer: GPUBuffer; floats: number }[] {
    return this.layers.flatMap((l) => [
      { buffer: l.dw!, floats: l.outDim * l.inDim },
      { buffer: l.db!, floats: l.outDim },
    ]);
  }

  /**
   * Dispatches for batch size B reading dense [B, m], labels [B] and E [B, n, d]
   * (gradEmb receives dE when training). The loss and its gradient are means
   * over `meanOver` samples (default B): a data-parallel slice of a global
   * batch passes the global size, so the slices' gradients add up to the
   * global batch's.
   */
  buildStep(B: number, io: { dense: GPUBuffer; labels: GPUBuffer; emb: GPUBuffer; gradEmb?: GPUBuffer; optim: GPUBuffer; meanOver?: number }): DenseStep {
    const { device, config: c } = this;
    const training = this.training && io.gradEmb !== undefined;
    const d = c.embeddingDim;
    const n = c.tableRows.length;
    const meanOver = io.meanOver ?? B;
    const buffers: GPUBuffer[] = [];
    const buf = (floats: number, label: string) => {
      const b = createStorage(device, floats * 4, `${label}[B=${B}]`);
      buffers.push(b);
      return b;
    };
    const bottomForward: Dispatch[] = [];
    const topForward: Dispatch[] = [];
    const topBackward: Dispatch[] = [];
    const bottomBackward: Dispatch[] = [];
    const update: Dispatch[] = [];

    // Bottom MLP: ReLU after every layer (the reference's sigmoid_bot = -1).
    const botActs = [io.dense];
    for (const l of this.bottom) {
      const y = buf(B * l.outDim, `${l.name}.out`);
      bottomForward.push(...prepareLinearForward(device, { x: botActs.at(-1)!, w: l.w, b: l.b, y, m: B, n: l.outDim, k: l.inDim, activation: "relu" }));
      botActs.push(y);
    }
    const x = botActs.at(-1)!;
    const rDim = interactionWidth(n, d, c.interaction, c.interactionItself);
    const r = buf(B * rDim, "interaction");
    const inter = { x, emb: io.emb, batch: B, numEmb: n, dim: d, op: c.interaction, self: c.interactionItself };
    topForward.push(...prepareInteractionForward(device, { ...inter, out: r }));
    // Top MLP: ReLU after every layer but the last, whose sigmoid is fused into the loss.
    const topActs = [r];
    this.top.forEach((l, i) => {
      const y = buf(B * l.outDim, `${l.name}.out`);
      const last = i === this.top.length - 1;
      topForward.push(...prepareLinearForward(device, { x: topActs.at(-1)!, w: l.w, b: l.b, y, m: B, n: l.outDim, k: l.inDim, activation: last ? "none" : "relu" }));
      topActs.push(y);
    });
    const logits = topActs.at(-1)!;
    const prob = buf(B, "prob");
    const dz = buf(B, "dlogits");
    const lossPer = buf(B, "loss");
    const lossMean = buf(1, "loss-mean");
    topForward.push(
      ...prepareLoss(device, {
        logits,
        labels: io.labels,
        prob,
        grad: dz,
        loss: lossPer,
        batch: B,
        meanOver,
        // The stable logits form cannot express the output clamp; the reference's own form can.
        kind: LOSS[c.loss],
        classWeights: c.lossWeights,
        threshold: c.lossThreshold,
      }),
      ...prepareReduceSum(device, { input: lossPer, output: lossMean, count: B, scale: 1 / meanOver }),
    );

    if (training) {
      // Top MLP backward, last layer first.
      let dy = dz;
      for (let i = this.top.length - 1; i >= 0; i--) {
        const l = this.top[i]!;
        const dx = buf(B * l.inDim, `${l.name}.dx`);
        topBackward.push(...prepareLinearBackward(device, { x: topActs[i]!, w: l.w, y: topActs[i + 1]!, dy, dx, dw: l.dw!, db: l.db!, m: B, n: l.outDim, k: l.inDim, activation: i === this.top.length - 1 ? "none" : "relu" }));
        dy = dx;
      }
      const gradX = buf(B * d, "interaction.dx");
      topBackward.push(...prepareInteractionBackward(device, { ...inter, gradOut: dy, gradX, gradEmb: io.gradEmb! }));
      dy = gradX;
      for (let i = this.bottom.length - 1; i >= 0; i--) {
        const l = this.bottom[i]!;
        const dx = i > 0 ? buf(B * l.inDim, `${l.name}.dx`) : undefined;
        bottomBackward.push(...prepareLinearBackward(device, { x: botActs[i]!, w: l.w, y: botActs[i + 1]!, dy, dx, dw: l.dw!, db: l.db!, m: B, n: l.outDim, k: l.inDim, activation: "relu" }));
        if (dx) dy = dx;
      }
      update.push(...this.prepareUpdate(io.optim));
    }
    return { batchSize: B, bottomForward, topForward, topBackward, bottomBackward, update, prob, lossMean, buffers };
  }

  /** The dense optimizer on every MLP parameter (reads dw, db). */
  prepareUpdate(optim: GPUBuffer): Dispatch[] {
    const kind = DENSE_OPT[this.config.optimizer];
    const out: Dispatch[] = [];
    for (const l of this.layers) {
      out.push(...prepareDenseOptimizer(this.device, { kind, param: l.w, grad: l.dw!, state: l.stateW, count: l.outDim * l.inDim, rows: l.outDim, optim }));
      out.push(...prepareDenseOptimizer(this.device, { kind, param: l.b, grad: l.db!, state: l.stateB, count: l.outDim, rows: l.outDim, optim }));
    }
    return out;
  }

  async stateDict(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const l of this.layers) {
      sd[`${l.name}.weight`] = { shape: [l.outDim, l.inDim], data: await readF32(this.device, l.w, l.outDim * l.inDim) };
      sd[`${l.name}.bias`] = { shape: [l.outDim], data: await readF32(this.device, l.b, l.outDim) };
    }
    return sd;
  }

  async gradients(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const l of this.layers) {
      if (!l.dw || !l.db) throw new Error("no gradients in an inference-only model");
      sd[`${l.name}.weight`] = { shape: [l.outDim, l.inDim], data: await readF32(this.device, l.dw, l.outDim * l.inDim) };
      sd[`${l.name}.bias`] = { shape: [l.outDim], data: await readF32(this.device, l.db, l.outDim) };
    }
    return sd;
  }

  /** Writes the MLP parameters of `sd` (already validated). */
  load(sd: StateDict): void {
    for (const l of this.layers) {
      writeBuffer(this.device, l.w, sd[`${l.name}.weight`]!.data);
      writeBuffer(this.device, l.b, sd[`${l.name}.bias`]!.data);
    }
  }

  optimizerStateShapes(): [string, number[]][] {
    const out: [string, number[]][] = [];
    for (const l of this.layers) {
      l.stateW.forEach((_, i) => out.push([`optim.${l.name}.weight.${i}`, [l.outDim, l.inDim]]));
      l.stateB.forEach((_, i) => out.push([`optim.${l.name}.bias.${i}`, [l.outDim]]));
    }
    return out;
  }

  async optimizerState(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const l of this.layers) {
      for (let i = 0; i < l.stateW.length; i++) sd[`optim.${l.name}.weight.${i}`] = { shape: [l.outDim, l.inDim], data: await readF32(this.device, l.stateW[i]!, l.outDim * l.inDim) };
      for (let i = 0; i < l.stateB.length; i++) sd[`optim.${l.name}.bias.${i}`] = { shape: [l.outDim], data: await readF32(this.device, l.stateB[i]!, l.outDim) };
    }
    return sd;
  }

  loadOptimizerState(sd: StateDict): void {
    for (const l of this.layers) {
      l.stateW.forEach((b, i) => writeBuffer(this.device, b, sd[`optim.${l.name}.weight.${i}`]!.data));
      l.stateB.forEach((b, i) => writeBuffer(this.device, b, sd[`optim.${l.name}.bias.${i}`]!.data));
    }
  }

  /** The MLP parameters ("params", stateDict() order) or optimizer state ("optimizer", optimizerState() order) as TensorRows. */
  tensorRows(what: "params" | "optimizer"): TensorRows[] {
    const out: TensorRows[] = [];
    for (const l of this.layers) {
      if (what === "params") {
        out.push(bufferRows(this.device, `${l.name}.weight`, [l.outDim, l.inDim], l.w), bufferRows(this.device, `${l.name}.bias`, [l.outDim], l.b));
      } else {
        l.stateW.forEach((b, i) => out.push(bufferRows(this.device, `optim.${l.name}.weight.${i}`, [l.outDim, l.inDim], b)));
        l.stateB.forEach((b, i) => out.push(bufferRows(this.device, `optim.${l.name}.bias.${i}`, [l.outDim], b)));
      }
    }
    return out;
  }

  destroy(): void {
    for (const l of this.layers) for (const b of [l.w, l.b, l.dw, l.db, ...l.stateW, ...l.stateB]) b?.destroy();
  }
}
