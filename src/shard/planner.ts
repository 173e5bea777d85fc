/**
 * The sharding planner, in the spirit of TorchRec's EmbeddingShardingPlanner
 * (enumerate -> estimate -> partition -> check memory), for devices of
 * different speed:
 *
 *   enumerate  options per table: table-wise on each device, row-wise over
 *              the devices (rows in proportion to their lookup speed),
 *              column-wise (d split in multiples of 4), data-parallel for
 *              tables small enough to replicate
 *   estimate   each option's seconds on each device with the calibrated cost
 *              model (cost_model.ts): lookups + backward at the device's own
 *              rate, plus the host-staged bytes its all-to-all messages take
 *   partition  greedy makespan balancing, largest table first: each table
 *              takes the option that keeps the slowest device fastest (ties:
 *              least total work), among those that fit in memory; then the
 *              MLP batch shares are water-filled so every device finishes
 *              together (a slower adapter gets fewer samples); two passes,
 *              the second starting from the first's shares, the better kept
 *   memory     every device's shards + MLP replica + activations within its
 *              capacity; a table that fits nowhere fails with its name and
 *              the missing bytes, before anything is allocated
 */
import { ConfigError } from "../gpu/errors.ts";
import { denseBytes, type DeviceSpeed, estimatePlan, type EstimateOptions, mlpSecPerSample, type ModelShape, type PlanEstimate, shardBytes, shardLookups, shardMemory } from "./cost_model.ts";
import type { Interconnect } from "./interconnect.ts";
import { type ShardingPlan, type ShardKind, splitBatch, type TablePlacement, validatePlan } from "./plan.ts";

/** The model cannot be placed on the devices: names the table and the missing bytes. */
export class PlanMemoryError extends ConfigError {
  constructor(
    message: string,
    readonly table: number,
    readonly missingBytes: number,
  ) {
    super(message);
  }
}

export interface PlannerOptions {
  speeds: readonly DeviceSpeed[];
  /** Memory each device may use, bytes. */
  memoryBytes: readonly number[];
  /** Adapter names per device, for messages. */
  names?: readonly string[];
  /** Prices the all-to-all and allreduce (default: the measured host-staged copy). */
  interconnect?: Interconnect;
  /** Tables up to this many bytes (weights) may be replicated (data-parallel). Default 64 KiB. */
  dataParallelMaxBytes?: number;
  /** Only these placement kinds (default: all four). */
  kinds?: readonly ShardKind[];
  /**
   * Shared host (software adapters on the host's cores) and the end-to-end
   * calibration's exchange scale and host time (cost_model.ts): the estimate's
   * step is then the sum of the devices' work; the batch shares still balance
   * each device's own work.
   */
  estimate?: EstimateOptions;
  /** Tables that may only be placed whole on one device (QR / MD embeddings). */
  wholeTables?: ReadonlySet<number>;
}

export interface PlanOption {
  kind: ShardKind;
  /** table-wise: the device. */
  device?: number;
  /** row-wise / column-wise: the devices taking part, with their weights. */
  weights?: number[];
}

export interface PlanResult {
  plan: ShardingPlan;
  estimate: PlanEstimate;
  /** Options the partitioner weighed (for reports). */
  optionsConsidered: number;
}

const fmtMiB = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/** Relative makespan gain a placement with more shards must bring over one with fewer. */
export const SPLIT_GAIN = 0.02;

/** Placement options for table t on N devices. */
export function enumerateOptions(shape: ModelShape, t: number, N: number, opts: Pick<PlannerOptions, "dataParallelMaxBytes" | "kinds" | "wholeTables"> = {}): PlanOption[] {
  const kinds = new Set(opts.wholeTables?.has(t) ? ["table"] : (opts.kinds ?? ["table", "row", "column", "data"]));
  const rows = shape.tableRows[t]!;
  const out: PlanOption[] = [];
  if (kinds.has("table")) for (let d = 0; d < N; d++) out.push({ kind: "table", device: d });
  if (N > 1 && kinds.has("row") && rows >= N) out.push({ kind: "row" });
  if (N > 1 && kinds.has("column") && shape.dim % 4 === 0 && shape.dim / 4 >= N) out.push({ kind: "column" });
  if (N > 1 && kinds.has("data") && rows * shape.dim * 4 <= (opts.dataParallelMaxBytes ?? 64 << 10)) out.push({ kind: "data" });
  return out;
}

