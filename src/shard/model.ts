/**
 * ShardedDlrm: one DLRM trained on N devices (GpuContexts) under a
 * ShardingPlan (src/shard/plan.ts), as in the DLRM paper's section 3:
 * embedding tables model-parallel (table-, row-, column-wise shards, or
 * data-parallel replicas), the MLPs data-parallel (a full replica per
 * device, each on its slice of the global batch).
 *
 * One training step (layouts and routes: src/shard/routing.ts):
 *  1. each device pools its shards over the global batch (Px, Pd);
 *  2. forward all-to-all (host-staged; the bottom MLP forward is submitted
 *     while its transfers are in flight) -> R_j; the forward route builds
 *     E_j for the device's slice;
 *  3. interaction, top MLP and loss on the slice (the loss is a mean over the
 *     GLOBAL batch, so the slices' gradients add up to the global gradient),
 *     top MLP and interaction backward -> dE_j; the backward route -> G_j;
 *  4. backward all-to-all (dE blocks back to the shards' owners, the data-
 *     parallel tables' gradients to every replica) and, at the same time,
 *     the ring allreduce of the MLP gradients (the bottom MLP backward is
 *     submitted after the exchange's first copies);
 *  5. each device runs the fused deterministic embedding backward over the
 *     global batch on its shards, and the same dense optimizer update on
 *     the same summed gradients (replicas stay bit-identical).
 *
 * Checkpoints: stateDict() gathers every table from its shards under the
 * reference's names; loadStateDict() cuts them again for this plan, so a
 * checkpoint moves between any N and any plan (src/shard/state.ts).
 *
 * Modules: replica.ts (what each device holds), step_plan.ts (a step's
 * buffers, dispatches and collectives per batch size), state.ts and
 * state_names.ts (state gathered from and cut into the shards), routing.ts
 * (layouts and routes), collectives.ts (all-to-all and allreduce).
 *
 * QR and MD tables (quotient-remainder, mixed dimensions) are placed whole on
 * one device (table-wise): their owner runs a ModelEmbeddings of its own over
 * them (sub-tables, combine, MD projections, the projections' dense
 * optimizer) for the global batch, exactly as one device does, and a route
 * copies the combined d-wide vectors into its exchanged columns (and their
 * gradients back); from there they travel like a plain table-wise table.
 */
import { createStorage, readF32, writeBuffer } from "../gpu/buffers.ts";
import type { GpuContext } from "../gpu/context.ts";
import { encodeDispatches } from "../gpu/dispatch.ts";
import { ConfigError, DeviceLostError, KernelInputError } from "../gpu/errors.ts";
import type { Batch } from "../data/batch.ts";
import { validateBags, writeBagBatch } from "../kernels/bag_batch.ts";
import { createEmbeddingOptimizerState, destroyEmbeddingOptimizerState } from "../kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet } from "../kernels/embedding_tables.ts";
import { createOptimizerParams, writeOptimizerParams } from "../kernels/optimizer_params.ts";
import type { DlrmConfig } from "../model/config.ts";
import { DENSE_OPT, DenseMlp } from "../model/dense.ts";
import type { EmbeddingLayout } from "../model/embedding_layout.ts";
import { ModelEmbeddings } from "../model/embeddings.ts";
import { checkTensors } from "../model/dlrm.ts";
import { layoutOf, parameterShapes, type StateDict, type TensorRows } from "../model/params.ts";
import { learningRateAt } from "../model/schedule.ts";
import { type Allreduce, type AllreduceLink, type AllreduceSchedule, type AllToAllSchedule, type CollectiveStats, createAllreduce } from "./collectives.ts";
import { type QrSubTables, type ShardingPlan, validatePlan } from "./plan.ts";
import { type CompositeTables, EMB_OPT, type EmbeddingKind, type Replica, type ReplicaSet } from "./replica.ts";
import { type DeviceLayout, deviceLayouts, setBags } from "./routing.ts";
import { ShardedState } from "./state.ts";
import { compositeLocal } from "./state_names.ts";
import { buildStepPlan, destroyStepPlan, type StepPlan } from "./step_plan.ts";

const LOSS_HISTORY = 256;

/** A device of a sharded run was lost: names the device, what was running, and how to go on. */
export class ShardDeviceLostError extends DeviceLostError {
  constructor(
    readonly deviceIndex: number,
    readonly adapterName: string,
    readonly step: number,
    cause: DeviceLostError | undefined,
  ) {
    super(cause?.reason ?? "destroyed", cause?.detail ?? "no detail");
    this.message = `device ${deviceIndex} ("${adapterName}") was lost during step ${step + 1}${cause ? ` (${cause.reason}: ${cause.detail})` : ""}; the step did not complete and nothing after the last checkpoint was kept. Resume from the last checkpoint on the remaining devices (a new plan is made for them).`;
  }
}

