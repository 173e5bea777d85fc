/**
 * The embedding part of a DLRM on one device: plain, QR and MD tables laid
 * out by embedding_layout.ts into EmbeddingTableSets (one per sub-table
 * width), their optimizer state, the packed MD projections, and per batch
 * size the bag buffers and dispatches:
 *
 *   forward:  per set, embedding-bag forward -> P [B, W]; combine P -> E [B, n, d]
 *             (all-plain models pool straight into E: P is E)
 *   backward: combine backward dE -> dP, projection gradient; per set,
 *             embedding-bag backward fused with the optimizer update
 *   update:   dense optimizer on the projections
 */
import { createStorage, readF32, writeBuffer } from "../gpu/buffers.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { type BagBatchBuffers, createBagBatchBuffers, writeBagBatch } from "../kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward, type PreparedEmbeddingBackward } from "../kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../kernels/embedding_bag_forward.ts";
import { type CombineDescriptors, prepareEmbeddingCombineBackward, prepareEmbeddingCombineForward, prepareEmbeddingProjGrad, uploadCombineDescriptors } from "../kernels/embedding_combine.ts";
import { createEmbeddingOptimizerState, destroyEmbeddingOptimizerState } from "../kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet, readTable, readTableRows, writeTable, writeTableRows } from "../kernels/embedding_tables.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "../kernels/embedding_types.ts";
import { type DenseOptimizerKind, denseOptimizerStateSizes, prepareDenseOptimizer } from "../kernels/dense_optimizer.ts";
import type { DlrmConfig } from "./config.ts";
import type { Bf16Rounding, EmbeddingPrecision } from "./precision.ts";
import { embeddingParameters, type EmbeddingLayout, packProjections, type SetBags, splitBags } from "./embedding_layout.ts";
import { bufferRows, flushWrites, layoutOf, type StateDict, type TensorRows } from "./params.ts";

export type EmbeddingOptimizerKind = EmbeddingOptimizerState["kind"];

/** Bag buffers and dispatches of one batch size. */
export interface EmbeddingPlan {
  bags: BagBatchBuffers[];
  forward: Dispatch[];
  /** Combine backward and projection gradient (before the per-set backward). */
  backward: Dispatch[];
  setBackward: PreparedEmbeddingBackward[];
  update: Dispatch[];
  buffers: GPUBuffer[];
}

export class ModelEmbeddings {
  readonly layout: EmbeddingLayout;
  readonly sets: EmbeddingTableSet[];
  readonly states: EmbeddingOptimizerState[];
  readonly desc: CombineDescriptors | undefined;
  readonly proj: { w: GPUBuffer; grad?: GPUBuffer; state: GPUBuffer[] } | undefined;

  constructor(
    private readonly device: GPUDevice,
    config: DlrmConfig,
    initial: StateDict,
    private readonly opts: {
      training: boolean; embKind: EmbeddingOptimizerKind; denseKind: DenseOptimizerKind; maxChunkBytes?: number;
      /** lowp: table storage and bf16 rounding (src/model/precision.ts); seed of stochastic rounding. */
      embeddingPrecision?: EmbeddingPrecision; bf16Rounding?: Bf16Rounding; seed?: number;
    },
  ) {
    const L = (this.layout = layoutOf(config));
    // lowp: bf16 chunks for adagrad at half a binding, so their f32 state (twice the bytes) fits one.
    const bf16Adagrad = opts.embeddingPrecision === "bf16" && opts.training && opts.embKind === "adagrad";
    const maxChunkBytes = bf16Adagrad ? Math.floor(Math.min(opts.maxChunkBytes ?? Infinity, device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / 2) : opts.maxChunkBytes;
    this.sets = L.sets.map((s, i) => createTableSet(device, { rows: s.rows, dim: s.dim, maxChunkBytes, label: `emb-set${i}(d=${s.dim})`, precision: opts.embeddingPrecision }));
    this.states = opts.training ? this.sets.map((s) => createEmbeddingOptimizerState(device, s, opts.embKind)) : [];
    this.desc = L.identity ? undefined : uploadCombineDescriptors(device, L);
    if (L.projSize > 0) {
      const w = createStorage(device, L.projSize * 4, "emb-proj");
      const state = opts.training ? denseOptimizerStateSizes(opts.denseKind, L.projSize).map((n, i) => createStorage(device, n * 4, `emb-proj.state${i}`)) : [];
      this.proj = { w, grad: opts.training ? createStorage(device, L.projSize * 4, "emb-proj.grad") : undefined, state };
    }
    this.load(initial);
  }

  /** Writes the embedding parameters of `sd` (already validated). */
  load(sd: StateDict): void {
    for (const p of embeddingParameters(this.layout)) {
      if (p.place.kind === "table") writeTable(this.device, this.sets[p.place.set]!, p.place.table, sd[p.name]!.data);
    }
    if (this.proj) writeBuffer(this.device, this.proj.w, packProjections(this.layout, sd));
  }

  async stateDict(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const p of embeddingParameters(this.layout)) {
      const data =
        p.place.kind === "table"
          ? await readTable(this.device, this.sets[p.place.set]!, p.place.table)
          : await readF32(this.device, this.proj!.w, p.shape[0]! * p.shape[1]!, p.place.offset);
      sd[p.name] = { shape: p.shape, data };
    }
    return sd;
  }

