/**
 * `train --devices N` / `--adapters A,B`: the sharding plan and the sharded
 * model (src/shard/model.ts) for the devices opened by shard_setup.ts.
 */
import type { GpuContext } from "../gpu/context.ts";
import type { DlrmConfig } from "../model/config.ts";
import { layoutOf, type StateDict } from "../model/params.ts";
import type { AllToAllSchedule } from "../shard/collectives.ts";
import { isSoftwareAdapter, shapeFromConfig } from "../shard/cost_model.ts";
import { tunePlan } from "../shard/autotune.ts";
import type { Batch } from "../data/batch.ts";
import { randomSource } from "../data/random.ts";
import { ShardedDlrm } from "../shard/model.ts";
import { type ShardingPlan, type ShardKind, uniformPlan } from "../shard/plan.ts";
import { planSharding, type PlannerOptions } from "../shard/planner.ts";
import { type FlagValues, UsageError } from "./args.ts";
import { calibrateAdapters, chooseAdapters, deviceMemory, poolingFactor } from "./shard_setup.ts";

/** True when the flags ask for more than one device (or for named adapters). */
export function wantsSharding(v: FlagValues): boolean {
  return (v.devices as number) > 1 || v.adapters !== undefined;
}

/**
 * The plan for `config` on the devices: --shard-plan auto asks the planner
 * (src/shard/planner.ts; each adapter calibrated once, then cached; in its
 * shared-host mode when every adapter is a software one; with --shard-tune N
 * tuned on N rounds of real steps, src/shard/autotune.ts), any other value
 * places every table that way with an even batch split.
 */
export async function makePlan(ctxs: GpuContext[], config: DlrmConfig, v: FlagValues, note: (msg: string) => void = () => {}, initial?: StateDict): Promise<ShardingPlan> {
  const kind = v.shardPlan as string;
  const n = ctxs.length;
  // QR / MD tables are placed whole (table-wise) on one device.
  const layout = layoutOf(config);
  const whole = new Set(layout.tables.flatMap((t, i) => (t.kind === "plain" ? [] : [i])));
  if (kind === "auto") {
    if (n === 1) return uniformPlan("table", config.tableRows, config.embeddingDim, 1);
    const entries = await chooseAdapters(v);
    const speeds = await calibrateAdapters(entries, v.recalibrate as boolean, note);
    const shape = shapeFromConfig(config, poolingFactor(v), v.miniBatchSize as number);
    const names = ctxs.map((c) => c.adapter.name);
    const planner: PlannerOptions = {
      speeds,
      memoryBytes: await deviceMemory(v, n),
      names,
      // Row-wise Adagrad: column shards work (a per-row allreduce), but the cost model does not count that allreduce yet.
      kinds: config.optimizer === "rwsadagrad" ? ["table", "row", "data"] : undefined,
      wholeTables: whole,
      estimate: { sharedHost: names.every((x) => isSoftwareAdapter(x)) },
    };
    const rounds = (v.shardTune as number | undefined) ?? 0;
    if (rounds > 0 && initial) {
      // Tune on random batches of the run's shape (the work depends on the shape, not the values).
      const source = randomSource({ numDense: config.bottomMlp[0]!, tableRows: config.tableRows, seed: 1, bagSize: Math.max(1, Math.round(shape.poolingFactor)) });
      const batches: Batch[] = [];
      for await (const b of source.batches({ batchSize: shape.batchSize, limit: 4 })) batches.push(b);
      note(`tuning the plan on ${rounds} round(s) of real steps${planner.estimate!.sharedHost ? " (software adapters: the devices share the host)" : ""}`);
      const t = await tunePlan(ctxs, config, initial, shape, planner, batches, { rounds, steps: 2, schedule: v.allToAll as AllToAllSchedule, log: note });
      return t.result.plan;
    }
    return planSharding(shape, planner).plan;
  }
  const plan = uniformPlan(kind as ShardKind, config.tableRows, config.embeddingDim, n);
  if (whole.size && kind !== "table") {
    note(`QR/MD tables ${[...whole].join(" ")} are placed table-wise (whole, round-robin); the other tables ${kind}-wise`);
    const table = uniformPlan("table", config.tableRows, config.embeddingDim, n);
    plan.tables = plan.tables.map((p) => (whole.has(p.table) ? table.tables[p.table]! : p));
  }
  return plan;
}

export async function createSharded(ctxs: GpuContext[], config: DlrmConfig, initial: StateDict, v: FlagValues, note?: (msg: string) => void): Promise<ShardedDlrm> {
  const plan = await makePlan(ctxs, config, v, note, initial);
  return new ShardedDlrm(ctxs, config, initial, plan, { schedule: v.allToAll as AllToAllSchedule });
}

/** One line per device: adapter, batch share, what it holds. */
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
