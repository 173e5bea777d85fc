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
import { type DeviceSpeed, dispatchesPerStep, estimatePlan, fitStepCalibration, forwardFlopsPerSample, type MeasuredPhases, type ModelShape, type PlanEstimate, STEP_PHASES, type StepCalibration, type StepSample } from "./cost_model.ts";
import type { Interconnect } from "./interconnect.ts";
import { ShardedDlrm, type StepProfile } from "./model.ts";
import type { ShardingPlan } from "./plan.ts";
import { balanceShares, planSharding, type PlannerOptions, type PlanResult } from "./planner.ts";

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

/** Median of each field over several profiled steps (phase by phase). */
export function medianStep(steps: readonly MeasuredStep[]): MeasuredStep {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const s0 = steps[0]!;
  const phases = s0.phases.map((ph, i) => ({ sec: ph.sec.map((_, p) => med(steps.map((s) => s.phases[i]!.sec[p]!))), dispatches: ph.dispatches }));
  return {
    phases,
    deviceSec: phases.map((x) => x.sec.reduce((a, b) => a + b, 0)),
    exchangeSec: med(steps.map((s) => s.exchangeSec)),
    hostSec: med(steps.map((s) => s.hostSec)),
    stepSec: med(steps.map((s) => s.stepSec)),
  };
}

/** Profiles `plan` on the devices: one warm-up step, then `steps` serial steps (their median). */
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
    await m.trainStep(next());
    await m.readLosses();
    const out: MeasuredStep[] = [];
    for (let i = 0; i < (opts.steps ?? 1); i++) out.push(measuredStep(await m.profileStep(next())));
    await m.readLosses();
    return medianStep(out);
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

export interface TuneResult {
  /** The plan made with the last calibration (not yet run) and its estimate. */
  result: PlanResult;
  calibration: StepCalibration;
  rounds: TuneRound[];
  /** Per device: the fitted line work = fixed + perSample x samples (seconds), when the rounds' batches allowed it. */
  lines: ({ fixedSec: number; perSampleSec: number } | undefined)[];
}

/**
 * Per device, the line through its measured work against its MLP samples over
 * the rounds (least squares), when they saw at least two batch sizes that
 * differ by 2 samples or more and the slope is positive.
 */
export function fitLines(rounds: readonly TuneRound[], batchSize: number): ({ fixedSec: number; perSampleSec: number } | undefined)[] {
  const N = rounds[0]?.plan.devices ?? 0;
  return Array.from({ length: N }, (_, i) => {
    const pts = rounds.map((r) => [Math.round(r.plan.batchShare[i]! * batchSize), r.measured.deviceSec[i]!] as const);
    const xs = pts.map((p) => p[0]);
    if (Math.max(...xs) - Math.min(...xs) < 2) return undefined;
    const mx = xs.reduce((a, b) => a + b, 0) / xs.length;
    const my = pts.reduce((a, p) => a + p[1], 0) / pts.length;
    const sxy = pts.reduce((a, p) => a + (p[0] - mx) * (p[1] - my), 0);
    const sxx = pts.reduce((a, p) => a + (p[0] - mx) ** 2, 0);
    const slope = sxy / sxx;
    if (!(slope > 0)) return undefined;
    return { fixedSec: Math.max(0, my - slope * mx), perSampleSec: slope };
  });
}

/**
 * Speeds for which the cost model gives device i's work as fixed + perSample x
 * samples: the GEMM rate from the slope, the cost per dispatch (else, when the
 * fixed part is below the modelled embedding work + round trips, a scaled
 * embedding speed) from the intercept.
 */
