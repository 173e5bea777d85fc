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

/** Profiles `plan` on the devices: one warm-up step, then `steps` serial steps (the fastest of them, phase by phase). */
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
    const n = dispatchesPerStep(shape, d.shards.length > 0, d.batch > 0);
    if (rest >= 0) return { ...sp, gemmGflops, perDispatchMs: (rest / n) * 1e3 };
    const scale = d.embeddingSec > 0 ? Math.max(0.05, (line.fixedSec - syncs) / d.embeddingSec) : 1;
    return { ...sp, gemmGflops, perDispatchMs: 0, lookupSecPerElem: sp.lookupSecPerElem * scale, backwardSecPerElem: sp.backwardSecPerElem * scale };
  });
}

/**
 * Run, measure, re-split. Round 1 runs the plan made with `planner.speeds`
 * (the microbenchmarks). After each round the cost model is fitted to every
 * step measured so far (fitStepCalibration, phase by phase) and the next plan
 * is made: by the planner with the fitted speeds, or, once the rounds have
 * seen a device at two batch sizes, by re-splitting the batch of the last plan
 * on each device's measured line (work = fixed + per sample x samples), moved
 * halfway from the current shares (single-step measurements on a shared
 * machine are noisy). For several devices the plan kept is the round whose
 * measured work was best balanced (slowest / mean), else the last planned; its
 * estimate uses the fitted speeds (with the lines where there are some). The
 * planner options' `estimate.sharedHost` says whether the devices share the
 * host.
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
  let lines: ReturnType<typeof fitLines> = [];
  const estimateOpts = () => ({ ...planner.estimate, exchangeScale: calibration!.exchangeScale, hostSec: calibration!.hostSec });
  // Lines only for a device whose adapter no other device has (a group of identical adapters is fitted as one).
  const names = planner.names ?? [];
  const solo = (i: number) => names.filter((n) => n === names[i]).length <= 1;
  const balance = (xs: number[]) => Math.max(...xs) / (xs.reduce((a, b) => a + b, 0) / xs.length);
  /** The speeds of the current fit, with the measured lines applied for `plan`. */
  const fitted = (plan: ShardingPlan) => (lines.some(Boolean) ? speedsFromLines(plan, shape, calibration!.speeds, lines, planner.interconnect) : calibration!.speeds);
  for (let r = 0; r < (opts.rounds ?? 2); r++) {
    const measured = await profilePlan(contexts, config, initial, result.plan, batches, opts);
    rounds.push({ plan: result.plan, estimate: result.estimate, measured });
    samples.push({ plan: result.plan, measured: measured.phases, exchangeSec: measured.exchangeSec, hostSec: measured.hostSec });
    calibration = fitStepCalibration(samples, shape, base, planner.interconnect, planner.names);
    lines = fitLines(rounds, shape.batchSize).map((l, i) => (solo(i) ? l : undefined));
    opts.log?.(
      `tune round ${r + 1}: batch shares ${result.plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}, measured device work ${measured.deviceSec.map((s) => (s * 1e3).toFixed(1)).join(" / ")} ms, ` +
        `estimated ${result.estimate.devices.map((d) => (d.deviceWorkSec * 1e3).toFixed(1)).join(" / ")} ms`,
    );
    if (N > 1 && lines.some(Boolean)) {
      // Re-split the last measured plan's batch on the measured lines (its placements kept: the lines hold for them), halfway.
      const last = result.plan;
      const speeds = fitted(last);
      const est0 = estimatePlan(last, shape, speeds, planner.interconnect, estimateOpts());
      const perSample = speeds.map((sp) => (3 * forwardFlopsPerSample(shape)) / (sp.gemmGflops * 1e9));
      const fixed = est0.devices.map((d) => (planner.estimate?.sharedHost ? d.deviceWorkSec : d.totalSec) - d.mlpSec);
      const target = balanceShares(fixed, perSample, shape.batchSize);
      const plan: ShardingPlan = { ...last, batchShare: last.batchShare.map((x, i) => (x + target[i]!) / 2) };
      result = { plan, estimate: estimatePlan(plan, shape, speeds, planner.interconnect, estimateOpts()), optionsConsidered: result.optionsConsidered };
      opts.log?.(`  re-split on the measured lines: target shares ${target.map((x) => x.toFixed(3)).join(" / ")}, next ${plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}`);
    } else {
      result = planSharding(shape, { ...planner, speeds: calibration.speeds, estimate: estimateOpts() });
    }
  }
  if (N > 1) {
    // Keep the best-balanced measured plan; estimate it with the fitted speeds.
    const best = rounds.reduce((a, r) => (balance(r.measured.deviceSec) < balance(a.measured.deviceSec) ? r : a));
    const speeds = fitted(best.plan);
    result = { plan: best.plan, estimate: estimatePlan(best.plan, shape, speeds, planner.interconnect, estimateOpts()), optionsConsidered: result.optionsConsidered };
    calibration = { ...calibration!, speeds };
    opts.log?.(`kept round ${rounds.indexOf(best) + 1}'s plan (measured balance ${balance(best.measured.deviceSec).toFixed(3)})`);
  }
  return { result, calibration: calibration!, rounds, lines };
}
