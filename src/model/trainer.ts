/**
 * The training loop: epochs over a DataSource, periodic loss read-back,
 * evaluation, checkpoints, interruption, and a guard against NaN/Inf loss.
 * Host-neutral: progress goes to callbacks, checkpoints to a save function.
 */
import type { Batch } from "../data/batch.ts";
import type { DataSource, SplitName } from "../data/source.ts";
import { prefetch, type PrefetchStats } from "../data/prefetch.ts";
import { DlrmError } from "../gpu/errors.ts";
import type { Profiler } from "../gpu/timing.ts";
import type { DlrmModel } from "./dlrm.ts";
import { MetricsAccumulator, type MetricsResult } from "./metrics.ts";

export class NonFiniteLossError extends DlrmError {
  constructor(readonly step: number, readonly loss: number) {
    // Callers that know about checkpoints (the CLI) append which one to resume from.
    super(`loss became ${loss} at step ${step}: training stopped. Lower the learning rate (--learning-rate).`);
  }
}

export interface StepEvent {
  step: number;
  epoch: number;
  /** Mean loss over the samples since the last event (each step's mean weighted by its batch size, as the reference prints it). */
  loss: number;
  lr: number;
  samplesPerSec: number;
  /** Steps in the whole run, when known. */
  totalSteps?: number;
  etaSec?: number;
}

export interface EvalEvent extends MetricsResult {
  step: number;
  loss: number;
  split: SplitName;
}

/**
 * What the loop needs of a model: DlrmModel (one device) and the sharded
 * model of src/shard/ (N devices; its trainStep is asynchronous) both fit.
 */
export interface TrainableModel {
  step: number;
  readonly learningRate: number;
  trainStep(batch: Batch, profiler?: Profiler): void | Promise<void>;
  readLosses(): Promise<number[]>;
  evaluate(batch: Batch): Promise<{ prob: Float32Array; loss: number }>;
}

export interface TrainOptions<M extends TrainableModel = DlrmModel> {
  source: DataSource;
  batchSize: number;
  epochs?: number;
  /** Batches per epoch (default: the whole split). */
  numBatches?: number;
  /** Report the loss every this many steps and at the end of each epoch (any count: the loss history is read back every 200 steps regardless). */
  printFreq?: number;
  /** Evaluate every this many steps (0: only at the end). */
  testFreq?: number;
  /** Evaluate once at the end of training (default true). */
  finalEval?: boolean;
  testSplit?: SplitName;
  /** Batches per evaluation (default: the whole split). */
  testBatches?: number;
  /** Samples per evaluation batch (default: batchSize); give the same value as a later `evaluate` to get the same numbers. */
  testBatchSize?: number;
  /** Called with a checkpoint-worthy model every `checkpointEvery` steps and at the end. */
  checkpointEvery?: number;
  saveCheckpoint?: (model: M) => Promise<void>;
  onStep?: (e: StepEvent) => void;
  onEval?: (e: EvalEvent) => void;
  /** Called after every submitted step (no GPU read-back): lets a progress display move between loss reports. */
  onSubmit?: (step: number, epoch: number) => void;
  /** Stop cleanly (after saving a checkpoint) when aborted. */
  signal?: AbortSignal;
  profiler?: Profiler;
  /** Profile only this many steps (after two warm-up steps); default all. */
  profileSteps?: number;
  /** Training batches prepared ahead of the GPU (default 4). */
  prefetch?: number;
}

export interface TrainResult {
  /** The model's step at the end (including steps of a resumed checkpoint). */
  steps: number;
  /** The model's step when this run started (0, or the resumed checkpoint's step). */
  startStep: number;
  /** Steps trained by this run: steps - startStep. */
  trainedSteps: number;
  interrupted: boolean;
  losses: { step: number; loss: number }[];
  evals: EvalEvent[];
  seconds: number;
  /** Time the loop waited for training batches (the prefetching loader's share of the run). */
  loaderWaitSeconds?: number;
}

/** Forward passes over a split: AUC, accuracy, log loss and the mean model loss. */
export async function evaluate(model: Pick<TrainableModel, "evaluate">, source: DataSource, opts: { batchSize: number; split?: SplitName; limit?: number }): Promise<MetricsResult & { loss: number }> {
  const acc = new MetricsAccumulator();
  let lossSum = 0;
  for await (const batch of source.batches({ batchSize: opts.batchSize, split: opts.split ?? "test", limit: opts.limit })) {
    const { prob, loss } = await model.evaluate(batch);
    acc.add(prob, batch.labels, batch.size);
    lossSum += loss * batch.size;
  }
  const r = acc.result();
  return { ...r, loss: r.samples ? lossSum / r.samples : NaN };
}

/**
 * Trains `model` from its current step. Steps already taken (model.step > 0
 * after loading a checkpoint) are skipped in the data stream, so a resumed
 * run sees the same batches as an uninterrupted one.
 */