/** Splits `total` into contiguous integer parts in proportion to `weights` (largest remainder, each > 0 where weight > 0, multiples of `unit`). */
export function proportionalRanges(total: number, weights: readonly number[], unit = 1): [number, number][] {
  const units = Math.floor(total / unit);
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((w) => (w / sum) * units);
  const counts = exact.map(Math.floor);
  let left = units - counts.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - Math.floor(x), i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (let k = 0; left > 0; k++, left--) counts[order[k % order.length]![1]]!++;
  // Every weighted device gets at least one unit, taken from the largest.
  for (let i = 0; i < counts.length; i++) {
    if (weights[i]! > 0 && counts[i] === 0) {
      const big = counts.indexOf(Math.max(...counts));
      if (counts[big]! > 1) {
        counts[big]!--;
        counts[i] = 1;
      }
    }
  }
  const out: [number, number][] = [];
  let at = 0;
  counts.forEach((c, i) => {
    const end = i === counts.length - 1 ? total : at + c * unit;
    out.push([at, end]);
    at = end;
  });
  return out;
}

/** The placement an option makes for table t. */
export function placementOf(shape: ModelShape, t: number, N: number, o: PlanOption): TablePlacement {
  const rows = shape.tableRows[t]!;
  const d = shape.dim;
  switch (o.kind) {
    case "table":
      return { table: t, kind: "table", shards: [{ device: o.device!, rowStart: 0, rowEnd: rows, colStart: 0, colEnd: d }] };
    case "data":
      return { table: t, kind: "data", shards: Array.from({ length: N }, (_, i) => ({ device: i, rowStart: 0, rowEnd: rows, colStart: 0, colEnd: d })) };
    case "row": {
      const w = o.weights ?? new Array<number>(N).fill(1);
      const shards = proportionalRanges(rows, w)
        .map(([s, e], i) => ({ device: i, rowStart: s, rowEnd: e, colStart: 0, colEnd: d }))
        .filter((s) => s.rowEnd > s.rowStart);
      return { table: t, kind: "row", shards };
    }
    case "column": {
      const w = o.weights ?? new Array<number>(N).fill(1);
      const shards = proportionalRanges(d, w, 4)
        .map(([s, e], i) => ({ device: i, rowStart: 0, rowEnd: rows, colStart: s, colEnd: e }))
        .filter((s) => s.colEnd > s.colStart);
      return { table: t, kind: "column", shards };
    }
  }
}

/**
 * Seconds of placement `p` on each device for the global batch (lookups +
 * backward at the device's rate, plus its share of all-to-all bytes at the
 * host-staged bandwidth), given the devices' MLP batch counts.
 */
export function placementCost(shape: ModelShape, p: TablePlacement, speeds: readonly DeviceSpeed[], batch: readonly number[]): number[] {
  const N = speeds.length;
  const B = shape.batchSize;
  const rows = shape.tableRows[p.table]!;
  const cost = new Array<number>(N).fill(0);
  for (const s of p.shards) {
    const sp = speeds[s.device]!;
    const cols = s.colEnd - s.colStart;
    const lookups = shardLookups(shape, p.table, p.kind, s, batch[s.device]!);
    cost[s.device]! += lookups * cols * (sp.lookupSecPerElem + sp.backwardSecPerElem);
    if (p.kind === "data") {
      // Its gradient joins the ring allreduce: 2 (N-1)/N of the table each way.
      cost[s.device]! += ((2 * (N - 1)) / N) * (rows * shape.dim * 4) / (sp.transferGBs * 1e9);
    } else {
      // Forward pooled vectors out, their gradients back in, for every other device's samples.
      const outCols = p.kind === "row" ? shape.dim : cols;
      const bytes = 2 * (B - batch[s.device]!) * outCols * 4;
      cost[s.device]! += bytes / (sp.transferGBs * 1e9);
    }
  }
  return cost;
}

/** Seconds per MLP sample on a device (forward + backward). */
function perSampleSec(shape: ModelShape, sp: DeviceSpeed): number {
  return mlpSecPerSample(shape, sp);
}

/**
 * Batch shares that make every device finish together: device d needs
 * fixed_d + share_d * B * perSample_d; water-filling, devices whose fixed
 * work alone exceeds the level get no samples.
 */