  /** Gradients of the MD projections from the last step, by parameter name. */
  async projectionGradients(): Promise<StateDict> {
    const sd: StateDict = {};
    for (const p of embeddingParameters(this.layout)) {
      if (p.place.kind !== "proj" || !this.proj?.grad) continue;
      sd[p.name] = { shape: p.shape, data: await readF32(this.device, this.proj.grad, p.shape[0]! * p.shape[1]!, p.place.offset) };
    }
    return sd;
  }

  /** Values per row of the sparse optimizer state of a table of width `dim`. */
  private stateDim(dim: number): number {
    return this.opts.embKind === "adagrad" ? dim : this.opts.embKind === "rowwise-adagrad" ? 1 : 0;
  }

  /** Optimizer state tensors: "optim.<param>.sum" per table parameter, "optim.<proj param>.<i>" per projection. */
  optimizerStateShapes(): [string, number[]][] {
    if (!this.opts.training) return [];
    const out: [string, number[]][] = [];
    for (const p of embeddingParameters(this.layout)) {
      if (p.place.kind === "table") {
        const k = this.stateDim(p.shape[1]!);
        if (k) out.push([`optim.${p.name}.sum`, k === 1 ? [p.shape[0]!] : p.shape]);
      } else {
        this.proj!.state.forEach((_, i) => out.push([`optim.${p.name}.${i}`, p.shape]));
      }
    }
    return out;
  }

  private stateAsTables(set: number): EmbeddingTableSet {
    const s = this.sets[set]!;
    const st = this.states[set]!;
    return { ...s, precision: "fp32", dim: this.stateDim(s.dim), chunks: s.chunks.map((c, i) => ({ ...c, buffer: st.chunks[i]! })) };
  }

  async optimizerState(): Promise<StateDict> {
    const sd: StateDict = {};
    const shapes = new Map(this.optimizerStateShapes());
    for (const p of embeddingParameters(this.layout)) {
      if (p.place.kind === "table") {
        const name = `optim.${p.name}.sum`;
        if (shapes.has(name)) sd[name] = { shape: shapes.get(name)!, data: await readTable(this.device, this.stateAsTables(p.place.set), p.place.table) };
      } else {
        for (let i = 0; i < this.proj!.state.length; i++) {
          sd[`optim.${p.name}.${i}`] = { shape: p.shape, data: await readF32(this.device, this.proj!.state[i]!, p.shape[0]! * p.shape[1]!, p.place.offset) };
        }
      }
    }
    return sd;
  }

  loadOptimizerState(sd: StateDict): void {
    for (const p of embeddingParameters(this.layout)) {
      if (p.place.kind === "table") {
        const t = sd[`optim.${p.name}.sum`];
        if (t) writeTable(this.device, this.stateAsTables(p.place.set), p.place.table, t.data);
      } else {
        const offset = p.place.offset * 4;
        this.proj!.state.forEach((buf, i) => writeBuffer(this.device, buf, sd[`optim.${p.name}.${i}`]!.data, offset));
      }
    }
  }

  /**
   * The embedding parameters ("params", stateDict() order) or their optimizer
   * state ("optimizer", optimizerState() order) as TensorRows: a table's rows
   * are read from and written to the chunks that hold them, nothing more.
   */
  tensorRows(what: "params" | "optimizer"): TensorRows[] {
    const out: TensorRows[] = [];
    const shapes = new Map(this.optimizerStateShapes());
    for (const p of embeddingParameters(this.layout)) {
      const place = p.place;
      if (place.kind === "table") {
        const name = what === "params" ? p.name : `optim.${p.name}.sum`;
        const shape = what === "params" ? p.shape : shapes.get(name);
        if (!shape) continue;
        const set = () => (what === "params" ? this.sets[place.set]! : this.stateAsTables(place.set));
        out.push({
          name,
          shape,
          read: (start, count) => readTableRows(this.device, set(), place.table, start, count),
          write: (start, data) => writeTableRows(this.device, set(), place.table, start, data),
          flush: () => flushWrites(this.device),
        });
      } else if (what === "params") {
        out.push(bufferRows(this.device, p.name, p.shape, this.proj!.w, place.offset));
      } else {
        this.proj!.state.forEach((buf, i) => out.push(bufferRows(this.device, `optim.${p.name}.${i}`, p.shape, buf, place.offset)));
      }
    }
    return out;
  }

