/** `train`: trains a DLRM (or evaluates one with --inference-only). */
import { createContext, type GpuContext, withErrorScopes } from "../../gpu/context.ts";
import { DeviceLostError, GpuError } from "../../gpu/errors.ts";
import { Profiler } from "../../gpu/timing.ts";
import { applyCheckpoint, loadCheckpointInto, openCheckpoint, saveCheckpoint } from "../../io/checkpoint.ts";
import { checkModelFits, ModelMemoryError, modelBytes } from "../memory_check.ts";
import { NonFiniteTensorError } from "../../io/errors.ts";
import type { DlrmConfig } from "../../model/config.ts";
import { DlrmModel } from "../../model/dlrm.ts";
import { ShardedDlrm } from "../../shard/model.ts";
import { type Bf16Rounding, bf16ShardError, type EmbeddingPrecision } from "../../model/precision.ts";
import { initParameters } from "../../model/params.ts";
import { evaluate, NonFiniteLossError, train } from "../../model/trainer.ts";
import { type FlagSpec, type FlagValues, helpText, parseFlags, UsageError } from "../args.ts";
import { PRESETS, REFERENCE_ONLY_FLAGS, referenceOnlyNotes } from "../reference_flags.ts";
import { checkCacheDictionaries, writeDictionarySidecar } from "../dataset.ts";
import { DATA_FLAGS, MODEL_FLAGS, RUN_FLAGS, TRAIN_SHARD_FLAGS } from "../flags.ts";
import { createSharded, describePlan, profileSharded, wantsSharding } from "../shard.ts";
import { openDevices, SHARD_FLAGS } from "../shard_setup.ts";
import { cliHost } from "../host.ts";
import { VERSION } from "../version.ts";
import { createProgress, formatEval } from "../progress.ts";
import { renderReport } from "../report.ts";
import { evalPlan, makeConfig, makeSource, mergeConfigFile, registerKnown, teacherAuc } from "../setup.ts";
import { mergeCheckpointFlags } from "../resume.ts";
import { checkFlagConflicts, prepareOutputs } from "../validate.ts";

const PRESET_FLAG: FlagSpec = { name: "preset", type: "choice", choices: Object.keys(PRESETS), help: `a named set of options under the command line and --config: ${Object.entries(PRESETS).map(([k, p]) => `${k} = ${p.help}`).join("; ")}` };
export const TRAIN_FLAGS = [...MODEL_FLAGS, ...DATA_FLAGS, ...RUN_FLAGS, ...SHARD_FLAGS, ...TRAIN_SHARD_FLAGS, PRESET_FLAG, ...REFERENCE_ONLY_FLAGS];
registerKnown(TRAIN_FLAGS.map((f) => f.name));

