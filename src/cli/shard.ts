/**
 * `train --devices N` / `--adapters A,B`: the sharding plan and the sharded
 * model (src/shard/model.ts) for the devices opened by shard_setup.ts.
 */
import type { GpuContext } from "../gpu/context.ts";
import type { DlrmConfig } from "../model/config.ts";
import { layoutOf, type StateDict } from "../model/params.ts";
import type { AllToAllSchedule } from "../shard/collectives.ts";
import { shapeFromConfig } from "../shard/cost_model.ts";
import { tunePlan } from "../shard/autotune.ts";
import type { Batch } from "../data/batch.ts";
import { randomSource } from "../data/random.ts";
import { ShardedDlrm, type StepProfile } from "../shard/model.ts";
import { qrRowPlacement, type ShardingPlan, type ShardKind, uniformPlan } from "../shard/plan.ts";
import { planSharding } from "../shard/planner.ts";
import { type FlagValues, UsageError } from "./args.ts";
import { allreduceChoice, calibrateAdapters, chooseAdapters, deviceMemory, plannerOptions, poolingFactor } from "./shard_setup.ts";

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
    // The same options as `plan` (shard_setup.ts plannerOptions): what `plan` prints is what train runs.
    const names = ctxs.map((c) => c.adapter.name);
    const planner = plannerOptions(config, speeds, await deviceMemory(v, n), names, allreduceChoice(v, names, speeds));
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
    // --shard-plan row: QR tables are split by their q and r sub-tables' rows, MD tables by rows (each shard with a projection copy).
    const split = kind === "row" && config.qr ? new Set([...whole].filter((t) => layout.tables[t]!.kind === "qr")) : new Set<number>();
    const md = kind === "row" ? new Set([...whole].filter((t) => layout.tables[t]!.kind === "md")) : new Set<number>();
    const rest = [...whole].filter((t) => !split.has(t) && !md.has(t));
    if (split.size) note(`QR tables ${[...split].join(" ")} are split by the rows of their q and r sub-tables`);
    if (md.size) note(`MD tables ${[...md].join(" ")} are split by rows (each shard holds a copy of the projection; its gradient is allreduced)`);
    if (rest.length) note(`QR/MD tables ${rest.join(" ")} are placed table-wise (whole, round-robin); the other tables ${kind}-wise`);
    const table = uniformPlan("table", config.tableRows, config.embeddingDim, n);
    plan.tables = plan.tables.map((p) => {
      if (!whole.has(p.table) || md.has(p.table)) return p;
      if (!split.has(p.table)) return table.tables[p.table]!;
      const t = layout.tables[p.table]!;
      return qrRowPlacement(p.table, { collisions: t.collisions!, operation: config.qr!.operation, qRows: t.places[0]!.rows, rRows: t.places[1]!.rows }, config.embeddingDim, n);
    });
  }
  return plan;
}

export async function createSharded(ctxs: GpuContext[], config: DlrmConfig, initial: StateDict, v: FlagValues, note?: (msg: string) => void): Promise<ShardedDlrm> {
  const plan = await makePlan(ctxs, config, v, note, initial);
  // --allreduce auto models the --interconnect link (host: the calibrated host-staged copy, cached after the first run).
  const names = ctxs.map((c) => c.adapter.name);
  const host = v.interconnect === "host" && ctxs.length > 1;
  const ar = allreduceChoice(v, names, host ? await calibrateAdapters(await chooseAdapters(v), false, note ?? (() => {})) : undefined);
  return new ShardedDlrm(ctxs, config, initial, plan, { schedule: v.allToAll as AllToAllSchedule, allreduce: ar.schedule, allreduceLink: ar.link });
}

/** One line per device: adapter, batch share, what it holds. */
export function describePlan(model: ShardedDlrm): string[] {
  const { plan, contexts } = model;
  return contexts.map((c, i) => {
    const held = plan.tables
      .filter((p) => p.shards.some((s) => s.device === i))
      .map((p) => {
        const s = p.shards.find((x) => x.device === i)!;
        // A QR table split by sub-table rows: each piece on this device, e.g. 3.q[rows 0:5] 3.r[rows 2:4].
        if (s.part) return p.shards.filter((x) => x.device === i).map((x) => `${p.table}.${x.part}[rows ${x.rowStart}:${x.rowEnd}]`).join(" ");
        return p.kind === "table" || p.kind === "data" ? `${p.table}${p.kind === "data" ? "(data)" : ""}` : p.kind === "row" ? `${p.table}[rows ${s.rowStart}:${s.rowEnd}]` : `${p.table}[cols ${s.colStart}:${s.colEnd}]`;
      });
    return `device ${i} "${c.adapter.name}": ${(plan.batchShare[i]! * 100).toFixed(1)}% of each batch, tables ${held.join(" ") || "none"}`;
  });
}

