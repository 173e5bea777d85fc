/**
 * Where every pooled embedding column lives during a sharded step, and the
 * routes and messages that move it (pure functions of the plan and the batch
 * split; no GPU work here).
 *
 * Device i pools its shards over the WHOLE global batch (B rows):
 *   Px_i [B, Wx_i]  table-, row- and column-wise shards (exchanged);
 *   Pd_i [B, Wd]    data-parallel replicas (every device the same columns).
 * Shards of one width form one EmbeddingTableSet (`sets`, widest first),
 * each set a contiguous column range of its region.
 *
 * Forward all-to-all: device i sends rows [s_j, s_j + B_j) of Px_i (the
 * slice of device j; contiguous bytes) to device j, which receives
 *   R_j = [block 0: B_j x Wx_0][block 1: B_j x Wx_1]...[tail: B_j x Wd]
 * (the tail is its own Pd_j slice, an on-device copy). The forward route
 * builds E_j [B_j, n, d] from R_j: a table-wise column is copied, row-wise
 * partial sums are added in shard order, column-wise pieces are joined, a
 * data-parallel table is read from the local tail.
 *
 * Backward: the backward route spreads dE_j into G_j (R_j's layout; every
 * row-wise partial gets the full gradient, every column piece its columns,
 * the tail the data-parallel tables' gradient); block i of G_j goes back to
 * device i as rows [s_j, s_j + B_j) of dPx_i; the tail goes to EVERY device
 * as rows [s_j, s_j + B_j) of dPd_i (an allgather). Each replica then runs
 * the fused embedding backward over the global batch: the replicas of a
 * data-parallel table get the same update, summed in the same order as on
 * one device (the allreduce of a sparse gradient, done in its pooled form).
 */
import { ConfigError } from "../gpu/errors.ts";
import type { RouteColumn } from "../kernels/shard.ts";
import { type QrSubTables, type ShardingPlan, type ShardKind, splitBatch, validatePlan } from "./plan.ts";

export interface LocalShard {
  table: number;
  kind: ShardKind;
  rowStart: number;
  rowEnd: number;
  colStart: number;
  colEnd: number;
  /** Index of the shard in the table's placement. */
  shard: number;
  /** A row shard of a QR table's sub-table: rows are of that sub-table, lookup i maps to floor(i / c) (q) or i mod c (r). */
  part?: "q" | "r";
  collisions?: number;
}

export interface ShardSet {
  /** Width of every shard in the set. */
  dim: number;
  shards: LocalShard[];
  /** First column of the set in its region. */
  offset: number;
  region: "x" | "d";
  /**
   * QR / MD tables held whole (table-wise) by this device: their pooled and
   * combined d-wide vectors are computed by a ModelEmbeddings of their own
   * (sub-tables, combine, projections) and copied into the set's columns.
   */
  composite?: boolean;
  /**
   * Column shards under row-wise Adagrad: their per-row accumulator needs the
   * squared gradient summed over all d columns, so their backward is split
   * around a per-row allreduce (src/kernels/embedding_rowwise_split.ts). Such
   * shards form sets of their own (never mixed with whole-row shards).
   */
  rowwiseColumns?: boolean;
}

export interface DeviceLayout {
  device: number;
  sets: ShardSet[];
  /** Columns of Px and Pd (multiples of 4 when every width is). */
  wx: number;
  wd: number;
  /** Column of each local shard in its region, keyed `${table}:${shard}`. */
  column: Map<string, number>;
}

const key = (table: number, shard: number) => `${table}:${shard}`;

