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
 * checkpoint moves between any N and any plan. QR/MD embeddings are not
 * sharded (ConfigError).
 */
import { createStorage, readF32, writeBuffer } from "../gpu/buffers.ts";
import type { GpuContext } from "../gpu/context.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { ConfigError, DeviceLostError, KernelInputError } from "../gpu/errors.ts";
import type { Batch } from "../data/batch.ts";
import { type BagBatchBuffers, createBagBatchBuffers, validateBags, writeBagBatch } from "../kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward, type PreparedEmbeddingBackward } from "../kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState, destroyEmbeddingOptimizerState, stateValuesPerRow } from "../kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet, readTable, writeTable } from "../kernels/embedding_tables.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "../kernels/embedding_types.ts";
import { createOptimizerParams, writeOptimizerParams } from "../kernels/optimizer_params.ts";
import { prepareRoute } from "../kernels/shard.ts";
import type { DlrmConfig } from "../model/config.ts";
import { DenseMlp, type DenseStep } from "../model/dense.ts";
import { checkTensors } from "../model/dlrm.ts";
import { parameterShapes, type StateDict } from "../model/params.ts";
import { learningRateAt } from "../model/schedule.ts";
import { AllToAll, type AllToAllSchedule, type CollectiveStats, type Message, RingAllreduce } from "./collectives.ts";
import { type ShardingPlan, validatePlan } from "./plan.ts";
import { backwardRoute, batchSlices, blockBases, checkPlanOptimizer, type DeviceLayout, deviceLayouts, exchangeFloats, forwardRoute, type ShardSet, setBags } from "./routing.ts";

const EMB_OPT = { sgd: "sgd", adagrad: "adagrad", rwsadagrad: "rowwise-adagrad" } as const;
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

interface ReplicaSet {
  set: ShardSet;
  tables: EmbeddingTableSet;
  state: EmbeddingOptimizerState;
}

interface Replica {
  ctx: GpuContext;
  device: GPUDevice;
  dense: DenseMlp;
  optim: GPUBuffer;
  layout: DeviceLayout;
  sets: ReplicaSet[];
  gradFlat: GPUBuffer;
  lossHistory: GPUBuffer;
  /** The dense optimizer on every MLP parameter (same on every replica). */
  update: Dispatch[];
}

interface ShardRef {
  rep: Replica;
  rs: ReplicaSet;
  /** Index of the shard in its set. */
  k: number;
  colStart: number;
  colEnd: number;
  rowStart: number;
  rowEnd: number;
  kind: string;
  device: number;
}

interface DevicePlan {
  bags: BagBatchBuffers[];
  px: GPUBuffer;
  pd: GPUBuffer;
  gpx: GPUBuffer;
  gpd: GPUBuffer;
  r: GPUBuffer;
  g: GPUBuffer;
  dense: GPUBuffer;
  labels: GPUBuffer;
  emb: GPUBuffer;
  gradEmb: GPUBuffer;
  step: DenseStep | undefined;
  lookups: Dispatch[];
  routeForward: Dispatch[];
  routeBackward: Dispatch[];
  setBackward: PreparedEmbeddingBackward[];
  buffers: GPUBuffer[];
}

interface StepPlan {
  batchSize: number;
  count: number[];
  start: number[];
  capacities: number[][];
  devices: DevicePlan[];
  forward: AllToAll;
  backward: AllToAll;
}

/** What one step did and how long its parts took. */
export interface StepProfile {
  step: number;
  /** "overlapped": the normal schedule; "serial": every phase waited for (phase times are GPU + host). */
  mode: "overlapped" | "serial";
  totalMs: number;
  /** serial mode: wall time of each phase (all devices), in step order. */
  phases: Record<string, number>;
  collectives: { forward: CollectiveStats; backward: CollectiveStats; allreduce: CollectiveStats };
  /** Host-staged bytes per device (sent) in this step, all collectives. */
  bytesSent: number[];
  /** What ran while the host-staged transfers were in flight (overlapped mode). */
  overlapped: string[];
}

export interface ShardedOptions {
  schedule?: AllToAllSchedule;
  /**
   * Deliberate errors, for the tests that show the equivalence check catches
   * them: "misroute-row" sends one lookup of a row-wise shard to the wrong row
   * every step; "drop-gradient" drops the last device's pooled-gradient block
   * for device 0 in the backward exchange. Never set them in a real run.
   */
  fault?: "misroute-row" | "drop-gradient";
  /** Cap on bytes per embedding buffer (default: each device's binding limit). */
  maxChunkBytes?: number;
}

