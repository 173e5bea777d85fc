/**
 * Sharding benchmark (npm run bench:shard): Node (Dawn) with both Vulkan ICDs,
 * so lavapipe and SwiftShader run side by side in one process.
 *
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json:/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/shard.ts
 *
 * 1. calibrates both adapters in this run (the microbenchmark figures);
 * 2. for the Kaggle-shaped config and the paper benchmark config (tables
 *    scaled to this machine) on 1 lavapipe, 1 SwiftShader, 2 and 4 lavapipe
 *    devices and the lavapipe + SwiftShader pair: plans in the shared-host
 *    mode, tunes the plan end to end (src/shard/autotune.ts: run, measure
 *    every device's work alone, refit the cost model, re-plan), then trains
 *    the final plan and compares the planner's per-device estimate with the
 *    measured work, reports samples/s, the step profile, bytes moved, the
 *    balance and the modelled interconnect times;
 * 3. projects the paper config to 8 ... 1024 devices per interconnect preset.
 * Writes the section "shard" of BENCHMARKS.md. Env: SHARD_STEPS (overlapped
 * steps per case, default 3), SHARD_SERIAL_STEPS (3), SHARD_TUNE_ROUNDS (3), SHARD_TUNE_STEPS (3, profiled steps per round),
 * SHARD_QUICK=1 (Kaggle config only), SHARD_SETS ("2 x lavapipe,..." a subset;
 * such a run does not write BENCHMARKS.md).
 */
import { cpus, loadavg } from "node:os";
import { createContexts, type GpuContext } from "../src/gpu/context.ts";
import { DEFAULT_TABLE_ROWS } from "../src/cli/flags.ts";
import { interactionWidth } from "../src/model/config.ts";
import { calibrate, type DeviceCalibration } from "../src/shard/calibrate.ts";
import { type DeviceSpeed, estimatePlan, isSoftwareAdapter, type ModelShape, PAPER_PROJECTION, projectStep, STEP_PHASES } from "../src/shard/cost_model.ts";
import { collectiveSeconds, INTERCONNECTS, type Interconnect, hostStaged, fmtLink } from "../src/shard/interconnect.ts";
import { table, writeSection } from "./report.ts";
import type { Batch } from "../src/data/batch.ts";
import { randomSource } from "../src/data/random.ts";
import { type DlrmConfig, resolveConfig } from "../src/model/config.ts";
import { initParameters, type StateDict } from "../src/model/params.ts";
import type { ShardingPlan } from "../src/shard/plan.ts";
import { ShardedDlrm, type StepProfile } from "../src/shard/model.ts";
import { fastestStep, measuredStep, type MeasuredStep, tunePlan } from "../src/shard/autotune.ts";
import { envNumber } from "./util.ts";