function layoutRegion(shards: LocalShard[], region: "x" | "d", rowwiseColumns = false): { sets: ShardSet[]; width: number; column: Map<string, number> } {
  // Sets by width; with rowwiseColumns, column shards get sets of their own (key: width * 2 + 1).
  const byKey = new Map<number, LocalShard[]>();
  for (const s of shards) {
    const w = s.colEnd - s.colStart;
    const k = 2 * w + (rowwiseColumns && s.kind === "column" ? 1 : 0);
    if (!byKey.has(k)) byKey.set(k, []);
    byKey.get(k)!.push(s);
  }
  const keys = [...byKey.keys()].sort((a, b) => (b >> 1) - (a >> 1) || (a & 1) - (b & 1));
  const dims = keys.map((k) => k >> 1);
  const sets: ShardSet[] = [];
  const column = new Map<string, number>();
  let at = 0;
  for (const key_ of keys) {
    const dim = key_ >> 1;
    // vec4 paths of the embedding kernels need 4-aligned offsets when the width allows them.
    if (dim % 4 === 0) at = Math.ceil(at / 4) * 4;
    const list = byKey.get(key_)!.sort((a, b) => a.table - b.table || a.shard - b.shard);
    sets.push({ dim, shards: list, offset: at, region, ...(key_ & 1 ? { rowwiseColumns: true } : {}) });
    list.forEach((s, k) => column.set(key(s.table, s.shard), at + k * dim));
    at += list.length * dim;
  }
  const width = dims.every((d) => d % 4 === 0) ? Math.ceil(at / 4) * 4 : at;
  return { sets, width, column };
}

/**
 * The shard sets and region widths of every device. `composite`: tables that
 * are QR or MD (not plain); they must be placed table-wise and form one
 * composite set per device, after its plain exchanged sets.
 * `rowwiseColumns` (row-wise Adagrad): column shards form sets of their own.
 * `compositeRows`: composite tables that may be split row-wise (MD tables; each row shard is run by its
 * device's ModelEmbeddings with a copy of the projection).
 */
export function deviceLayouts(
  plan: ShardingPlan, tableRows: readonly number[], dim: number, composite: ReadonlySet<number> = new Set(), rowwiseColumns = false,
  qr?: ReadonlyMap<number, QrSubTables>,
  compositeRows: ReadonlySet<number> = new Set(),
): DeviceLayout[] {
  validatePlan(plan, tableRows, dim, qr);
  for (const p of plan.tables) {
    if (composite.has(p.table) && p.kind !== "table" && !(p.kind === "row" && compositeRows.has(p.table))) {
      throw new ConfigError(`plan: table ${p.table} is a QR/MD embedding; these are placed whole on one device (table-wise), not ${p.kind}-wise`);
    }
  }
  return Array.from({ length: plan.devices }, (_, i) => {
    const local: LocalShard[] = [];
    for (const p of plan.tables) {
      p.shards.forEach((s, k) => {
        if (s.device !== i) return;
        const sub = s.part ? { part: s.part, collisions: qr!.get(p.table)!.collisions } : {};
        local.push({ table: p.table, kind: p.kind, rowStart: s.rowStart, rowEnd: s.rowEnd, colStart: s.colStart, colEnd: s.colEnd, shard: k, ...sub });
      });
    }
    const x = layoutRegion(local.filter((s) => s.kind !== "data" && !composite.has(s.table)), "x", rowwiseColumns);
    const comp = local.filter((s) => composite.has(s.table)).sort((a, b) => a.table - b.table);
    let wx = x.width;
    const compSets: ShardSet[] = [];
    if (comp.length) {
      const at = dim % 4 === 0 ? Math.ceil(wx / 4) * 4 : wx;
      compSets.push({ dim, shards: comp, offset: at, region: "x", composite: true });
      comp.forEach((s, k) => x.column.set(key(s.table, s.shard), at + k * dim));
      wx = at + comp.length * dim;
      if (dim % 4 === 0) wx = Math.ceil(wx / 4) * 4;
    }
    const d = layoutRegion(local.filter((s) => s.kind === "data"), "d");
    return { device: i, sets: [...x.sets, ...compSets, ...d.sets], wx, wd: d.width, column: new Map([...x.column, ...d.column]) };
  });
}

/** Samples per device and each device's first sample. */
export function batchSlices(plan: ShardingPlan, batchSize: number): { count: number[]; start: number[] } {
  const count = splitBatch(plan, batchSize);
  const start: number[] = [];
  let at = 0;
  for (const c of count) {
    start.push(at);
    at += c;
  }
  return { count, start };
}

