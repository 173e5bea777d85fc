/** `train`: trains a DLRM (or evaluates one with --inference-only). */
import { createContext, type GpuContext } from "../../gpu/context.ts";
import type { DeviceLostError } from "../../gpu/errors.ts";
import { Profiler } from "../../gpu/timing.ts";
import { applyCheckpoint, loadCheckpointFile, saveCheckpoint } from "../../io/checkpoint.ts";
import { DlrmModel } from "../../model/dlrm.ts";
import { initParameters } from "../../model/params.ts";
import { evaluate, train } from "../../model/trainer.ts";
import { rocAuc } from "../../model/metrics.ts";
import type { Teacher } from "../../data/synthetic.ts";
import { type FlagValues, helpText, parseFlags, UsageError } from "../args.ts";
import { DATA_FLAGS, MODEL_FLAGS, RUN_FLAGS } from "../flags.ts";
import { cliHost } from "../host.ts";
import { createProgress, formatEval } from "../progress.ts";
import { renderReport } from "../report.ts";
import { makeConfig, makeSource, mergeConfigFile, registerKnown } from "../setup.ts";

export const TRAIN_FLAGS = [...MODEL_FLAGS, ...DATA_FLAGS, ...RUN_FLAGS];
registerKnown(TRAIN_FLAGS.map((f) => f.name));

export const TRAIN_HELP = helpText(
  "train",
  "Trains a DLRM on the GPU. With no data options it trains a Kaggle-shaped model on built-in synthetic data\n(labels from a hidden teacher model) for about a minute and prints the test AUC.",
  TRAIN_FLAGS,
  [
    "webgpu-dlrm train",
    "webgpu-dlrm train --data-generation random --arch-embedding-size 1000-1000-1000 --arch-mlp-top 22-64-1 --num-batches 100",
    "webgpu-dlrm train --data-generation dataset --processed-data-file cache/kaggle --loss-function bce --save-model runs/kaggle.safetensors",
    "webgpu-dlrm train --save-model runs/a.safetensors --checkpoint-every 100 --resume",
  ],
);

function withResumeHint(e: DeviceLostError, saveModel: string | undefined): DeviceLostError {
  e.message += saveModel ? ` The last checkpoint is ${saveModel}: continue with --resume --save-model ${saveModel}.` : " Use --save-model with --checkpoint-every to be able to resume.";
  return e;
}