const STEPS = envNumber("SHARD_STEPS", 3);
const SERIAL_STEPS = envNumber("SHARD_SERIAL_STEPS", 5);
const TUNE_STEPS = envNumber("SHARD_TUNE_STEPS", 4);
const TUNE_ROUNDS = envNumber("SHARD_TUNE_ROUNDS", 3);
const ONLY = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.SHARD_SETS;
const QUICK = envNumber("SHARD_QUICK", 0) === 1;
const GiB = 2 ** 30;
const out: string[] = [];
const log = (s = "") => {
  console.log(s);
  out.push(s);
};
const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : "-");
const ms = (s: number) => f(s * 1e3, s < 0.01 ? 3 : 1);
const pct = (est: number, meas: number) => `${f((100 * (est - meas)) / meas, 1)}%`;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(b < 2 ** 20 ? 3 : 1)} MiB`;

// ------------------------------------------------------------------ devices
const icd = process.env.VK_ICD_FILENAMES ?? "";
const [lvpCtx, ssCtx] = await createContexts(["llvmpipe", "swiftshader"], { label: "bench-shard" });
const lvpCal = await calibrate(lvpCtx!, { recalibrate: true });
const ssCal = await calibrate(ssCtx!, { recalibrate: true });
const started = new Date().toISOString();

log(`## Sharding (bench:shard)`);
log();
log(`Measured ${started.slice(0, 16)} UTC on Node ${process.versions.node} (Dawn) with VK_ICD_FILENAMES=${icd}, by`);
log(`\`npm run bench:shard\` (bench/shard.ts), on ${cpus().length} cores (load average ${loadavg().map((v) => v.toFixed(2)).join(", ")} at the start; above ${cpus().length} means other jobs shared them):`);
log("absolute times are noisy, compare figures only within this run.");
log();
log("### Calibration (this run; what the planner uses)");
log();
const calRow = (name: string, c: DeviceCalibration) => [name, f(c.lookupGBs, 3), f(c.backwardSecPerElem * 1e9, 1), f(c.gemmGflops, 2), f(c.dispatchMs, 3), f(c.perDispatchMs, 3), f(c.transferLatencyMs, 3), f(c.transferGBs, 3)];
log(table(["adapter", "lookups GB/s (fwd)", "bwd+update ns/elem", "GEMM GFLOP/s", "dispatch round trip ms", "per extra dispatch ms", "host copy latency ms", "host copy GB/s"], [calRow(lvpCal.adapter, lvpCal), calRow(ssCal.adapter, ssCal)]));
log();

// ------------------------------------------------------------------ configs
interface Case {
  key: string;
  describe: string;
  shape: ModelShape;
}
const kaggleRows = DEFAULT_TABLE_ROWS.split("-").map(Number);
const KAGGLE: Case = {
  key: "kaggle",
  describe: `Kaggle-shaped: 26 tables (${kaggleRows.reduce((a, b) => a + b, 0)} rows, the CLI default) x d=16, bottom 13-512-256-64-16, top 367-512-256-1, batch 128, 1 index per bag, adagrad`,
  shape: { tableRows: kaggleRows, dim: 16, bottomMlp: [13, 512, 256, 64, 16], topMlp: [interactionWidth(26, 16, "dot", false), 512, 256, 1], interaction: "dot", optimizer: "adagrad", batchSize: 128, poolingFactor: 1 },
};
const PAPER_SCALED: Case = {
  key: "paper",
  describe: "paper benchmark config scaled to this machine: 8 tables x 100k rows (paper: 1M, /10) x d=64, 100 lookups per bag, batch 128 (paper: 2048, /16), bottom 512-512-64, top 1024-1024-1024-1 (as the paper), sgd",
  shape: { tableRows: new Array(8).fill(100_000), dim: 64, bottomMlp: [512, 512, 64], topMlp: [interactionWidth(8, 64, "dot", false), 1024, 1024, 1024, 1], interaction: "dot", optimizer: "sgd", batchSize: 128, poolingFactor: 100 },
};
const cases = QUICK ? [KAGGLE] : [KAGGLE, PAPER_SCALED];

interface DeviceSet {
  key: string;
  names: string[];
  cals: DeviceCalibration[];
}
const sets: DeviceSet[] = [
  { key: "1 x lavapipe", names: ["llvmpipe"], cals: [lvpCal] },
  { key: "1 x SwiftShader", names: ["swiftshader"], cals: [ssCal] },
  { key: "2 x lavapipe", names: ["llvmpipe", "llvmpipe"], cals: [lvpCal, lvpCal] },
  { key: "4 x lavapipe", names: ["llvmpipe", "llvmpipe", "llvmpipe", "llvmpipe"], cals: [lvpCal, lvpCal, lvpCal, lvpCal] },
  { key: "lavapipe + SwiftShader", names: ["llvmpipe", "swiftshader"], cals: [lvpCal, ssCal] },
].filter((s) => !ONLY || ONLY.split(",").includes(s.key));

