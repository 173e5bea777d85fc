/**
 * Sharding benchmark (npm run bench:shard): Node (Dawn) with both Vulkan ICDs,
 * so lavapipe and SwiftShader run side by side in one process.
 *
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json:/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/shard.ts
 *
 * 1. calibrates both adapters in this run (the figures the planner uses);
 * 2. plans the Kaggle-shaped config and the paper benchmark config (tables
 *    scaled to this machine) on N = 1, 2, 4 lavapipe devices and on the
 *    lavapipe + SwiftShader pair, and prints the planner's per-device estimates;
 * 3. when the multi-device trainer is present (src/shard/trainer.ts), trains a
 *    few steps of each and compares measured with estimated per-device time;
 * 4. projects the paper config to 8 ... 1024 devices per interconnect preset.
 * Writes the section "shard" of BENCHMARKS.md. Env: SHARD_STEPS (measured
 * steps per case, default 4), SHARD_QUICK=1 (Kaggle config only).
 */
import { createContexts, type GpuContext } from "../src/gpu/context.ts";
import { DEFAULT_TABLE_ROWS } from "../src/cli/flags.ts";
import { interactionWidth } from "../src/model/config.ts";
import { calibrate, type DeviceCalibration } from "../src/shard/calibrate.ts";
import { type DeviceSpeed, estimatePlan, type ModelShape, PAPER_PROJECTION, projectStep } from "../src/shard/cost_model.ts";
import { collectiveSeconds, INTERCONNECTS, type Interconnect, hostStaged, fmtLink } from "../src/shard/interconnect.ts";
import { planSharding, type PlanResult } from "../src/shard/planner.ts";
import { type BenchPreset, benchTraining } from "../src/cli/commands/bench.ts";
import { table, writeSection } from "./report.ts";
import type { Batch } from "../src/data/batch.ts";
import { randomSource } from "../src/data/random.ts";
import { type DlrmConfig, resolveConfig } from "../src/model/config.ts";
import { initParameters, type StateDict } from "../src/model/params.ts";
import type { ShardingPlan } from "../src/shard/plan.ts";
import { envNumber } from "./util.ts";

const STEPS = envNumber("SHARD_STEPS", 3);
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
log("`npm run bench:shard` (bench/shard.ts). The machine has 2 cores and was shared with other jobs while this ran:");
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
];

/** What the trainer measured for one case (filled by measureTraining when the trainer exists). */
interface Measured {
  samplesPerSec: number;
  /** Mean per-step seconds per phase. */
  profile: Record<string, number>;
  /** Host-staged bytes moved per step (all devices). */
  bytesPerStep: number;
  /** Per-device seconds from the step's start until its queue was idle. */
  perDeviceSec: number[];
  /** Per-device queue busy seconds per step (host-observed). */
  busySec: number[];
  /** Rounds of one step's collectives, for the interconnect presets. */
  rounds: { sent: number[]; received: number[]; pairs?: [number, number][] }[];
  hostStagedSec: number;
}

/** The single-device trainer (DlrmModel.trainStep through `bench` command's helper) for N = 1: same kernels, no collectives. */
async function measureSingle(c: Case, ctx: GpuContext): Promise<Measured> {
  const preset: BenchPreset = {
    name: c.key, describe: c.describe, tableRows: [...c.shape.tableRows], dim: c.shape.dim, bottom: [...c.shape.bottomMlp], top: c.shape.topMlp.slice(1),
    bagSize: c.shape.poolingFactor, batchSize: c.shape.batchSize,
  };
  const r = await benchTraining(ctx, preset, { steps: STEPS, warmup: 2, profileSteps: 0, optimizer: c.shape.optimizer });
  const sec = r.stepMs / 1e3;
  return { samplesPerSec: r.samplesPerSec, profile: { step: sec }, bytesPerStep: 0, perDeviceSec: [sec], busySec: [sec], rounds: [], hostStagedSec: 0 };
}