/** Float offset of each block of R_j / G_j (one per source device, then the tail). */
export function blockBases(layouts: DeviceLayout[], bj: number): number[] {
  const out: number[] = [];
  let at = 0;
  for (const l of layouts) {
    out.push(at);
    at += bj * l.wx;
  }
  out.push(at);
  return out;
}

/** Floats of R_j (= G_j). */
export function exchangeFloats(layouts: DeviceLayout[], bj: number): number {
  return blockBases(layouts, bj).at(-1)! + bj * (layouts[0]?.wd ?? 0);
}

/**
 * Where column k of shard si of table t sits in R_j (the same place in G_j):
 * a data-parallel shard in device j's own replicated block (stride wd), any
 * other in the block received from the shard's device (stride wx).
 */
function exchangeSlot(
  layouts: DeviceLayout[], bases: number[], j: number, kind: string, t: number, si: number,
  s: { device: number; colStart: number }, k: number,
): { offset: number; stride: number } {
  const data = kind === "data";
  const l = layouts[data ? j : s.device]!;
  return { offset: bases[data ? layouts.length : s.device]! + l.column.get(key(t, si))! + (k - s.colStart), stride: data ? l.wd : l.wx };
}

/** Forward route of device j: E_j [B_j, n, d] from R_j (tables in `skip`: QR mult splits, see qrMultRoutes). */
export function forwardRoute(plan: ShardingPlan, layouts: DeviceLayout[], j: number, bj: number, dim: number, skip: ReadonlySet<number> = new Set()): RouteColumn[] {
  const bases = blockBases(layouts, bj);
  const n = plan.tables.length;
  const cols: RouteColumn[] = [];
  for (let t = 0; t < n; t++) {
    const p = plan.tables[t]!;
    if (skip.has(t)) continue;
    for (let k = 0; k < dim; k++) {
      const sources: RouteColumn["sources"] = [];
      p.shards.forEach((s, si) => {
        if (k < s.colStart || k >= s.colEnd) return;
        if (p.kind === "data" && s.device !== j) return;
        sources.push(exchangeSlot(layouts, bases, j, p.kind, t, si, s, k));
      });
      cols.push({ offset: t * dim + k, stride: n * dim, sources });
    }
  }
  return cols;
}

/** Backward route of device j: G_j (R_j's layout) from dE_j [B_j, n, d] (tables in `skip`: QR mult splits, see qrMultRoutes). */
export function backwardRoute(plan: ShardingPlan, layouts: DeviceLayout[], j: number, bj: number, dim: number, skip: ReadonlySet<number> = new Set()): RouteColumn[] {
  const bases = blockBases(layouts, bj);
  const n = plan.tables.length;
  const cols: RouteColumn[] = [];
  for (let t = 0; t < n; t++) {
    const p = plan.tables[t]!;
    if (skip.has(t)) continue;
    p.shards.forEach((s, si) => {
      if (p.kind === "data" && s.device !== j) return;
      for (let k = s.colStart; k < s.colEnd; k++) {
        cols.push({ ...exchangeSlot(layouts, bases, j, p.kind, t, si, s, k), sources: [{ offset: t * dim + k, stride: n * dim }] });
      }
    });
  }
  return cols;
}

/** Row of the shard's (sub-)table a lookup i addresses. */
function subRow(s: LocalShard): (i: number) => number {
  const c = s.collisions ?? 1;
  if (s.part === "q") return (i) => Math.floor(i / c);
  if (s.part === "r") return (i) => i % c;
  return (i) => i;
}

/**
 * QR tables combined by "mult" and split by sub-table rows (`mult`, in this
 * order): their q and r partials cannot be added into E (E = pool_q * pool_r),
 * so device j's forward route sums them into C_j [B_j, 2 M d] instead (table
 * m: pool_q at columns 2m d .. , pool_r at (2m+1) d ..), shard_qr_mult_fwd
 * multiplies them into E, shard_qr_mult_bwd gives dC from dE, and the
 * backward route here hands every q / r shard its columns of dC in G_j.
 */