export function balanceShares(fixed: readonly number[], perSample: readonly number[], batchSize: number): number[] {
  const N = fixed.length;
  let active = fixed.map(() => true);
  for (;;) {
    const inv = perSample.map((p, i) => (active[i] ? 1 / (p * batchSize) : 0));
    const sumInv = inv.reduce((a, b) => a + b, 0);
    const level = (1 + fixed.reduce((a, f, i) => a + (active[i] ? f * inv[i]! : 0), 0)) / sumInv;
    const shares = fixed.map((f, i) => (active[i] ? (level - f) * inv[i]! : 0));
    const neg = shares.findIndex((s, i) => active[i] && s < 0);
    if (neg < 0 || active.filter(Boolean).length === 1) {
      const pos = shares.map((s) => Math.max(0, s));
      const sum = pos.reduce((a, b) => a + b, 0);
      return pos.map((s) => s / sum);
    }
    active = active.map((a, i) => a && i !== neg);
    if (N === 0) return [];
  }
}

/**
 * balanceShares in whole samples: the batch is split into integer counts (as
 * the trainer does), each sample given where it finishes earliest, then single
 * samples moved off the busiest device while that lowers the slowest device's
 * time (fixed_d + count_d x perSample_d). On a slow adapter one sample can be
 * several percent of the step (SwiftShader: ~10 ms per Kaggle-model sample):
 * rounding the continuous shares would throw that balance away. Returns
 * shares (count / batchSize).
 */
export function integerShares(fixed: readonly number[], perSample: readonly number[], batchSize: number): number[] {
  const N = fixed.length;
  if (N === 0) return [];
  const cont = balanceShares(fixed, perSample, batchSize);
  const counts = cont.map((s) => Math.floor(s * batchSize + 1e-9));
  const time = (i: number, c: number) => fixed[i]! + c * perSample[i]!;
  for (let left = batchSize - counts.reduce((a, b) => a + b, 0); left > 0; left--) {
    let best = 0;
    for (let i = 1; i < N; i++) if (time(i, counts[i]! + 1) < time(best, counts[best]! + 1)) best = i;
    counts[best]!++;
  }
  for (let iter = 0; iter < batchSize; iter++) {
    let slow = 0;
    for (let i = 1; i < N; i++) if (time(i, counts[i]!) > time(slow, counts[slow]!)) slow = i;
    if (counts[slow] === 0) break;
    let to = -1;
    for (let i = 0; i < N; i++) if (i !== slow && (to < 0 || time(i, counts[i]! + 1) < time(to, counts[to]! + 1))) to = i;
    if (to < 0 || time(to, counts[to]! + 1) >= time(slow, counts[slow]!)) break;
    counts[slow]!--;
    counts[to]!++;
  }
  return counts.map((c) => c / batchSize);
}

/** Weights for splitting a table's rows or columns: proportional to each device's lookup speed. */
function lookupWeights(speeds: readonly DeviceSpeed[]): number[] {
  return speeds.map((s) => 1 / (s.lookupSecPerElem + s.backwardSecPerElem));
}

