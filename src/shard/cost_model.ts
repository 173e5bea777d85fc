/**
 * The planner's cost model: seconds, bytes and memory of a sharding plan on
 * devices of measured speed (src/shard/calibrate.ts). Pure arithmetic, no GPU.
 *
 * Per device and training step (global batch B, L indices per bag, its MLP
 * slice B_d = splitBatch share):
 *   embedding  lookups x cols elements for each shard it holds, each priced
 *              at the device's forward + backward(+update) seconds per element
 *              (table/column shards look up the whole global batch, a row
 *              shard the fraction of lookups landing in its rows - uniform
 *              over rows is assumed - and a data-parallel replica only its
 *              own slice)
 *   mlp        3 x the forward FLOPs of the bottom MLP, interaction and top
 *              MLP for B_d samples (forward, dX, dW) at the device's GEMM rate
 *   overhead   the device's dispatch round trip x the host synchronisations of
 *              a step (4 + one per collective round)
 *   transfer   all-to-all (pooled vectors forward, their gradients backward)
 *              and ring allreduce (MLP gradients, data-parallel tables), per
 *              round α + max(sent, received)/β on the chosen interconnect
 *              (default: this machine's measured host-staged copy)
 * The step of the plan is the slowest device (collectives synchronise);
 * balance = slowest / mean.
 *
 * Shared host (`sharedHost`): software adapters (lavapipe, SwiftShader) are
 * the host's CPU cores, so N of them on one machine do not run in parallel:
 * the step is then the SUM of the devices' work plus the exchange (host-staged
 * rounds, one after another) plus the host's per-step work (batch routing and
 * upload). A device's work is what it takes run alone: its phases' work
 * (lookups, bottom MLP forward, top MLP forward + backward, bottom MLP
 * backward, embedding backward + updates) + one queue round trip per phase +
 * a cost per dispatch, the dispatches counted as the real steps on that
 * adapter made them (DeviceSpeed.dispatchCounts; the modelled counts are
 * several times off where the GEMM runs as K slices). `fitStepCalibration`
 * calibrates that end to end from real steps profiled device by device
 * (ShardedDlrm.profileStep): per adapter a scale of the lookup work, of the
 * embedding backward work and of the MLP work and the cost per dispatch
 * (non-negative least squares over the phases of all steps given), the
 * exchange's scale against its α-β model, and the host's time per step;
 * then, the cost per dispatch fixed, each MLP phase's own scale
 * (DeviceSpeed.mlpPhaseScale). Fixed and per-sample costs come apart through the dispatch counts within a
 * step and through steps at different batch splits.
 */
import type { DlrmConfig } from "../model/config.ts";
import { type Shard, type ShardingPlan, type ShardKind, splitBatch } from "./plan.ts";
import { allreduceRounds, type AllreduceLink, type AllreduceSchedule, chooseAllreduce, transferTraffic } from "./collectives.ts";
import { butterflyRounds, collectiveSeconds, hostStaged, type Interconnect, PCIE4, ringAllreduceRounds, type RoundTraffic, uniformButterflyRounds } from "./interconnect.ts";

/** What the cost model needs of a model. */
export interface ModelShape {
  tableRows: readonly number[];
  dim: number;
  bottomMlp: readonly number[];
  /** Top MLP including its input width (as DlrmConfig.topMlp). */
  topMlp: readonly number[];
  interaction: "dot" | "cat";
  optimizer: "sgd" | "adagrad" | "rwsadagrad";
  batchSize: number;
  /** Mean indices per bag. */
  poolingFactor: number;
}

/** What the cost model needs of a device (a DeviceCalibration has these). */
export interface DeviceSpeed {
  lookupSecPerElem: number;
  backwardSecPerElem: number;
  gemmGflops: number;
  dispatchMs: number;
  /** Cost of each dispatch of a step beyond the first (0 when not measured). */
  perDispatchMs?: number;
  transferLatencyMs: number;
  transferGBs: number;
  /**
   * Dispatches of a step's phases as a real step on this adapter counted them
   * (fitStepCalibration learns them from ShardedDlrm.profileStep): the kernels
   * per phase differ by adapter (GEMM variants and K slices from the adapter
   * tuning tables), so the modelled counts (dispatchesPerPhase) can be several
   * times off. Absent: the modelled counts.
   */
  dispatchCounts?: DispatchCounts;
  /**
   * Per MLP phase (bottom forward, top forward + backward, bottom backward), the
   * measured time of its work over the one `gemmGflops` prices (fitStepCalibration;
   * default 1): an adapter's kernels are not equally efficient at every layer
   * shape (SwiftShader ran the Kaggle bottom MLP several times faster per FLOP
   * than its top MLP), so one GEMM rate misprices the phases against each other.
   */
  mlpPhaseScale?: [number, number, number];
  /** Dense optimizer update, seconds per MLP parameter (default: backwardSecPerElem; fitted by fitStepCalibration). */
  denseSecPerParam?: number;
}

