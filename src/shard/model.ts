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
 * checkpoint moves between any N and any plan.
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
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { ConfigError, DeviceLostError, KernelInputError } from "../gpu/errors.ts";
import type { Batch } from "../data/batch.ts";
import { type BagBatchBuffers, createBagBatchBuffers, validateBags, writeBagBatch } from "../kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../kernels/embedding_bag_backward.ts";
import { prepareColumnRowwiseBackward } from "../kernels/embedding_rowwise_split.ts";
import { prepareEmbeddingBagForward } from "../kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState, destroyEmbeddingOptimizerState, stateValuesPerRow } from "../kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet, readTable, readTableRows, writeTable, writeTableRows } from "../kernels/embedding_tables.ts";
import type { EmbeddingOptimizerState, EmbeddingTableSet } from "../kernels/embedding_types.ts";
import { createOptimizerParams, writeOptimizerParams } from "../kernels/optimizer_params.ts";
import { prepareQrMult, prepareRoute } from "../kernels/shard.ts";
import type { DlrmConfig } from "../model/config.ts";
import { DENSE_OPT, DenseMlp, type DenseStep } from "../model/dense.ts";
import { embeddingParameters, type EmbeddingLayout } from "../model/embedding_layout.ts";
import { type EmbeddingPlan, ModelEmbeddings } from "../model/embeddings.ts";
import { denseOptimizerStateSizes } from "../kernels/dense_optimizer.ts";
import type { RouteColumn } from "../kernels/shard.ts";
import { checkTensors } from "../model/dlrm.ts";
import { flushWrites, layoutOf, parameterShapes, type StateDict, type TensorRows } from "../model/params.ts";
import { learningRateAt } from "../model/schedule.ts";
import { type Allreduce, type AllreduceSchedule, AllToAll, type AllToAllSchedule, type CollectiveStats, createAllreduce, type Message } from "./collectives.ts";
import { type QrSubTables, type ShardingPlan, validatePlan } from "./plan.ts";
import { backwardRoute, batchSlices, blockBases, type DeviceLayout, deviceLayouts, exchangeFloats, forwardRoute, qrMultRoutes, type RowSumLayout, rowSumLayout, type ShardSet, setBags } from "./routing.ts";

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

/** The QR/MD tables a device holds whole, in table order, and the ModelEmbeddings that runs them. */
interface CompositeTables {
  set: ShardSet;
  tables: number[];
  emb: ModelEmbeddings;
}

/** Renames the emb_l.<t>.* (and optim.emb_l.<t>.*) entries of `sd` by `map` (from -> to); others are left out. */
function renameTables(sd: StateDict, map: ReadonlyMap<number, number>): StateDict {
  const out: StateDict = {};
  for (const [name, v] of Object.entries(sd)) {
    const m = /^(optim\.)?emb_l\.(\d+)\.(.*)$/.exec(name);
    if (m && map.has(Number(m[2]))) out[`${m[1] ?? ""}emb_l.${map.get(Number(m[2]))}.${m[3]}`] = v;
  }
  return out;
}

/** True for a composite tensor whose first dimension is the table's rows (the narrow table and its optimizer state, not the projection). */
function isRowTensor(name: string): boolean {
  return /emb_l\.\d+\.(embs\.weight|weight_[qr])(\.sum)?$/.test(name);
}

/**
 * The composite set's tables of `sd` under the set's local names (emb_l.<k>.*), row shards (MD tables split
 * row-wise) cut to their rows; the projection (and its optimizer state) whole.
 */
function compositeLocal(sd: StateDict, set: ShardSet): StateDict {
  const out: StateDict = {};
  set.shards.forEach((sh, k) => {
    for (const [name, v] of Object.entries(renameTables(sd, new Map([[sh.table, k]])))) {
      if (sh.kind !== "row" || !isRowTensor(name)) {
        out[name] = v;
        continue;
      }
      const per = v.data.length / v.shape[0]!;
      out[name] = { shape: [sh.rowEnd - sh.rowStart, ...v.shape.slice(1)], data: v.data.slice(sh.rowStart * per, sh.rowEnd * per) };
    }
  });
  return out;
}

/** Table index of an emb_l.<t>.* (or optim.emb_l.<t>.*) name. */
function tableOfName(name: string): number {
  return Number(/emb_l\.(\d+)\./.exec(name)![1]);
}

