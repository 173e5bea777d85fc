/**
 * End-to-end calibration of a plan: the planner's microbenchmark speeds
 * (calibrate.ts) miss what a real step pays (dispatch overheads of many small
 * kernels, the devices' real work at this model's shapes, the host's copies,
 * and, for software adapters, that the devices take turns on the host's
 * cores). tunePlan plans, runs real steps of the plan on the devices
 * (ShardedDlrm.profileStep: every device's phases run alone), fits the cost
 * model to what they took (cost_model.ts fitStepCalibration, over all rounds
 * so far), and plans again with the fitted speeds: run, measure, re-split.
 */
import type { Batch } from "../data/batch.ts";
import type { GpuContext } from "../gpu/context.ts";
import type { DlrmConfig } from "../model/config.ts";
import type { StateDict } from "../model/params.ts";
import type { AllToAllSchedule } from "./collectives.ts";
import { type DeviceSpeed, estimatePlan, fitStepCalibration, type MeasuredPhases, type ModelShape, type PlanEstimate, STEP_PHASES, type StepCalibration, type StepSample } from "./cost_model.ts";
import { ShardedDlrm, type StepProfile } from "./model.ts";
import { type ShardingPlan, splitBatch } from "./plan.ts";
import { planSharding, type PlannerOptions, type PlanResult } from "./planner.ts";

/** What one profiled step measured, in the cost model's terms. */
export interface MeasuredStep {
  /** Per device: its phases run alone, seconds and dispatches. */
  phases: MeasuredPhases[];
  /** Per device: the sum of its phases (its work run alone), seconds. */
  deviceSec: number[];
  /** The step's collectives (host-staged, one after another), seconds. */
  exchangeSec: number;
  /** Host work (batch routing and upload), seconds. */
  hostSec: number;
  /** The whole serial step, seconds. */
  stepSec: number;
}

/** The cost model's view of a serial profile (ShardedDlrm.profileStep). */
export function measuredStep(p: StepProfile): MeasuredStep {
  const N = p.devicePhases[STEP_PHASES[0]]?.ms.length ?? 0;
  const phases: MeasuredPhases[] = Array.from({ length: N }, (_, i) => ({
    sec: STEP_PHASES.map((k) => (p.devicePhases[k]?.ms[i] ?? 0) / 1e3),
    dispatches: STEP_PHASES.map((k) => p.devicePhases[k]?.dispatches[i] ?? 0),
  }));
  const exchangeMs = (p.phases["all-to-all forward"] ?? 0) + (p.phases["all-to-all backward"] ?? 0) + (p.phases["MLP gradient allreduce"] ?? 0);
  return {
    phases,
    deviceSec: phases.map((x) => x.sec.reduce((a, b) => a + b, 0)),
    exchangeSec: exchangeMs / 1e3,
    hostSec: p.uploadMs / 1e3,
    stepSec: p.totalMs / 1e3,
  };
}

/**
 * The fastest of several profiled steps, field by field (each phase's minimum):
 * on a machine shared with other jobs their CPU time only ever adds to a
 * measurement, so the minimum is the best estimate of the work itself (as
 * timeit takes the minimum of repeats).
 */
export function fastestStep(steps: readonly MeasuredStep[]): MeasuredStep {
  const min = (xs: number[]) => Math.min(...xs);
  const s0 = steps[0]!;
  const phases = s0.phases.map((ph, i) => ({ sec: ph.sec.map((_, p) => min(steps.map((s) => s.phases[i]!.sec[p]!))), dispatches: ph.dispatches }));
  return {
    phases,
    deviceSec: phases.map((x) => x.sec.reduce((a, b) => a + b, 0)),
    exchangeSec: min(steps.map((s) => s.exchangeSec)),
    hostSec: min(steps.map((s) => s.hostSec)),
    stepSec: min(steps.map((s) => s.stepSec)),
  };
}

/**
 * Profiles `plan` on the devices: two warm-up steps (waited for: the first
 * steps of a new model pay for first touches of its buffers), then `steps`
 * serial steps, the fastest of them phase by phase.
 */
export async function profilePlan(
  contexts: readonly GpuContext[],
  config: DlrmConfig,
  initial: StateDict,
  plan: ShardingPlan,
  batches: readonly Batch[],
  opts: { steps?: number; schedule?: AllToAllSchedule } = {},
): Promise<MeasuredStep> {
  const m = new ShardedDlrm(contexts, config, initial, plan, { schedule: opts.schedule });
  try {
    let k = 0;
    const next = () => batches[k++ % batches.length]!;
    for (let i = 0; i < 2; i++) await m.trainStep(next());
    await m.readLosses();
    const out: MeasuredStep[] = [];
    for (let i = 0; i < (opts.steps ?? 1); i++) out.push(measuredStep(await m.profileStep(next())));
    await m.readLosses();
    return fastestStep(out);
  } finally {
    m.destroy();
  }
}

export interface TuneRound {
  plan: ShardingPlan;
  /** The planner's estimate of this plan (with the calibration known before it ran). */
  estimate: PlanEstimate;
  measured: MeasuredStep;
}

/**
 * `next`'s plan with each device's batch moved from `current`'s by at most
 * max(4, current / 2, batch / 8N) samples (whole samples, summing to the batch); `next`
 * itself when it is within that.
 */