/** Measured dispatches of a device's phases (see DeviceSpeed.dispatchCounts). */
export interface DispatchCounts {
  /** Lookups phase of a device holding shards. */
  lookups?: number;
  /** bottom MLP forward, top MLP forward + backward, bottom MLP backward of a device with samples. */
  mlp?: [number, number, number];
  /** The dense optimizer (every device runs it: the update phase of a device without shards). */
  dense?: number;
  /** The embedding backward + updates phase of a device holding shards (dense optimizer included). */
  embeddingUpdate?: number;
}

/** Options of an estimate beyond the plan and the devices. */
export interface EstimateOptions {
  /** The devices share the host's cores (software adapters): step = sum of the devices' work + exchange + host. */
  sharedHost?: boolean;
  /** Measured / modelled time of the collectives (from fitStepCalibration; default 1). */
  exchangeScale?: number;
  /** Host work per step (batch routing and upload), seconds (from fitStepCalibration; default 0). */
  hostSec?: number;
  /** The MLP-gradient allreduce's schedule, as the trainer chooses it (collectives.ts chooseAllreduce; default "auto"). */
  allreduce?: AllreduceSchedule;
  /** The link "auto" chooses by (default PCIe 4.0 x16, the trainer's default). */
  allreduceLink?: AllreduceLink;
}

/** The compute phases of a sharded step, as ShardedDlrm.profileStep names them. */
export const STEP_PHASES = ["lookups", "bottom MLP forward", "top MLP forward + backward", "bottom MLP backward", "embedding backward + updates"] as const;

/** Adapters that are the host's CPU (their devices share its cores): lavapipe/llvmpipe, SwiftShader, WARP, or a fallback adapter. */
export function isSoftwareAdapter(name: string, isFallback = false): boolean {
  return isFallback || /llvmpipe|lavapipe|swiftshader|softpipe|warp|microsoft basic render/i.test(name);
}

/**
 * Modelled dispatches of each compute phase (STEP_PHASES order) of a device's
 * step: lookups (bag forward per set, 2), bottom MLP forward (one per layer),
 * top MLP forward + backward (interaction, a forward and two backward GEMMs
 * per layer, loss, two routes), bottom MLP backward (two per layer), embedding
 * backward + updates (keys, a radix sort of ceil(bits/8) passes of histogram +
 * scan + scatter, heads, scan, segments, ranges, update; then the dense
 * optimizer, two per layer). A device with no samples runs no MLP phases.
 * The end-to-end fit (fitStepCalibration) prices these modelled counts, so a
 * constant miscount is absorbed into its cost per dispatch.
 */
export function dispatchesPerPhase(shape: ModelShape, hasShards: boolean, hasSamples = true): number[] {
  const lb = shape.bottomMlp.length - 1;
  const lt = shape.topMlp.length - 1;
  const rows = shape.tableRows.reduce((a, b) => a + b, 0);
  const passes = Math.ceil(Math.ceil(Math.log2(rows + 1)) / 8);
  const m = hasSamples ? 1 : 0;
  return [hasShards ? 2 : 0, m * lb, m * (3 * lt + 4), m * 2 * lb, (hasShards ? 4 + 3 * passes + 6 : 0) + 2 * (lb + lt)];
}

/** Modelled dispatches of one training step on a device (the sum of dispatchesPerPhase). */
export function dispatchesPerStep(shape: ModelShape, hasShards: boolean, hasSamples = true): number {
  return dispatchesPerPhase(shape, hasShards, hasSamples).reduce((a, b) => a + b, 0);
}

/**
 * Dispatches of each phase (STEP_PHASES order) of a device on adapter speed
 * `sp`: the counts measured on that adapter where known (DeviceSpeed.dispatchCounts),
 * else the modelled ones (dispatchesPerPhase).
 */
export function deviceDispatches(shape: ModelShape, sp: DeviceSpeed, hasShards: boolean, hasSamples = true): number[] {
  const m = dispatchesPerPhase(shape, hasShards, hasSamples);
  const c = sp.dispatchCounts;
  if (!c) return m;
  const lb = shape.bottomMlp.length - 1, lt = shape.topMlp.length - 1;
  const denseModel = 2 * (lb + lt);
  const dense = c.dense ?? denseModel;
  const out = [...m];
  if (hasShards && c.lookups !== undefined) out[0] = c.lookups;
  if (hasSamples && c.mlp) [out[1], out[2], out[3]] = c.mlp;
  if (hasShards) out[4] = c.embeddingUpdate ?? m[4]! - denseModel + dense;
  else out[4] = dense;
  return out;
}

/** What the measured phases of devices in state (shards, samples) say about an adapter's dispatch counts. */
export function learnDispatchCounts(seen: readonly { hasShards: boolean; hasSamples: boolean; dispatches: readonly number[] }[]): DispatchCounts | undefined {
  const c: DispatchCounts = {};
  for (const x of seen) {
    if (x.dispatches.length !== STEP_PHASES.length || x.dispatches.every((v) => v === 0)) continue;
    if (x.hasShards) {
      c.lookups ??= x.dispatches[0]!;
      c.embeddingUpdate ??= x.dispatches[4]!;
    } else c.dense ??= x.dispatches[4]!;
    if (x.hasSamples) c.mlp ??= [x.dispatches[1]!, x.dispatches[2]!, x.dispatches[3]!];
  }
  return Object.keys(c).length ? c : undefined;
}

