/**
 * Sharding plans: where each embedding table lives across N devices, and how
 * the global batch is split between the data-parallel MLP replicas.
 *
 * This file is the contract between the planner (which makes plans) and the
 * multi-device trainer (which runs them). It holds only data and checks.
 *
 *   table   - the whole table on one device
 *   row     - rows split by contiguous ranges; lookups are routed to the
 *             owner of each row, partial bag sums are added on the way back
 *   column  - d split by contiguous column ranges; pieces concatenated
 *   data    - the whole table on every device, gradients allreduced
 */
import { ConfigError } from "../gpu/errors.ts";

export type ShardKind = "table" | "row" | "column" | "data";

export interface Shard {
  device: number;
  /** Rows [rowStart, rowEnd) of the table held by this shard. */
  rowStart: number;
  rowEnd: number;
  /** Columns [colStart, colEnd) of the embedding dimension held by this shard. */
  colStart: number;
  colEnd: number;
  /**
   * Row-wise QR tables (operation add or concat) only: the shard holds rows
   * [rowStart, rowEnd) of this sub-table (q: floor(i / c), r: i mod c), and
   * its pooled partial lands in the table's columns [colStart, colEnd) of E
   * (add: all d for both; concat: q the first d/2, r the rest; mult: all d,
   * but q and r partials are summed separately and multiplied on the device
   * that owns the batch slice).
   */
  part?: "q" | "r";
}

/** A QR table's sub-tables, for plans that split them by rows (validatePlan's `qr`). */
export interface QrSubTables {
  collisions: number;
  operation: "concat" | "add" | "mult";
  /** Rows of q (ceil(rows / c)) and of r (c). */
  qRows: number;
  rRows: number;
}

export interface TablePlacement {
  table: number;
  kind: ShardKind;
  shards: Shard[];
}

export interface ShardingPlan {
  /** Number of devices N. */
  devices: number;
  /** One placement per table, in table order. */
  tables: TablePlacement[];
  /**
   * Share of the global batch each device's MLP replica takes (non-negative,
   * summing to 1). Uneven shares let a slower device take fewer samples.
   */
  batchShare: number[];
}

/** Columns of E a QR sub-table's partial lands in. */
export function qrPartColumns(op: QrSubTables["operation"], part: "q" | "r", dim: number): [number, number] {
  if (op !== "concat") return [0, dim];
  return part === "q" ? [0, dim / 2] : [dim / 2, dim];
}

/**
 * Checks that `plan` covers every table exactly once for `tableRows` x `dim`; ConfigError naming the first problem.
 * `qr`: the QR tables (needed only when a plan splits one by sub-table rows).
 */