export class ShardedDlrm {
  readonly replicas: Replica[];
  readonly layouts: DeviceLayout[];
  readonly allreduce: RingAllreduce;
  readonly gradFloats: number;
  /** Optimizer steps taken (drives the learning-rate schedule). */
  step = 0;
  lastProfile: StepProfile | undefined;
  /** The DlrmModel-compatible options object (checkpoints read inferenceOnly). */
  readonly options = { inferenceOnly: false };
  private plans = new Map<number, StepPlan>();
  private lossCount = 0;
  private destroyed = false;
  private readonly embKind: "sgd" | "adagrad" | "rowwise-adagrad";

  constructor(
    readonly contexts: readonly GpuContext[],
    readonly config: DlrmConfig,
    initial: StateDict,
    readonly plan: ShardingPlan,
    readonly shardOptions: ShardedOptions = {},
  ) {
    if (config.qr || config.md) throw new ConfigError("sharded training supports plain embedding tables; QR (--qr-flag) and MD (--md-flag) embeddings run on one device");
    if (plan.devices !== contexts.length) throw new ConfigError(`the plan is for ${plan.devices} devices, ${contexts.length} were given`);
    validatePlan(plan, config.tableRows, config.embeddingDim);
    checkPlanOptimizer(plan, config.optimizer);
    checkTensors(initial, parameterShapes(config), "initial parameters");
    this.embKind = EMB_OPT[config.optimizer];
    this.layouts = deviceLayouts(plan, config.tableRows, config.embeddingDim);
    this.replicas = contexts.map((ctx, i) => {
      const device = ctx.device;
      const layout = this.layouts[i]!;
      const dense = new DenseMlp(device, config, initial, true);
      const sets = layout.sets.map((set, s): ReplicaSet => {
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
        gradFlat: createStorage(device, gradFloats * 4, `dev${i}-mlp-grads`),
        lossHistory: createStorage(device, LOSS_HISTORY * 4, `dev${i}-loss-history`),
      };
    });
    this.gradFloats = this.replicas[0]!.dense.gradientBuffers().reduce((a, g) => a + g.floats, 0);
    this.allreduce = new RingAllreduce(
      this.replicas.map((r) => r.device),
      this.replicas.map((r) => r.gradFlat),
      this.gradFloats,
      { label: "mlp-grad-allreduce" },
    );
    this.writeEmbeddings(initial);
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

  private stepPlan(batch: Batch, bags: { offsets: Uint32Array; indices: Uint32Array; batchSize: number }[][]): StepPlan {
    const B = batch.size;
    let p = this.plans.get(B);
    const need = bags.map((per) => per.map((b) => b.indices.length));
    if (p && need.every((per, i) => per.every((c, s) => p!.devices[i]!.bags[s]!.capacityIndices >= c))) return p;
    const old = p?.capacities;
    if (p) this.destroyPlan(p);
    const capacities = need.map((per, i) => per.map((c, s) => Math.max(c, old ? 2 * old[i]![s]! : B * this.replicas[i]!.sets[s]!.set.shards.length)));
    p = this.buildPlan(B, capacities);
    this.plans.set(B, p);
    return p;
  }

  private buildPlan(B: number, capacities: number[][]): StepPlan {
    const { count, start } = batchSlices(this.plan, B);
    const c = this.config;
    const n = this.numTables;
    const d = c.embeddingDim;
    const N = this.replicas.length;
    const wd = this.layouts[0]!.wd;
    const devices = this.replicas.map((rep, j): DevicePlan => {
      const device = rep.device;
      const buffers: GPUBuffer[] = [];
      const buf = (floats: number, label: string) => {
        const b = createStorage(device, floats * 4, `dev${j}-${label}[B=${B}]`);
        buffers.push(b);
        return b;
      };
      const l = rep.layout;
      const bj = count[j]!;
      const px = buf(B * l.wx, "Px");
      const pd = buf(B * l.wd, "Pd");
      const gpx = buf(B * l.wx, "dPx");
      const gpd = buf(B * l.wd, "dPd");
      const ex = exchangeFloats(this.layouts, bj);
      const r = buf(ex, "R");
      const g = buf(ex, "G");
      const dense = buf(bj * c.bottomMlp[0]!, "dense");
      const labels = buf(bj, "labels");
      const emb = buf(bj * n * d, "emb");
      const gradEmb = buf(bj * n * d, "emb.grad");
      const step = bj > 0 ? rep.dense.buildStep(bj, { dense, labels, emb, gradEmb, optim: rep.optim, meanOver: B }) : undefined;
      if (step) buffers.push(...step.buffers);
      const bags = rep.sets.map((s, k) => createBagBatchBuffers(device, { batchSize: B, numTables: s.set.shards.length, maxIndices: capacities[j]![k]!, label: `dev${j}-bags-set${k}[B=${B}]` }));
      const lookups = rep.sets.flatMap((s, k) =>
        prepareEmbeddingBagForward(device, { tables: s.tables, bags: bags[k]!, out: s.set.region === "x" ? px : pd, outStride: s.set.region === "x" ? l.wx : l.wd, outOffset: s.set.offset, pooling: "sum" }),
      );
      const setBackward = rep.sets.map((s, k) =>
        prepareEmbeddingBagBackward(device, {
          tables: s.tables,
          state: s.state,
          bags: bags[k]!,
          gradOut: s.set.region === "x" ? gpx : gpd,
          gradStride: s.set.region === "x" ? l.wx : l.wd,
          gradOffset: s.set.offset,
          pooling: "sum",
          maxIndices: capacities[j]![k]!,
          optim: rep.optim,
          label: `dev${j}-embedding-backward-set${k}`,
        }),
      );
      const rf = prepareRoute(device, { input: r, output: emb, batch: bj, columns: forwardRoute(this.plan, this.layouts, j, bj, d), label: `dev${j}-route-forward` });
      const rb = prepareRoute(device, { input: gradEmb, output: g, batch: bj, columns: backwardRoute(this.plan, this.layouts, j, bj, d), label: `dev${j}-route-backward` });
      buffers.push(...rf.buffers, ...rb.buffers);
      return { bags, px, pd, gpx, gpd, r, g, dense, labels, emb, gradEmb, step, lookups, routeForward: rf.dispatches, routeBackward: rb.dispatches, setBackward, buffers };
    });
    const fwd: Message[] = [];
    const bwd: Message[] = [];
    for (let j = 0; j < N; j++) {
      const bj = count[j]!;
      const bases = blockBases(this.layouts, bj);
      for (let i = 0; i < N; i++) {
        const wx = this.layouts[i]!.wx;
        fwd.push({ from: i, to: j, bytes: bj * wx * 4, src: { buffer: devices[i]!.px, offset: start[j]! * wx * 4 }, dst: { buffer: devices[j]!.r, offset: bases[i]! * 4 } });
        bwd.push({ from: j, to: i, bytes: bj * wx * 4, src: { buffer: devices[j]!.g, offset: bases[i]! * 4 }, dst: { buffer: devices[i]!.gpx, offset: start[j]! * wx * 4 } });
        // Data-parallel tables: device j's slice of their gradient goes to every replica.
        bwd.push({ from: j, to: i, bytes: bj * wd * 4, src: { buffer: devices[j]!.g, offset: bases[N]! * 4 }, dst: { buffer: devices[i]!.gpd, offset: start[j]! * wd * 4 } });
      }
      fwd.push({ from: j, to: j, bytes: bj * wd * 4, src: { buffer: devices[j]!.pd, offset: start[j]! * wd * 4 }, dst: { buffer: devices[j]!.r, offset: bases[N]! * 4 } });
    }
    const devs = this.devices;
    const forward = new AllToAll(devs, fwd, { schedule: this.shardOptions.schedule, label: "a2a-forward" });
    const backward = new AllToAll(devs, bwd, { schedule: this.shardOptions.schedule, label: "a2a-backward" });
    return { batchSize: B, count, start, capacities, devices, forward, backward };
  }

  private destroyPlan(p: StepPlan): void {
    for (const d of p.devices) {
      for (const b of d.buffers) b.destroy();
      for (const b of d.bags) {
        b.offsets.destroy();
        b.indices.destroy();
      }
      for (const s of d.setBackward) s.destroy();
    }
    p.forward.destroy();
    p.backward.destroy();
  }

  /** Validates the batch, builds each device's bags and uploads bags, dense features and labels. */
  private upload(batch: Batch): StepPlan {
    if (this.destroyed) throw new Error("ShardedDlrm was destroyed");
    const c = this.config;
    if (batch.numDense !== c.bottomMlp[0]) throw new KernelInputError(`batch has ${batch.numDense} dense features, the model expects ${c.bottomMlp[0]} (--arch-mlp-bot starts with the dense width)`);
    if (batch.numTables !== this.numTables) throw new KernelInputError(`batch has ${batch.numTables} sparse features, the model has ${this.numTables} embedding tables`);
    validateBags({ batchSize: batch.size, offsets: batch.offsets, indices: batch.indices }, c.tableRows);
    const bags = this.replicas.map((rep) => rep.sets.map((s) => setBags(s.set, batch)));
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
    const p = this.stepPlan(batch, bags);
    const m = batch.numDense;
    this.replicas.forEach((rep, j) => {
      const dp = p.devices[j]!;
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
    let tp = t0;
    const phase = async (name: string) => {
      if (!serial) return;
      await this.allDone();
      const now = performance.now();
      phases[name] = now - tp;
      tp = now;
    };
    const p = this.upload(batch);
    const lr = this.learningRate;
    const N = this.replicas.length;
    this.replicas.forEach((rep) => writeOptimizerParams(rep.device, rep.optim, { lr, eps: 1e-10, step: this.step + 1 }));
    const dp = p.devices;
    // 1. lookups over the global batch.
    for (let j = 0; j < N; j++) this.submit(j, "lookups", (enc) => encodeDispatches(enc, dp[j]!.lookups));
    await phase("lookups");
    // 2. forward all-to-all; the bottom MLP forward overlaps it (submitted once round 0's copies are issued).
    const bottomForward = () => {
      for (let j = 0; j < N; j++) if (dp[j]!.step) this.submit(j, "bottom-forward", (enc) => encodeDispatches(enc, dp[j]!.step!.bottomForward));
    };
    if (serial) {
      bottomForward();
      await phase("bottom MLP forward");
    }
    const fwdStats = await p.forward.run({ between: serial ? undefined : bottomForward });
    await phase("all-to-all forward");
    // 3. route, interaction, top MLP, loss, top backward, route back; the loss into the history.
    for (let j = 0; j < N; j++) {
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
    }
    await phase("top MLP forward + backward");
    // 4. backward all-to-all and MLP gradient allreduce, concurrently; the bottom MLP backward overlaps the exchange.
    const bottomBackward = () => {
      for (let j = 0; j < N; j++) {
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
      }
    };
    let bwdStats: CollectiveStats;
    let arStats: CollectiveStats;
    if (serial) {
      bottomBackward();
      await phase("bottom MLP backward");
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
    for (let j = 0; j < N; j++) {
      const d = dp[j]!;
      const rep = this.replicas[j]!;
      this.submit(j, "update", (enc) => {
        let at = 0;
        for (const g of rep.dense.gradientBuffers()) {
          enc.copyBufferToBuffer(rep.gradFlat, at * 4, g.buffer, 0, g.floats * 4);
          at += g.floats;
        }
        encodeDispatches(enc, [...d.setBackward.flatMap((s) => s.dispatches), ...rep.update]);
      });
    }
    await phase("embedding backward + updates");
    this.lossCount++;
    this.step++;
    const bytesSent = new Array<number>(N).fill(0);
    for (const s of [fwdStats, bwdStats, arStats]) for (const r of s.rounds) r.sent.forEach((b, i) => (bytesSent[i]! += b));
    this.lastProfile = {
      step: this.step,
      mode: serial ? "serial" : "overlapped",
      totalMs: performance.now() - t0,
      phases,
      collectives: { forward: fwdStats, backward: bwdStats, allreduce: arStats },
      bytesSent,
      overlapped: serial ? [] : ["bottom MLP forward || forward all-to-all", "bottom MLP backward || backward all-to-all", "MLP gradient allreduce || backward all-to-all"],
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
    for (const p of this.plans.values()) for (const [j, d] of p.devices.entries()) for (const s of d.setBackward) await s.checkIndices(this.devices[j]!);
  }

  // ---------------------------------------------------------------- state

  /** Every shard of table t: (device, set, index in set, shard). */
  private shardsOf(t: number): ShardRef[] {
    const out: ShardRef[] = [];
    for (const rep of this.replicas) {
      for (const rs of rep.sets) {
        rs.set.shards.forEach((sh, k) => {
          if (sh.table === t) out.push({ rep, rs, k, colStart: sh.colStart, colEnd: sh.colEnd, rowStart: sh.rowStart, rowEnd: sh.rowEnd, kind: sh.kind, device: rep.layout.device });
        });
      }
    }
    return out;
  }

  /** Writes full tables (rows x perRow floats, row-major) into the shards; `state` selects the optimizer-state tables. */
  private scatterTable(t: number, data: Float32Array, perRow: number, state: boolean): void {
    const d = this.config.embeddingDim;
    for (const s of this.shardsOf(t)) {
      const rows = s.rowEnd - s.rowStart;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      const part = new Float32Array(rows * w);
      for (let r = 0; r < rows; r++) {
        const src = (s.rowStart + r) * perRow + (perRow === d ? s.colStart : 0);
        part.set(data.subarray(src, src + w), r * w);
      }
      const set = state ? this.stateAsTables(s.rs) : s.rs.tables;
      writeTable(s.rep.device, set, s.k, part);
    }
  }

  private async gatherTable(t: number, perRow: number, state: boolean): Promise<Float32Array> {
    const d = this.config.embeddingDim;
    const rowsT = this.config.tableRows[t]!;
    const out = new Float32Array(rowsT * perRow);
    for (const s of this.shardsOf(t)) {
      // A data-parallel table: every replica is the same; read the first.
      if (s.kind === "data" && s.device !== this.plan.tables[t]!.shards[0]!.device) continue;
      const set = state ? this.stateAsTables(s.rs) : s.rs.tables;
      const part = await readTable(s.rep.device, set, s.k);
      const rows = s.rowEnd - s.rowStart;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      for (let r = 0; r < rows; r++) out.set(part.subarray(r * w, (r + 1) * w), (s.rowStart + r) * perRow + (perRow === d ? s.colStart : 0));
    }
    return out;
  }

  private stateAsTables(rs: ReplicaSet): EmbeddingTableSet {
    return { ...rs.tables, dim: stateValuesPerRow(this.embKind, rs.tables.dim), chunks: rs.tables.chunks.map((c, i) => ({ ...c, buffer: rs.state.chunks[i]! })) };
  }

  private writeEmbeddings(sd: StateDict): void {
    this.config.tableRows.forEach((_, t) => this.scatterTable(t, sd[`emb_l.${t}.weight`]!.data, this.config.embeddingDim, false));
  }

  /** Parameters gathered from the shards, under the reference's names. */
  async stateDict(): Promise<StateDict> {
    return this.guard(async () => {
      const sd = await this.replicas[0]!.dense.stateDict();
      for (let t = 0; t < this.numTables; t++) sd[`emb_l.${t}.weight`] = { shape: [this.config.tableRows[t]!, this.config.embeddingDim], data: await this.gatherTable(t, this.config.embeddingDim, false) };
      return sd;
    });
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
    this.writeEmbeddings(sd);
  }

  optimizerStateShapes(): [string, number[]][] {
    const out = this.replicas[0]!.dense.optimizerStateShapes();
    const k = stateValuesPerRow(this.embKind, this.config.embeddingDim);
    if (k) this.config.tableRows.forEach((rows, t) => out.push([`optim.emb_l.${t}.weight.sum`, k === 1 ? [rows] : [rows, this.config.embeddingDim]]));
    return out;
  }

  validateOptimizerState(sd: StateDict): void {
    checkTensors(sd, this.optimizerStateShapes(), "optimizer state");
  }

  async optimizerState(): Promise<StateDict> {
    return this.guard(async () => {
      const sd = await this.replicas[0]!.dense.optimizerState();
      const k = stateValuesPerRow(this.embKind, this.config.embeddingDim);
      if (k) {
        for (let t = 0; t < this.numTables; t++) {
          const rows = this.config.tableRows[t]!;
          sd[`optim.emb_l.${t}.weight.sum`] = { shape: k === 1 ? [rows] : [rows, this.config.embeddingDim], data: await this.gatherTable(t, k, true) };
        }
      }
      return sd;
    });
  }

  loadOptimizerState(sd: StateDict): void {
    this.validateOptimizerState(sd);
    for (const r of this.replicas) r.dense.loadOptimizerState(sd);
    const k = stateValuesPerRow(this.embKind, this.config.embeddingDim);
    if (k) this.config.tableRows.forEach((_, t) => this.scatterTable(t, sd[`optim.emb_l.${t}.weight.sum`]!.data, k, true));
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) this.destroyPlan(p);
    this.allreduce.destroy();
    for (const r of this.replicas) {
      r.dense.destroy();
      r.sets.forEach((s) => {
        destroyTableSet(s.tables);
        destroyEmbeddingOptimizerState(s.state);
      });
      r.optim.destroy();
      r.gradFlat.destroy();
      r.lossHistory.destroy();
    }
  }
}