export interface StepProfile {
  step: number;
  /** "overlapped": the normal schedule; "serial": every phase waited for (phase times are GPU + host). */
  mode: "overlapped" | "serial";
  totalMs: number;
  /** serial mode: wall time of each phase (all devices), in step order. */
  phases: Record<string, number>;
  collectives: { forward: CollectiveStats; backward: CollectiveStats; allreduce: CollectiveStats; rowSum?: CollectiveStats; projections?: CollectiveStats };
  /** Host-staged bytes per device (sent) in this step, all collectives. */
  bytesSent: number[];
  /** What ran while the host-staged transfers were in flight (overlapped mode). */
  overlapped: string[];
  /**
   * serial mode: each device's own work per compute phase, run alone (device j's
   * part submitted and waited for before device j+1's), so software adapters
   * sharing the host's cores do not inflate each other's times: ms [device] and
   * dispatches [device] per phase name. The collective phases are in `phases` only.
   */
  devicePhases: Record<string, { ms: number[]; dispatches: number[] }>;
  /** serial mode: host time to validate, route and upload the batch (ms). */
  uploadMs: number;
}

export interface ShardedOptions {
  schedule?: AllToAllSchedule;
  /** MLP-gradient and row-sum allreduce: ring, recursive halving/doubling, or auto (default; by the α-β model of `allreduceLink`). */
  allreduce?: AllreduceSchedule;
  /** The link "auto" models (latency s, bandwidth B/s per direction; shared: one host's cores); default PCIe 4.0 x16. */
  allreduceLink?: AllreduceLink;
  /**
   * Deliberate errors, for the tests that show the equivalence check catches
   * them: "misroute-row" sends one lookup of a row-wise shard to the wrong row
   * every step; "drop-gradient" drops the last device's pooled-gradient block
   * for device 0 in the backward exchange; "skip-row-sum" skips the per-row
   * allreduce of column shards under row-wise Adagrad (each shard divides by
   * its own columns' squared gradient only); "skip-projection-allreduce" skips
   * the allreduce of split MD tables' projection gradients (each copy then
   * follows its own shard's gradient). Never set them in a real run.
   */
  fault?: "misroute-row" | "drop-gradient" | "skip-row-sum" | "skip-projection-allreduce";
  /** Cap on bytes per embedding buffer (default: each device's binding limit). */
  maxChunkBytes?: number;
}

export class ShardedDlrm {
  readonly replicas: Replica[];
  readonly layouts: DeviceLayout[];
  readonly allreduce: Allreduce;
  readonly gradFloats: number;
  /** Optimizer steps taken (drives the learning-rate schedule). */
  step = 0;
  lastProfile: StepProfile | undefined;
  /** The DlrmModel-compatible options object (checkpoints read inferenceOnly). */
  readonly options = { inferenceOnly: false };
  private plans = new Map<number, StepPlan>();
  private lossCount = 0;
  private destroyed = false;
  private readonly embKind: EmbeddingKind;
  /** The whole model's embedding layout (plain, QR and MD tables). */
  private readonly fullLayout: EmbeddingLayout;
  /** QR and MD tables held whole by one device (a ModelEmbeddings of their own); QR tables split by sub-table rows are not in it. */
  private readonly composite: Set<number>;
  /** QR tables combined by "mult" and split by sub-table rows (their combine runs on the slice owner). */
  private readonly qrMult: number[];
  /** MD tables split row-wise (by logical rows = rows of the narrow table). */
  private readonly mdRows: Set<number>;
  /**
   * Per MD table split row-wise with a projection: the allreduce of its projection gradient among the
   * devices holding its shards (each holds a copy of the projection; the gradient is a sum over shards).
   */
  private projAllreduces: Allreduce[] = [];
  /** The embedding state gathered from and cut into the shards (checkpoints, re-planning). */
  private readonly state: ShardedState;