export function shapeFromConfig(config: DlrmConfig, poolingFactor: number, batchSize = config.miniBatchSize): ModelShape {
  return {
    tableRows: config.tableRows,
    dim: config.embeddingDim,
    bottomMlp: config.bottomMlp,
    topMlp: config.topMlp,
    interaction: config.interaction,
    optimizer: config.optimizer,
    batchSize,
    poolingFactor,
  };
}

const F32 = 4;

/** Optimizer state values per embedding row of `cols` columns. */
export function stateValuesPerRow(optimizer: ModelShape["optimizer"], cols: number): number {
  return optimizer === "adagrad" ? cols : optimizer === "rwsadagrad" ? 1 : 0;
}

/** Bytes of an embedding shard of rows x cols: weights plus optimizer state. */
export function shardBytes(optimizer: ModelShape["optimizer"], rows: number, cols: number): number {
  return rows * (cols + stateValuesPerRow(optimizer, cols)) * F32;
}

function layers(widths: readonly number[]): [number, number][] {
  return widths.slice(1).map((o, i) => [widths[i]!, o]);
}

/** MLP parameters (weights + biases) of the bottom and top MLPs. */
export function mlpParams(s: ModelShape): number {
  return [...layers(s.bottomMlp), ...layers(s.topMlp)].reduce((a, [i, o]) => a + i * o + o, 0);
}

/** Forward FLOPs per sample of the MLPs and the interaction. */
export function forwardFlopsPerSample(s: ModelShape): number {
  const mlp = [...layers(s.bottomMlp), ...layers(s.topMlp)].reduce((a, [i, o]) => a + 2 * i * o, 0);
  const f = s.tableRows.length + 1;
  const inter = s.interaction === "dot" ? 2 * f * f * s.dim : 0;
  return mlp + inter;
}

/** Forward FLOPs per sample of the bottom MLP alone. */
export function bottomFlopsPerSample(s: ModelShape): number {
  return layers(s.bottomMlp).reduce((a, [i, o]) => a + 2 * i * o, 0);
}

/**
 * Work seconds of each compute phase (STEP_PHASES order) of a device that
 * looks up `elems` f32 elements and runs `batch` MLP samples, split into the
 * embedding part and the MLP part (no overheads): lookups, bottom forward
 * (1x bottom), top forward + backward (3x top + interaction), bottom backward
 * (2x bottom), embedding backward + updates.
 */
export function phaseWork(shape: ModelShape, elems: number, batch: number, sp: DeviceSpeed): { emb: number; mlp: number; dense: number }[] {
  const bottom = bottomFlopsPerSample(shape);
  const top = forwardFlopsPerSample(shape) - bottom;
  const g = sp.gemmGflops * 1e9;
  const k = sp.mlpPhaseScale ?? [1, 1, 1];
  return [
    { emb: elems * sp.lookupSecPerElem, mlp: 0, dense: 0 },
    { emb: 0, mlp: (k[0] * bottom * batch) / g, dense: 0 },
    { emb: 0, mlp: (k[1] * 3 * top * batch) / g, dense: 0 },
    { emb: 0, mlp: (k[2] * 2 * bottom * batch) / g, dense: 0 },
    { emb: elems * sp.backwardSecPerElem, mlp: 0, dense: denseUpdateSec(shape, sp) },
  ];
}

/**
 * The dense optimizer's work in the update phase: every device applies it to
 * its whole MLP replica whatever its samples or shards (memory-bound: priced
 * per parameter, by default at the embedding backward's per-element rate).
 * Without this term the fit put the dense update into the embedding backward's
 * scale (lavapipe's came out 40x), and moving tables off a device looked like
 * it saved the dense update too.
 */
export function denseUpdateSec(shape: ModelShape, sp: DeviceSpeed): number {
  return mlpParams(shape) * (sp.denseSecPerParam ?? sp.backwardSecPerElem);
}

/** Seconds of MLP work per sample on a device (forward and backward, all MLP phases). */
export function mlpSecPerSample(shape: ModelShape, sp: DeviceSpeed): number {
  return phaseWork(shape, 0, 1, sp).reduce((a, w) => a + w.mlp, 0);
}

/** One device's phases of a real step, measured alone (ShardedDlrm.profileStep's devicePhases). */
export interface MeasuredPhases {
  /** Seconds per phase, STEP_PHASES order. */
  sec: number[];
  /** Dispatches per phase. */
  dispatches: number[];
}