export function validatePlan(plan: ShardingPlan, tableRows: readonly number[], dim: number, qr?: ReadonlyMap<number, QrSubTables>): void {
  const N = plan.devices;
  if (!Number.isInteger(N) || N < 1) throw new ConfigError(`plan: device count must be a positive integer, got ${N}`);
  if (plan.tables.length !== tableRows.length) throw new ConfigError(`plan: places ${plan.tables.length} tables, the model has ${tableRows.length}`);
  if (plan.batchShare.length !== N) throw new ConfigError(`plan: batchShare has ${plan.batchShare.length} entries for ${N} devices`);
  if (plan.batchShare.some((s) => !(s >= 0))) throw new ConfigError(`plan: batch shares must be non-negative, got ${plan.batchShare.join(", ")}`);
  const total = plan.batchShare.reduce((a, b) => a + b, 0);
  if (Math.abs(total - 1) > 1e-9) throw new ConfigError(`plan: batch shares sum to ${total}, not 1`);
  plan.tables.forEach((p, t) => {
    const rows = tableRows[t]!;
    const where = `plan: table ${t} (${p.kind}, ${rows} rows x ${dim})`;
    if (p.table !== t) throw new ConfigError(`${where}: placement names table ${p.table}`);
    if (p.shards.length === 0) throw new ConfigError(`${where}: no shards`);
    if (p.shards.some((s) => s.part !== undefined)) {
      validateQrRows(p, where, N, dim, qr?.get(t));
      return;
    }
    for (const s of p.shards) {
      if (!Number.isInteger(s.device) || s.device < 0 || s.device >= N) throw new ConfigError(`${where}: shard on device ${s.device}, the plan has ${N}`);
      if (!(s.rowStart >= 0 && s.rowStart < s.rowEnd && s.rowEnd <= rows)) throw new ConfigError(`${where}: bad row range [${s.rowStart}, ${s.rowEnd})`);
      if (!(s.colStart >= 0 && s.colStart < s.colEnd && s.colEnd <= dim)) throw new ConfigError(`${where}: bad column range [${s.colStart}, ${s.colEnd})`);
    }
    const whole = (s: Shard) => s.rowStart === 0 && s.rowEnd === rows && s.colStart === 0 && s.colEnd === dim;
    const devices = new Set(p.shards.map((s) => s.device));
    if (devices.size !== p.shards.length) throw new ConfigError(`${where}: two shards on one device`);
    switch (p.kind) {
      case "table":
        if (p.shards.length !== 1 || !whole(p.shards[0]!)) throw new ConfigError(`${where}: a table-wise placement is one whole shard`);
        break;
      case "data":
        if (!p.shards.every(whole)) throw new ConfigError(`${where}: a data-parallel placement holds the whole table on each device`);
        if (p.shards.length !== N) throw new ConfigError(`${where}: a data-parallel placement needs a replica on each of the ${N} devices`);
        break;
      case "row":
        contiguous(p.shards.map((s) => [s.rowStart, s.rowEnd]), rows, `${where}: row ranges`);
        if (!p.shards.every((s) => s.colStart === 0 && s.colEnd === dim)) throw new ConfigError(`${where}: row shards hold all columns`);
        break;
      case "column":
        contiguous(p.shards.map((s) => [s.colStart, s.colEnd]), dim, `${where}: column ranges`);
        if (!p.shards.every((s) => s.rowStart === 0 && s.rowEnd === rows)) throw new ConfigError(`${where}: column shards hold all rows`);
        break;
      default:
        throw new ConfigError(`${where}: unknown kind '${(p as TablePlacement).kind}'`);
    }
  });
}

/** A row-wise QR placement: every shard names its sub-table; each sub-table's rows covered once, on distinct devices. */
function validateQrRows(p: TablePlacement, where: string, N: number, dim: number, q: QrSubTables | undefined): void {
  if (!q) throw new ConfigError(`${where}: shards name a QR sub-table (part), but the table is not a QR table`);
  if (p.kind !== "row") throw new ConfigError(`${where}: only row-wise placements split a QR table by sub-table rows`);
  if (q.operation === "concat" && dim % 2 !== 0) throw new ConfigError(`${where}: concat needs an even d`);
  for (const part of ["q", "r"] as const) {
    const shards = p.shards.filter((s) => s.part === part);
    const rows = part === "q" ? q.qRows : q.rRows;
    const w = `${where}, sub-table ${part} (${rows} rows)`;
    if (shards.length === 0) throw new ConfigError(`${w}: no shards`);
    if (new Set(shards.map((s) => s.device)).size !== shards.length) throw new ConfigError(`${w}: two shards on one device`);
    for (const s of shards) {
      if (!Number.isInteger(s.device) || s.device < 0 || s.device >= N) throw new ConfigError(`${w}: shard on device ${s.device}, the plan has ${N}`);
      if (!(s.rowStart >= 0 && s.rowStart < s.rowEnd && s.rowEnd <= rows)) throw new ConfigError(`${w}: bad row range [${s.rowStart}, ${s.rowEnd})`);
      const [a, b] = qrPartColumns(q.operation, part, dim);
      if (s.colStart !== a || s.colEnd !== b) throw new ConfigError(`${w}: a ${q.operation} sub-table lands in columns [${a}, ${b}), the shard says [${s.colStart}, ${s.colEnd})`);
    }
    contiguous(shards.map((s) => [s.rowStart, s.rowEnd]), rows, `${w}: row ranges`);
  }
  const odd = p.shards.find((s) => s.part !== "q" && s.part !== "r");
  if (odd) throw new ConfigError(`${where}: every shard of a split QR table names its sub-table (q or r)`);
}

function contiguous(ranges: number[][], end: number, what: string): void {
  const sorted = [...ranges].sort((a, b) => a[0]! - b[0]!);
  let at = 0;
  for (const [s, e] of sorted) {
    if (s !== at) throw new ConfigError(`${what} leave a gap or overlap at ${at}`);
    at = e!;
  }
  if (at !== end) throw new ConfigError(`${what} end at ${at}, not ${end}`);
}