  constructor(
    readonly contexts: readonly GpuContext[],
    readonly config: DlrmConfig,
    initial: StateDict,
    readonly plan: ShardingPlan,
    readonly shardOptions: ShardedOptions = {},
  ) {
    if (plan.devices !== contexts.length) throw new ConfigError(`the plan is for ${plan.devices} devices, ${contexts.length} were given`);
    checkTensors(initial, parameterShapes(config), "initial parameters");
    this.embKind = EMB_OPT[config.optimizer];
    this.fullLayout = layoutOf(config);
    // QR tables split by sub-table rows (shards naming a part) run as plain row shards; the other QR/MD tables are held whole.
    const qr = new Map<number, QrSubTables>();
    this.fullLayout.tables.forEach((t, i) => {
      if (t.kind === "qr") qr.set(i, { collisions: t.collisions!, operation: config.qr!.operation, qRows: t.places[0]!.rows, rRows: t.places[1]!.rows });
    });
    validatePlan(plan, config.tableRows, config.embeddingDim, qr);
    const split = new Set(plan.tables.filter((p) => p.shards.some((s) => s.part)).map((p) => p.table));
    this.qrMult = config.qr?.operation === "mult" ? [...split].sort((a, b) => a - b) : [];
    this.composite = new Set(this.fullLayout.tables.flatMap((t, i) => (t.kind === "plain" || split.has(i) ? [] : [i])));
    // MD tables split row-wise: each row shard runs in its device's ModelEmbeddings with a copy of the projection.
    this.mdRows = new Set(plan.tables.filter((p) => p.kind === "row" && this.fullLayout.tables[p.table]!.kind === "md").map((p) => p.table));
    this.layouts = deviceLayouts(plan, config.tableRows, config.embeddingDim, this.composite, this.embKind === "rowwise-adagrad", qr, this.mdRows);
    this.replicas = contexts.map((ctx, i) => {
      const device = ctx.device;
      const layout = this.layouts[i]!;
      const dense = new DenseMlp(device, config, initial, true);
      const sets = layout.sets.filter((set) => !set.composite).map((set, s): ReplicaSet => {
        const tables = createTableSet(device, { rows: set.shards.map((sh) => sh.rowEnd - sh.rowStart), dim: set.dim, maxChunkBytes: shardOptions.maxChunkBytes, label: `dev${i}-${set.region}set${s}(d=${set.dim})` });
        return { set, tables, state: createEmbeddingOptimizerState(device, tables, this.embKind) };
      });
      const gradFloats = dense.gradientBuffers().reduce((a, g) => a + g.floats, 0);
      const optim = createOptimizerParams(device, { lr: config.learningRate, eps: 1e-10 }, `dev${i}-optim-params`);
      return {
        ctx,
        device,
        dense,
        optim,
        update: dense.prepareUpdate(optim),
        layout,
        sets,
        composite: this.makeComposite(device, layout, initial, i),
        gradFlat: createStorage(device, gradFloats * 4, `dev${i}-mlp-grads`),
        lossHistory: createStorage(device, LOSS_HISTORY * 4, `dev${i}-loss-history`),
      };
    });
    this.gradFloats = this.replicas[0]!.dense.gradientBuffers().reduce((a, g) => a + g.floats, 0);
    for (const t of [...this.mdRows].sort((a, b) => a - b)) {
      const holders = this.replicas.filter((r) => r.composite?.tables.includes(t));
      const dimT = this.fullLayout.tables[t]!.mdDim ?? config.embeddingDim;
      if (holders.length < 2 || dimT >= config.embeddingDim) continue;
      const offsets = holders.map((r) => r.composite!.emb.layout.combine[r.composite!.tables.indexOf(t)]!.projOffset);
      this.projAllreduces.push(createAllreduce(holders.map((r) => r.device), holders.map((r) => r.composite!.emb.proj!.grad!), config.embeddingDim * dimT, {
        offset: offsets,
        label: `md-proj-grad-allreduce(table ${t})`,
        schedule: shardOptions.allreduce,
        link: shardOptions.allreduceLink,
      }));
    }
    this.allreduce = createAllreduce(
      this.replicas.map((r) => r.device),
      this.replicas.map((r) => r.gradFlat),
      this.gradFloats,
      { label: "mlp-grad-allreduce", schedule: shardOptions.allreduce, link: shardOptions.allreduceLink },
    );
    this.state = new ShardedState(this.replicas, config, plan, this.fullLayout, this.composite, this.embKind, (fn) => this.guard(fn));
    this.state.writeEmbeddings(initial);
  }

  /** A ModelEmbeddings over the QR/MD tables device i holds (their own sub-config: same tricks, MD dims fixed to the whole model's). */
  private makeComposite(device: GPUDevice, layout: DeviceLayout, initial: StateDict, i: number): CompositeTables | undefined {
    const set = layout.sets.find((x) => x.composite);
    if (!set) return undefined;
    const c = this.config;
    const tables = set.shards.map((sh) => sh.table);
    // Row shards of MD tables hold their rows only; threshold 0 keeps every non-QR table of the sub-config MD
    // (an MD shard has at most the MD table's rows, never more than the QR threshold).
    const sub: DlrmConfig = {
      ...c,
      tableRows: set.shards.map((sh) => sh.rowEnd - sh.rowStart),
      md: c.md ? { ...c.md, threshold: set.shards.some((sh) => sh.kind === "row") ? 0 : c.md.threshold, dims: tables.map((t) => this.fullLayout.tables[t]!.mdDim ?? c.embeddingDim) } : null,
    };
    const emb = new ModelEmbeddings(device, sub, compositeLocal(initial, set), {
      training: true,
      embKind: this.embKind,
      denseKind: DENSE_OPT[c.optimizer],
      maxChunkBytes: this.shardOptions.maxChunkBytes,
    });
    const kinds = emb.layout.tables.map((t) => t.kind).join();
    const want = tables.map((t) => this.fullLayout.tables[t]!.kind).join();
    if (kinds !== want) throw new Error(`device ${i}: the QR/MD sub-layout (${kinds}) differs from the model's (${want})`);
    return { set, tables, emb };
  }