export const TRAIN_HELP = helpText(
  "train",
  "Trains a DLRM on the GPU. Flags and defaults are the reference's (dlrm_s_pytorch.py); `--preset main` trains a\nKaggle-shaped model on built-in teacher-labelled data for about a minute and prints the test AUC.",
  TRAIN_FLAGS,
  [
    "webgpu-dlrm train --preset main",
    "webgpu-dlrm train --data-generation random --arch-embedding-size 1000-1000-1000 --arch-mlp-top 22-64-1 --num-batches 100",
    "webgpu-dlrm train --data-generation dataset --processed-data-file cache/kaggle --loss-function bce --save-model runs/kaggle.safetensors",
    "webgpu-dlrm train --save-model runs/a.safetensors --checkpoint-every 100 --resume",
    "webgpu-dlrm train --devices 4 --shard-plan row",
    "VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json:/usr/share/vulkan/icd.d/lvp_icd.json webgpu-dlrm train --adapters llvmpipe,swiftshader",
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

/**
 * The data options of a run, recorded in its checkpoints (metadata "data") so
 * eval/predict see the same data and --resume reads the same rows in the same
 * order (--data-randomize, --data-shard-rows and the seed that shuffles).
 */
export function dataFlags(v: FlagValues): FlagValues {
  const keys = ["dataGeneration", "dataSet", "rawDataFile", "processedDataFile", "maxIndRange", "dataSize", "numIndicesPerLookup", "numIndicesPerLookupFixed", "zipfExponent", "roundTargets", "dataRandomize", "dataShardRows", "seed", "numpyRandSeed", "testMiniBatchSize", "testNumBatches"];
  return Object.fromEntries(keys.filter((k) => v[k] !== undefined).map((k) => [k, v[k]]));
}

/**
 * The options of a train command line: flags over --config over --preset over
 * the reference's defaults; notes for the reference's flags that change nothing.
 */
export async function resolveTrainFlags(argv: string[]): Promise<{ v: FlagValues; given: Set<string>; notes: string[] }> {
  const { values: v, given, positional } = parseFlags(argv, TRAIN_FLAGS, "train");
  if (positional.length) throw new UsageError(`train takes no positional arguments (got '${positional[0]}'); options start with --`);
  if (v.config) mergeConfigFile(v, given, await readJsonFile(v.config as string), v.config as string);
  if (v.preset) mergeConfigFile(v, given, PRESETS[v.preset as string]!.options, `preset ${v.preset}`);
  const notes = referenceOnlyNotes(v, given);
  // The reference: a negative --test-mini-batch-size means the training batch size.
  if ((v.testMiniBatchSize as number) < 0) v.testMiniBatchSize = v.miniBatchSize;
  return { v, given, notes };
}

export async function trainCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(TRAIN_HELP);
    return 0;
  }
  const { v, given, notes } = await resolveTrainFlags(argv);
  if (v.resume && !v.saveModel) throw new UsageError("--resume needs --save-model FILE (the checkpoint to continue)");
  checkFlagConflicts(v, given, "train");

  // Every output must be writable before the first step: a run never trains and then loses its model.
  const saveModel = v.saveModel as string | undefined;
  const reportPath = (v.report as string | undefined) ?? (saveModel ? saveModel.replace(/(\.safetensors)?$/, ".report.html") : undefined);
  const cleaned = await prepareOutputs([
    ...(saveModel ? [{ flag: "--save-model", path: saveModel, atomic: true }] : []),
    ...(v.logJsonl ? [{ flag: "--log-jsonl", path: v.logJsonl as string }] : []),
    ...(reportPath ? [{ flag: v.report ? "--report" : "--report (beside --save-model)", path: reportPath }] : []),
  ]);

  // Where to start from: --resume (the run's own checkpoint, if any) or --load-model.
  const startFile = v.resume && (await cliHost.exists(saveModel!)) ? saveModel! : (v.loadModel as string | undefined);
  // A safetensors checkpoint: only its header now; its tensors stream into the model once it exists (bounded memory at any size).
  const ckpt = startFile
    ? await openCheckpoint(
        startFile,
        { loss: v.lossFunction as DlrmConfig["loss"], optimizer: v.optimizer as DlrmConfig["optimizer"], learningRate: v.learningRate as number, miniBatchSize: v.miniBatchSize as number },
        { allowNonFinite: v.allowNonFinite as boolean },
      )
    : undefined;
  const mergeNotes = ckpt ? mergeCheckpointFlags(v, given, ckpt, startFile!, v.resume && startFile === saveModel ? "resume" : "load") : [];
  // lowp: a resumed run keeps the table precision it was saved with (metadata embedding_precision) unless given.
  if (ckpt && v.resume && startFile === saveModel && ckpt.extra.embedding_precision) {
    if (!given.has("embeddingPrecision")) v.embeddingPrecision = ckpt.extra.embedding_precision;
    if (!given.has("bf16Rounding") && ckpt.extra.bf16_rounding) v.bf16Rounding = ckpt.extra.bf16_rounding;
  }

  const progress = createProgress({ write: cliHost.write, tty: cliHost.isTTY(), jsonl: v.logJsonl ? await cliHost.appendLineWriter(v.logJsonl as string) : undefined });
  for (const line of [...notes, ...cleaned, ...mergeNotes]) progress.message(line);
  const { source, generated, describe, cacheDir } = await makeSource(v, progress.message);
  if (ckpt && cacheDir) await checkCacheDictionaries(startFile!, ckpt.extra, cacheDir);
  const config = makeConfig(v, source, given);

  const sharded = wantsSharding(v);
  if (sharded && v.embeddingPrecision === "bf16") throw bf16ShardError(); // lowp
  const ctxs: GpuContext[] = sharded ? await openDevices(v, "train") : [await createContext({ label: "train" })];
  const ctx = ctxs[0]!;
  const adapterNames = ctxs.map((c) => c.adapter.name).join(" + ");
  progress.begin({ version: VERSION, host: cliHost.runtime(), adapter: adapterNames, argv, options: v, config, data: describe });
  progress.message(`webgpu-dlrm ${VERSION} on ${cliHost.runtime()}, ${ctxs.length > 1 ? `${ctxs.length} devices: ${ctxs.map((c) => `"${c.adapter.name}"`).join(", ")}` : `adapter "${ctx.adapter.name}"`}`);
  progress.message(`data: ${describe}`);
  if (v.embeddingPrecision === "bf16") progress.message(`embedding tables: bf16 (${v.bf16Rounding} rounding; f32 sums, f32 optimizer state, f32 checkpoints)`); // lowp
  progress.message(
    `model: ${config.tableRows.length} tables (${config.tableRows.reduce((a, b) => a + b, 0)} rows) x d=${config.embeddingDim}, bottom ${config.bottomMlp.join("-")}, top ${config.topMlp.join("-")}, ${config.interaction}, loss ${config.loss}, ${config.optimizer} lr ${config.learningRate}`,
  );
  // Pipelines compile while the model is built and its first step is encoded: 10-20 s on a CPU adapter.
  progress.phase("compiling kernels");
  // A model too large for a CPU adapter's host memory fails here with the numbers, not in an OOM kill.
  if (!sharded) await checkModelFits(config, ctx.adapter, undefined, v.embeddingPrecision as EmbeddingPrecision);
  const initial = ckpt && !ckpt.streamed ? ckpt.params : initParameters(config);
  const model = sharded
    ? await createSharded(ctxs, config, initial, v, progress.message)
    : await withErrorScopes(ctx.device, "creating the model", () => new DlrmModel(ctx.device, config, initial, { inferenceOnly: v.inferenceOnly as boolean, embeddingPrecision: v.embeddingPrecision as EmbeddingPrecision, bf16Rounding: v.bf16Rounding as Bf16Rounding })).catch((e: unknown) => {
        throw e instanceof GpuError && e.kind === "out-of-memory" ? new ModelMemoryError(`${e.message}: the model's ${gib(modelBytes(config, v.embeddingPrecision as EmbeddingPrecision).embeddings)} of embeddings (+ optimizer state) do not fit the device; hash the ids into fewer rows (--max-ind-range) or split the tables over several devices (--devices N)`) : e;
      });
  if (model instanceof ShardedDlrm) for (const line of describePlan(model)) progress.message(line);
  const shardProfile = model instanceof ShardedDlrm && (v.shardProfile as number) > 0 ? profileSharded(model, v.shardProfile as number) : undefined;
  if (ckpt) {
    const withOptimizer = ckpt.config.optimizer === config.optimizer;
    if (ckpt.streamed) await loadCheckpointInto(startFile!, model, { withOptimizer, allowNonFinite: v.allowNonFinite as boolean, fallback: ckpt.config });
    else applyCheckpoint(model, ckpt, { withOptimizer });
    progress.message(`loaded ${startFile} at step ${model.step}`);
  }

  const batchSize = v.miniBatchSize as number;
  const splitRows = (source as { splitRows?: (s: "train") => number }).splitRows?.("train");
  // Generated data without --num-batches: ceil(--data-size / batch) batches, as the reference.
  const numBatches = (v.numBatches as number) || (generated ? Math.ceil(Math.max(1, v.dataSize as number) / batchSize) : splitRows !== undefined ? Math.ceil(splitRows / batchSize) : undefined);
  // The reference tests only with --test-freq > 0 (every N steps and at the end).
  const testFreq = v.testFreq as number;
  // The same samples as `eval` of the checkpoint will use (the options are recorded in it).
  const plan = evalPlan(v, generated);

  if (v.inferenceOnly) {
    const r = await evaluate(model, source, { batchSize: plan.batchSize, split: "test", limit: plan.limit });
    progress.message(formatEval({ ...r, step: model.step, split: "test" }, config.loss));
    model.destroy();
    ctxs.forEach((c) => c.destroy());
    return 0;
  }

  const abort = new AbortController();
  const offInterrupt = cliHost.onInterrupt(() => {
    if (abort.signal.aborted) cliHost.exit(130);
    progress.message("interrupted: saving a checkpoint and stopping (Ctrl-C again to quit at once)");
    abort.abort();
  });
  let closing = false; // set before our own destroy() at the end
  for (const c of ctxs) {
    c.lost.then(() => {
      if (!closing) abort.abort();
    });
  }
  // Fault injection for tests: lose the device once this step is reached.
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
  const loseAt = Number(env.DLRM_FAULT_LOSE_DEVICE_AT_STEP ?? NaN);
  // Which device to lose in a multi-device run (default: the last).
  const loseDevice = ctxs[Number(env.DLRM_FAULT_LOSE_DEVICE ?? ctxs.length - 1)] ?? ctx;

  const profiler = new Profiler(ctx.device, 256);
  // The newest checkpoint on disk that holds only finite values (checkpoints with NaN/Inf are never written).
  let lastGood: { path: string; step: number } | undefined = ckpt && startFile === saveModel ? { path: saveModel!, step: ckpt.step } : undefined;
  const earlier = !lastGood && saveModel && (await cliHost.exists(saveModel));
  /** The error to report for a failed run, with where to resume from. */
  const trainingFailure = async (e: unknown): Promise<unknown> => {
    if (e instanceof NonFiniteLossError || e instanceof NonFiniteTensorError) {
      const where = lastGood
        ? ` Resume from the last checkpoint with finite values, ${lastGood.path} (step ${lastGood.step}): --resume --save-model ${lastGood.path}.`
        : ` No checkpoint of this run was written${earlier ? ` (${saveModel} still holds an earlier run's model, unchanged)` : ""}.`;
      if (e instanceof NonFiniteTensorError) {
        // Weights went non-finite before the loss did: the same fault (exit 3), the same advice.
        const err = new NonFiniteLossError(model.step, e.value);
        err.message = `${e.message}. Lower the learning rate (--learning-rate).${where}`;
        return err;
      }
      e.message += where;
      return e;
    }
    // A lost device shows up first as failing GPU calls; report the loss itself, with how to resume.
    if (e instanceof DeviceLostError) return withResumeHint(e, saveModel);
    await Promise.race([Promise.race(ctxs.map((c) => c.lost)), new Promise((r) => setTimeout(r, 2000))]);
    const lost = ctxs.find((c) => c.lostError);
    if (lost) return withResumeHint(lost.lostError!, saveModel);
    return e;
  };
  // The categorical dictionaries travel with the model (a sidecar named and hashed in its metadata).
  const extra: Record<string, string> = { data: JSON.stringify(dataFlags(v)) };
  if (v.embeddingPrecision === "bf16") Object.assign(extra, { embedding_precision: "bf16", bf16_rounding: v.bf16Rounding as string }); // lowp: values stay f32
  if (saveModel && cacheDir) extra.dictionaries = JSON.stringify(await writeDictionarySidecar(saveModel, cacheDir));
  let result;
  try {
    result = await train(model, {
      source,
      batchSize,
      epochs: v.nepochs as number,
      numBatches,
      printFreq: v.printFreq as number,
      testFreq: Math.max(0, testFreq),
      finalEval: testFreq > 0,
      testBatches: plan.limit,
      testBatchSize: plan.batchSize,
      checkpointEvery: v.checkpointEvery as number,
      saveCheckpoint: saveModel
        ? async (m) => {
            await saveCheckpoint(saveModel, m, extra);
            lastGood = { path: saveModel, step: m.step };
          }
        : undefined,
      onStep: (e) => {
        progress.step(e);
        if (e.step >= loseAt) loseDevice.device.destroy();
      },
      onEval: (e) => progress.eval(e, config.loss),
      onSubmit: (s, epoch) => progress.submitted(s, epoch, numBatches !== undefined ? numBatches * (v.nepochs as number) : undefined),
      signal: abort.signal,
      profiler: sharded ? undefined : profiler,
      profileSteps: 5,
    });
  } catch (e) {
    const err = await trainingFailure(e);
    progress.close();
    progress.end({ error: (err as Error).message });
    throw err;
  } finally {
    offInterrupt();
    progress.close();
  }
  const lostAfter = ctxs.find((c) => c.lostError);
  if (lostAfter) throw withResumeHint(lostAfter.lostError!, saveModel);
  const last = result.evals.at(-1);
  const sps = (result.trainedSteps * batchSize) / Math.max(1e-9, result.seconds);
  const resumed = result.startStep > 0 ? ` (resumed at step ${result.startStep}, now at step ${result.steps})` : "";
  progress.message(`trained ${result.trainedSteps} steps in ${result.seconds.toFixed(1)} s${resumed}${saveModel ? `, checkpoint ${saveModel}` : ""}`);
  if (shardProfile) for (const line of shardProfile.report()) progress.message(line);
  if (result.loaderWaitSeconds !== undefined) progress.message(`data loader (prefetching): the steps waited ${result.loaderWaitSeconds.toFixed(2)} s for batches, ${((100 * result.loaderWaitSeconds) / Math.max(1e-9, result.seconds)).toFixed(1)}% of the run`);
  if (last) progress.message(`test AUC ${last.auc.toFixed(4)}, accuracy ${(100 * last.accuracy).toFixed(2)}%, log loss ${last.logLoss.toFixed(4)} (${last.samples} test samples)`);
  // The labels' own generator scored on the same test samples: the best AUC any model can reach.
  const teacher = last ? await teacherAuc(source, plan) : undefined;
  if (teacher !== undefined) progress.message(`(the hidden teacher that labelled the synthetic data scores AUC ${teacher.toFixed(4)} on the same ${last!.samples} samples)`);
  if (reportPath) {
    await cliHost.writeText(reportPath, renderReport({ title: "webgpu-dlrm training run", config, result, timings: profiler.rows(), adapter: adapterNames, host: cliHost.runtime(), samplesPerSec: sps, teacherAuc: teacher, version: VERSION }));
    progress.message(`report ${reportPath}`);
  }
  profiler.destroy();
  model.destroy();
  closing = true;
  ctxs.forEach((c) => c.destroy());
  const code = result.interrupted ? 130 : 0;
  progress.end({ exitCode: code, steps: result.steps, trainedSteps: result.trainedSteps, seconds: result.seconds, interrupted: result.interrupted, checkpoint: saveModel, report: reportPath, final: last, teacherAuc: teacher });
  return code;
}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