async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await cliHost.readText(path);
  } catch (e) {
    throw new UsageError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UsageError(`config file ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** The data options of a run, recorded in its checkpoints so eval/predict see the same data. */
function dataFlags(v: FlagValues): FlagValues {
  const keys = ["dataGeneration", "dataSet", "rawDataFile", "processedDataFile", "maxIndRange", "dataSize", "numIndicesPerLookup", "numIndicesPerLookupFixed", "zipfExponent", "roundTargets", "seed", "numpyRandSeed"];
  return Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
}

/** Number of batches for generated data when --num-batches is not given. */
const GENERATED_BATCHES = 600;
const GENERATED_TEST_BATCHES = 8;

export async function trainCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(TRAIN_HELP);
    return 0;
  }
  const { values: v, given, positional } = parseFlags(argv, TRAIN_FLAGS, "train");
  if (positional.length) throw new UsageError(`train takes no positional arguments (got '${positional[0]}'); options start with --`);
  if (v.config) mergeConfigFile(v, given, await readJsonFile(v.config as string), v.config as string);
  if (v.resume && !v.saveModel) throw new UsageError("--resume needs --save-model FILE (the checkpoint to continue)");

  const progress = createProgress({ write: cliHost.write, tty: cliHost.isTTY(), jsonl: v.logJsonl ? await cliHost.appendLineWriter(v.logJsonl as string) : undefined });
  const { source, generated, describe } = await makeSource(v, progress.message);
  let config = makeConfig(v, source, given);

  // Where to start from: --resume (the run's own checkpoint, if any) or --load-model.
  const startFile = v.resume && (await cliHost.exists(v.saveModel as string)) ? (v.saveModel as string) : (v.loadModel as string | undefined);
  const ckpt = startFile ? await loadCheckpointFile(startFile, config) : undefined;
  if (ckpt) config = { ...ckpt.config, learningRate: config.learningRate, lrWarmupSteps: config.lrWarmupSteps, lrDecayStartStep: config.lrDecayStartStep, lrDecaySteps: config.lrDecaySteps, optimizer: v.resume ? ckpt.config.optimizer : config.optimizer };

  const ctx: GpuContext = await createContext({ label: "train" });
  progress.message(`webgpu-dlrm on ${cliHost.runtime()}, adapter "${ctx.adapter.name}"`);
  progress.message(`data: ${describe}`);
  progress.message(
    `model: ${config.tableRows.length} tables (${config.tableRows.reduce((a, b) => a + b, 0)} rows) x d=${config.embeddingDim}, bottom ${config.bottomMlp.join("-")}, top ${config.topMlp.join("-")}, ${config.interaction}, loss ${config.loss}, ${config.optimizer} lr ${config.learningRate}`,
  );
  const model = new DlrmModel(ctx.device, config, ckpt?.params ?? initParameters(config), { inferenceOnly: v.inferenceOnly as boolean });
  if (ckpt) {
    applyCheckpoint(model, ckpt, { withOptimizer: ckpt.config.optimizer === config.optimizer });
    progress.message(`loaded ${startFile} at step ${model.step}`);
  }

  const batchSize = v.miniBatchSize as number;
  const splitRows = (source as { splitRows?: (s: "train") => number }).splitRows?.("train");
  const numBatches = (v.numBatches as number) || (generated ? GENERATED_BATCHES : splitRows !== undefined ? Math.ceil(splitRows / batchSize) : undefined);
  const testBatches = (v.testNumBatches as number) || (generated ? GENERATED_TEST_BATCHES : undefined);
  const testBatch = v.testMiniBatchSize as number;

  if (v.inferenceOnly) {
    const r = await evaluate(model, source, { batchSize: testBatch, split: "test", limit: testBatches });
    progress.message(formatEval({ ...r, step: model.step, split: "test" }));
    model.destroy();
    ctx.destroy();
    return 0;
  }

  const abort = new AbortController();
  const offInterrupt = cliHost.onInterrupt(() => {
    if (abort.signal.aborted) cliHost.exit(130);
    progress.message("interrupted: saving a checkpoint and stopping (Ctrl-C again to quit at once)");
    abort.abort();
  });
  let closing = false; // set before our own destroy() at the end
  ctx.lost.then(() => {
    if (!closing) abort.abort();
  });
  // Fault injection for tests: lose the device once this step is reached.
  const loseAt = Number((globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.DLRM_FAULT_LOSE_DEVICE_AT_STEP ?? NaN);

  const profiler = new Profiler(ctx.device, 256);
  const saveModel = v.saveModel as string | undefined;
  let result;
  try {
    result = await train(model, {
      source,
      batchSize,
      epochs: v.nepochs as number,
      numBatches,
      printFreq: v.printFreq as number,
      testFreq: v.testFreq as number,
      testBatches,
      checkpointEvery: v.checkpointEvery as number,
      saveCheckpoint: saveModel ? (m) => saveCheckpoint(saveModel, m, { data: JSON.stringify(dataFlags(v)) }) : undefined,
      onStep: (e) => {
        progress.step(e);
        if (e.step >= loseAt) ctx.device.destroy();
      },
      onEval: progress.eval,
      signal: abort.signal,
      profiler,
      profileSteps: 5,
    });
  } catch (e) {
    // A lost device shows up first as failing GPU calls; report the loss itself, with how to resume.
    await Promise.race([ctx.lost, new Promise((r) => setTimeout(r, 2000))]);
    if (ctx.lostError) throw withResumeHint(ctx.lostError, saveModel);
    throw e;
  } finally {
    offInterrupt();
    progress.close();
  }
  if (ctx.lostError) throw withResumeHint(ctx.lostError, saveModel);
  const last = result.evals.at(-1);
  const sps = (result.losses.length * batchSize) / Math.max(1e-9, result.seconds);
  progress.message(`trained ${result.steps} steps in ${result.seconds.toFixed(1)} s${saveModel ? `, checkpoint ${saveModel}` : ""}`);
  if (last) progress.message(`test AUC ${last.auc.toFixed(4)}, accuracy ${(100 * last.accuracy).toFixed(2)}%, log loss ${last.logLoss.toFixed(4)}`);
  const teacher = (source as { teacher?: Teacher }).teacher;
  if (last && teacher) {
    // The labels' own generator scored on the same test samples: the best AUC any model can reach.
    const probs: number[] = [];
    const labels: number[] = [];
    for await (const b of source.batches({ batchSize: testBatch, split: "test", limit: testBatches })) {
      probs.push(...teacher.probabilities(b));
      labels.push(...b.labels);
    }
    progress.message(`(the hidden teacher that labelled the synthetic data scores AUC ${rocAuc(probs, labels).toFixed(4)} on the same samples)`);
  }
  const reportPath = (v.report as string | undefined) ?? (saveModel ? saveModel.replace(/(\.safetensors)?$/, ".report.html") : undefined);
  if (reportPath) {
    await cliHost.writeText(reportPath, renderReport({ title: "webgpu-dlrm training run", config, result, timings: profiler.rows(), adapter: ctx.adapter.name, host: cliHost.runtime(), samplesPerSec: sps }));
    progress.message(`report ${reportPath}`);
  }
  profiler.destroy();
  model.destroy();
  closing = true;
  ctx.destroy();
  return result.interrupted ? 130 : 0;
}