  get devices(): GPUDevice[] {
    return this.replicas.map((r) => r.device);
  }

  get numTables(): number {
    return this.config.tableRows.length;
  }

  get learningRate(): number {
    const c = this.config;
    return learningRateAt({ baseLr: c.learningRate, warmupSteps: c.lrWarmupSteps, decayStartStep: c.lrDecayStartStep, decaySteps: c.lrDecaySteps }, this.step);
  }

  // ---------------------------------------------------------------- plans

  /** The plan for this batch size, rebuilt when a slot's indices (need [device][slot]) outgrow its capacity. */
  private stepPlan(batch: Batch, need: number[][]): StepPlan {
    const B = batch.size;
    let p = this.plans.get(B);
    // Row-wise Adagrad over column shards: lookups of each column-wise table bound its unique rows (row-sum slots).
    // (at most its rows: a table of fewer rows than lookups never needs more slots).
    const rowsNeed = this.plan.tables.map((t) =>
      this.embKind === "rowwise-adagrad" && t.kind === "column" ? Math.min(this.config.tableRows[t.table]!, batch.offsets[(t.table + 1) * B]! - batch.offsets[t.table * B]!) : 0,
    );
    if (p && need.every((per, i) => per.every((c, s) => p!.capacities[i]![s]! >= c)) && rowsNeed.every((c, t) => p!.rowSumCaps[t]! >= c)) return p;
    const old = p?.capacities;
    const rowSumCaps = rowsNeed.map((c, t) => (c === 0 && !p ? 0 : Math.min(this.config.tableRows[t]!, Math.max(c, p ? 2 * p.rowSumCaps[t]! : B))));
    if (p) destroyStepPlan(p, this.replicas);
    // One slot per plain set, then one for the composite set (QR/MD tables) when the device has one.
    const slotTables = (i: number, s: number) => {
      const rep = this.replicas[i]!;
      return s < rep.sets.length ? rep.sets[s]!.set.shards.length : rep.composite!.tables.length;
    };
    const capacities = need.map((per, i) => per.map((c, s) => Math.max(c, old ? 2 * old[i]![s]! : B * slotTables(i, s))));
    p = this.buildPlan(B, capacities, rowSumCaps);
    this.plans.set(B, p);
    return p;
  }

  /** A new step plan (step_plan.ts); a method of its own so tests can count the builds. */
  private buildPlan(B: number, capacities: number[][], rowSumCaps: number[]): StepPlan {
    const m = { config: this.config, plan: this.plan, replicas: this.replicas, layouts: this.layouts, rowwise: this.embKind === "rowwise-adagrad", qrMult: this.qrMult, options: this.shardOptions };
    return buildStepPlan(m, B, capacities, rowSumCaps);
  }