/** The QR sub-table a name addresses (emb_l.<t>.weight_q / weight_r), else undefined. */
function partOfName(name: string): "q" | "r" | undefined {
  const m = /emb_l\.\d+\.weight_([qr])\b/.exec(name);
  return m ? (m[1] as "q" | "r") : undefined;
}

interface Replica {
  ctx: GpuContext;
  device: GPUDevice;
  dense: DenseMlp;
  optim: GPUBuffer;
  layout: DeviceLayout;
  /** Plain shard sets (EmbeddingTableSets of their own). */
  sets: ReplicaSet[];
  /** QR/MD tables held whole by this device. */
  composite: CompositeTables | undefined;
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

/**
 * The embedding backward of one shard set: `before` runs before the per-row
 * allreduce (all of the fused backward, or the segment reduction and partial
 * row sums of column shards under row-wise Adagrad), `after` once the row sums
 * are reduced (those shards' update; empty for the fused path).
 */
interface SetBackward {
  before: Dispatch[];
  after: Dispatch[];
  setNumIndices(device: GPUDevice, n: number): void;
  checkIndices(device: GPUDevice): Promise<void>;
  destroy(): void;
}

/** Row-wise Adagrad over column shards: the per-row sums and their allreduce (undefined when no table is column-wise). */
interface RowSums {
  layout: RowSumLayout;
  /** Per device (undefined on devices holding no column shard). */
  buffers: (GPUBuffer | undefined)[];
  allreduce: Allreduce;
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
  setBackward: SetBackward[];
  /** QR/MD tables: their embedding plan and the routes between its output and Px. */
  comp: { plan: EmbeddingPlan; toPx: Dispatch[]; fromPx: Dispatch[] } | undefined;
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
  /** Row slots per column-wise table (row-wise Adagrad), capacity of the plan. */
  rowSums: RowSums | undefined;
  rowSumCaps: number[];
}

/** What one step did and how long its parts took. */
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
  /** The link "auto" models (latency s, bandwidth B/s per direction); default PCIe 4.0 x16. */
  allreduceLink?: { alpha: number; bandwidth: number };
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
  private readonly embKind: "sgd" | "adagrad" | "rowwise-adagrad";
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
    this.writeEmbeddings(initial);
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
    if (p) this.destroyPlan(p);
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