function partition(shape: ModelShape, opts: PlannerOptions, shares: readonly number[]): { plan: ShardingPlan; considered: number } {
  const N = opts.speeds.length;
  const names = opts.names ?? opts.speeds.map((_, i) => `device ${i}`);
  const batch = splitBatch({ batchShare: [...shares] }, shape.batchSize);
  const load = opts.speeds.map((sp, i) => batch[i]! * perSampleSec(shape, sp));
  const free = opts.memoryBytes.map((m, i) => m - denseBytes(shape, batch[i]!));
  free.forEach((f, i) => {
    if (f < 0) throw new PlanMemoryError(`device ${i} (${names[i]}) cannot hold the MLP replica and activations for ${batch[i]} samples: ${fmtMiB(-f)} missing of ${fmtMiB(opts.memoryBytes[i]!)}`, -1, -f);
  });
  const weights = lookupWeights(opts.speeds);
  const placements: TablePlacement[] = new Array(shape.tableRows.length);
  // Largest work first (rows x d as the tie-breaker).
  const order = shape.tableRows.map((r, t) => t).sort((a, b) => shape.tableRows[b]! - shape.tableRows[a]! || a - b);
  let considered = 0;
  // The level every device would reach if the work spread perfectly (each device working at its own lookup
  // speed): a makespan below it is no gain, so the greedy does not split early tables just because the
  // devices are still empty.
  const elemsOf = (t: number) => shape.batchSize * shape.poolingFactor * shape.dim;
  const floor = (load.reduce((a, l, i) => a + l * weights[i]!, 0) + order.reduce((a, t) => a + elemsOf(t), 0)) / weights.reduce((a, b) => a + b, 0);
  for (const t of order) {
    let best: { p: TablePlacement; makespan: number; raw: number; total: number } | undefined;
    let shortfall = Infinity;
    for (const o of enumerateOptions(shape, t, N, opts)) {
      const p = placementOf(shape, t, N, o.kind === "row" || o.kind === "column" ? { ...o, weights } : o);
      considered++;
      const mem = new Array<number>(N).fill(0);
      for (const s of p.shards) mem[s.device]! += shardMemory(shape, t, p.kind, s, batch[s.device]!);
      const over = mem.reduce((a, m, i) => a + Math.max(0, m - free[i]!), 0);
      if (over > 0) {
        shortfall = Math.min(shortfall, over);
        continue;
      }
      const c = placementCost(shape, p, opts.speeds, batch);
      const after = load.map((l, i) => l + c[i]!);
      const raw = Math.max(...after), makespan = Math.max(floor, raw), total = after.reduce((a, b) => a + b, 0);
      // A split must buy a clear gain (SPLIT_GAIN) over fewer shards: every shard costs dispatches and messages the model does not see.
      const eps = 1e-9;
      const more = best ? p.shards.length - best.p.shards.length : 0;
      const better = !best
        ? true
        : more === 0
          ? makespan < best.makespan * (1 - eps) || (makespan <= best.makespan * (1 + eps) && (raw < best.raw * (1 - eps) || (raw <= best.raw * (1 + eps) && total < best.total)))
          : more < 0
            ? makespan <= best.makespan * (1 + SPLIT_GAIN)
            : makespan < best.makespan * (1 - SPLIT_GAIN);
      if (better) best = { p, makespan, raw, total };
    }
    if (!best) {
      const need = shardBytes(shape.optimizer, shape.tableRows[t]!, shape.dim);
      const totalFree = free.reduce((a, f) => a + Math.max(0, f), 0);
      const missing = Math.max(1, Math.ceil(shortfall));
      throw new PlanMemoryError(
        `table ${t} (${shape.tableRows[t]} rows x ${shape.dim}, ${fmtMiB(need)} with ${shape.optimizer} state) does not fit: ` +
          `${N > 1 ? `the ${N} devices have ${fmtMiB(totalFree)} free in all` : `${names[0]} has ${fmtMiB(Math.max(0, free[0]!))} free`} after the tables placed before it (and the dense part); ` +
          `${missing} bytes (${fmtMiB(missing)}) missing. Use more devices, more --device-memory, a smaller table (--max-ind-range) or --optimizer sgd (no state).`,
        t,
        missing,
      );
    }
    placements[t] = best.p;
    const c = placementCost(shape, best.p, opts.speeds, batch);
    for (let i = 0; i < N; i++) load[i]! += c[i]!;
    for (const s of best.p.shards) free[s.device]! -= shardMemory(shape, t, best.p.kind, s, batch[s.device]!);
  }
  // Shares so that embedding work + MLP slices finish together.
  const fixed = opts.speeds.map((_, i) => load[i]! - batch[i]! * perSampleSec(shape, opts.speeds[i]!));
  const batchShare = N === 1 ? [1] : balanceShares(fixed, opts.speeds.map((sp) => perSampleSec(shape, sp)), shape.batchSize);
  return { plan: { devices: N, tables: placements, batchShare }, considered };
}