/** Least squares y ~ X c with c >= 0 (every subset of columns tried; X has few columns). */
function nnls(X: number[][], y: number[]): number[] {
  const k = X[0]?.length ?? 0;
  let best: { c: number[]; r: number } = { c: new Array<number>(k).fill(0), r: y.reduce((a, v) => a + v * v, 0) };
  for (let mask = 1; mask < 1 << k; mask++) {
    const cols = [...Array(k).keys()].filter((j) => mask & (1 << j));
    const m = cols.length;
    // Normal equations A c = b.
    const A = cols.map((a) => cols.map((b) => X.reduce((s, row) => s + row[a]! * row[b]!, 0)));
    const b = cols.map((a) => X.reduce((s, row, i) => s + row[a]! * y[i]!, 0));
    // Gaussian elimination.
    const M = A.map((row, i) => [...row, b[i]!]);
    let ok = true;
    for (let i = 0; i < m && ok; i++) {
      let piv = i;
      for (let r = i + 1; r < m; r++) if (Math.abs(M[r]![i]!) > Math.abs(M[piv]![i]!)) piv = r;
      if (Math.abs(M[piv]![i]!) < 1e-30) ok = false;
      else {
        [M[i], M[piv]] = [M[piv]!, M[i]!];
        for (let r = 0; r < m; r++) {
          if (r === i) continue;
          const f = M[r]![i]! / M[i]![i]!;
          for (let c = i; c <= m; c++) M[r]![c]! -= f * M[i]![c]!;
        }
      }
    }
    if (!ok) continue;
    const sol = cols.map((_, i) => M[i]![m]! / M[i]![i]!);
    if (sol.some((v) => !(v >= 0))) continue;
    const c = new Array<number>(k).fill(0);
    cols.forEach((j, i) => (c[j] = sol[i]!));
    const r = y.reduce((acc, v, i) => acc + (v - X[i]!.reduce((a, x, j) => a + x * c[j]!, 0)) ** 2, 0);
    if (r < best.r) best = { c, r };
  }
  return best.c;
}

/** Smallest spread of an adapter's batch sizes over the fitted steps, as a fraction of their mean, for the joint per-phase fit. */
export const LINE_SPREAD = 0.25;

/** What one real step taught the cost model. */
export interface StepCalibration {
  /** The devices' speeds refitted: lookups/backward and GEMM scaled by the measured work, perDispatchMs measured. */
  speeds: DeviceSpeed[];
  /** Per device: [lookup work scale, embedding backward work scale, MLP work scale, ms per dispatch] as fitted. */
  fits: [number, number, number, number][];
  /** Measured / modelled seconds of the step's collectives. */
  exchangeScale: number;
  /** Host work per step, seconds. */
  hostSec: number;
}

/** One profiled step of a plan: each device's phases run alone, the exchange and the host's work. */
export interface StepSample {
  plan: ShardingPlan;
  measured: readonly MeasuredPhases[];
  /** Seconds of the step's collectives (host-staged, serial). */
  exchangeSec: number;
  /** Seconds of host work (routing and upload of the batch). */
  hostSec: number;
  /** Weight of this step in the fit (default 1). */
  weight?: number;
}

/**
 * Fits the cost model to real steps (see the header): for device i, every
 * measured phase p of every sample ~ a_i emb_p + b_i mlp_p + o_i dispatches_p
 * + one round trip (its calibrated dispatchMs), with the work priced at the
 * given (microbenchmark) speeds. Devices without embedding work (or MLP
 * samples) in every sample keep a scale of 1 for that part. Several samples
 * (e.g. the plans of successive re-plans) make the fit better determined.
 */