export function qrMultRoutes(plan: ShardingPlan, layouts: DeviceLayout[], j: number, bj: number, dim: number, mult: readonly number[]): { forward: RouteColumn[]; backward: RouteColumn[]; width: number } {
  const bases = blockBases(layouts, bj);
  const width = 2 * mult.length * dim;
  const forward: RouteColumn[] = [];
  const backward: RouteColumn[] = [];
  mult.forEach((t, m) => {
    const p = plan.tables[t]!;
    (["q", "r"] as const).forEach((part, h) => {
      for (let k = 0; k < dim; k++) {
        const at = (2 * m + h) * dim + k;
        const sources: RouteColumn["sources"] = [];
        p.shards.forEach((s, si) => {
          if (s.part !== part) return;
          const slot = exchangeSlot(layouts, bases, j, p.kind, t, si, s, k);
          sources.push(slot);
          backward.push({ ...slot, sources: [{ offset: at, stride: width }] });
        });
        forward.push({ offset: at, stride: width, sources });
      }
    });
  });
  return { forward, backward, width };
}

export interface HostBagsOut {
  batchSize: number;
  offsets: Uint32Array;
  indices: Uint32Array;
}

/**
 * Bags of one shard set for the global batch (table-major CSR): each shard's
 * bags are its table's bags, restricted for a row-wise shard to the rows it
 * holds (re-based to its first row), in the original order. A QR sub-table
 * shard first maps lookup i to its sub-table row (floor(i / c) or i mod c).
 */
export function setBags(set: ShardSet, batch: { size: number; offsets: Uint32Array; indices: Uint32Array }): HostBagsOut {
  const B = batch.size;
  const T = set.shards.length;
  const offsets = new Uint32Array(T * B + 1);
  let total = 0;
  for (const s of set.shards) {
    const a = batch.offsets[s.table * B]!;
    const b = batch.offsets[(s.table + 1) * B]!;
    const sub = subRow(s);
    if (s.kind !== "row") total += b - a;
    else for (let p = a; p < b; p++) {
      const r = sub(batch.indices[p]!);
      if (r >= s.rowStart && r < s.rowEnd) total++;
    }
  }
  const indices = new Uint32Array(total);
  let at = 0;
  set.shards.forEach((s, k) => {
    const sub = subRow(s);
    for (let bi = 0; bi < B; bi++) {
      const a = batch.offsets[s.table * B + bi]!;
      const b = batch.offsets[s.table * B + bi + 1]!;
      if (s.kind !== "row") {
        indices.set(batch.indices.subarray(a, b), at);
        at += b - a;
      } else {
        for (let p = a; p < b; p++) {
          const r = sub(batch.indices[p]!);
          if (r >= s.rowStart && r < s.rowEnd) indices[at++] = r - s.rowStart;
        }
      }
      offsets[k * B + bi + 1] = at;
    }
  });
  return { batchSize: B, offsets, indices };
}

/**
 * Row-wise Adagrad over column shards: where each column-wise table's per-row
 * sums go in the per-row vector that its column shards allreduce. Table t
 * (column-wise) gets `capacity` slots: an upper bound on its unique rows in a
 * step (its rows, and its lookups `lookups[t]`); the vector is the same on
 * every device that holds a column shard (`devices`, ascending), which
 * allreduce it among themselves; a device that does not hold table t leaves
 * its segment zero.
 */
export interface RowSumLayout {
  /** Devices taking part (holding a column shard of some column-wise table). */
  devices: number[];
  slots: Map<number, { offset: number; capacity: number }>;
  floats: number;
}

export function rowSumLayout(plan: ShardingPlan, tableRows: readonly number[], lookups: readonly number[]): RowSumLayout {
  const slots = new Map<number, { offset: number; capacity: number }>();
  const devices = new Set<number>();
  let at = 0;
  for (const p of plan.tables) {
    if (p.kind !== "column") continue;
    const capacity = Math.max(0, Math.min(tableRows[p.table]!, lookups[p.table]!));
    slots.set(p.table, { offset: at, capacity });
    at += capacity;
    for (const s of p.shards) devices.add(s.device);
  }
  return { devices: [...devices].sort((a, b) => a - b), slots, floats: at };
}