  private buildPlan(B: number, capacities: number[][], rowSumCaps: number[]): StepPlan {
    const { count, start } = batchSlices(this.plan, B);
    const c = this.config;
    const n = this.numTables;
    const d = c.embeddingDim;
    const N = this.replicas.length;
    const wd = this.layouts[0]!.wd;
    // Row-wise Adagrad over column shards: one per-row vector on every device holding column shards, allreduced among them.
    let rowSums: RowSums | undefined;
    const rsLayout = this.embKind === "rowwise-adagrad" ? rowSumLayout(this.plan, c.tableRows, rowSumCaps) : undefined;
    if (rsLayout && rsLayout.devices.length) {
      const buffers = this.replicas.map((rep, j) => (rsLayout.devices.includes(j) ? createStorage(rep.device, Math.max(1, rsLayout.floats) * 4, `dev${j}-row-sums[B=${B}]`) : undefined));
      const allreduce = createAllreduce(rsLayout.devices.map((j) => this.replicas[j]!.device), rsLayout.devices.map((j) => buffers[j]!), rsLayout.floats, {
        label: "row-sum-allreduce",
        schedule: this.shardOptions.allreduce,
        link: this.shardOptions.allreduceLink,
      });
      rowSums = { layout: rsLayout, buffers, allreduce };
    }
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
      const setBackward = rep.sets.map((s, k): SetBackward => {
        const common = {
          tables: s.tables,
          state: s.state,
          bags: bags[k]!,
          gradOut: s.set.region === "x" ? gpx : gpd,
          gradStride: s.set.region === "x" ? l.wx : l.wd,
          gradOffset: s.set.offset,
          maxIndices: capacities[j]![k]!,
          optim: rep.optim,
        };
        if (s.set.rowwiseColumns) {
          const split = prepareColumnRowwiseBackward(device, {
            ...common,
            fullDim: d,
            slots: s.set.shards.map((sh) => rowSums!.layout.slots.get(sh.table)!),
            rowSum: rowSums!.buffers[j]!,
            label: `dev${j}-column-rowwise-backward-set${k}`,
          });
          return { ...split, before: split.reduce, after: split.update };
        }
        const fused = prepareEmbeddingBagBackward(device, { ...common, pooling: "sum", label: `dev${j}-embedding-backward-set${k}` });
        return { ...fused, before: fused.dispatches, after: [] };
      });
      const mult = new Set(this.qrMult);
      const rf = prepareRoute(device, { input: r, output: emb, batch: bj, columns: forwardRoute(this.plan, this.layouts, j, bj, d, mult), label: `dev${j}-route-forward` });
      const rb = prepareRoute(device, { input: gradEmb, output: g, batch: bj, columns: backwardRoute(this.plan, this.layouts, j, bj, d, mult), label: `dev${j}-route-backward` });
      buffers.push(...rf.buffers, ...rb.buffers);
      // QR "mult" tables split by sub-table rows: pool_q and pool_r summed separately into C, multiplied into E here.
      const routeForward = [...rf.dispatches];
      const routeBackward = [...rb.dispatches];
      if (this.qrMult.length && bj > 0) {
        const mr = qrMultRoutes(this.plan, this.layouts, j, bj, d, this.qrMult);
        const cBuf = buf(bj * mr.width, "C(qr-mult)");
        const gcBuf = buf(bj * mr.width, "dC(qr-mult)");
        const rfc = prepareRoute(device, { input: r, output: cBuf, batch: bj, columns: mr.forward, label: `dev${j}-route-qr-mult` });
        const rbc = prepareRoute(device, { input: gcBuf, output: g, batch: bj, columns: mr.backward, label: `dev${j}-route-qr-mult-back` });
        const qm = prepareQrMult(device, { c: cBuf, e: emb, gradE: gradEmb, gradC: gcBuf, batch: bj, d, tables: this.qrMult, numTables: n, label: `dev${j}-qr-mult` });
        buffers.push(...rfc.buffers, ...rbc.buffers, ...qm.buffers);
        routeForward.push(...rfc.dispatches, ...qm.forward);
        routeBackward.push(...qm.backward, ...rbc.dispatches);
      }
      let comp: DevicePlan["comp"];
      if (rep.composite) {
        // QR/MD tables: their own embedding plan over the global batch -> Ec [B, nc, d], copied into Px's columns (and back).
        const nc = rep.composite.tables.length;
        const ec = buf(B * nc * d, "Ec");
        const gec = buf(B * nc * d, "dEc");
        const cap = capacities[j]![rep.sets.length]!;
        const ep = rep.composite.emb.createPlan(B, rep.composite.emb.sets.map(() => cap), ec, gec, rep.optim);
        const base = rep.composite.set.offset;
        const to: RouteColumn[] = [];
        const from: RouteColumn[] = [];
        for (let c = 0; c < nc; c++) {
          for (let k = 0; k < d; k++) {
            to.push({ offset: base + c * d + k, stride: l.wx, sources: [{ offset: c * d + k, stride: nc * d }] });
            from.push({ offset: c * d + k, stride: nc * d, sources: [{ offset: base + c * d + k, stride: l.wx }] });
          }
        }
        const rt = prepareRoute(device, { input: ec, output: px, batch: B, columns: to, label: `dev${j}-route-composite` });
        const rfr = prepareRoute(device, { input: gpx, output: gec, batch: B, columns: from, label: `dev${j}-route-composite-back` });
        buffers.push(...rt.buffers, ...rfr.buffers);
        lookups.push(...ep.forward, ...rt.dispatches);
        comp = { plan: ep, toPx: rt.dispatches, fromPx: rfr.dispatches };
      }
      return { bags, px, pd, gpx, gpd, r, g, dense, labels, emb, gradEmb, step, lookups, routeForward, routeBackward, setBackward, comp, buffers };
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
    return { batchSize: B, count, start, capacities, devices, forward, backward, rowSums, rowSumCaps };
  }