/** The multi-device trainer's surface this bench uses (src/shard/model.ts, loaded at run time: it may not exist yet). */
interface CollectiveStatsLike {
  rounds: { sent: number[]; received: number[]; pairs: [number, number][]; ms: number }[];
  ms: number;
}
interface StepProfileLike {
  totalMs: number;
  phases: Record<string, number>;
  collectives: { forward: CollectiveStatsLike; backward: CollectiveStatsLike; allreduce: CollectiveStatsLike };
  bytesSent: number[];
}
interface ShardedLike {
  trainStep(b: Batch): Promise<void>;
  profileStep(b: Batch): Promise<StepProfileLike>;
  readLosses(): Promise<number[]>;
  lastProfile: StepProfileLike | undefined;
  devices: GPUDevice[];
  destroy(): void;
}
type ShardedCtor = new (ctxs: readonly GpuContext[], config: DlrmConfig, init: StateDict, plan: ShardingPlan) => ShardedLike;

let Sharded: ShardedCtor | undefined;
try {
  const path = "../src/shard/model.ts";
  Sharded = ((await import(/* @vite-ignore */ path)) as { ShardedDlrm?: ShardedCtor }).ShardedDlrm;
} catch {
  Sharded = undefined;
}
const contextsBySet = new Map<string, GpuContext[]>();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Per-device busy time from the host: every queue.submit is followed by an
 * onSubmittedWorkDone, and the device counts as busy from max(submit, end of
 * its previous work) until that resolves. Returns a reader of the seconds
 * accumulated per device and a function that removes the instrumentation.
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
  return {
    busy: () => acc.map((x) => x / 1e3),
    reset: () => acc.fill(0),
    restore: () => devices.forEach((d, i) => (d.queue.submit = originals[i]!)),
  };
}

async function measureTraining(c: Case, s: DeviceSet, planned: PlanResult): Promise<Measured | undefined> {
  if (s.names.length === 1) return measureSingle(c, s.names[0] === "swiftshader" ? ssCtx! : lvpCtx!);
  if (!Sharded) return undefined;
  let ctxs = contextsBySet.get(s.key);
  if (!ctxs) {
    ctxs = await createContexts(s.names, { label: `bench-${s.key}` });
    contextsBySet.set(s.key, ctxs);
  }
  const config = resolveConfig({
    embeddingDim: c.shape.dim, tableRows: [...c.shape.tableRows], bottomMlp: [...c.shape.bottomMlp], topMlp: [...c.shape.topMlp],
    loss: "bce", optimizer: c.shape.optimizer, learningRate: 0.01, miniBatchSize: c.shape.batchSize,
  });
  const source = randomSource({ numDense: c.shape.bottomMlp[0]!, tableRows: [...c.shape.tableRows], seed: 1, bagSize: c.shape.poolingFactor });
  const batches: Batch[] = [];
  const warm = 2, serialSteps = Math.max(1, Math.floor(STEPS / 2));
  for await (const b of source.batches({ batchSize: c.shape.batchSize, limit: warm + serialSteps + STEPS })) batches.push(b);
  const m = new Sharded(ctxs, config, initParameters(config), planned.plan);
  try {
    let k = 0;
    for (let i = 0; i < warm; i++) await m.trainStep(batches[k++]!);
    await m.readLosses();
    const serial: StepProfileLike[] = [];
    for (let i = 0; i < serialSteps; i++) serial.push(await m.profileStep(batches[k++]!));
    await m.readLosses();
    // Overlapped steps: per device, its queue's busy time (host-observed) and the time until its queue is idle.
    const perDevice: number[][] = ctxs.map(() => []);
    const busy: number[][] = ctxs.map(() => []);
    const totals: number[] = [];
    let last: StepProfileLike | undefined;
    const probe = instrumentQueues(m.devices);
    for (let i = 0; i < STEPS; i++) {
      probe.reset();
      const t0 = performance.now();
      await m.trainStep(batches[k++]!);
      const done = await Promise.all(m.devices.map((d) => d.queue.onSubmittedWorkDone().then(() => performance.now() - t0)));
      await new Promise((r) => setTimeout(r, 0));
      probe.busy().forEach((b, j) => busy[j]!.push(b));
      done.forEach((t, j) => perDevice[j]!.push(t / 1e3));
      totals.push(Math.max(...done) / 1e3);
      last = m.lastProfile;
    }
    probe.restore();
    await m.readLosses();
    const profile: Record<string, number> = {};
    for (const key of Object.keys(serial[0]!.phases)) profile[key] = median(serial.map((p) => p.phases[key]!)) / 1e3;
    const all = last ? [...last.collectives.forward.rounds, ...last.collectives.backward.rounds, ...last.collectives.allreduce.rounds] : [];
    const hostStagedSec = last ? (last.collectives.forward.ms + last.collectives.backward.ms + last.collectives.allreduce.ms) / 1e3 : 0;
    const step = median(totals);
    return {
      samplesPerSec: c.shape.batchSize / step,
      profile,
      bytesPerStep: last ? last.bytesSent.reduce((a, b) => a + b, 0) : 0,
      perDeviceSec: perDevice.map(median),
      busySec: busy.map(median),
      rounds: all,
      hostStagedSec,
    };
  } finally {
    m.destroy();
  }
}

