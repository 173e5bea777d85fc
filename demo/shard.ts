/**
 * The sharding views' numbers, from the multi-device scheduler's own model:
 * the plan (src/shard/planner.ts, or the table-wise plan of plan.ts), its
 * per-device estimate and the collective rounds (cost_model.ts), priced on
 * an interconnect preset (interconnect.ts). The trainer's all-to-all is a
 * butterfly (recursive doubling: in round r device i exchanges with i XOR
 * 2^r) on a power-of-two device count, else a direct pairwise exchange.
 */
import { splitBatch, tableWisePlan, type ShardingPlan } from "../src/shard/plan.ts";
import { planSharding } from "../src/shard/planner.ts";
import { allToAllRounds, estimatePlan, shardBytes, type DeviceSpeed, type ModelShape, type PlanEstimate } from "../src/shard/cost_model.ts";
import { collectiveSeconds, hostStaged, INTERCONNECTS as PRESETS, roundSeconds, type Interconnect, type RoundTraffic } from "../src/shard/interconnect.ts";

/**
 * Interconnect presets of the planner, plus this page's own case: devices
 * in one browser exchange through host-staged copies (copy, map, write);
 * 300 µs and 2 GB/s are nominal (the CLI's `--interconnect host` measures them).
 */
export const INTERCONNECT_CHOICES: Record<string, Interconnect> = {
  ...PRESETS,
  browser: { ...hostStaged(0.3, 2), name: "browser", describe: "WebGPU devices in one page, host-staged copies: 2.0 GB/s, 300 µs latency (nominal)" },
};

/**
 * A nominal device for the planner when no calibration is at hand (a
 * mid-range discrete GPU): identical devices, so the plan shows the
 * planner's placement logic rather than this machine's speed.
 */
export const NOMINAL_DEVICE: DeviceSpeed = { lookupSecPerElem: 2e-11, backwardSecPerElem: 6e-11, gemmGflops: 10_000, dispatchMs: 0.005, transferLatencyMs: 0.3, transferGBs: 2 };
export const NOMINAL_MEMORY = 16 * 2 ** 30;

export interface ShardView {
  plan: ShardingPlan;
  planner: "planner" | "table";
  /** Why the planner could not be used, if it fell back to the table-wise plan. */
  fallback?: string;
  estimate: PlanEstimate;
  /** Forward all-to-all rounds with their modelled seconds (the backward sends the same bytes back). */
  rounds: (RoundTraffic & { seconds: number })[];
  allreduceSec: number;
  batch: number[];
  interconnect: Interconnect;
}

export function shardView(shape: ModelShape, devices: number, planner: "planner" | "table", icName: string): ShardView {
  const ic = INTERCONNECT_CHOICES[icName] ?? INTERCONNECT_CHOICES.pcie4!;
  const speeds = Array.from({ length: devices }, () => NOMINAL_DEVICE);
  let plan: ShardingPlan;
  let fallback: string | undefined;
  let used = planner;
  if (planner === "planner") {
    try {
      plan = planSharding(shape, { speeds, memoryBytes: speeds.map(() => NOMINAL_MEMORY), interconnect: ic }).plan;
    } catch (e) {
      fallback = (e as Error).message;
      used = "table";
      plan = tableWisePlan(shape.tableRows, shape.dim, devices);
    }
  } else plan = tableWisePlan(shape.tableRows, shape.dim, devices);
  const estimate = estimatePlan(plan, shape, speeds, ic);
  const rounds = allToAllRounds(estimate.a2aBytes).map((r) => ({ ...r, seconds: roundSeconds(ic, r) }));
  // The schedule the trainer runs (ring, or recursive halving/doubling), as the estimate chose it.
  const allreduceSec = collectiveSeconds(ic, estimate.allreduce.rounds);
  return { plan, planner: used, fallback, estimate, rounds, allreduceSec, batch: splitBatch(plan, shape.batchSize), interconnect: ic };
}

export { shardBytes };

export function formatBytes(b: number): string {
  if (b < 1024) return `${Math.round(b)} B`;
  if (b < 1024 ** 2) return `${(b / 1024).toFixed(1)} KiB`;
  if (b < 1024 ** 3) return `${(b / 1024 ** 2).toFixed(1)} MiB`;
  return `${(b / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatSec(s: number): string {
  const us = s * 1e6;
  return us < 1000 ? `${us.toFixed(1)} µs` : `${(us / 1000).toFixed(2)} ms`;
}