/** Plans the model on the devices; throws PlanMemoryError when it cannot fit. */
export function planSharding(shape: ModelShape, opts: PlannerOptions): PlanResult {
  const N = opts.speeds.length;
  if (N < 1) throw new ConfigError("the planner needs at least one device");
  if (opts.memoryBytes.length !== N) throw new ConfigError(`memoryBytes has ${opts.memoryBytes.length} entries for ${N} devices`);
  // First pass: MLP shares in proportion to GEMM speed; second: from the first plan's balanced shares.
  const gemm = opts.speeds.map((s) => s.gemmGflops);
  let shares = gemm.map((g) => g / gemm.reduce((a, b) => a + b, 0));
  let best: PlanResult | undefined;
  let considered = 0;
  for (let pass = 0; pass < 3; pass++) {
    let made: ReturnType<typeof partition>;
    try {
      made = partition(shape, opts, shares);
    } catch (e) {
      // Later passes only refine the shares; a pass that no longer fits ends the search.
      if (pass > 0 && e instanceof PlanMemoryError) break;
      throw e;
    }
    const { plan: placed, considered: c } = made;
    considered += c;
    // Batch shares from the full estimate (overheads and transfers included): every device finishes together.
    const first = estimatePlan({ ...placed, batchShare: [...shares] }, shape, opts.speeds, opts.interconnect, opts.estimate);
    const perSample = opts.speeds.map((sp) => perSampleSec(shape, sp));
    // Shared host: balance the devices' own work (the exchange is paid once, by all); else their totals.
    const fixed = first.devices.map((d) => (opts.estimate?.sharedHost ? d.deviceWorkSec : d.totalSec) - d.mlpSec);
    const plan: ShardingPlan = { ...placed, batchShare: N === 1 ? [1] : integerShares(fixed, perSample, shape.batchSize) };
    validatePlan(plan, shape.tableRows, shape.dim);
    const est = estimatePlan(plan, shape, opts.speeds, opts.interconnect, opts.estimate);
    const fits = est.devices.every((d, i) => d.memoryBytes <= opts.memoryBytes[i]!);
    // Shared host: the pass whose busiest device has the least work (balance); else the fastest step.
    const key = (e: PlanEstimate) => (e.sharedHost ? Math.max(...e.devices.map((d) => d.deviceWorkSec)) : e.stepSec);
    if (fits && (!best || key(est) < key(best.estimate))) best = { plan, estimate: est, optionsConsidered: 0 };
    shares = plan.batchShare;
  }
  if (!best) {
    // Balanced shares overflowed a device: fall back to the first pass's GEMM-proportional shares.
    const { plan } = partition(shape, opts, gemm.map((g) => g / gemm.reduce((a, b) => a + b, 0)));
    const est = estimatePlan(plan, shape, opts.speeds, opts.interconnect, opts.estimate);
    const over = est.devices.find((d, i) => d.memoryBytes > opts.memoryBytes[i]!)!;
    const missing = over.memoryBytes - opts.memoryBytes[over.device]!;
    throw new PlanMemoryError(`device ${over.device} (${(opts.names ?? [])[over.device] ?? "?"}) needs ${fmtMiB(over.memoryBytes)} with its MLP slice, ${missing} bytes more than its ${fmtMiB(opts.memoryBytes[over.device]!)}`, -1, missing);
  }
  if (N > 1) {
    const refined = moveTables(shape, opts, best);
    considered += refined.considered;
    best = refined.result;
  }
  best.optionsConsidered = considered;
  return best;
}

/** Relative gain a table move must bring (moveTables). */
export const MOVE_GAIN = 0.02;

/**
 * The second lever beside the batch split: local search moving single whole
 * tables (table-wise placements) off the busiest device, re-splitting the batch
 * in whole samples after each move (integerShares), while the busiest device's
 * modelled time drops by more than MOVE_GAIN and every device still fits. A
 * sample is a coarse unit on a slow adapter; a table's lookups and updates are
 * often a finer one (and a device's first table costs it the embedding
 * kernels' dispatches, which the estimate prices).
 */
export function moveTables(shape: ModelShape, opts: PlannerOptions, start: PlanResult): { result: PlanResult; considered: number } {
  const N = opts.speeds.length;
  const shared = Boolean(opts.estimate?.sharedHost);
  const perDevice = (e: PlanEstimate) => e.devices.map((d) => (shared ? d.deviceWorkSec : d.totalSec));
  const key = (e: PlanEstimate) => Math.max(...perDevice(e));
  const perSample = opts.speeds.map((sp) => perSampleSec(shape, sp));
  const fits = (e: PlanEstimate) => e.devices.every((d, i) => d.memoryBytes <= opts.memoryBytes[i]!);
  let best = start;
  let considered = 0;
  for (let iter = 0; iter < shape.tableRows.length; iter++) {
    const times = perDevice(best.estimate);
    const busiest = times.indexOf(Math.max(...times));
    let found: PlanResult | undefined;
    for (const p of best.plan.tables) {
      if (p.kind !== "table" || p.shards[0]!.device !== busiest) continue;
      for (let j = 0; j < N; j++) {
        if (j === busiest) continue;
        considered++;
        const tables = best.plan.tables.map((q) => (q === p ? { ...q, shards: [{ ...q.shards[0]!, device: j }] } : q));
        const moved: ShardingPlan = { ...best.plan, tables };
        const at = estimatePlan(moved, shape, opts.speeds, opts.interconnect, opts.estimate);
        const fixed = at.devices.map((d, i) => (shared ? d.deviceWorkSec : d.totalSec) - d.mlpSec);
        const plan: ShardingPlan = { ...moved, batchShare: integerShares(fixed, perSample, shape.batchSize) };
        const est = estimatePlan(plan, shape, opts.speeds, opts.interconnect, opts.estimate);
        if (!fits(est)) continue;
        if (key(est) < key(found?.estimate ?? best.estimate) * (1 - (found ? 0 : MOVE_GAIN))) found = { plan, estimate: est, optionsConsidered: 0 };
      }
    }
    if (!found) break;
    best = found;
  }
  return { result: best, considered };
}