export function limitBatchMove(current: ShardingPlan, next: ShardingPlan, batchSize: number): ShardingPlan {
  const cur = splitBatch(current, batchSize), want = splitBatch(next, batchSize);
  const lim = cur.map((c) => Math.max(4, Math.floor(c / 2), Math.floor(batchSize / (8 * cur.length))));
  if (want.every((w, i) => Math.abs(w - cur[i]!) <= lim[i]!)) return next;
  const got = want.map((w, i) => Math.min(cur[i]! + lim[i]!, Math.max(cur[i]! - lim[i]!, w)));
  // Put the difference back on the devices still short of (or above) where the plan wanted them, within their limits.
  let left = batchSize - got.reduce((a, b) => a + b, 0);
  for (let pass = 0; left !== 0 && pass < 2; pass++) {
    for (let i = 0; i < got.length && left !== 0; i++) {
      const room = left > 0 ? cur[i]! + lim[i]! - got[i]! : got[i]! - Math.max(0, cur[i]! - lim[i]!);
      // First pass: only devices the plan wanted moved that way, no further than it wanted.
      const wanted = (want[i]! - got[i]!) * Math.sign(left);
      if (pass === 0 && wanted <= 0) continue;
      const step = Math.sign(left) * Math.min(Math.abs(left), Math.max(0, room), pass === 0 ? wanted : Infinity);
      got[i]! += step;
      left -= step;
    }
  }
  if (left !== 0) got[got.indexOf(Math.max(...got))]! += left;
  return { ...next, batchShare: got.map((g) => g / batchSize) };
}

export interface TuneResult {
  /** The plan kept (N > 1: the best-balanced measured round's) and its estimate with the last calibration. */
  result: PlanResult;
  calibration: StepCalibration;
  rounds: TuneRound[];
}

/**
 * Run, measure, re-plan. Round 1 runs the plan made with `planner.speeds`
 * (the microbenchmarks). After each round the cost model is fitted to every
 * step measured so far (fitStepCalibration, each older round weighing half the
 * next: per adapter, phase by phase, with
 * the dispatch counts the real steps made; rounds at different batch splits
 * and placements pin the per-sample and the fixed costs apart) and the
 * planner plans again with the fitted speeds (its batch split in whole
 * samples and its table moves included). For several devices the plan kept is
 * the round whose measured work was best balanced (slowest / mean), else the
 * last planned; its estimate uses the final fit. The planner options'
 * `estimate.sharedHost` says whether the devices share the host.
 *
 * (An earlier version re-split the batch on a line through each device's
 * measured total against its samples. Over the narrow spread of batch sizes
 * the rounds give (99-106 samples) the noise set the slope, the intercept was
 * clamped at 0, and placements changed between the rounds the line pooled:
 * the paper-config pair's lavapipe estimate was +117% off. The phase fit
 * needs none of that.)
 */
export async function tunePlan(
  contexts: readonly GpuContext[],
  config: DlrmConfig,
  initial: StateDict,
  shape: ModelShape,
  planner: PlannerOptions,
  batches: readonly Batch[],
  opts: { rounds?: number; steps?: number; schedule?: AllToAllSchedule; log?: (s: string) => void } = {},
): Promise<TuneResult> {
  const base: readonly DeviceSpeed[] = planner.speeds;
  const N = contexts.length;
  let result = planSharding(shape, planner);
  const samples: StepSample[] = [];
  const rounds: TuneRound[] = [];
  let calibration: StepCalibration | undefined;
  const estimateOpts = () => ({ ...planner.estimate, exchangeScale: calibration!.exchangeScale, hostSec: calibration!.hostSec });
  const balance = (xs: number[]) => Math.max(...xs) / (xs.reduce((a, b) => a + b, 0) / xs.length);
  for (let r = 0; r < (opts.rounds ?? 2); r++) {
    const measured = await profilePlan(contexts, config, initial, result.plan, batches, opts);
    rounds.push({ plan: result.plan, estimate: result.estimate, measured });
    samples.push({ plan: result.plan, measured: measured.phases, exchangeSec: measured.exchangeSec, hostSec: measured.hostSec });
    // Recent rounds weigh more (each older round half): a shared machine's speed drifts over minutes, and the
    // plan is used right after the last round.
    samples.forEach((x, k) => (x.weight = 0.5 ** (samples.length - 1 - k)));
    calibration = fitStepCalibration(samples, shape, base, planner.interconnect, planner.names);
    opts.log?.(
      `tune round ${r + 1}: batch shares ${result.plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}, measured device work ${measured.deviceSec.map((s) => (s * 1e3).toFixed(1)).join(" / ")} ms, ` +
        `estimated ${result.estimate.devices.map((d) => (d.deviceWorkSec * 1e3).toFixed(1)).join(" / ")} ms`,
    );
    const next = planSharding(shape, { ...planner, speeds: calibration.speeds, estimate: estimateOpts() });
    // A trust region: each device's batch moves at most max(4, half its current batch, batch / 8N) samples per round. The fit
    // only knows the splits it has seen; on a shared machine a noisy round can send the next plan far outside
    // them (a device's whole batch taken away), and the next measurement of such a plan is no better.
    const plan = N > 1 ? limitBatchMove(result.plan, next.plan, shape.batchSize) : next.plan;
    if (plan !== next.plan) opts.log?.(`  batch move limited: planned ${next.plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}, next ${plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}`);
    result = plan === next.plan ? next : { plan, estimate: estimatePlan(plan, shape, calibration.speeds, planner.interconnect, estimateOpts()), optionsConsidered: next.optionsConsidered };
  }
  if (N > 1) {
    // Keep the best-balanced measured plan; estimate it with the final fit.
    const best = rounds.reduce((a, r) => (balance(r.measured.deviceSec) < balance(a.measured.deviceSec) ? r : a));
    result = { plan: best.plan, estimate: estimatePlan(best.plan, shape, calibration!.speeds, planner.interconnect, estimateOpts()), optionsConsidered: result.optionsConsidered };
    opts.log?.(`kept round ${rounds.indexOf(best) + 1}'s plan (measured balance ${balance(best.measured.deviceSec).toFixed(3)})`);
  }
  return { result, calibration: calibration!, rounds };
}