  private destroyPlan(p: StepPlan): void {
    for (const d of p.devices) {
      for (const b of d.buffers) b.destroy();
      for (const b of d.bags) {
        b.offsets.destroy();
        b.indices.destroy();
      }
      for (const s of d.setBackward) s.destroy();
      if (d.comp) this.replicas[p.devices.indexOf(d)]!.composite!.emb.destroyPlan(d.comp.plan);
    }
    p.forward.destroy();
    p.backward.destroy();
    if (p.rowSums) {
      p.rowSums.allreduce.destroy();
      for (const b of p.rowSums.buffers) b?.destroy();
    }
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

  /** Every shard of table t: (device, set, index in set, shard). */
  private shardsOf(t: number, part?: "q" | "r"): ShardRef[] {
    const out: ShardRef[] = [];
    for (const rep of this.replicas) {
      for (const rs of rep.sets) {
        rs.set.shards.forEach((sh, k) => {
          if (sh.table === t && sh.part === part) out.push({ rep, rs, k, colStart: sh.colStart, colEnd: sh.colEnd, rowStart: sh.rowStart, rowEnd: sh.rowEnd, kind: sh.kind, device: rep.layout.device });
        });
      }
    }
    return out;
  }

  /** Writes full tables (rows x perRow floats, row-major) into the shards; `state` selects the optimizer-state tables. */
  private scatterTable(t: number, data: Float32Array, perRow: number, state: boolean, part?: "q" | "r"): void {
    const d = this.config.embeddingDim;
    for (const s of this.shardsOf(t, part)) {
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

  private async gatherTable(t: number, perRow: number, state: boolean, part?: "q" | "r"): Promise<Float32Array> {
    const d = this.config.embeddingDim;
    const rowsT = this.tableRows(t, part);
    const out = new Float32Array(rowsT * perRow);
    for (const s of this.shardsOf(t, part)) {
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

  /** Rows of table t, or of its q / r sub-table. */
  private tableRows(t: number, part?: "q" | "r"): number {
    return part ? this.fullLayout.tables[t]!.places[part === "q" ? 0 : 1]!.rows : this.config.tableRows[t]!;
  }

  private stateAsTables(rs: ReplicaSet): EmbeddingTableSet {
    return { ...rs.tables, dim: stateValuesPerRow(this.embKind, rs.tables.dim), chunks: rs.tables.chunks.map((c, i) => ({ ...c, buffer: rs.state.chunks[i]! })) };
  }

  private writeEmbeddings(sd: StateDict): void {
    for (const p of embeddingParameters(this.fullLayout)) {
      const t = tableOfName(p.name);
      if (!this.composite.has(t)) this.scatterTable(t, sd[p.name]!.data, p.shape[1]!, false, partOfName(p.name));
    }
    for (const r of this.replicas) if (r.composite) r.composite.emb.load(compositeLocal(sd, r.composite.set));
  }

  /** The QR/MD tables' parameters (or optimizer state) from their owners, under the whole model's names. */
  private async compositeState(optimizer: boolean): Promise<StateDict> {
    let out: StateDict = {};
    for (const r of this.replicas) {
      if (!r.composite) continue;
      const local = optimizer ? await r.composite.emb.optimizerState() : await r.composite.emb.stateDict();
      const named = renameTables(local, new Map(r.composite.tables.map((t, k) => [k, t] as const)));
      for (const [name, v] of Object.entries(named)) {
        const sh = r.composite.set.shards[r.composite.tables.indexOf(tableOfName(name))]!;
        if (sh.kind !== "row" || !isRowTensor(name)) {
          out[name] ??= v; // whole tables, and the projection copies of a split MD table (identical)
          continue;
        }
        // A row shard of an MD table: its rows of the narrow table (or of their optimizer state).
        const rows = this.config.tableRows[sh.table]!;
        const per = v.data.length / (sh.rowEnd - sh.rowStart);
        out[name] ??= { shape: [rows, ...v.shape.slice(1)], data: new Float32Array(rows * per) };
        out[name]!.data.set(v.data, sh.rowStart * per);
      }
    }
    return out;
  }

  /** Parameters gathered from the shards, under the reference's names. */
  async stateDict(): Promise<StateDict> {
    return this.guard(async () => {
      const sd = await this.replicas[0]!.dense.stateDict();
      const comp = await this.compositeState(false);
      // In the whole model's parameter order.
      for (const p of embeddingParameters(this.fullLayout)) {
        const t = Number(p.name.split(".")[1]);
        sd[p.name] = this.composite.has(t) ? comp[p.name]! : { shape: p.shape, data: await this.gatherTable(t, p.shape[1]!, false, partOfName(p.name)) };
      }
      return sd;
    });
  }

  /**
   * Checkpoint tensors in row ranges (src/io streams them in bounded pieces):
   * an MLP tensor is read from replica 0 and written to every replica; a
   * table's rows are gathered from / cut into the shards that hold them, so a
   * checkpoint streams between any N and any plan. Same names and order as
   * stateDict() then optimizerState().
   */
  checkpointTensors(): TensorRows[] {
    const d = this.config.embeddingDim;
    const k = stateValuesPerRow(this.embKind, d);
    const replicated = (what: "params" | "optimizer"): TensorRows[] => {
      const per = this.replicas.map((r) => r.dense.tensorRows(what));
      return per[0]!.map((t0, i) => ({
        name: t0.name,
        shape: t0.shape,
        read: (start, count) => this.guard(() => t0.read(start, count)),
        write: (start, data) => per.forEach((p) => p[i]!.write(start, data)),
        flush: () => this.flushAll(),
      }));
    };
    const table = (name: string, shape: number[], state: boolean): TensorRows => {
      const t = tableOfName(name);
      const part = partOfName(name);
      const perRow = shape[1] ?? 1;
      return {
        name,
        shape,
        read: (start, count) => this.guard(() => this.gatherRows(t, perRow, state, start, count, part)),
        write: (start, data) => this.scatterRows(t, perRow, state, start, data, part),
        flush: () => this.flushAll(),
      };
    };
    // QR/MD tables: their owner's ModelEmbeddings, under the whole model's names.
    const composite = new Map<string, TensorRows>();
    for (const r of this.replicas) {
      if (!r.composite) continue;
      const tables = r.composite.tables;
      for (const t of [...r.composite.emb.tensorRows("params"), ...r.composite.emb.tensorRows("optimizer")]) {
        const m = /^(optim\.)?emb_l\.(\d+)\.(.*)$/.exec(t.name)!;
        const k = Number(m[2]);
        const name = `${m[1] ?? ""}emb_l.${tables[k]!}.${m[3]}`;
        const sh = r.composite.set.shards[k]!;
        if (sh.kind !== "row") {
          composite.set(name, { ...t, name, read: (start, count) => this.guard(() => t.read(start, count)) });
          continue;
        }
        // An MD table split row-wise: rows gathered from / cut into the shards; its projection copies read from the first, written to all.
        const pieces = (composite.get(name) as (TensorRows & { pieces?: { t: TensorRows; a: number; b: number; rows: boolean }[] }) | undefined)?.pieces ?? [];
        pieces.push({ t, a: sh.rowStart, b: sh.rowEnd, rows: isRowTensor(name) });
        const full = pieces[0]!.rows ? [this.config.tableRows[sh.table]!, ...t.shape.slice(1)] : t.shape;
        const per = t.shape.slice(1).reduce((x, y) => x * y, 1);
        composite.set(name, Object.assign({
          name,
          shape: full,
          read: (start: number, count: number) => this.guard(async () => {
            if (!pieces[0]!.rows) return pieces[0]!.t.read(start, count);
            const out = new Float32Array(count * per);
            for (const p of pieces) {
              const a = Math.max(start, p.a);
              const b = Math.min(start + count, p.b);
              if (a < b) out.set(await p.t.read(a - p.a, b - a), (a - start) * per);
            }
            return out;
          }),
          write: (start: number, data: Float32Array) => {
            if (!pieces[0]!.rows) return pieces.forEach((p) => p.t.write(start, data));
            const count = data.length / per;
            for (const p of pieces) {
              const a = Math.max(start, p.a);
              const b = Math.min(start + count, p.b);
              if (a < b) p.t.write(a - p.a, data.subarray((a - start) * per, (b - start) * per));
            }
          },
          flush: () => this.flushAll(),
        }, { pieces }));
      }
    }
    const out = replicated("params");
    for (const p of embeddingParameters(this.fullLayout)) {
      out.push(this.composite.has(tableOfName(p.name)) ? composite.get(p.name)! : table(p.name, p.shape, false));
    }
    out.push(...replicated("optimizer"));
    for (const [name, shape] of this.optimizerStateShapes()) {
      if (!name.startsWith("optim.emb_l.")) continue;
      out.push(this.composite.has(tableOfName(name)) ? composite.get(name)! : table(name, shape, true));
    }
    return out;
  }

  private async flushAll(): Promise<void> {
    await Promise.all(this.replicas.map((r) => flushWrites(r.device)));
  }

  /** Rows [start, start + count) of table t (perRow floats each) from the shards that hold them. */
  private async gatherRows(t: number, perRow: number, state: boolean, start: number, count: number, part?: "q" | "r"): Promise<Float32Array> {
    const d = this.config.embeddingDim;
    const out = new Float32Array(count * perRow);
    for (const s of this.shardsOf(t, part)) {
      if (s.kind === "data" && s.device !== this.plan.tables[t]!.shards[0]!.device) continue;
      const a = Math.max(start, s.rowStart);
      const b = Math.min(start + count, s.rowEnd);
      if (a >= b) continue;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      const col = perRow === d ? s.colStart : 0;
      const part = await readTableRows(s.rep.device, state ? this.stateAsTables(s.rs) : s.rs.tables, s.k, a - s.rowStart, b - a);
      for (let r = 0; r < b - a; r++) out.set(part.subarray(r * w, (r + 1) * w), (a - start + r) * perRow + col);
    }
    return out;
  }

  /** Writes rows from `start` on of table t (perRow floats each) into every shard that holds them. */
  private scatterRows(t: number, perRow: number, state: boolean, start: number, data: Float32Array, part?: "q" | "r"): void {
    const d = this.config.embeddingDim;
    const count = data.length / perRow;
    for (const s of this.shardsOf(t, part)) {
      const a = Math.max(start, s.rowStart);
      const b = Math.min(start + count, s.rowEnd);
      if (a >= b) continue;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      const col = perRow === d ? s.colStart : 0;
      const part = new Float32Array((b - a) * w);
      for (let r = 0; r < b - a; r++) {
        const src = (a - start + r) * perRow + col;
        part.set(data.subarray(src, src + w), r * w);
      }
      writeTableRows(s.rep.device, state ? this.stateAsTables(s.rs) : s.rs.tables, s.k, a - s.rowStart, part);
    }
  }

  /**
   * The optimizer state of every shard of table t, as each shard holds it
   * (rows x state values per row): for a column-wise table under row-wise
   * Adagrad every shard keeps the whole row's accumulator, and the copies must
   * agree bit for bit (tests).
   */
  async shardOptimizerStates(t: number): Promise<Float32Array[]> {
    return Promise.all(this.shardsOf(t).map((s) => readTable(s.rep.device, this.stateAsTables(s.rs), s.k)));
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

  /** As DlrmModel's: the MLPs', then every embedding parameter's in the model's order (tables: ".sum"; MD projections: the dense optimizer's). */
  optimizerStateShapes(): [string, number[]][] {
    const out = this.replicas[0]!.dense.optimizerStateShapes();
    for (const p of embeddingParameters(this.fullLayout)) {
      if (p.place.kind === "table") {
        const k = stateValuesPerRow(this.embKind, p.shape[1]!);
        if (k) out.push([`optim.${p.name}.sum`, k === 1 ? [p.shape[0]!] : p.shape]);
      } else {
        denseOptimizerStateSizes(DENSE_OPT[this.config.optimizer], p.shape[0]! * p.shape[1]!).forEach((_, i) => out.push([`optim.${p.name}.${i}`, p.shape]));
      }
    }
    return out;
  }

  validateOptimizerState(sd: StateDict): void {
    checkTensors(sd, this.optimizerStateShapes(), "optimizer state");
  }

  async optimizerState(): Promise<StateDict> {
    return this.guard(async () => {
      const sd = await this.replicas[0]!.dense.optimizerState();
      const comp = await this.compositeState(true);
      for (const [name, shape] of this.optimizerStateShapes()) {
        if (!name.startsWith("optim.emb_l.")) continue;
        const t = tableOfName(name);
        sd[name] = this.composite.has(t) ? comp[name]! : { shape, data: await this.gatherTable(t, shape[1] ?? 1, true, partOfName(name)) };
      }
      return sd;
    });
  }

  loadOptimizerState(sd: StateDict): void {
    this.validateOptimizerState(sd);
    for (const r of this.replicas) r.dense.loadOptimizerState(sd);
    for (const [name, shape] of this.optimizerStateShapes()) {
      if (!name.startsWith("optim.emb_l.")) continue;
      const t = tableOfName(name);
      if (!this.composite.has(t)) this.scatterTable(t, sd[name]!.data, shape[1] ?? 1, true, partOfName(name));
    }
    for (const r of this.replicas) if (r.composite) r.composite.emb.loadOptimizerState(compositeLocal(sd, r.composite.set));
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const p of this.plans.values()) this.destroyPlan(p);
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