/**
 * Samples of a global batch of `batchSize` for each device: proportional to
 * the shares, rounded by largest remainder (ties to the lower device), so the
 * counts sum to batchSize and are the same on every call.
 */
export function splitBatch(plan: Pick<ShardingPlan, "batchShare">, batchSize: number): number[] {
  const exact = plan.batchShare.map((s) => s * batchSize);
  const counts = exact.map(Math.floor);
  let left = batchSize - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k++, left--) counts[order[k % order.length]![1]]!++;
  return counts;
}

/** Every table whole, round-robin over the devices, the batch split evenly: the simplest plan. */
export function tableWisePlan(tableRows: readonly number[], dim: number, devices: number): ShardingPlan {
  return {
    devices,
    tables: tableRows.map((rows, t) => ({ table: t, kind: "table", shards: [{ device: t % devices, rowStart: 0, rowEnd: rows, colStart: 0, colEnd: dim }] })),
    batchShare: Array.from({ length: devices }, () => 1 / devices),
  };
}

/** Splits [0, total) into `parts` contiguous ranges as even as possible (larger first). */
function evenRanges(total: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  const base = Math.floor(total / parts);
  const extra = total % parts;
  let at = 0;
  for (let k = 0; k < parts; k++) {
    const len = base + (k < extra ? 1 : 0);
    out.push([at, at + len]);
    at += len;
  }
  return out;
}

const evenShares = (devices: number) => Array.from({ length: devices }, () => 1 / devices);

/** Every table split by rows over all devices (over fewer when it has fewer rows), the batch split evenly. */
export function rowWisePlan(tableRows: readonly number[], dim: number, devices: number): ShardingPlan {
  return {
    devices,
    tables: tableRows.map((rows, t) => ({
      table: t,
      kind: "row",
      shards: evenRanges(rows, Math.min(devices, rows)).map(([a, b], k) => ({ device: (t + k) % devices, rowStart: a, rowEnd: b, colStart: 0, colEnd: dim })),
    })),
    batchShare: evenShares(devices),
  };
}

/** Every table split by columns over all devices (over fewer when d is smaller), the batch split evenly. */
export function columnWisePlan(tableRows: readonly number[], dim: number, devices: number): ShardingPlan {
  return {
    devices,
    tables: tableRows.map((rows, t) => ({
      table: t,
      kind: "column",
      shards: evenRanges(dim, Math.min(devices, dim)).map(([a, b], k) => ({ device: (t + k) % devices, rowStart: 0, rowEnd: rows, colStart: a, colEnd: b })),
    })),
    batchShare: evenShares(devices),
  };
}

/** Every table replicated on every device (gradients allreduced), the batch split evenly. */
export function dataParallelPlan(tableRows: readonly number[], dim: number, devices: number): ShardingPlan {
  return {
    devices,
    tables: tableRows.map((rows, t) => ({
      table: t,
      kind: "data",
      shards: Array.from({ length: devices }, (_, k) => ({ device: k, rowStart: 0, rowEnd: rows, colStart: 0, colEnd: dim })),
    })),
    batchShare: evenShares(devices),
  };
}

/** A uniform plan of one kind for every table. */
export function uniformPlan(kind: ShardKind, tableRows: readonly number[], dim: number, devices: number): ShardingPlan {
  switch (kind) {
    case "table":
      return tableWisePlan(tableRows, dim, devices);
    case "row":
      return rowWisePlan(tableRows, dim, devices);
    case "column":
      return columnWisePlan(tableRows, dim, devices);
    case "data":
      return dataParallelPlan(tableRows, dim, devices);
  }
}

/**
 * A QR table split by sub-table rows over `devices` (q rows and r rows each
 * in even contiguous ranges, r's ranges starting one device later so q and r
 * pieces spread).
 */
export function qrRowPlacement(table: number, q: QrSubTables, dim: number, devices: number): TablePlacement {
  const part = (p: "q" | "r", rows: number, first: number): Shard[] => {
    const [colStart, colEnd] = qrPartColumns(q.operation, p, dim);
    return evenRanges(rows, Math.min(devices, rows)).map(([rowStart, rowEnd], k) => ({ device: (first + k) % devices, rowStart, rowEnd, colStart, colEnd, part: p }));
  };
  return { table, kind: "row", shards: [...part("q", q.qRows, table), ...part("r", q.rRows, table + 1)] };
}
