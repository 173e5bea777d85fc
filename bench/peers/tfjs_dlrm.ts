/**
 * The DLRM of src/model/dlrm.ts written the way a JavaScript developer would
 * with @tensorflow/tfjs-core + tfjs-backend-webgpu (bench:peers' tfjs peer):
 *   bottom MLP   tf.fused.matMul(x, W^T, bias, relu) per layer
 *   embeddings   tf.gather of each table's indices; bags of L > 1 indices
 *                summed by a batched matMul of ones [B,1,L] x [B,L,d]
 *                (the fastest tfjs formulation in bench/kernels.ts probes)
 *   interaction  T = stack(x, e_1..e_n) [B, n+1, d]; Z = matMul(T, T^T);
 *                gather of the strict lower triangle; concat with x
 *   top MLP      fused.matMul, ReLU except the last layer
 *   loss         tf.losses.sigmoidCrossEntropy (mean BCE on the logits)
 *   optimizer    tf.train.sgd / tf.train.adagrad, minimize() (gradients by
 *                tfjs autodiff: the gather gradient is a dense [rows, d]
 *                unsortedSegmentSum per table)
 * Parameters come from the same state dict as ours (reference names), so
 * the loss on the same batch can be checked against ours before timing.
 */
import type * as TF from "@tensorflow/tfjs-core";
import type { Batch } from "../../src/data/batch.ts";
import type { DlrmConfig } from "../../src/model/config.ts";
import type { StateDict } from "../../src/model/params.ts";

type Tf = typeof TF;

interface Layer {
  w: TF.Variable;
  b: TF.Variable;
}

export class TfjsDlrm {
  readonly bottom: Layer[];
  readonly top: Layer[];
  readonly tables: TF.Variable[];
  private readonly tril: TF.Tensor1D;
  private readonly optimizer: TF.Optimizer;

  constructor(
    readonly tf: Tf,
    readonly config: DlrmConfig,
    sd: StateDict,
  ) {
    if (config.interaction !== "dot" || config.interactionItself || config.qr || config.md) {
      throw new Error("tfjs peer: only the plain dot-interaction DLRM is written here");
    }
    const v = (name: string) => {
      const t = sd[name];
      if (!t) throw new Error(`tfjs peer: missing ${name}`);
      return tf.variable(tf.tensor(t.data, t.shape), true, name);
    };
    const mlp = (prefix: string, sizes: number[]) =>
      sizes.slice(1).map((_, i) => ({ w: v(`${prefix}.${2 * i}.weight`), b: v(`${prefix}.${2 * i}.bias`) }));
    this.bottom = mlp("bot_l", config.bottomMlp);
    this.top = mlp("top_l", config.topMlp);
    this.tables = config.tableRows.map((_, t) => v(`emb_l.${t}.weight`));
    const n = config.tableRows.length + 1;
    const li: number[] = [];
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) li.push(i * n + j);
    this.tril = tf.tensor1d(li, "int32");
    this.optimizer = config.optimizer === "sgd" ? tf.train.sgd(config.learningRate) : tf.train.adagrad(config.learningRate, 0);
  }

  /** The batch as tensors (the per-step upload). */
  inputs(batch: Batch): { dense: TF.Tensor2D; idx: TF.Tensor1D[]; labels: TF.Tensor2D; bag: number } {
    const tf = this.tf;
    const B = batch.size;
    const idx: TF.Tensor1D[] = [];
    let bag = -1;
    for (let t = 0; t < batch.numTables; t++) {
      const lo = batch.offsets[t * B]!;
      const hi = batch.offsets[t * B + B]!;
      const L = (hi - lo) / B;
      for (let b = 0; b < B; b++) {
        if (batch.offsets[t * B + b + 1]! - batch.offsets[t * B + b]! !== L) throw new Error("tfjs peer: bags of a fixed size only");
      }
      if (bag >= 0 && L !== bag) throw new Error("tfjs peer: the same bag size in every table only");
      bag = L;
      idx.push(tf.tensor1d(new Int32Array(batch.indices.buffer, batch.indices.byteOffset + lo * 4, hi - lo), "int32"));
    }
    return {
      dense: tf.tensor2d(batch.dense, [B, batch.numDense]),
      idx,
      labels: tf.tensor2d(batch.labels, [B, 1]),
      bag,
    };
  }

  private logits(inp: ReturnType<TfjsDlrm["inputs"]>): TF.Tensor2D {
    const tf = this.tf;
    const B = inp.dense.shape[0];
    const d = this.config.embeddingDim;
    let x: TF.Tensor2D = inp.dense;
    for (const l of this.bottom) x = tf.fused.matMul({ a: x, b: l.w, transposeB: true, bias: l.b, activation: "relu" }) as TF.Tensor2D;
    const L = inp.bag;
    const ones = L > 1 ? tf.ones([B, 1, L]) : undefined;
    const emb = this.tables.map((tab, t) => {
      const rows = tf.gather(tab, inp.idx[t]!);
      return (ones ? tf.reshape(tf.matMul(ones, tf.reshape(rows, [B, L, d])), [B, d]) : rows) as TF.Tensor2D;
    });
    const T = tf.stack([x, ...emb], 1) as TF.Tensor3D;
    const n = emb.length + 1;
    const Z = tf.reshape(tf.matMul(T, T, false, true), [B, n * n]);
    let h: TF.Tensor2D = tf.concat([x, tf.gather(Z, this.tril, 1) as TF.Tensor2D], 1);
    this.top.forEach((l, i) => {
      const last = i === this.top.length - 1;
      h = tf.fused.matMul({ a: h, b: l.w, transposeB: true, bias: l.b, activation: last ? "linear" : "relu" }) as TF.Tensor2D;
    });
    return h;
  }

  /** Mean BCE of the forward pass (no update). */
  async loss(batch: Batch): Promise<number> {
    const tf = this.tf;
    const inp = this.inputs(batch);
    const l = tf.tidy(() => tf.losses.sigmoidCrossEntropy(inp.labels, this.logits(inp)));
    const v = (await l.data())[0]!;
    l.dispose();
    this.dispose(inp);
    return v;
  }

  /** One training step (upload, forward, backward, update); returns the loss tensor (caller disposes). */
  step(batch: Batch): TF.Scalar {
    const tf = this.tf;
    const inp = this.inputs(batch);
    const cost = this.optimizer.minimize(() => tf.losses.sigmoidCrossEntropy(inp.labels, this.logits(inp)) as TF.Scalar, true)!;
    this.dispose(inp);
    return cost;
  }

  private dispose(inp: ReturnType<TfjsDlrm["inputs"]>): void {
    inp.dense.dispose();
    inp.labels.dispose();
    for (const t of inp.idx) t.dispose();
  }

  destroy(): void {
    for (const l of [...this.bottom, ...this.top]) {
      l.w.dispose();
      l.b.dispose();
    }
    for (const t of this.tables) t.dispose();
    this.tril.dispose();
    this.optimizer.dispose();
  }
}