/**
 * `train --devices N --shard-profile K`: the run's 3rd .. (K+2)th steps go through
 * ShardedDlrm.profileStep (the serial schedule: every phase waited for, each
 * device's part of a compute phase run alone; the training itself is the same
 * arithmetic), and the step after them runs the normal overlapped schedule and
 * is timed whole. `report()` gives per device and phase the fastest of the K
 * steps (ms, dispatches), the collectives (rounds, bytes, ms), the host's
 * upload, and what the overlapped schedule runs at the same time.
 */
export function profileSharded(model: ShardedDlrm, steps: number): { report: () => string[] } {
  const profiles: StepProfile[] = [];
  let overlapped: { ms: number; profile: StepProfile } | undefined;
  let seen = 0;
  const plain = model.trainStep.bind(model);
  model.trainStep = async (batch: Batch) => {
    seen++;
    if (seen > 2 && profiles.length < steps) {
      profiles.push(await model.profileStep(batch));
      return;
    }
    if (profiles.length === steps && !overlapped && steps > 0) {
      const t0 = performance.now();
      await plain(batch);
      await Promise.all(model.devices.map((d) => d.queue.onSubmittedWorkDone()));
      overlapped = { ms: performance.now() - t0, profile: model.lastProfile! };
      return;
    }
    await plain(batch);
  };
  const f = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms.toFixed(1));
  return {
    report: () => {
      if (!profiles.length) return [`shard profile: no step profiled (the run had ${seen} steps; profiling starts at step 3)`];
      const N = model.devices.length;
      const names = model.contexts.map((c, i) => `[${i}] ${c.adapter.name.split(/[ :(]/)[0]}`);
      const min = (xs: number[]) => Math.min(...xs);
      const rows: string[][] = [["phase", ...names.flatMap((n) => [`${n} ms`, "disp"]), "all ms"]];
      const keys = Object.keys(profiles[0]!.phases);
      for (const k of keys) {
        const dp = profiles[0]!.devicePhases[k];
        const all = f(min(profiles.map((p) => p.phases[k]!)));
        if (dp) rows.push([k, ...Array.from({ length: N }, (_, i) => [f(min(profiles.map((p) => p.devicePhases[k]!.ms[i]!))), String(dp.dispatches[i])]).flat(), all]);
        else rows.push([k, ...new Array<string>(2 * N).fill(""), all]);
      }
      const work = Array.from({ length: N }, (_, i) => keys.reduce((a, k) => a + (profiles[0]!.devicePhases[k] ? min(profiles.map((p) => p.devicePhases[k]!.ms[i]!)) : 0), 0));
      rows.push(["device work (run alone)", ...work.flatMap((w) => [f(w), ""]), ""]);
      const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
      const out = [
        `shard profile: steps ${profiles[0]!.step}-${profiles.at(-1)!.step}, serial schedule (each phase waited for; a compute phase runs device by device, each alone), the fastest of ${profiles.length} per phase:`,
        ...rows.map((r) => "  " + r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join("  ")),
        `  device work balance (slowest / mean): ${(Math.max(...work) / (work.reduce((a, b) => a + b, 0) / N)).toFixed(3)}; serial step ${f(min(profiles.map((p) => p.totalMs)))} ms`,
      ];
      const last = profiles.at(-1)!;
      for (const [name, s] of Object.entries(last.collectives)) {
        const bytes = s.rounds.reduce((a, r) => a + r.sent.reduce((x, y) => x + y, 0), 0);
        out.push(`  ${name}: ${s.rounds.length} rounds, ${(bytes / 1024).toFixed(1)} KiB host-staged, ${f(s.ms)} ms (rounds ${s.rounds.map((r) => f(r.ms)).join(", ") || "-"})`);
      }
      if (overlapped) {
        out.push(`overlapped step ${overlapped.profile.step} (the normal schedule): ${f(overlapped.ms)} ms to all queues idle; overlapped: ${overlapped.profile.overlapped.join("; ") || "nothing"}`);
        const c = overlapped.profile.collectives;
        out.push(`  its collectives in flight: all-to-all forward ${f(c.forward.ms)} ms, backward ${f(c.backward.ms)} ms, allreduce ${f(c.allreduce.ms)} ms (host-observed, while the other work ran)`);
      }
      return out;
    },
  };
}