  /** The batch's bags per set (all-plain models use the batch as is). */
  split(batch: { size: number; offsets: Uint32Array; indices: Uint32Array }): SetBags[] {
    if (this.layout.identity) return [{ batchSize: batch.size, offsets: batch.offsets, indices: batch.indices }];
    return splitBags(this.layout, { batchSize: batch.size, offsets: batch.offsets, indices: batch.indices });
  }

  /** Bag buffers and dispatches for batch size B; E [B, n, d] and its gradient are the model's. */
  createPlan(B: number, capacities: number[], emb: GPUBuffer, gradEmb: GPUBuffer | undefined, optim: GPUBuffer): EmbeddingPlan {
    const { device, layout: L } = this;
    const buffers: GPUBuffer[] = [];
    const n = L.numTables;
    const d = L.dim;
    const pooled = L.identity ? emb : createStorage(device, B * L.width * 4, `emb-pooled[B=${B}]`);
    if (!L.identity) buffers.push(pooled);
    const stride = L.identity ? n * d : L.width;
    const bags = this.sets.map((s, i) => createBagBatchBuffers(device, { batchSize: B, numTables: s.rows.length, maxIndices: capacities[i]!, label: `bags-set${i}[B=${B}]` }));
    const forward: Dispatch[] = this.sets.flatMap((tables, i) =>
      prepareEmbeddingBagForward(device, { tables, bags: bags[i]!, out: pooled, outStride: stride, outOffset: L.identity ? 0 : L.sets[i]!.offset, pooling: "sum" }),
    );
    if (this.desc) forward.push(...prepareEmbeddingCombineForward(device, { pooled, desc: this.desc, proj: this.proj?.w, out: emb, batch: B }));
    const backward: Dispatch[] = [];
    const update: Dispatch[] = [];
    let setBackward: PreparedEmbeddingBackward[] = [];
    if (gradEmb) {
      let gradPooled = gradEmb;
      if (this.desc) {
        gradPooled = createStorage(device, B * L.width * 4, `emb-pooled.grad[B=${B}]`);
        buffers.push(gradPooled);
        backward.push(...prepareEmbeddingCombineBackward(device, { pooled, desc: this.desc, proj: this.proj?.w, gradOut: gradEmb, gradPooled, batch: B }));
        if (this.proj) {
          backward.push(...prepareEmbeddingProjGrad(device, { pooled, desc: this.desc, gradOut: gradEmb, gradProj: this.proj.grad!, batch: B }));
          update.push(...prepareDenseOptimizer(device, { kind: this.opts.denseKind, param: this.proj.w, grad: this.proj.grad!, state: this.proj.state, count: L.projSize, optim }));
        }
      }
      setBackward = this.sets.map((tables, i) =>
        prepareEmbeddingBagBackward(device, {
          tables,
          state: this.states[i]!,
          bags: bags[i]!,
          gradOut: gradPooled,
          gradStride: stride,
          gradOffset: L.identity ? 0 : L.sets[i]!.offset,
          pooling: "sum",
          maxIndices: capacities[i]!,
          optim,
          rounding: this.opts.bf16Rounding,
          roundingSeed: ((this.opts.seed ?? 0) >>> 0) ^ i,
        }),
      );
    }
    return { bags, forward, backward, setBackward, update, buffers };
  }

  /** Uploads one batch's bags (validated against the table sizes). */
  write(plan: EmbeddingPlan, split: SetBags[]): void {
    split.forEach((b, i) => {
      writeBagBatch(this.device, plan.bags[i]!, b, this.layout.sets[i]!.rows);
      plan.setBackward[i]?.setNumIndices(this.device, b.indices.length);
    });
  }

  destroyPlan(p: EmbeddingPlan): void {
    for (const b of p.buffers) b.destroy();
    for (const bags of p.bags) {
      bags.offsets.destroy();
      bags.indices.destroy();
      bags.weights?.destroy();
    }
    for (const s of p.setBackward) s.destroy();
  }

  destroy(): void {
    this.sets.forEach(destroyTableSet);
    this.states.forEach(destroyEmbeddingOptimizerState);
    this.desc?.buffer.destroy();
    for (const b of [this.proj?.w, this.proj?.grad, ...(this.proj?.state ?? [])]) b?.destroy();
  }
}