export function fitStepCalibration(samples: readonly StepSample[], shape: ModelShape, speeds: readonly DeviceSpeed[], interconnect?: Interconnect, groups?: readonly string[]): StepCalibration {
  const ests = samples.map((x) => estimatePlan(x.plan, shape, speeds, interconnect));
  const fits: [number, number, number, number][] = [];
  // Devices of one group (the same adapter) are fitted together: same adapter, same speed.
  const group = (i: number) => groups?.[i] ?? String(i);
  const out = speeds.map((sp0, i) => {
    const mine = speeds.map((_, j) => j).filter((j) => group(j) === group(i));
    // The round trip cannot exceed the fastest phase measured (a microbenchmark taken under load can).
    const fastest = Math.min(...mine.flatMap((j) => samples.flatMap((x) => x.measured[j]!.sec)));
    // The dispatch counts the real steps on this adapter made (the modelled ones are only a fallback).
    const dispatchCounts = learnDispatchCounts(mine.flatMap((j) => samples.map((x, k) => ({ hasShards: ests[k]!.devices[j]!.shards.length > 0, hasSamples: ests[k]!.devices[j]!.batch > 0, dispatches: x.measured[j]!.dispatches }))));
    const sp = { ...sp0, dispatchMs: Math.min(sp0.dispatchMs, Number.isFinite(fastest) ? fastest * 1e3 : sp0.dispatchMs), dispatchCounts: dispatchCounts ?? sp0.dispatchCounts };
    const X: number[][] = [];
    const y: number[] = [];
    // Row weights: a step's `weight` (default 1), e.g. more for recent rounds when the machine's speed drifts.
    const W: number[] = [];
    for (const j of mine) {
      samples.forEach((x, k) => {
        const d = ests[k]!.devices[j]!;
        const m = x.measured[j]!;
        const measuredCounts = m.dispatches.length === STEP_PHASES.length && m.dispatches.some((v) => v > 0);
        const counts = measuredCounts ? m.dispatches : deviceDispatches(shape, sp, d.shards.length > 0, d.batch > 0);
        // Lookups and the embedding backward get a scale each: their microbenchmarks' ratio is not the model's.
        phaseWork(shape, d.lookupElems, d.batch, sp).forEach((w, p) => {
          X.push([p === 0 ? w.emb : 0, p === 0 ? 0 : w.emb, w.mlp, counts[p]! / 1e3, w.dense]);
          y.push(Math.max(0, m.sec[p]! - sp.dispatchMs / 1e3));
          W.push(Math.sqrt(x.weight ?? 1));
        });
      });
    }
    // The dense update is told apart from the embedding backward only when the update phase was seen with
    // different embedding work (e.g. a device without shards); else it keeps its prior (scale 1).
    const updateElems = new Set(X.filter((_, r) => r % STEP_PHASES.length === 4).map((row) => row[1]!));
    const has = [0, 1, 2].map((k) => X.some((r) => r[k]! > 0)).concat([true, updateElems.size > 1]);
    // Columns with no data are fixed at their default (scale 1) and moved to the left side.
    const cols = [0, 1, 2, 3, 4].filter((k) => has[k]);
    const yy = y.map((v, p) => v - [0, 1, 2, 4].reduce((a, k) => a + (has[k] ? 0 : X[p]![k]!), 0));
    const c = nnls(X.map((r, i) => cols.map((j) => r[j]! * W[i]!)), yy.map((v, i) => v * W[i]!));
    const f5 = [1, 1, 1, 0, 1];
    cols.forEach((j, k) => (f5[j] = c[k]!));
    const full: [number, number, number, number] = [f5[0]!, f5[1]!, f5[2]!, f5[3]!];
    let denseScale = has[4] ? Math.max(f5[4]!, 0.05) : 1;
    // A zero scale would make work free; keep a floor of 5% of the microbenchmark's time.
    for (const k of [0, 1, 2]) full[k] = Math.max(full[k]!, 0.05);
    fits.push(full);
    // Each MLP phase's own scale. When the steps saw this adapter at batch sizes far enough apart
    // (LINE_SPREAD), a joint fit of the three phase scales with the cost per dispatch; else, the cost per
    // dispatch fixed from the fit above, least squares through the origin per phase (a shared scale where
    // a phase saw no samples).
    const seenBatches = mine.flatMap((j) => ests.map((e) => e.devices[j]!.batch)).filter((b) => b > 0);
    const spread = seenBatches.length ? Math.max(...seenBatches) - Math.min(...seenBatches) : 0;
    const mean = seenBatches.reduce((a, b) => a + b, 0) / Math.max(1, seenBatches.length);
    let mlpPhaseScale: [number, number, number];
    if (has[2] && spread >= 4 && spread >= LINE_SPREAD * mean) {
      const X6 = X.map((r, i) => {
        const p = i % STEP_PHASES.length;
        return [r[0]!, r[1]!, p === 1 ? r[2]! : 0, p === 2 ? r[2]! : 0, p === 3 ? r[2]! : 0, r[3]!, r[4]!];
      });
      const cols6 = [0, 1, 2, 3, 4, 5, 6].filter((k) => (k < 2 ? has[k] : k === 6 ? has[4] : true));
      const yy6 = y.map((v, i) => v - (has[0] ? 0 : X[i]![0]!) - (has[1] ? 0 : X[i]![1]!) - (has[4] ? 0 : X[i]![4]!));
      const c6 = nnls(X6.map((r, i) => cols6.map((j) => r[j]! * W[i]!)), yy6.map((v, i) => v * W[i]!));
      const f6 = [1, 1, 0, 0, 0, 0, 1];
      cols6.forEach((j, k) => (f6[j] = c6[k]!));
      const top = Math.max(f6[3]!, 0.05);
      full[0] = Math.max(f6[0]!, 0.05);
      full[1] = Math.max(f6[1]!, 0.05);
      full[2] = top;
      full[3] = f6[5]!;
      if (has[4]) denseScale = Math.max(f6[6]!, 0.05);
      mlpPhaseScale = [Math.max(f6[2]!, 0.05) / top, 1, Math.max(f6[4]!, 0.05) / top];
    } else {
      mlpPhaseScale = [1, 2, 3].map((p) => {
        let xy = 0, xx = 0;
        for (let r = p; r < X.length; r += STEP_PHASES.length) {
          const x = X[r]![2]! * full[2];
          xy += W[r]! ** 2 * x * (y[r]! - X[r]![3]! * full[3]);
          xx += W[r]! ** 2 * x * x;
        }
        return xx > 0 ? Math.max(0.05, xy / xx) : 1;
      }) as [number, number, number];
    }
    return {
      ...sp,
      denseSecPerParam: (sp.denseSecPerParam ?? sp.backwardSecPerElem) * denseScale,
      lookupSecPerElem: sp.lookupSecPerElem * full[0],
      backwardSecPerElem: sp.backwardSecPerElem * full[1],
      gemmGflops: sp.gemmGflops / full[2],
      perDispatchMs: full[3],
      mlpPhaseScale,
    };
  });
  const modelled = ests.reduce((a, e) => a + e.collectiveSec, 0);
  const measured = samples.reduce((a, x) => a + x.exchangeSec, 0);
  return {
    speeds: out,
    fits,
    exchangeScale: modelled > 0 && measured > 0 ? measured / modelled : 1,
    hostSec: samples.length ? samples.reduce((a, x) => a + x.hostSec, 0) / samples.length : 0,
  };
}

