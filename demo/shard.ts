/**
 * The sharding views' arithmetic: a plan (src/shard/plan.ts), memory per
 * device, and the butterfly all-to-all of one step: in round r = 1..N-1
 * device i sends to (i + r) mod N (for N a power of two, i XOR r: pairwise
 * exchanges), so after N-1 rounds every device holds the pooled embeddings
 * of its batch slice for every table. Times are modelled: latency + bytes /
 * bandwidth of the chosen interconnect, the slowest pair setting a round.
 */
import { splitBatch, tableWisePlan, type ShardingPlan } from "../src/shard/plan.ts";

export interface Link {
  gbps: number;
  latencyUs: number;
}

export interface Transfer {
  from: number;
  to: number;
  bytes: number;
  /** Tables whose pooled rows (or partial sums) travel. */
  tables: number[];
}

export interface Round {
  round: number;
  transfers: Transfer[];
  /** Modelled time of the round (slowest transfer), in microseconds. */
  us: number;
}

export interface DeviceMemory {
  device: number;
  embeddingBytes: number;
  optimizerBytes: number;
  mlpBytes: number;
  tables: number[];
}

export function makePlan(tableRows: readonly number[], dim: number, devices: number): ShardingPlan {
  return tableWisePlan(tableRows, dim, devices);
}

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

/** Destination of device i in round r of the butterfly schedule. */
export function partner(i: number, r: number, n: number): number {
  return isPow2(n) ? i ^ r : (i + r) % n;
}

/** Bytes device `from` sends to device `to` in the forward all-to-all (pooled embeddings of `to`'s batch slice). */
function pairBytes(plan: ShardingPlan, from: number, to: number, slice: number, dim: number): { bytes: number; tables: number[] } {
  let bytes = 0;
  const tables: number[] = [];
  for (const p of plan.tables) {
    if (p.kind === "data") continue;
    for (const s of p.shards) {
      if (s.device !== from) continue;
      bytes += slice * (s.colEnd - s.colStart) * 4;
      tables.push(p.table);
    }
  }
  void dim;
  return { bytes, tables };
}

export function allToAllRounds(plan: ShardingPlan, batchSize: number, dim: number, link: Link): Round[] {
  const N = plan.devices;
  const slices = splitBatch(plan, batchSize);
  const rounds: Round[] = [];
  for (let r = 1; r < N; r++) {
    const transfers: Transfer[] = [];
    for (let i = 0; i < N; i++) {
      const j = partner(i, r, N);
      const { bytes, tables } = pairBytes(plan, i, j, slices[j]!, dim);
      transfers.push({ from: i, to: j, bytes, tables });
    }
    const us = Math.max(0, ...transfers.map((t) => (t.bytes > 0 ? link.latencyUs + t.bytes / (link.gbps * 1e3) : 0)));
    rounds.push({ round: r, transfers, us });
  }
  return rounds;
}

/** Ring allreduce of the MLP gradients: 2 (N - 1) steps of 1/N of the bytes each. */
export function allreduceUs(mlpParams: number, devices: number, link: Link): number {
  if (devices < 2) return 0;
  const chunk = (mlpParams * 4) / devices;
  return 2 * (devices - 1) * (link.latencyUs + chunk / (link.gbps * 1e3));
}

/** Floats of optimizer state per parameter float for embeddings: sgd none, adagrad one, row-wise one per row. */
export function deviceMemory(plan: ShardingPlan, tableRows: readonly number[], dim: number, optimizer: string, mlpParams: number): DeviceMemory[] {
  const out: DeviceMemory[] = Array.from({ length: plan.devices }, (_, device) => ({ device, embeddingBytes: 0, optimizerBytes: 0, mlpBytes: 0, tables: [] }));
  for (const p of plan.tables) {
    for (const s of p.shards) {
      const rows = s.rowEnd - s.rowStart;
      const cols = s.colEnd - s.colStart;
      const m = out[s.device]!;
      m.embeddingBytes += rows * cols * 4;
      m.optimizerBytes += optimizer === "adagrad" ? rows * cols * 4 : optimizer === "rwsadagrad" ? rows * 4 : 0;
      m.tables.push(p.table);
    }
  }
  const mlpState = optimizer === "sgd" ? 0 : 1;
  for (const m of out) m.mlpBytes = mlpParams * 4 * (2 + mlpState); // weights, gradients, state
  void tableRows;
  void dim;
  return out;
}

export function mlpParamCount(bottom: readonly number[], top: readonly number[]): number {
  let n = 0;
  for (const sizes of [bottom, top]) for (let i = 1; i < sizes.length; i++) n += sizes[i - 1]! * sizes[i]! + sizes[i]!;
  return n;
}

export function formatBytes(b: number): string {
  if (b < 1024) return `${b} B`;
  if (b < 1024 ** 2) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatUs(us: number): string {
  return us < 1000 ? `${us.toFixed(1)} µs` : `${(us / 1000).toFixed(2)} ms`;
}