  /** Validates the batch, builds each device's bags and uploads bags, dense features and labels. */
  private upload(batch: Batch): StepPlan {
    if (this.destroyed) throw new Error("ShardedDlrm was destroyed");
    const c = this.config;
    if (batch.numDense !== c.bottomMlp[0]) throw new KernelInputError(`batch has ${batch.numDense} dense features, the model expects ${c.bottomMlp[0]} (--arch-mlp-bot starts with the dense width)`);
    if (batch.numTables !== this.numTables) throw new KernelInputError(`batch has ${batch.numTables} sparse features, the model has ${this.numTables} embedding tables`);
    validateBags({ batchSize: batch.size, offsets: batch.offsets, indices: batch.indices }, c.tableRows);
    const bags = this.replicas.map((rep) => rep.sets.map((s) => setBags(s.set, batch)));
    // QR/MD tables: the owner's bags for them, split into its sub-table sets (a set may hold a table's q and r
    // sub-tables); the slot's need is the largest set's indices.
    const compBags = this.replicas.map((rep, j) => {
      if (!rep.composite) return undefined;
      const hb = setBags(rep.composite.set, batch);
      const split = rep.composite.emb.split({ size: batch.size, offsets: hb.offsets, indices: hb.indices });
      return split;
    });
    if (this.shardOptions.fault === "misroute-row") {
      // The first lookup of the first row-wise shard with at least two rows goes to its neighbour row.
      outer: for (const [j, rep] of this.replicas.entries()) {
        for (const [k, s] of rep.sets.entries()) {
          const at = s.set.shards.findIndex((sh) => sh.kind === "row" && sh.rowEnd - sh.rowStart > 1);
          const hb = bags[j]![k]!;
          if (at < 0) continue;
          const p = hb.offsets[at * batch.size]!;
          if (p < hb.offsets[(at + 1) * batch.size]!) {
            const sh = s.set.shards[at]!;
            hb.indices[p] = (hb.indices[p]! + 1) % (sh.rowEnd - sh.rowStart);
            break outer;
          }
        }
      }
    }
    const need = bags.map((per, j) => {
      const n = per.map((b) => b.indices.length);
      const split = compBags[j];
      if (split) n.push(Math.max(...split.map((x) => x.indices.length)));
      return n;
    });
    const p = this.stepPlan(batch, need);
    const m = batch.numDense;
    this.replicas.forEach((rep, j) => {
      const dp = p.devices[j]!;
      if (rep.composite) rep.composite.emb.write(dp.comp!.plan, compBags[j]!);
      rep.sets.forEach((s, k) => {
        writeBagBatch(rep.device, dp.bags[k]!, bags[j]![k]!, s.set.shards.map((sh) => sh.rowEnd - sh.rowStart));
        dp.setBackward[k]!.setNumIndices(rep.device, bags[j]![k]!.indices.length);
      });
      const a = p.start[j]!;
      const bj = p.count[j]!;
      if (bj > 0) {
        writeBuffer(rep.device, dp.dense, batch.dense.subarray(a * m, (a + bj) * m));
        writeBuffer(rep.device, dp.labels, batch.labels.subarray(a, a + bj));
      }
    });
    return p;
  }

  private submit(j: number, label: string, fn: (enc: GPUCommandEncoder) => void): void {
    const rep = this.replicas[j]!;
    const enc = rep.device.createCommandEncoder({ label: `dev${j}-${label}` });
    fn(enc);
    rep.device.queue.submit([enc.finish()]);
  }