export function speedsFromLines(plan: ShardingPlan, shape: ModelShape, speeds: readonly DeviceSpeed[], lines: ReturnType<typeof fitLines>, interconnect?: Interconnect): DeviceSpeed[] {
  const est = estimatePlan(plan, shape, speeds, interconnect);
  return speeds.map((sp, i) => {
    const line = lines[i];
    if (!line) return sp;
    const d = est.devices[i]!;
    const gemmGflops = (3 * forwardFlopsPerSample(shape)) / line.perSampleSec / 1e9;
    const syncs = (STEP_PHASES.length * sp.dispatchMs) / 1e3;
    const rest = line.fixedSec - syncs - d.embeddingSec;
    const n = dispatchesPerStep(shape, d.shards.length > 0);
    if (rest >= 0) return { ...sp, gemmGflops, perDispatchMs: (rest / n) * 1e3 };
    const scale = d.embeddingSec > 0 ? Math.max(0.05, (line.fixedSec - syncs) / d.embeddingSec) : 1;
    return { ...sp, gemmGflops, perDispatchMs: 0, lookupSecPerElem: sp.lookupSecPerElem * scale, backwardSecPerElem: sp.backwardSecPerElem * scale };
  });
}

/**
 * Run, measure, re-split. Plans with `planner.speeds`; then `rounds` times:
 * profiles the current plan (every device's work run alone), fits the cost
 * model to every step so far (phase by phase: fitStepCalibration) and plans
 * again. Last, with the rounds' measured work against each device's samples,
 * fits per device a line (fixed + per sample) where the rounds allow it, turns
 * it into speeds and water-fills the batch shares of the last plan's placements
 * on it. The planner options' `estimate.sharedHost` says whether the devices
 * share the host.
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
  let result = planSharding(shape, planner);
  const samples: StepSample[] = [];
  const rounds: TuneRound[] = [];
  let calibration: StepCalibration | undefined;
  const estimateOpts = () => ({ ...planner.estimate, exchangeScale: calibration!.exchangeScale, hostSec: calibration!.hostSec });
  for (let r = 0; r < (opts.rounds ?? 2); r++) {
    const measured = await profilePlan(contexts, config, initial, result.plan, batches, opts);
    rounds.push({ plan: result.plan, estimate: result.estimate, measured });
    samples.push({ plan: result.plan, measured: measured.phases, exchangeSec: measured.exchangeSec, hostSec: measured.hostSec });
    calibration = fitStepCalibration(samples, shape, base, planner.interconnect, planner.names);
    opts.log?.(
      `tune round ${r + 1}: batch shares ${result.plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}, measured device work ${measured.deviceSec.map((s) => (s * 1e3).toFixed(1)).join(" / ")} ms, ` +
        `estimated ${result.estimate.devices.map((d) => (d.deviceWorkSec * 1e3).toFixed(1)).join(" / ")} ms`,
    );
    result = planSharding(shape, { ...planner, speeds: calibration.speeds, estimate: estimateOpts() });
  }
  // Lines only for a device whose adapter no other device has (a group of identical adapters is fitted as one, above).
  const names = planner.names ?? [];
  const lines = fitLines(rounds, shape.batchSize).map((l, i) => (names.filter((n) => n === names[i]).length > 1 ? undefined : l));
  if (contexts.length > 1 && lines.some(Boolean)) {
    // Re-split the last measured plan's batch on the measured lines (its placements kept: the lines hold for them).
    const last = rounds.at(-1)!.plan;
    const speeds = speedsFromLines(last, shape, calibration!.speeds, lines, planner.interconnect);
    const est0 = estimatePlan(last, shape, speeds, planner.interconnect, estimateOpts());
    const perSample = speeds.map((sp) => (3 * forwardFlopsPerSample(shape)) / (sp.gemmGflops * 1e9));
    const fixed = est0.devices.map((d) => (planner.estimate?.sharedHost ? d.deviceWorkSec : d.totalSec) - d.mlpSec);
    const plan: ShardingPlan = { ...last, batchShare: balanceShares(fixed, perSample, shape.batchSize) };
    calibration = { ...calibration!, speeds };
    result = { plan, estimate: estimatePlan(plan, shape, speeds, planner.interconnect, estimateOpts()), optionsConsidered: result.optionsConsidered };
    opts.log?.(`re-split on the measured lines: batch shares ${plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}, estimated device work ${result.estimate.devices.map((d) => (d.deviceWorkSec * 1e3).toFixed(1)).join(" / ")} ms`);
  }
  return { result, calibration: calibration!, rounds, lines };
}