/** Activation widths (floats per sample) kept for the backward: every layer output, the interaction input and output. */
function activationFloatsPerSample(s: ModelShape): number {
  const f = s.tableRows.length + 1;
  return s.bottomMlp.reduce((a, b) => a + b, 0) + s.topMlp.reduce((a, b) => a + b, 0) + f * s.dim;
}

export interface DeviceEstimate {
  device: number;
  /** "t3 table", "t7 rows 0-4999", "t2 cols 0-7", "t9 replica". */
  shards: string[];
  memoryBytes: number;
  /** Embedding rows looked up per step (bag indices served). */
  lookups: number;
  /** Looked-up f32 elements per step (lookups x the shard's columns). */
  lookupElems: number;
  /** Samples of its MLP replica. */
  batch: number;
  /** Host-staged bytes sent / received per step (all-to-all both ways + allreduce). */
  sentBytes: number;
  receivedBytes: number;
  embeddingSec: number;
  mlpSec: number;
  overheadSec: number;
  computeSec: number;
  /** Its work run alone (the shared-host unit): embedding + MLP + one round trip per phase + dispatches x perDispatchMs. */
  deviceWorkSec: number;
  /** deviceWorkSec phase by phase (STEP_PHASES order), as ShardedDlrm.profileStep measures them. */
  phaseSec: number[];
  /** This device's share of the collectives: per round α + max(sent, received)/β. */
  transferSec: number;
  /** compute + transfer. */
  totalSec: number;
}

export interface PlanEstimate {
  devices: DeviceEstimate[];
  /** Slowest device's total: the modelled step time. */
  stepSec: number;
  /**
   * The step if the devices' compute cannot overlap (software adapters sharing
   * the host's cores, as here): the sum of their compute + the slowest transfer.
   */
  sharedHostStepSec: number;
  /** Slowest / mean of the devices' totals. */
  balance: number;
  /** Slowest / mean of the devices' work run alone (deviceWorkSec). */
  workBalance: number;
  /** True when stepSec is the shared-host step (the sum). */
  sharedHost: boolean;
  /** Host-staged exchange of one step in the shared-host model (collectives x exchangeScale), seconds. */
  exchangeSec: number;
  /** Bytes each device sends in the forward all-to-all, [from][to]. */
  a2aBytes: number[][];
  /** Bytes per device reduced by the allreduce (MLP gradients + data-parallel tables). */
  allreduceBytes: number;
  /** Collective rounds of a step (both all-to-alls + the allreduce). */
  rounds: RoundTraffic[];
  /** The allreduce's schedule (as the trainer chooses it) and its rounds (the tail of `rounds`). */
  allreduce: { kind: "ring" | "rhd"; rounds: RoundTraffic[] };
  /** Modelled seconds of the collectives of one step on `interconnect`. */
  collectiveSec: number;
  interconnect: string;
}

/** Fixed host synchronisations of a step besides the collective rounds (loss readback, phases). */
export const BASE_SYNCS_PER_STEP = 4;

/**
 * The forward all-to-all's bytes [from][to]: each shard sends its pooled
 * columns (row shards: partial sums of all d columns) for every sample of
 * every other device's slice.
 */
export function allToAllBytes(plan: ShardingPlan, dim: number, batch: readonly number[]): number[][] {
  const N = plan.devices;
  const m = Array.from({ length: N }, () => new Array<number>(N).fill(0));
  for (const p of plan.tables) {
    if (p.kind === "data") continue;
    for (const s of p.shards) {
      const cols = p.kind === "row" ? dim : s.colEnd - s.colStart;
      for (let j = 0; j < N; j++) if (j !== s.device) m[s.device]![j]! += batch[j]! * cols * F32;
    }
  }
  return m;
}

/** The rounds the trainer's all-to-all would run: butterfly for powers of two, else direct pairwise exchange. */
export function allToAllRounds(bytes: readonly (readonly number[])[]): RoundTraffic[] {
  const n = bytes.length;
  if (n <= 1) return [];
  if ((n & (n - 1)) === 0) return butterflyRounds(bytes);
  return Array.from({ length: n - 1 }, (_, r) => {
    const sent = new Array<number>(n).fill(0), received = new Array<number>(n).fill(0);
    const pairs: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      const j = (i + r + 1) % n;
      sent[i]! += bytes[i]![j]!;
      received[j]! += bytes[i]![j]!;
      pairs.push([i, j]);
    }
    return { sent, received, pairs };
  });
}

function transpose(m: readonly (readonly number[])[]): number[][] {
  return m.map((_, i) => m.map((row) => row[i]!));
}

