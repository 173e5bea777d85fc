/**
 * The per-batch-size plan of a sharded step (model.ts): each device's
 * buffers (pooled Px/Pd and their gradients, exchanged R/G, its MLP slice),
 * its lookups, routes and embedding backward dispatches, the QR/MD tables'
 * embedding plan, the two all-to-alls and, under row-wise Adagrad with column
 * shards, the per-row sums and their allreduce. Built once per batch size and
 * rebuilt when a batch's indices outgrow the capacities.
 */
import { createStorage } from "../gpu/buffers.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { type BagBatchBuffers, createBagBatchBuffers } from "../kernels/bag_batch.ts";
import { prepareEmbeddingBagBackward } from "../kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../kernels/embedding_bag_forward.ts";
import { prepareColumnRowwiseBackward } from "../kernels/embedding_rowwise_split.ts";
import { prepareQrMult, prepareRoute, type RouteColumn } from "../kernels/shard.ts";
import type { DlrmConfig } from "../model/config.ts";
import type { DenseStep } from "../model/dense.ts";
import type { EmbeddingPlan } from "../model/embeddings.ts";
import { type Allreduce, AllToAll, createAllreduce, type Message } from "./collectives.ts";
import type { ShardedOptions } from "./model.ts";
import type { ShardingPlan } from "./plan.ts";
import type { Replica } from "./replica.ts";
import { backwardRoute, batchSlices, blockBases, type DeviceLayout, exchangeFloats, forwardRoute, qrMultRoutes, type RowSumLayout, rowSumLayout } from "./routing.ts";

/**
 * The embedding backward of one shard set: `before` runs before the per-row
 * allreduce (all of the fused backward, or the segment reduction and partial
 * row sums of column shards under row-wise Adagrad), `after` once the row sums
 * are reduced (those shards' update; empty for the fused path).
 */
export interface SetBackward {
  before: Dispatch[];
  after: Dispatch[];
  setNumIndices(device: GPUDevice, n: number): void;
  checkIndices(device: GPUDevice): Promise<void>;
  destroy(): void;
}

/** Row-wise Adagrad over column shards: the per-row sums and their allreduce (undefined when no table is column-wise). */
export interface RowSums {
  layout: RowSumLayout;
  /** Per device (undefined on devices holding no column shard). */
  buffers: (GPUBuffer | undefined)[];
  allreduce: Allreduce;
}

