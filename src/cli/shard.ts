/**
 * `train --devices N` / `--adapters A,B`: opens the devices, makes the
 * sharding plan and the sharded model (src/shard/model.ts).
 */
import { createContexts, type GpuContext } from "../gpu/context.ts";
import { ConfigError } from "../gpu/errors.ts";
import type { DlrmConfig } from "../model/config.ts";
import type { StateDict } from "../model/params.ts";
import type { AllToAllSchedule } from "../shard/collectives.ts";
import { ShardedDlrm } from "../shard/model.ts";
import { calibrateAll } from "../shard/calibrate.ts";
import { shapeFromConfig } from "../shard/cost_model.ts";
import { type ShardingPlan, type ShardKind, uniformPlan } from "../shard/plan.ts";
import { planSharding } from "../shard/planner.ts";
import type { FlagValues } from "./args.ts";
import { UsageError } from "./args.ts";

/** True when the flags ask for more than one device (or for named adapters). */
export function wantsSharding(v: FlagValues): boolean {
  return (v.devices as number) > 1 || Boolean(v.adapters);
}

/** The contexts the flags name: --adapters (one device per entry) or --devices N on the default adapter. */
export async function openDevices(v: FlagValues): Promise<GpuContext[]> {
  const n = v.devices as number;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--devices expects a positive integer, got ${n}`);
  if (v.adapters) {
    const names = (v.adapters as string).split(",").map((s) => s.trim()).filter(Boolean);
    if (names.length === 0) throw new UsageError("--adapters expects a comma-separated list of adapter names, e.g. llvmpipe,swiftshader (see `adapters`)");
    return createContexts(names, { label: "train" });
  }
  return createContexts(n, { label: "train" });
}

/** Memory the planner may use on each device (WebGPU does not report it): 2 GiB. */
const DEVICE_MEMORY_BYTES = 2 * 2 ** 30;

/** Mean indices per bag the data flags imply (for the planner's cost model). */
export function poolingFactor(v: FlagValues): number {
  if (v.dataGeneration === "dataset") return 1;
  const k = (v.numIndicesPerLookup as number) || 1;
  return v.numIndicesPerLookupFixed === false ? (k + 1) / 2 : k;
}

/**
 * The plan for `config` on the devices: --shard-plan auto asks the planner
 * (src/shard/planner.ts; each adapter calibrated once, then cached), any
 * other value places every table that way with an even batch split.
 */
export async function makePlan(ctxs: GpuContext[], config: DlrmConfig, v: FlagValues, note?: (msg: string) => void): Promise<ShardingPlan> {
  const kind = v.shardPlan as string;
  const n = ctxs.length;
  if (kind === "auto") {
    if (n === 1) return uniformPlan("table", config.tableRows, config.embeddingDim, 1);
    const cals = await calibrateAll(ctxs);
    const fresh = cals.filter((c) => !c.cached).length;
    if (fresh) note?.(`calibrated ${fresh} adapter(s) for the planner (cached for later runs)`);
    const r = planSharding(shapeFromConfig(config, poolingFactor(v), v.miniBatchSize as number), {
      speeds: cals,
      memoryBytes: ctxs.map(() => DEVICE_MEMORY_BYTES),
      names: ctxs.map((c) => c.adapter.name),
      // Row-wise Adagrad needs whole rows: no column-wise shards.
      kinds: config.optimizer === "rwsadagrad" ? ["table", "row", "data"] : undefined,
    });
    return r.plan;
  }
  if (kind === "column" && config.optimizer === "rwsadagrad") throw new UsageError("--shard-plan column cannot be used with --optimizer rwsadagrad (its accumulator needs whole rows); choose table, row or data");
  return uniformPlan(kind as ShardKind, config.tableRows, config.embeddingDim, n);
}

export async function createSharded(ctxs: GpuContext[], config: DlrmConfig, initial: StateDict, v: FlagValues, note?: (msg: string) => void): Promise<ShardedDlrm> {
  if (config.qr || config.md) throw new ConfigError("--devices/--adapters train plain embedding tables; QR (--qr-flag) and MD (--md-flag) embeddings run on one device");
  const plan = await makePlan(ctxs, config, v, note);
  return new ShardedDlrm(ctxs, config, initial, plan, { schedule: v.allToAll as AllToAllSchedule });
}

/** One line per device: adapter, tables held, batch share. */
export function describePlan(model: ShardedDlrm): string[] {
  const { plan, contexts } = model;
  return contexts.map((c, i) => {
    const held = plan.tables
      .filter((p) => p.shards.some((s) => s.device === i))
      .map((p) => {
        const s = p.shards.find((x) => x.device === i)!;
        return p.kind === "table" || p.kind === "data" ? `${p.table}${p.kind === "data" ? "(data)" : ""}` : p.kind === "row" ? `${p.table}[rows ${s.rowStart}:${s.rowEnd}]` : `${p.table}[cols ${s.colStart}:${s.colEnd}]`;
      });
    return `device ${i} "${c.adapter.name}": ${(plan.batchShare[i]! * 100).toFixed(1)}% of each batch, tables ${held.join(" ") || "none"}`;
  });
}