/** Estimates every device's step on `plan`. `interconnect` defaults to the host-staged copy of the slowest device. */
export function estimatePlan(plan: ShardingPlan, shape: ModelShape, speeds: readonly DeviceSpeed[], interconnect?: Interconnect, options: EstimateOptions = {}): PlanEstimate {
  const N = plan.devices;
  const B = shape.batchSize;
  const batch = splitBatch(plan, B);
  const ic = interconnect ?? hostStaged(Math.max(...speeds.map((s) => s.transferLatencyMs)), Math.min(...speeds.map((s) => s.transferGBs)));
  const dev = Array.from({ length: N }, () => ({ shards: [] as string[], elems: 0, lookups: 0, bytes: 0 }));
  let dataParallelBytes = 0;
  for (const p of plan.tables) {
    const rows = shape.tableRows[p.table]!;
    for (const s of p.shards) {
      const cols = s.colEnd - s.colStart;
      const lookups = shardLookups(shape, p.table, p.kind, s, batch[s.device]!);
      const d = dev[s.device]!;
      d.lookups += lookups;
      d.elems += lookups * cols;
      d.bytes += shardMemory(shape, p.table, p.kind, s, batch[s.device]!);
      d.shards.push(
        p.kind === "table" ? `t${p.table}` : p.kind === "data" ? `t${p.table} replica` : p.kind === "row" ? `t${p.table} rows ${s.rowStart}-${s.rowEnd - 1}` : `t${p.table} cols ${s.colStart}-${s.colEnd - 1}`,
      );
    }
    if (p.kind === "data") dataParallelBytes += rows * shape.dim * F32;
  }
  const a2a = allToAllBytes(plan, shape.dim, batch);
  const fwdRounds = allToAllRounds(a2a);
  const bwdRounds = allToAllRounds(transpose(a2a));
  const allreduceBytes = mlpParams(shape) * F32 + dataParallelBytes;
  // The schedule the trainer runs (ring, or recursive halving/doubling: 4 rounds at N = 4 where the ring takes 6), chosen as it chooses.
  const arKind = chooseAllreduce(options.allreduce ?? "auto", N, mlpParams(shape), options.allreduceLink ?? PCIE4);
  const arRounds = N > 1 ? transferTraffic(N, allreduceRounds(arKind, N, Math.ceil(allreduceBytes / F32))) : [];
  const rounds = [...fwdRounds, ...bwdRounds, ...arRounds];
  const collectiveSec = collectiveSeconds(ic, rounds);
  const syncs = BASE_SYNCS_PER_STEP + rounds.length;
  const mlpBytes = mlpParams(shape) * F32 * (shape.optimizer === "adagrad" ? 3 : 2);
  const devices: DeviceEstimate[] = dev.map((d, i) => {
    const sp = speeds[i]!;
    const embeddingSec = d.elems * (sp.lookupSecPerElem + sp.backwardSecPerElem);
    const mlpSec = mlpSecPerSample(shape, sp) * batch[i]!;
    const hasShards = d.shards.length > 0;
    const counts = deviceDispatches(shape, sp, hasShards, batch[i]! > 0);
    const overheadSec = (syncs * sp.dispatchMs + deviceDispatches(shape, sp, hasShards).reduce((a, b) => a + b, 0) * (sp.perDispatchMs ?? 0)) / 1e3;
    const sent = rounds.reduce((a, r) => a + (r.sent[i] ?? 0), 0);
    const received = rounds.reduce((a, r) => a + (r.received[i] ?? 0), 0);
    let transferSec = 0;
    for (const r of rounds) {
      const busy = Math.max(r.sent[i] ?? 0, r.received[i] ?? 0);
      if (busy === 0) continue;
      const link = ic.link(...((r.pairs?.find((p) => p[0] === i || p[1] === i) ?? [0, 1]) as [number, number]));
      transferSec += link.alpha + busy / link.bandwidth;
    }
    const memoryBytes = d.bytes + mlpBytes + batch[i]! * activationFloatsPerSample(shape) * 2 * F32 + batch[i]! * (shape.tableRows.length + 1) * shape.dim * 2 * F32 + Math.max(sent, received);
    const phaseSec = phaseWork(shape, d.elems, batch[i]!, sp).map((w, p) => w.emb + w.mlp + w.dense + (sp.dispatchMs + counts[p]! * (sp.perDispatchMs ?? 0)) / 1e3);
    const deviceWorkSec = phaseSec.reduce((a, b) => a + b, 0);
    const computeSec = options.sharedHost ? deviceWorkSec : embeddingSec + mlpSec + denseUpdateSec(shape, sp) + overheadSec;
    return { device: i, shards: d.shards, memoryBytes, lookups: d.lookups, lookupElems: d.elems, batch: batch[i]!, sentBytes: sent, receivedBytes: received, embeddingSec, mlpSec, overheadSec, computeSec, deviceWorkSec, phaseSec, transferSec, totalSec: computeSec + transferSec };
  });
  const totals = devices.map((d) => d.totalSec);
  const mean = totals.reduce((a, b) => a + b, 0) / N;
  const exchangeSec = collectiveSec * (options.exchangeScale ?? 1);
  const sharedHostStepSec = devices.reduce((a, d) => a + d.deviceWorkSec, 0) + exchangeSec + (options.hostSec ?? 0);
  const work = devices.map((d) => d.deviceWorkSec);
  const workMean = work.reduce((a, b) => a + b, 0) / N;
  const stepSec = options.sharedHost ? sharedHostStepSec : Math.max(...totals);
  return {
    devices, stepSec, sharedHostStepSec, balance: mean > 0 ? Math.max(...totals) / mean : 1, workBalance: workMean > 0 ? Math.max(...work) / workMean : 1, sharedHost: Boolean(options.sharedHost), exchangeSec,
    a2aBytes: a2a, allreduceBytes, rounds, allreduce: { kind: arKind, rounds: arRounds }, collectiveSec, interconnect: ic.name,
  };
}