/** What one case measured. */
interface Measured {
  samplesPerSec: number;
  /** Overlapped (normal) step, seconds (median). */
  stepSec: number;
  /** Serial profile (the fastest of the serial steps, phase by phase), the cost model's terms. */
  serial: MeasuredStep;
  /** Mean per-step seconds per phase of the serial step (all devices). */
  profile: Record<string, number>;
  /** Host-staged bytes moved per step (all devices). */
  bytesPerStep: number;
  /** Per-device queue busy seconds per overlapped step (host-observed). */
  busySec: number[];
  /** Rounds of one step's collectives, for the interconnect presets. */
  rounds: { sent: number[]; received: number[]; pairs?: [number, number][] }[];
  /** Host-staged collectives of the overlapped step, seconds. */
  hostStagedSec: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Per-device busy time from the host: every queue.submit is followed by an
 * onSubmittedWorkDone, and the device counts as busy from max(submit, end of
 * its previous work) until that resolves.
 */
function instrumentQueues(devices: GPUDevice[]): { busy: () => number[]; reset: () => void; restore: () => void } {
  const acc = devices.map(() => 0);
  const lastDone = devices.map(() => 0);
  const originals = devices.map((d) => d.queue.submit);
  devices.forEach((d, i) => {
    const orig = originals[i]!;
    d.queue.submit = function (this: GPUQueue, buffers: Iterable<GPUCommandBuffer>) {
      const t = performance.now();
      orig.call(d.queue, buffers);
      void d.queue.onSubmittedWorkDone().then(() => {
        const end = performance.now();
        const start = Math.max(t, lastDone[i]!);
        if (end > start) acc[i]! += end - start;
        lastDone[i] = Math.max(lastDone[i]!, end);
      });
    } as GPUQueue["submit"];
  });
  return { busy: () => acc.map((x) => x / 1e3), reset: () => acc.fill(0), restore: () => devices.forEach((d, i) => (d.queue.submit = originals[i]!)) };
}

const contextsBySet = new Map<string, GpuContext[]>();
async function contextsOf(s: DeviceSet): Promise<GpuContext[]> {
  let ctxs = contextsBySet.get(s.key);
  if (!ctxs) {
    ctxs = s.names.length === 1 ? [s.names[0] === "swiftshader" ? ssCtx! : lvpCtx!] : await createContexts(s.names, { label: `bench-${s.key}` });
    contextsBySet.set(s.key, ctxs);
  }
  return ctxs;
}

function configOf(c: Case): DlrmConfig {
  return resolveConfig({
    embeddingDim: c.shape.dim, tableRows: [...c.shape.tableRows], bottomMlp: [...c.shape.bottomMlp], topMlp: [...c.shape.topMlp],
    loss: "bce", optimizer: c.shape.optimizer, learningRate: 0.01, miniBatchSize: c.shape.batchSize,
  });
}

async function batchesOf(c: Case, n: number): Promise<Batch[]> {
  const source = randomSource({ numDense: c.shape.bottomMlp[0]!, tableRows: [...c.shape.tableRows], seed: 1, bagSize: c.shape.poolingFactor });
  const out: Batch[] = [];
  for await (const b of source.batches({ batchSize: c.shape.batchSize, limit: n })) out.push(b);
  return out;
}

/** Trains the plan (the sharded trainer, also for N = 1): serial steps (per-device phases) and overlapped steps (samples/s). */
async function measureTraining(c: Case, ctxs: GpuContext[], plan: ShardingPlan, batches: Batch[]): Promise<Measured> {
  const config = configOf(c);
  const m = new ShardedDlrm(ctxs, config, initParameters(config), plan);
  try {
    let k = 0;
    const next = () => batches[k++ % batches.length]!;
    for (let i = 0; i < 2; i++) await m.trainStep(next());
    await m.readLosses();
    const serialProfiles: StepProfile[] = [];
    for (let i = 0; i < SERIAL_STEPS; i++) serialProfiles.push(await m.profileStep(next()));
    await m.readLosses();
    const busy: number[][] = ctxs.map(() => []);
    const totals: number[] = [];
    let last: StepProfile | undefined;
    const probe = instrumentQueues(m.devices);
    for (let i = 0; i < STEPS; i++) {
      probe.reset();
      const t0 = performance.now();
      await m.trainStep(next());
      await Promise.all(m.devices.map((d) => d.queue.onSubmittedWorkDone()));
      totals.push((performance.now() - t0) / 1e3);
      await new Promise((r) => setTimeout(r, 0));
      probe.busy().forEach((b, j) => busy[j]!.push(b));
      last = m.lastProfile;
    }
    probe.restore();
    await m.readLosses();
    const profile: Record<string, number> = {};
    for (const key of Object.keys(serialProfiles[0]!.phases)) profile[key] = median(serialProfiles.map((p) => p.phases[key]!)) / 1e3;
    const all = last ? [...last.collectives.forward.rounds, ...last.collectives.backward.rounds, ...last.collectives.allreduce.rounds] : [];
    const step = median(totals);
    return {
      samplesPerSec: c.shape.batchSize / step,
      stepSec: step,
      serial: fastestStep(serialProfiles.map(measuredStep)),
      profile,
      bytesPerStep: last ? last.bytesSent.reduce((a, b) => a + b, 0) : 0,
      busySec: busy.map(median),
      rounds: all,
      hostStagedSec: last ? (last.collectives.forward.ms + last.collectives.backward.ms + last.collectives.allreduce.ms) / 1e3 : 0,
    };
  } finally {
    m.destroy();
  }
}

const presets: Interconnect[] = Object.values(INTERCONNECTS);
const hostIc = (cals: DeviceCalibration[]) => hostStaged(Math.max(...cals.map((c) => c.transferLatencyMs)), Math.min(...cals.map((c) => c.transferGBs)));
const err = (est: number, meas: number) => (100 * (est - meas)) / meas;
const worst = (xs: number[]) => xs.reduce((a, x) => (Math.abs(x) > Math.abs(a) ? x : a), 0);
const balanceOf = (xs: number[]) => Math.max(...xs) / (xs.reduce((a, b) => a + b, 0) / xs.length);

log(
  `Method. Every device here is a software adapter on the same 2 cores, so the planner runs in its **shared-host** mode ` +
    `(detected from the adapter names): a step costs the SUM of the devices' work plus the host-staged exchange plus the host's batch upload, ` +
    `not the slowest device. Per configuration: (1) plan with the microbenchmark calibration above; (2) ${TUNE_ROUNDS} tune rounds (src/shard/autotune.ts): ` +
    `2 warm-up steps, then ${TUNE_STEPS} real steps of the plan profiled device by device (ShardedDlrm.profileStep: each device's phases run alone; per phase the fastest of the steps, as other jobs' CPU time only adds); ` +
    `fit per adapter a lookup-work scale, an embedding-backward scale, an MLP-work scale and a cost per dispatch, with the dispatches as the real steps counted them ` +
    `(cost_model.ts fitStepCalibration, non-negative least squares over the phases of all rounds so far, each older round weighing half the next; the fixed and per-sample costs come apart through the dispatch counts and the rounds' different splits), ` +
    `each MLP phase's own scale, the dense optimizer's update as its own term, and the exchange's scale; ` +
    `re-plan with the fitted speeds (batch split in whole samples, then single tables moved off the busiest device while that lowers it by 2%; a device's batch moves at most max(4, half of it, batch / 8N) samples per round); ` +
    `(3) keep the round whose measured work was best balanced (N > 1) and estimate it with the final fit; ` +
    `(4) train that plan afresh: ${SERIAL_STEPS} serial steps (per-device work measured alone, the fastest of the ${SERIAL_STEPS} per phase: the "measured" per-device times below) and ${STEPS} normal ` +
    `overlapped steps (samples/s, the median). The kept plan's own tuning steps are part of the fit, so its estimate error is not a pure prediction; the measurement it is ` +
    `compared with is new steps. N = 1 rows use the same sharded trainer on one device.`,
);
log();

interface SummaryRow {
  cells: (string | number)[];
}
for (const c of cases) {
  log(`### ${c.key === "kaggle" ? "Kaggle-shaped config" : "Paper benchmark config (scaled)"}`);
  log();
  log(c.describe + ".");
  log();
  const summary: SummaryRow[] = [];
  const batches = await batchesOf(c, 8);
  const config = configOf(c);
  const init = initParameters(config);
  for (const s of sets) {
    const ctxs = await contextsOf(s);
    const sharedHost = s.names.every((n) => isSoftwareAdapter(n));
    const plannerOpts = { speeds: s.cals, memoryBytes: s.cals.map(() => 2 * GiB), names: s.names, estimate: { sharedHost } };
    const t0 = performance.now();
    const tuned = await tunePlan(ctxs, config, init, c.shape, plannerOpts, batches, { rounds: TUNE_ROUNDS, steps: TUNE_STEPS, log: (x) => console.log(`  [${c.key} ${s.key}] ${x}`) });
    const tuneSec = (performance.now() - t0) / 1e3;
    const est = tuned.result.estimate;
    const measured = await measureTraining(c, ctxs, tuned.result.plan, batches);
    const first = tuned.rounds[0]!;
    const dev = measured.serial.deviceSec;
    log(`#### ${s.key}`);
    log();
    log(
      table(
        ["device", "adapter", "placements", "batch", "lookups/step", "memory", "sent+recv/step", "est. work ms", "measured work ms (alone)", "error", "fitted lookup / emb. backward / MLP scale, µs per dispatch", "untuned est. ms (round 1)", "round 1 measured ms", "untuned error"],
        est.devices.map((d, i) => [
          i, s.names[i]!, d.shards.length > 6 ? `${d.shards.length} shards` : d.shards.join(", ") || "none", d.batch, Math.round(d.lookups), mib(d.memoryBytes), mib(d.sentBytes + d.receivedBytes),
          ms(d.deviceWorkSec), ms(dev[i]!), `${f(err(d.deviceWorkSec, dev[i]!), 1)}%`,
          `${f(tuned.calibration.fits[i]![0], 2)} / ${f(tuned.calibration.fits[i]![1], 2)} / ${f(tuned.calibration.fits[i]![2], 2)}, ${f(tuned.calibration.fits[i]![3] * 1e3, 0)}`,
          ms(first.estimate.devices[i]!.deviceWorkSec), ms(first.measured.deviceSec[i]!), `${f(err(first.estimate.devices[i]!.deviceWorkSec, first.measured.deviceSec[i]!), 1)}%`,
        ]),
      ),
    );
    log();
    // Phase by phase: where the estimate and the measurement part.
    log(`Phase by phase (each device's phases run alone; measured = the fastest of ${SERIAL_STEPS} serial steps per phase; est = the fitted model; dispatches = counted in the step):`);
    log();
    log(
      table(
        ["phase", ...est.devices.flatMap((_, i) => [`d${i} est ms`, `d${i} measured ms`, `d${i} error`, `d${i} dispatches`])],
        STEP_PHASES.map((ph, p) => [
          ph,
          ...est.devices.flatMap((d, i) => {
            const m = measured.serial.phases[i]!.sec[p]!;
            return [ms(d.phaseSec[p]!), ms(m), `${f(err(d.phaseSec[p]!, m), 1)}%`, String(measured.serial.phases[i]!.dispatches[p] ?? 0)];
          }),
        ]),
      ),
    );
    log();
    const modelled = presets.map((ic) => estimatePlan(tuned.result.plan, c.shape, s.cals, ic).collectiveSec);
    const onPreset = presets.map((ic) => collectiveSeconds(ic, measured.rounds));
    const a2aSec = (measured.profile["all-to-all forward"] ?? 0) + (measured.profile["all-to-all backward"] ?? 0);
    const exchSec = a2aSec + (measured.profile["MLP gradient allreduce"] ?? 0);
    const serialTotal = Object.values(measured.profile).reduce((a, b) => a + b, 0);
    const balMeasured = balanceOf(dev);
    const roundsLine = tuned.rounds.map((r, k) => `round ${k + 1}${r.plan === tuned.result.plan ? " (kept)" : ""}: shares ${r.plan.batchShare.map((x) => f(x, 3)).join("/")}, measured balance ${f(balanceOf(r.measured.deviceSec), 3)}`).join("; ");
    log(
      `Final plan: batch shares ${tuned.result.plan.batchShare.map((x) => f(x, 3)).join(" / ")}; estimated work balance ${f(est.workBalance, 3)}, **measured balance (slowest / mean device work, run alone) ${f(balMeasured, 3)}**` +
        `${s.names.length > 1 ? `; tuning (${f(tuneSec, 0)} s): ${roundsLine}` : ""}. ` +
        `Shared-host step: estimated ${ms(est.sharedHostStepSec)} ms (devices ${ms(est.devices.reduce((a, d) => a + d.deviceWorkSec, 0))} + exchange ${ms(est.exchangeSec)} + host ${ms(tuned.calibration.hostSec)}), ` +
        `measured serial ${ms(measured.serial.stepSec)} ms (${f(err(est.sharedHostStepSec, measured.serial.stepSec), 1)}%), measured overlapped ${ms(measured.stepSec)} ms (${f(err(est.sharedHostStepSec, measured.stepSec), 1)}%); ` +
        `devices-in-parallel estimate ${ms(estimatePlan(tuned.result.plan, c.shape, tuned.calibration.speeds).stepSec)} ms.`,
    );
    log();
    log(
      `Measured ${f(measured.samplesPerSec, 1)} samples/s (overlapped step ${ms(measured.stepSec)} ms); host-staged bytes sent per step ${mib(measured.bytesPerStep)} (all devices), ` +
        `collectives ${ms(measured.hostStagedSec)} ms host-staged in the overlapped step; ${est.rounds.length} rounds; the same rounds modelled on ${presets.map((ic, k) => `${ic.name} ${ms(onPreset[k]!)} ms`).join(", ")}.`,
    );
    log();
    log(`Step profile (serial step: phases waited for; compute phases = the devices run one after another; sum ${ms(serialTotal)} ms; **host-staged all-to-all ${f((100 * a2aSec) / Math.max(1e-12, serialTotal), 1)}% of the step**, all collectives ${f((100 * exchSec) / Math.max(1e-12, serialTotal), 1)}%):`);
    log();
    log(table(["phase", "ms", "share"], Object.entries(measured.profile).map(([k, v]) => [k, ms(v), `${f((100 * v) / serialTotal, 1)}%`])));
    log();
    summary.push({
      cells: [
        s.key, f(measured.samplesPerSec, 1), f(c.shape.batchSize / est.sharedHostStepSec, 1), `${f(err(est.sharedHostStepSec, measured.stepSec), 1)}%`,
        `${f(worst(est.devices.map((d, i) => err(d.deviceWorkSec, dev[i]!))), 1)}%`,
        `${f(worst(first.estimate.devices.map((d, i) => err(d.deviceWorkSec, first.measured.deviceSec[i]!))), 1)}%`,
        f(est.workBalance, 3), f(balMeasured, 3), f(s.names.length > 1 ? balanceOf(measured.busySec) : 1, 3),
        mib(measured.bytesPerStep), `${f((100 * a2aSec) / Math.max(1e-12, serialTotal), 1)}%`, ms(est.collectiveSec), ...modelled.map(ms),
      ],
    });
  }
  log(`Summary (${c.key}). "per-device error" = the final estimate of each device's work vs its measured work run alone (the largest by magnitude); "untuned" = the microbenchmark-only estimate of round 1's plan vs round 1's measurement; the step estimate is the shared-host sum vs the measured overlapped step; "busy" balance = queue busy time in the overlapped step (host-observed, inflated when devices wait for each other's CPU time):`);
  log();
  log(
    table(
      ["devices", "measured samples/s", "estimated samples/s (shared host)", "step estimate error", "per-device error (tuned)", "per-device error (untuned)", "est. balance", "measured balance (work alone)", "measured balance (busy)", "bytes moved/step", "host-staged a2a share", "collectives ms (host-staged, est.)", ...presets.map((p) => `modelled on ${p.name} ms`)],
      summary.map((r) => r.cells),
    ),
  );
  log();
}

// ------------------------------------------------------------------ projection
log("### Projection: the paper config on 8 ... 1024 devices (cost model, not measured)");
log();
const P = PAPER_PROJECTION;
log(
  `Assumptions: the paper's config, ${P.tables} tables x ${P.rows} rows x d=${P.dim}, ${P.poolingFactor} lookups per bag, bottom ${P.bottomMlp.join("-")}, top ${P.topMlp.join("-")}; ` +
    `weak scaling with ${P.perDeviceBatch} samples per device (the paper's 2048 on 8 devices); tables whole while N <= ${P.tables}, row-wise over all devices beyond ` +
    `(each device then sends every peer partial sums of all ${P.tables} tables); butterfly all-to-all forward and backward, ring allreduce of the MLP gradients; ` +
    "no overlap of compute and communication; the interconnect presets as in README (α-β per round).",
);
log();
const A100: DeviceSpeed = {
  // Lookups at TorchRec's HBM_MEM_BW (897 GiB/s, torchrec/distributed/planner/constants.py), 4 bytes per element;
  // backward + update taken as 2 x the forward (read the gradient row, read-modify-write the weights).
  lookupSecPerElem: 4 / (897 * GiB),
  backwardSecPerElem: 8 / (897 * GiB),
  // NVIDIA A100 datasheet: 19.5 TFLOP/s FP32 (no TF32).
  gemmGflops: 19_500,
  dispatchMs: 0.01,
  transferLatencyMs: 0,
  transferGBs: 1,
};
const Ns = [8, 16, 32, 64, 128, 256, 512, 1024];
for (const [label, sp] of [
  [`devices as fast as this run's lavapipe calibration`, lvpCal],
  ["A100-class devices (lookups at TorchRec's HBM_MEM_BW 897 GiB/s, backward 2x forward; GEMM 19.5 TFLOP/s FP32 from NVIDIA's A100 datasheet; 10 µs per sync)", A100],
] as [string, DeviceSpeed][]) {
  const ics = [...presets, hostIc([lvpCal])];
  log(`Modelled samples/s, ${label}:`);
  log();
  log(table(["devices", "global batch", ...ics.map((ic) => ic.name), `all-to-all share on ${ics[1]!.name}`], Ns.map((n) => {
    const r = ics.map((ic) => projectStep(P, n, sp, ic));
    const pcie = r[1]!;
    return [n, r[0]!.globalBatch, ...r.map((x) => f(x.samplesPerSec, x.samplesPerSec < 100 ? 2 : 0)), `${f((100 * pcie.allToAllSec) / pcie.stepSec, 1)}%`];
  })));
  log();
}
log(`Links: ${[...presets].map((ic) => `${ic.name} = ${ic.describe}`).join("; ")}; host = ${fmtLink({ alpha: lvpCal.transferLatencyMs / 1e3, bandwidth: lvpCal.transferGBs * 1e9 })} (lavapipe's measured host-staged copy).`);

for (const ctx of [lvpCtx, ssCtx, ...[...contextsBySet.values()].flat()] as GpuContext[]) ctx.destroy();
if (ONLY || QUICK) console.log("\na partial run (SHARD_SETS / SHARD_QUICK): BENCHMARKS.md not written");
else {
  writeSection("BENCHMARKS.md", "shard", out.join("\n"));
  console.log("\nwrote the 'shard' section of BENCHMARKS.md");
}