export async function train<M extends TrainableModel = DlrmModel>(model: M, opts: TrainOptions<M>): Promise<TrainResult> {
  const epochs = opts.epochs ?? 1;
  const printFreq = Math.max(1, opts.printFreq ?? 10);
  // The model keeps the losses of at most 256 unread steps on the GPU: read them at least every 200.
  const readFreq = Math.min(200, printFreq);
  const totalSteps = opts.numBatches !== undefined ? opts.numBatches * epochs : undefined;
  const losses: { step: number; loss: number }[] = [];
  const evals: EvalEvent[] = [];
  const t0 = performance.now();
  let lastReport = { time: t0, step: model.step };
  let pending = 0;
  // Batch sizes of the steps whose losses are still on the GPU; the interval's sample-weighted sum.
  const pendingSizes: number[] = [];
  let intervalLoss = 0;
  let intervalSamples = 0;
  let sinceReport = 0;
  let interrupted = false;
  let globalBatch = 0;
  let profiled = 0;
  const startStep = model.step;
  let skipped = 0;
  const loaders: PrefetchStats[] = [];

  const read = async () => {
    const ls = await model.readLosses();
    const firstStep = model.step - ls.length;
    ls.forEach((loss, i) => {
      if (!Number.isFinite(loss)) throw new NonFiniteLossError(firstStep + i + 1, loss);
      losses.push({ step: firstStep + i + 1, loss });
      const n = pendingSizes[i] ?? opts.batchSize;
      intervalLoss += loss * n;
      intervalSamples += n;
    });
    pendingSizes.length = 0;
    pending = 0;
  };
  const flush = async (epoch: number) => {
    await read();
    if (sinceReport === 0 || intervalSamples === 0) return;
    sinceReport = 0;
    const now = performance.now();
    const sps = ((model.step - lastReport.step) * opts.batchSize) / ((now - lastReport.time) / 1000);
    lastReport = { time: now, step: model.step };
    const mean = intervalLoss / intervalSamples;
    intervalLoss = 0;
    intervalSamples = 0;
    const elapsed = (now - t0) / 1000;
    const etaSec = totalSteps !== undefined && model.step > 0 ? (elapsed / Math.max(1, globalBatch - skipped)) * (totalSteps - model.step) : undefined;
    opts.onStep?.({ step: model.step, epoch, loss: mean, lr: model.learningRate, samplesPerSec: sps, totalSteps, etaSec });
  };
  const runEval = async () => {
    const r = await evaluate(model, opts.source, { batchSize: opts.testBatchSize ?? opts.batchSize, split: opts.testSplit ?? "test", limit: opts.testBatches });
    const e: EvalEvent = { ...r, step: model.step, split: opts.testSplit ?? "test" };
    evals.push(e);
    opts.onEval?.(e);
  };
  const checkpoint = async (epoch: number) => {
    await read(); // throws on a non-finite loss before anything is saved
    await opts.saveCheckpoint?.(model);
  };

  outer: for (let epoch = 0; epoch < epochs; epoch++) {
    // Batches are read and assembled ahead while the GPU runs the submitted steps.
    const loader = prefetch(opts.source.batches({ batchSize: opts.batchSize, split: "train", limit: opts.numBatches, epoch }), opts.prefetch ?? 4);
    loaders.push(loader.stats);
    for await (const batch of loader) {
      globalBatch++;
      if (globalBatch <= startStep) {
        skipped++;
        continue;
      }
      const profile = opts.profiler && model.step - startStep >= 2 && profiled < (opts.profileSteps ?? Infinity);
      if (profile) {
        profiled++;
        opts.profiler!.add("data loader: wait for the batch (wall clock)", loader.stats.lastWaitMs);
        if (opts.profiler!.timestamps) {
          await model.trainStep(batch, opts.profiler);
          await opts.profiler!.collect();
        } else {
          await opts.profiler!.wallClock("train step (wall clock)", () => model.trainStep(batch));
        }
      } else {
        await model.trainStep(batch);
      }
      pending++;
      opts.onSubmit?.(model.step, epoch);
      sinceReport++;
      pendingSizes.push(batch.size);
      if (sinceReport >= printFreq) await flush(epoch);
      else if (pending >= readFreq) await read();
      if (opts.testFreq && model.step % opts.testFreq === 0) await runEval();
      if (opts.checkpointEvery && model.step % opts.checkpointEvery === 0) await checkpoint(epoch);
      if (opts.signal?.aborted) {
        interrupted = true;
        await checkpoint(epoch);
        break outer;
      }
    }
    await flush(epoch); // the reference also prints at the end of each epoch
  }
  await flush(epochs - 1);
  if (!interrupted) {
    if (opts.saveCheckpoint) await opts.saveCheckpoint(model);
    if ((opts.finalEval ?? true) && (!opts.testFreq || model.step % opts.testFreq !== 0)) await runEval();
  }
  const seconds = (performance.now() - t0) / 1000;
  const loaderWait = loaders.reduce((a, s) => a + s.waitMs, 0) / 1000;
  return { steps: model.step, startStep, trainedSteps: model.step - startStep, interrupted, losses, evals, seconds, loaderWaitSeconds: loaderWait };
}