/** Bag indices a shard serves per step (row shards: their share of the rows, uniform popularity assumed). */
export function shardLookups(shape: ModelShape, table: number, kind: ShardKind, s: Shard, deviceBatch: number): number {
  if (kind === "data") return deviceBatch * shape.poolingFactor;
  if (kind === "row") return (shape.batchSize * shape.poolingFactor * (s.rowEnd - s.rowStart)) / shape.tableRows[table]!;
  return shape.batchSize * shape.poolingFactor;
}

/**
 * Bytes a shard needs on its device: weights + optimizer state, the pooled
 * outputs of the global batch and their gradients, indices and backward sort
 * scratch for its lookups. `deviceBatch`: the device's MLP slice (data-parallel replicas look up only that).
 */
export function shardMemory(shape: ModelShape, table: number, kind: ShardKind, s: Shard, deviceBatch: number): number {
  const cols = s.colEnd - s.colStart;
  let b = shardBytes(shape.optimizer, s.rowEnd - s.rowStart, cols) + shardLookups(shape, table, kind, s, deviceBatch) * F32 * 6;
  if (kind !== "data") b += 2 * shape.batchSize * (kind === "row" ? shape.dim : cols) * F32;
  return b;
}

/** Memory of the MLP replica and activations of a device with `batch` samples (what every device holds besides its shards). */
export function denseBytes(shape: ModelShape, batch: number): number {
  return mlpParams(shape) * F32 * (shape.optimizer === "adagrad" ? 3 : 2) + batch * activationFloatsPerSample(shape) * 2 * F32 + batch * (shape.tableRows.length + 1) * shape.dim * 2 * F32;
}

/** Assumptions of a scaling projection (printed with its table). */
export interface ProjectionSetup {
  /** Tables: rows each (row-wise over all devices when there are more devices than tables, else table-wise). */
  tables: number;
  rows: number;
  dim: number;
  bottomMlp: readonly number[];
  /** Top MLP including its input width. */
  topMlp: readonly number[];
  /** Samples per device per step (weak scaling: the global batch grows with N). */
  perDeviceBatch: number;
  poolingFactor: number;
}

/** The DLRM paper's benchmark config (DESIGN.md section 4): 8 tables x 1M x 64, 100 lookups per bag, bottom 512-512-64, top 1024-1024-1024-1; 2048 samples on 8 devices = 256 each. */
export const PAPER_PROJECTION: ProjectionSetup = { tables: 8, rows: 1_000_000, dim: 64, bottomMlp: [512, 512, 64], topMlp: [64 + (8 * 9) / 2, 1024, 1024, 1024, 1], perDeviceBatch: 256, poolingFactor: 100 };

export interface Projection {
  devices: number;
  globalBatch: number;
  embeddingSec: number;
  mlpSec: number;
  allToAllSec: number;
  allreduceSec: number;
  stepSec: number;
  samplesPerSec: number;
}

/**
 * Modelled step of `p` on n identical devices of speed `sp` joined by `ic`
 * (n a power of two): every device looks up its share of the global batch's
 * rows (tables spread evenly: whole tables while n <= tables, row ranges
 * beyond), runs its MLP slice, sends every other device its (partial) pooled
 * vectors through the butterfly forward and their gradients back, and
 * allreduces the MLP gradients in a ring; nothing overlaps.
 */
export function projectStep(p: ProjectionSetup, n: number, sp: DeviceSpeed, ic: Interconnect): Projection {
  const B = p.perDeviceBatch * n;
  const lookupElems = (B * p.poolingFactor * p.tables * p.dim) / n;
  const embeddingSec = lookupElems * (sp.lookupSecPerElem + sp.backwardSecPerElem);
  const shape: ModelShape = { tableRows: new Array(p.tables).fill(p.rows), dim: p.dim, bottomMlp: p.bottomMlp, topMlp: p.topMlp, interaction: "dot", optimizer: "sgd", batchSize: B, poolingFactor: p.poolingFactor };
  const mlpSec = (3 * forwardFlopsPerSample(shape) * p.perDeviceBatch) / (sp.gemmGflops * 1e9) + (BASE_SYNCS_PER_STEP * sp.dispatchMs) / 1e3;
  // Pooled floats a device sends each peer per sample of the peer's slice: its tables' d (whole tables) or all tables' partial sums (row-wise).
  const floatsPerSample = n <= p.tables ? (p.tables / n) * p.dim : p.tables * p.dim;
  const perPeer = p.perDeviceBatch * floatsPerSample * F32;
  const a2a = n > 1 ? collectiveSeconds(ic, uniformButterflyRounds(n, perPeer)) : 0;
  const allreduceSec = n > 1 ? collectiveSeconds(ic, ringAllreduceRounds(n, mlpParams(shape) * F32).slice(0, 1)) * 2 * (n - 1) : 0;
  const stepSec = embeddingSec + mlpSec + 2 * a2a + allreduceSec;
  return { devices: n, globalBatch: B, embeddingSec, mlpSec, allToAllSec: 2 * a2a, allreduceSec, stepSec, samplesPerSec: B / stepSec };
}