const presets: Interconnect[] = Object.values(INTERCONNECTS);
const hostIc = (cals: DeviceCalibration[]) => hostStaged(Math.max(...cals.map((c) => c.transferLatencyMs)), Math.min(...cals.map((c) => c.transferGBs)));

let trainerMissing = false;
for (const c of cases) {
  log(`### ${c.key === "kaggle" ? "Kaggle-shaped config" : "Paper benchmark config (scaled)"}`);
  log();
  log(c.describe + ".");
  log();
  const summary: (string | number)[][] = [];
  for (const s of sets) {
    const plan = planSharding(c.shape, { speeds: s.cals, memoryBytes: s.cals.map(() => 2 * GiB), names: s.names });
    const est = plan.estimate;
    const measured = await measureTraining(c, s, plan);
    if (!measured) trainerMissing = true;
    log(`#### ${s.key}`);
    log();
    log(
      table(
        ["device", "adapter", "placements", "batch", "lookups/step", "memory", "sent+recv/step", "est. compute ms", "measured busy ms", "error", "est. transfer ms (host-staged)", "est. step ms", "measured step ms (queue idle)", "error"],
        est.devices.map((d, i) => [
          i, s.names[i]!, d.shards.length > 6 ? `${d.shards.length} shards` : d.shards.join(", ") || "none", d.batch, Math.round(d.lookups), mib(d.memoryBytes), mib(d.sentBytes + d.receivedBytes),
          ms(d.computeSec), measured ? ms(measured.busySec[i]!) : "-", measured ? pct(d.computeSec, measured.busySec[i]!) : "-",
          ms(d.transferSec), ms(d.totalSec),
          measured ? ms(measured.perDeviceSec[i]!) : "-", measured ? pct(d.totalSec, measured.perDeviceSec[i]!) : "-",
        ]),
      ),
    );
    log();
    const modelled = presets.map((ic) => estimatePlan(plan.plan, c.shape, s.cals, ic).collectiveSec);
    log(
      `batch shares ${plan.plan.batchShare.map((x) => f(x, 3)).join(" / ")}; estimated balance (slowest / mean) ${f(est.balance, 3)}; ` +
        `collectives per step: ${est.rounds.length} rounds, ${ms(est.collectiveSec)} ms host-staged (estimated), modelled ${presets.map((ic, k) => `${ic.name} ${ms(modelled[k]!)} ms`).join(", ")}.`,
    );
    log();
    let measuredBalance = NaN;
    if (measured && s.names.length > 1) {
      const per = measured.busySec;
      measuredBalance = Math.max(...per) / (per.reduce((a, b) => a + b, 0) / per.length);
      const stepSec = c.shape.batchSize / measured.samplesPerSec;
      const onPreset = presets.map((ic) => collectiveSeconds(ic, measured.rounds));
      const a2aSec = (measured.profile["all-to-all forward"] ?? 0) + (measured.profile["all-to-all backward"] ?? 0);
      const serialTotal = Object.values(measured.profile).reduce((a, b) => a + b, 0);
      log(
        `Measured: ${f(measured.samplesPerSec, 1)} samples/s (step ${ms(stepSec)} ms, overlapped schedule); measured balance (busiest / mean device queue busy time) ${f(measuredBalance, 3)}; ` +
          `host-staged bytes sent per step ${mib(measured.bytesPerStep)} (all devices); collectives ${ms(measured.hostStagedSec)} ms host-staged in the overlapped step, ` +
          `the same rounds modelled on ${presets.map((ic, k) => `${ic.name} ${ms(onPreset[k]!)} ms`).join(", ")}.`,
      );
      log();
      log(`Step profile (serial mode, every phase waited for; all devices; sum ${ms(serialTotal)} ms; all-to-all share ${f((100 * a2aSec) / Math.max(1e-12, serialTotal), 1)}%):`);
      log();
      log(table(["phase", "ms", "share"], Object.entries(measured.profile).map(([k, v]) => [k, ms(v), `${f((100 * v) / serialTotal, 1)}%`])));
      log();
    }
    summary.push([
      s.key, measured ? f(measured.samplesPerSec, 1) : "-", f(c.shape.batchSize / est.stepSec, 1), f(c.shape.batchSize / est.sharedHostStepSec, 1), f(est.balance, 3), Number.isFinite(measuredBalance) ? f(measuredBalance, 3) : "-",
      measured ? `${f(Math.max(...measured.busySec.map((m, i) => Math.abs(est.devices[i]!.computeSec - m) / m)) * 100, 1)}%` : "-",
      measured ? `${f((100 * (est.sharedHostStepSec - c.shape.batchSize / measured.samplesPerSec)) / (c.shape.batchSize / measured.samplesPerSec), 1)}%` : "-",
      ms(est.collectiveSec), ...modelled.map(ms),
    ]);
  }
  log(`Summary (${c.key}). Per device, "busy" = the time its queue had work (host-observed: each submit until its onSubmittedWorkDone, overlaps merged), compared with the estimated compute; "queue idle" = from the step's start until its queue was idle, compared with the estimated step (overlapped schedule, medians of ${STEPS} steps); N = 1 rows use the single-device trainer. The planner's estimate assumes independent devices; here every device is a software adapter on the same 2 shared cores, so the "devices share the CPU" estimate (sum of the devices' compute + the slowest transfer) is the one that describes this machine:`);
  log();
  log(table(["devices", "measured samples/s", "estimated samples/s (devices in parallel)", "estimated samples/s (devices share the CPU)", "est. balance", "measured balance (busy)", "largest per-device \\|compute estimate error\\|", "shared-CPU step estimate error", "collectives ms (host-staged, est.)", ...presets.map((p) => `modelled on ${p.name} ms`)], summary));
  log();
}
if (trainerMissing && !Sharded) {
  log("**Not measured:** the multi-device trainer (issue 9, shard-core) was not on main when this ran, so the");
  log("measured samples/s, step profile, bytes moved, host-staged all-to-all share and the planner's estimate-vs-measured");
  log("error are missing; the tables above are the planner's estimates from this run's calibration.");
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
writeSection("BENCHMARKS.md", "shard", out.join("\n"));
console.log("\nwrote the 'shard' section of BENCHMARKS.md");