  private async allDone(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.device.queue.onSubmittedWorkDone()));
  }

  /** The first lost device, as a ShardDeviceLostError (waits briefly for loss reports after a failure). */
  private async lostDevice(waitMs: number): Promise<ShardDeviceLostError | undefined> {
    const find = () => this.replicas.findIndex((r) => r.ctx.lostError);
    let i = find();
    if (i < 0 && waitMs > 0) {
      await Promise.race([Promise.race(this.replicas.map((r) => r.ctx.lost)), new Promise((res) => setTimeout(res, waitMs))]);
      i = find();
    }
    if (i < 0) return undefined;
    const r = this.replicas[i]!;
    return new ShardDeviceLostError(i, r.ctx.adapter.name, this.step, r.ctx.lostError);
  }

  private async guard<T>(fn: () => Promise<T>): Promise<T> {
    const before = await this.lostDevice(0);
    if (before) throw before;
    try {
      return await fn();
    } catch (e) {
      const lost = await this.lostDevice(2000);
      if (lost) throw lost;
      throw e;
    }
  }

  // ---------------------------------------------------------------- step

  /**
   * One training step on the global `batch` over all devices. Resolves when
   * every device's work is submitted (not finished); the loss goes to the loss
   * history (readLosses()). The schedule overlaps transfers with the MLPs;
   * profileStep() runs the same step phase by phase to time each phase.
   */
  async trainStep(batch: Batch): Promise<void> {
    await this.guard(() => this.runStep(batch, false));
  }

  /** A training step in serial mode: every phase waited for and timed (see lastProfile). */
  async profileStep(batch: Batch): Promise<StepProfile> {
    await this.guard(() => this.runStep(batch, true));
    return this.lastProfile!;
  }

  private async runStep(batch: Batch, serial: boolean): Promise<void> {
    if (this.lossCount >= LOSS_HISTORY) throw new Error("loss history full: call readLosses() at least every 256 steps");
    const t0 = performance.now();
    const phases: Record<string, number> = {};
    const devicePhases: StepProfile["devicePhases"] = {};
    let tp = t0;
    const phase = async (name: string) => {
      if (!serial) return;
      await this.allDone();
      const now = performance.now();
      phases[name] = now - tp;
      tp = now;
    };
    const N = this.replicas.length;
    // A compute phase: device j's part is submitted by work(j), which returns its dispatch count. Serial mode runs
    // the devices one after another, each waited for, and keeps each device's time.
    const perDevice = async (name: string, work: (j: number) => number) => {
      if (!serial) {
        for (let j = 0; j < N; j++) work(j);
        return;
      }
      await this.allDone();
      const ms: number[] = [];
      const dispatches: number[] = [];
      for (let j = 0; j < N; j++) {
        const a = performance.now();
        dispatches.push(work(j));
        await this.replicas[j]!.device.queue.onSubmittedWorkDone();
        ms.push(performance.now() - a);
      }
      devicePhases[name] = { ms, dispatches };
      await phase(name);
    };
    const p = this.upload(batch);
    const lr = this.learningRate;
    this.replicas.forEach((rep) => writeOptimizerParams(rep.device, rep.optim, { lr, eps: 1e-10, step: this.step + 1 }));
    const uploadMs = performance.now() - t0;
    if (serial) await phase("upload");
    const dp = p.devices;
    // 1. lookups over the global batch.
    await perDevice("lookups", (j) => {
      this.submit(j, "lookups", (enc) => encodeDispatches(enc, dp[j]!.lookups));
      return dp[j]!.lookups.length;
    });
    // 2. forward all-to-all; the bottom MLP forward overlaps it (submitted once round 0's copies are issued).
    const bottomForwardOf = (j: number) => {
      if (!dp[j]!.step) return 0;
      this.submit(j, "bottom-forward", (enc) => encodeDispatches(enc, dp[j]!.step!.bottomForward));
      return dp[j]!.step!.bottomForward.length;
    };
    const bottomForward = () => {
      for (let j = 0; j < N; j++) bottomForwardOf(j);
    };
    if (serial) await perDevice("bottom MLP forward", bottomForwardOf);
    const fwdStats = await p.forward.run({ between: serial ? undefined : bottomForward });
    await phase("all-to-all forward");
    // 3. route, interaction, top MLP, loss, top backward, route back; the loss into the history.
    await perDevice("top MLP forward + backward", (j) => {
      const d = dp[j]!;
      const rep = this.replicas[j]!;
      this.submit(j, "dense", (enc) => {
        if (d.step) {
          encodeDispatches(enc, [...d.routeForward, ...d.step.topForward, ...d.step.topBackward, ...d.routeBackward]);
          if (this.shardOptions.fault === "drop-gradient" && j === N - 1 && N > 1) {
            const bytes = p.count[j]! * this.layouts[0]!.wx * 4;
            if (bytes > 0) enc.clearBuffer(d.g, 0, bytes);
          }
          enc.copyBufferToBuffer(d.step.lossMean, 0, rep.lossHistory, this.lossCount * 4, 4);
        } else {
          enc.clearBuffer(rep.lossHistory, this.lossCount * 4, 4);
        }
      });
      return d.step ? d.routeForward.length + d.step.topForward.length + d.step.topBackward.length + d.routeBackward.length : 0;
    });
    // 4. backward all-to-all and MLP gradient allreduce, concurrently; the bottom MLP backward overlaps the exchange.
    const bottomBackwardOf = (j: number) => {
      const d = dp[j]!;
      const rep = this.replicas[j]!;
      this.submit(j, "bottom-backward", (enc) => {
        if (d.step) {
          encodeDispatches(enc, d.step.bottomBackward);
          let at = 0;
          for (const g of rep.dense.gradientBuffers()) {
            enc.copyBufferToBuffer(g.buffer, 0, rep.gradFlat, at * 4, g.floats * 4);
            at += g.floats;
          }
        } else {
          enc.clearBuffer(rep.gradFlat);
        }
      });
      return d.step ? d.step.bottomBackward.length : 0;
    };
    const bottomBackward = () => {
      for (let j = 0; j < N; j++) bottomBackwardOf(j);
    };
    let bwdStats: CollectiveStats;
    let arStats: CollectiveStats;
    if (serial) {
      await perDevice("bottom MLP backward", bottomBackwardOf);
      bwdStats = await p.backward.run();
      await phase("all-to-all backward");
      arStats = await this.allreduce.run();
      await phase("MLP gradient allreduce");
    } else {
      const bwd = p.backward.run({ between: bottomBackward });
      const ar = this.allreduce.run();
      [bwdStats, arStats] = await Promise.all([bwd, ar]);
    }
    // 5. updates: summed MLP gradients back in place, embedding backward (fused update), dense optimizer.
    //    Column shards under row-wise Adagrad: segment reduction and partial row sums here, then the
    //    per-row allreduce among their devices, then their update.
    const UPDATES = "embedding backward + updates";
    await perDevice(UPDATES, (j) => {
      const d = dp[j]!;
      const rep = this.replicas[j]!;
      // With split MD tables, the projections' update waits for their gradients' allreduce (below).
      const compUpdate = this.projAllreduces.length ? [] : (d.comp?.plan.update ?? []);
      const comp = d.comp ? [...d.comp.fromPx, ...d.comp.plan.backward, ...d.comp.plan.setBackward.flatMap((s) => s.dispatches), ...compUpdate] : [];
      const list = [...d.setBackward.flatMap((s) => s.before), ...comp, ...rep.update];
      const rowSum = p.rowSums?.buffers[j];
      this.submit(j, "update", (enc) => {
        let at = 0;
        for (const g of rep.dense.gradientBuffers()) {
          enc.copyBufferToBuffer(rep.gradFlat, at * 4, g.buffer, 0, g.floats * 4);
          at += g.floats;
        }
        if (rowSum) enc.clearBuffer(rowSum);
        encodeDispatches(enc, list);
      });
      return list.length;
    });
    let rowSumStats: CollectiveStats | undefined;
    const projStats: CollectiveStats[] = [];
    if (p.rowSums || this.projAllreduces.length) {
      if (p.rowSums) {
        rowSumStats = this.shardOptions.fault === "skip-row-sum" ? { label: "row-sum-allreduce (skipped: fault)", rounds: [], localBytes: 0, ms: 0 } : await p.rowSums.allreduce.run();
        await phase("row-sum allreduce");
      }
      if (this.shardOptions.fault !== "skip-projection-allreduce") for (const ar of this.projAllreduces) projStats.push(await ar.run());
      if (this.projAllreduces.length) await phase("MD projection gradient allreduce");
      const AFTER = `${UPDATES} (after row sums)`;
      await perDevice(AFTER, (j) => {
        const after = [...dp[j]!.setBackward.flatMap((s) => s.after), ...(this.projAllreduces.length ? (dp[j]!.comp?.plan.update ?? []) : [])];
        if (after.length) this.submit(j, "column-rowwise-update", (enc) => encodeDispatches(enc, after));
        return after.length;
      });
      // One phase for the cost model: the split update is part of the embedding backward.
      const a = devicePhases[AFTER];
      const u = devicePhases[UPDATES];
      if (a && u) {
        a.ms.forEach((ms, j) => (u.ms[j]! += ms));
        a.dispatches.forEach((n, j) => (u.dispatches[j]! += n));
        delete devicePhases[AFTER];
      }
    }
    this.lossCount++;
    this.step++;
    const bytesSent = new Array<number>(N).fill(0);
    for (const s of [fwdStats, bwdStats, arStats]) for (const r of s.rounds) r.sent.forEach((b, i) => (bytesSent[i]! += b));
    // The row-sum ring runs on a subset of the devices: its round stats are indexed by position in that subset.
    // The row-sum and projection allreduces run on subsets of the devices: their round stats, re-indexed by device.
    const widen = (s: CollectiveStats, devs: readonly number[]): CollectiveStats => ({
      ...s,
      rounds: s.rounds.map((r) => {
        const sent = new Array<number>(N).fill(0);
        const received = new Array<number>(N).fill(0);
        r.sent.forEach((b, i) => (sent[devs[i]!] = b));
        r.received.forEach((b, i) => (received[devs[i]!] = b));
        return { ...r, sent, received, pairs: r.pairs.map(([a, b]) => [devs[a]!, devs[b]!] as [number, number]) };
      }),
    });
    if (rowSumStats) rowSumStats = widen(rowSumStats, p.rowSums!.layout.devices);
    const projections = projStats.length
      ? projStats.map((s, k) => widen(s, (this.projAllreduces[k] as unknown as { devices: readonly GPUDevice[] }).devices.map((dev) => this.devices.indexOf(dev)))).reduce((a, b) => ({ label: "md-proj-grad-allreduce", rounds: [...a.rounds, ...b.rounds], localBytes: 0, ms: a.ms + b.ms }))
      : undefined;
    for (const s of [rowSumStats, projections]) if (s) for (const r of s.rounds) r.sent.forEach((b, i) => (bytesSent[i]! += b));
    this.lastProfile = {
      step: this.step,
      mode: serial ? "serial" : "overlapped",
      totalMs: performance.now() - t0,
      phases,
      collectives: { forward: fwdStats, backward: bwdStats, allreduce: arStats, ...(rowSumStats ? { rowSum: rowSumStats } : {}), ...(projections ? { projections } : {}) },
      bytesSent,
      overlapped: serial ? [] : ["bottom MLP forward || forward all-to-all", "bottom MLP backward || backward all-to-all", "MLP gradient allreduce || backward all-to-all"],
      devicePhases,
      uploadMs: serial ? uploadMs : 0,
    };
  }

  /** Mean losses (over each global batch) of the steps since the last call, in order. */
  async readLosses(): Promise<number[]> {
    if (this.lossCount === 0) return [];
    return this.guard(async () => {
      const per = await Promise.all(this.replicas.map((r) => readF32(r.device, r.lossHistory, this.lossCount)));
      const out: number[] = [];
      for (let s = 0; s < this.lossCount; s++) {
        let acc = 0;
        for (const v of per) acc += v[s]!; // device order: fixed
        out.push(acc);
      }
      this.lossCount = 0;
      return out;
    });
  }

  /** Forward only over all devices: click probabilities of the global batch and its mean loss. */
  async evaluate(batch: Batch): Promise<{ prob: Float32Array; loss: number }> {
    return this.guard(async () => {
      const p = this.upload(batch);
      const N = this.replicas.length;
      for (let j = 0; j < N; j++) this.submit(j, "eval-lookups", (enc) => encodeDispatches(enc, p.devices[j]!.lookups));
      await p.forward.run();
      for (let j = 0; j < N; j++) {
        const d = p.devices[j]!;
        if (d.step) this.submit(j, "eval-forward", (enc) => encodeDispatches(enc, [...d.routeForward, ...d.step!.bottomForward, ...d.step!.topForward]));
      }
      const prob = new Float32Array(batch.size);
      let loss = 0;
      const parts = await Promise.all(
        p.devices.map(async (d, j) => (d.step ? { prob: await readF32(this.devices[j]!, d.step.prob, p.count[j]!), loss: (await readF32(this.devices[j]!, d.step.lossMean, 1))[0]! } : undefined)),
      );
      parts.forEach((part, j) => {
        if (!part) return;
        prob.set(part.prob, p.start[j]!);
        loss += part.loss;
      });
      return { prob, loss };
    });
  }

  async predict(batch: Batch): Promise<Float32Array> {
    return (await this.evaluate(batch)).prob;
  }

  /** Checks that every bad lookup seen by the fused backward was reported (throws KernelInputError naming it). */
  async checkIndices(): Promise<void> {
    for (const p of this.plans.values()) for (const [j, d] of p.devices.entries()) for (const s of [...d.setBackward, ...(d.comp?.plan.setBackward ?? [])]) await s.checkIndices(this.devices[j]!);
  }

  // ---------------------------------------------------------------- state

  // ---------------------------------------------------------------- state (state.ts)

  /** Parameters gathered from the shards, under the reference's names. */
  async stateDict(): Promise<StateDict> {
    return this.state.stateDict();
  }

  /**
   * Checkpoint tensors in row ranges (src/io streams them in bounded pieces),
   * gathered from / cut into the shards: same names and order as stateDict()
   * then optimizerState().
   */
  checkpointTensors(): TensorRows[] {
    return this.state.checkpointTensors();
  }

  /** The optimizer state of every shard of table t, as each shard holds it (see ShardedState). */
  async shardOptimizerStates(t: number): Promise<Float32Array[]> {
    return this.state.shardOptimizerStates(t);
  }

  /** The MLP parameters of every replica (to check they are identical). */
  async replicaStateDicts(): Promise<StateDict[]> {
    return Promise.all(this.replicas.map((r) => r.dense.stateDict()));
  }

  /** MLP gradients of the last step (summed over the devices), from device `j`. */
  async denseGradients(j = 0): Promise<StateDict> {
    return this.replicas[j]!.dense.gradients();
  }

  validateStateDict(sd: StateDict): void {
    checkTensors(sd, parameterShapes(this.config), "state dict");
  }

  /** Replaces the parameters by `sd`, cut for this plan (checked before anything is written). */
  loadStateDict(sd: StateDict): void {
    this.validateStateDict(sd);
    for (const r of this.replicas) r.dense.load(sd);
    this.state.writeEmbeddings(sd);
  }

  /** As DlrmModel's: the MLPs', then every embedding parameter's in the model's order (tables: ".sum"; MD projections: the dense optimizer's). */
  optimizerStateShapes(): [string, number[]][] {
    return this.state.optimizerStateShapes();
  }

  validateOptimizerState(sd: StateDict): void {
    checkTensors(sd, this.optimizerStateShapes(), "optimizer state");
  }

  async optimizerState(): Promise<StateDict> {
    return this.state.optimizerState();
  }

  loadOptimizerState(sd: StateDict): void {
    this.validateOptimizerState(sd);
    for (const r of this.replicas) r.dense.loadOptimizerState(sd);
    this.state.writeOptimizerState(sd);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) destroyStepPlan(p, this.replicas);
    this.allreduce.destroy();
    for (const a of this.projAllreduces) a.destroy();
    for (const r of this.replicas) {
      r.dense.destroy();
      r.sets.forEach((s) => {
        destroyTableSet(s.tables);
        destroyEmbeddingOptimizerState(s.state);
      });
      r.composite?.emb.destroy();
      r.optim.destroy();
      r.gradFlat.destroy();
      r.lossHistory.destroy();
    }
  }
}