export interface DevicePlan {
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

export interface StepPlan {
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


/** What buildStepPlan reads of the model. */
export interface StepPlanModel {
  config: DlrmConfig;
  plan: ShardingPlan;
  replicas: readonly Replica[];
  layouts: DeviceLayout[];
  /** Row-wise Adagrad (column shards then split their backward around the per-row allreduce). */
  rowwise: boolean;
  /** QR "mult" tables split by sub-table rows. */
  qrMult: number[];
  options: ShardedOptions;
}

/** Buffers, dispatches and collectives of one step over B samples, with these index capacities [device][slot] and row-sum slots per table. */
export function buildStepPlan(m: StepPlanModel, B: number, capacities: number[][], rowSumCaps: number[]): StepPlan {
  const { count, start } = batchSlices(m.plan, B);
  const c = m.config;
  const n = m.config.tableRows.length;
  const d = c.embeddingDim;
  const N = m.replicas.length;
  const wd = m.layouts[0]!.wd;
  // Row-wise Adagrad over column shards: one per-row vector on every device holding column shards, allreduced among them.
  let rowSums: RowSums | undefined;
  const rsLayout = m.rowwise ? rowSumLayout(m.plan, c.tableRows, rowSumCaps) : undefined;
  if (rsLayout && rsLayout.devices.length) {
    const buffers = m.replicas.map((rep, j) => (rsLayout.devices.includes(j) ? createStorage(rep.device, Math.max(1, rsLayout.floats) * 4, `dev${j}-row-sums[B=${B}]`) : undefined));
    const allreduce = createAllreduce(rsLayout.devices.map((j) => m.replicas[j]!.device), rsLayout.devices.map((j) => buffers[j]!), rsLayout.floats, {
      label: "row-sum-allreduce",
      schedule: m.options.allreduce,
      link: m.options.allreduceLink,
    });
    rowSums = { layout: rsLayout, buffers, allreduce };
  }
  const devices = m.replicas.map((rep, j): DevicePlan => {
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
    const ex = exchangeFloats(m.layouts, bj);
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
    const mult = new Set(m.qrMult);
    const rf = prepareRoute(device, { input: r, output: emb, batch: bj, columns: forwardRoute(m.plan, m.layouts, j, bj, d, mult), label: `dev${j}-route-forward` });
    const rb = prepareRoute(device, { input: gradEmb, output: g, batch: bj, columns: backwardRoute(m.plan, m.layouts, j, bj, d, mult), label: `dev${j}-route-backward` });
    buffers.push(...rf.buffers, ...rb.buffers);
    // QR "mult" tables split by sub-table rows: pool_q and pool_r summed separately into C, multiplied into E here.
    const routeForward = [...rf.dispatches];
    const routeBackward = [...rb.dispatches];
    if (m.qrMult.length && bj > 0) {
      const mr = qrMultRoutes(m.plan, m.layouts, j, bj, d, m.qrMult);
      const cBuf = buf(bj * mr.width, "C(qr-mult)");
      const gcBuf = buf(bj * mr.width, "dC(qr-mult)");
      const rfc = prepareRoute(device, { input: r, output: cBuf, batch: bj, columns: mr.forward, label: `dev${j}-route-qr-mult` });
      const rbc = prepareRoute(device, { input: gcBuf, output: g, batch: bj, columns: mr.backward, label: `dev${j}-route-qr-mult-back` });
      const qm = prepareQrMult(device, { c: cBuf, e: emb, gradE: gradEmb, gradC: gcBuf, batch: bj, d, tables: m.qrMult, numTables: n, label: `dev${j}-qr-mult` });
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
    const bases = blockBases(m.layouts, bj);
    for (let i = 0; i < N; i++) {
      const wx = m.layouts[i]!.wx;
      fwd.push({ from: i, to: j, bytes: bj * wx * 4, src: { buffer: devices[i]!.px, offset: start[j]! * wx * 4 }, dst: { buffer: devices[j]!.r, offset: bases[i]! * 4 } });
      bwd.push({ from: j, to: i, bytes: bj * wx * 4, src: { buffer: devices[j]!.g, offset: bases[i]! * 4 }, dst: { buffer: devices[i]!.gpx, offset: start[j]! * wx * 4 } });
      // Data-parallel tables: device j's slice of their gradient goes to every replica.
      bwd.push({ from: j, to: i, bytes: bj * wd * 4, src: { buffer: devices[j]!.g, offset: bases[N]! * 4 }, dst: { buffer: devices[i]!.gpd, offset: start[j]! * wd * 4 } });
    }
    fwd.push({ from: j, to: j, bytes: bj * wd * 4, src: { buffer: devices[j]!.pd, offset: start[j]! * wd * 4 }, dst: { buffer: devices[j]!.r, offset: bases[N]! * 4 } });
  }
  const devs = m.replicas.map((r) => r.device);
  const forward = new AllToAll(devs, fwd, { schedule: m.options.schedule, label: "a2a-forward" });
  const backward = new AllToAll(devs, bwd, { schedule: m.options.schedule, label: "a2a-backward" });
  return { batchSize: B, count, start, capacities, devices, forward, backward, rowSums, rowSumCaps };
}

/** Frees everything buildStepPlan made. */
export function destroyStepPlan(p: StepPlan, replicas: readonly Replica[]): void {
  for (const d of p.devices) {
    for (const b of d.buffers) b.destroy();
    for (const b of d.bags) {
      b.offsets.destroy();
      b.indices.destroy();
    }
    for (const s of d.setBackward) s.destroy();
    if (d.comp) replicas[p.devices.indexOf(d)]!.composite!.emb.destroyPlan(d.comp.plan);
  }
  p.forward.destroy();
  p.backward.destroy();
  if (p.rowSums) {
    p.rowSums.allreduce.destroy();
    for (const b of p.rowSums.buffers) b?.destroy();
  }
}

