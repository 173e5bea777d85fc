/** `eval` and `predict`: a checkpoint on a data set. */
import { tableFromArrays, tableToIPC } from "apache-arrow";
import { createContext } from "../../gpu/context.ts";
import { loadCheckpointFile } from "../../io/checkpoint.ts";
import { writeFileAtomic } from "../../io/atomic_write.ts";
import { DlrmModel } from "../../model/dlrm.ts";
import { evaluate } from "../../model/trainer.ts";
import { type FlagSpec, type FlagValues, helpText, parseFlags, UsageError } from "../args.ts";
import type { DlrmConfig } from "../../model/config.ts";
import { DATA_FLAGS, MODEL_FLAGS } from "../flags.ts";
import { cliHost } from "../host.ts";
import { formatEval } from "../progress.ts";
import { evalPlan, makeSource, teacherAuc } from "../setup.ts";
import { checkFlagConflicts, prepareOutputs } from "../validate.ts";
import { VERSION } from "../version.ts";
import { checkCacheDictionaries, checkpointDictionaries, rawInputs } from "../dataset.ts";
import { CategoricalMapper } from "../../data/dictionaries.ts";
import { rawScoringSource, type RawScoringSource } from "../../data/raw_source.ts";
import { describeDetected } from "../../data/criteo_parse.ts";
import type { DataSource } from "../../data/source.ts";

const COMMON: FlagSpec[] = [
  { name: "load-model", type: "string", help: "checkpoint to evaluate (required)", meta: "FILE" },
  { name: "split", type: "choice", choices: ["train", "val", "test"], default: "test", help: "which split of the data" },
  { name: "test-mini-batch-size", type: "int", default: 1024, help: "samples per batch", meta: "B" },
  { name: "test-num-batches", type: "int", default: 0, help: "batches to use (0: whole split; generated data default 8)", meta: "N" },
  { name: "allow-non-finite", type: "bool", default: false, help: "load the checkpoint even if a tensor holds NaN or Infinity (refused otherwise)" },
  { name: "json", type: "bool", default: false, help: "print the result as one JSON object on stdout (messages go to stderr)" },
];
const EVAL_FLAGS = [...COMMON, ...DATA_FLAGS, ...MODEL_FLAGS];
const PREDICT_FLAGS = [...COMMON, { name: "output", type: "string", help: "output file: .csv or .arrow (required)", meta: "FILE" } as FlagSpec, ...DATA_FLAGS, ...MODEL_FLAGS];

async function openModel(argv: string[], flags: FlagSpec[], command: string) {
  const { values: v, given } = parseFlags(argv, flags, command);
  if (!v.loadModel) throw new UsageError(`${command} needs --load-model FILE (a checkpoint written by train --save-model, or a PyTorch DLRM state_dict as safetensors)`);
  // A data file given here means data, whatever the checkpoint was trained on.
  if ((given.has("rawDataFile") || given.has("processedDataFile")) && !given.has("dataGeneration")) v.dataGeneration = "dataset";
  checkFlagConflicts(v, given, command);
  const out = v.output as string | undefined;
  if (command === "predict") {
    if (!out || !/\.(csv|arrow)$/.test(out)) throw new UsageError("predict needs --output FILE ending in .csv or .arrow");
    // Checked before any work, so the predictions are never computed only to be lost.
    for (const line of await prepareOutputs([{ flag: "--output", path: out, atomic: true }])) log(v, line);
  }
  // A PyTorch state_dict carries no loss or optimizer: those come from the flags.
  const ckpt = await loadCheckpointFile(
    v.loadModel as string,
    {
      loss: v.lossFunction as DlrmConfig["loss"],
      optimizer: v.optimizer as DlrmConfig["optimizer"],
      learningRate: v.learningRate as number,
    },
    { allowNonFinite: v.allowNonFinite as boolean },
  );
  const modelFile = v.loadModel as string;
  let source: DataSource;
  let generated = false;
  let raw: { source: RawScoringSource; mapper: CategoricalMapper } | undefined;
  if (given.has("rawDataFile")) {
    // A raw file given here is scored as it is: every row, its values mapped through the model's dictionaries.
    const dicts = await checkpointDictionaries(modelFile, ckpt.extra, ckpt.config.tableRows);
    if (!dicts) {
      throw new UsageError(`${modelFile} carries no categorical dictionaries (trained on generated data, or by an older version): score its own Arrow cache with --processed-data-file`);
    }
    const mapper = new CategoricalMapper(dicts);
    const inputs = await rawInputs(v.rawDataFile as string, v.dataSet as string);
    const rs = rawScoringSource(inputs, mapper, { labels: command === "predict" ? "optional" : "required" });
    raw = { source: rs, mapper };
    source = rs;
    if (!given.has("testMiniBatchSize")) {
      const recorded = ckpt.extra.data ? (JSON.parse(ckpt.extra.data) as FlagValues) : {};
      if (recorded.testMiniBatchSize) v.testMiniBatchSize = recorded.testMiniBatchSize;
    }
  } else {
    // Data and evaluation options the training run recorded apply unless given here:
    // `eval` of a checkpoint uses the samples the run's own final evaluation used.
    const recorded = ckpt.extra.data ? (JSON.parse(ckpt.extra.data) as FlagValues) : {};
    for (const [k, val] of Object.entries(recorded)) if (!given.has(k)) v[k] = val;
    if (given.has("processedDataFile")) v.rawDataFile = undefined; // the cache given, not the recorded raw file
    if (!given.has("archEmbeddingSize")) v.archEmbeddingSize = ckpt.config.tableRows;
    if (!given.has("archMlpBot")) v.archMlpBot = ckpt.config.bottomMlp;
    v.numBatches = 1; // generated data: an unbounded stream, cut by --test-num-batches (not --data-size)
    const made = await makeSource(v, (s) => log(v, s));
    if (made.cacheDir) await checkCacheDictionaries(modelFile, ckpt.extra, made.cacheDir);
    source = made.source;
    generated = made.generated;
  }
  if (source.tableRows.length !== ckpt.config.tableRows.length || source.numDense !== ckpt.config.bottomMlp[0]) {
    throw new UsageError(
      `${v.loadModel} expects ${ckpt.config.bottomMlp[0]} dense and ${ckpt.config.tableRows.length} sparse features; the data has ${source.numDense} and ${source.tableRows.length}`,
    );
  }
  const ctx = await createContext({ label: command });
  const model = new DlrmModel(ctx.device, ckpt.config, ckpt.params, { inferenceOnly: true });
  model.step = ckpt.step;
  const plan = evalPlan(v, generated);
  return { v, ctx, model, source, raw, limit: raw ? (v.testNumBatches as number) || undefined : plan.limit, batchSize: plan.batchSize, split: v.split as "train" | "val" | "test", loss: ckpt.config.loss };
}

function describeRaw(raw: { source: RawScoringSource; mapper: CategoricalMapper }): string {
  const files = raw.source.stats.map((s) => `${s.file} (${describeDetected(s)}): ${s.rows} rows${s.malformed ? `, ${s.malformed} malformed skipped (first: line ${s.malformedSamples[0]!.line}: ${s.malformedSamples[0]!.reason})` : ""}`).join("; ");
  return `${files}\nunseen categorical values (${raw.mapper.policy}): ${raw.mapper.describeUnseen()}`;
}

/** A message for people: stdout normally, stderr with --json (stdout holds only the JSON). */
function log(v: FlagValues, line: string): void {
  if (v.json) cliHost.error(line + "\n");
  else cliHost.write(line + "\n");
}

export async function evalCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(helpText("eval", "AUC, accuracy and log loss of a checkpoint on a data split.", EVAL_FLAGS, ["webgpu-dlrm eval --load-model runs/a.safetensors", "webgpu-dlrm eval --load-model runs/k.safetensors --data-generation dataset --processed-data-file cache/kaggle"]));
    return 0;
  }
  const { v, ctx, model, source, raw, limit, batchSize, split: split0, loss } = await openModel(argv, EVAL_FLAGS, "eval");
  const r = await evaluate(model, source, { batchSize, split: split0, limit });
  const teacher = await teacherAuc(source, { batchSize, limit }, split0);
  if (raw) log(v, describeRaw(raw));
  const split = (raw ? "raw file" : split0) as typeof split0;
  if (v.json) {
    cliHost.write(
      JSON.stringify({
        checkpoint: v.loadModel,
        step: model.step,
        split,
        samples: r.samples,
        auc: r.auc,
        accuracy: r.accuracy,
        logLoss: r.logLoss,
        loss: { name: loss, value: r.loss },
        ...(teacher !== undefined ? { teacherAuc: teacher } : {}),
        ...(raw ? { rawFiles: raw.source.stats.map((s) => ({ file: s.file, format: describeDetected(s), rows: s.rows, malformed: s.malformed })), unseen: Object.fromEntries(raw.mapper.unseen.map((n, j) => [`C${j + 1}`, n])) } : {}),
        options: { testMiniBatchSize: batchSize, testNumBatches: limit ?? 0 },
        version: VERSION,
        host: cliHost.runtime(),
        adapter: ctx.adapter.name,
      }) + "\n",
    );
  } else {
    cliHost.write(formatEval({ ...r, step: model.step, split }, loss) + "\n");
    if (teacher !== undefined) cliHost.write(`(the hidden teacher that labelled the synthetic data scores AUC ${teacher.toFixed(4)} on the same ${r.samples} samples)\n`);
  }
  model.destroy();
  ctx.destroy();
  return 0;
}

export async function predictCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(helpText("predict", "Click probabilities of a checkpoint for every sample of a data split, to CSV or Arrow.", PREDICT_FLAGS, ["webgpu-dlrm predict --load-model runs/a.safetensors --output preds.csv"]));
    return 0;
  }
  const { v, ctx, model, source, raw, limit, batchSize, split } = await openModel(argv, PREDICT_FLAGS, "predict");
  const out = v.output as string;
  const probs: number[] = [];
  const labels: number[] = [];
  const lineNos: number[] = [];
  for await (const batch of source.batches({ batchSize, split, limit })) {
    const p = await model.predict(batch);
    for (let i = 0; i < batch.size; i++) {
      probs.push(p[i]!);
      labels.push(batch.labels[i]!);
      if (raw) lineNos.push(raw.source.lastLines[i]!);
    }
  }
  // A raw file: one row per input row, named by its input line; no label column when the file has none.
  const labeled = !raw || raw.source.stats.every((s) => s.labeled);
  const first = raw ? "line" : "sample";
  const key = (i: number) => (raw ? lineNos[i]! : i);
  let bytes: Uint8Array;
  if (out.endsWith(".csv")) {
    const lines = [labeled ? `${first},probability,label` : `${first},probability`, ...probs.map((p, i) => (labeled ? `${key(i)},${p},${labels[i]}` : `${key(i)},${p}`))];
    bytes = new TextEncoder().encode(lines.join("\n") + "\n");
  } else {
    const cols: Record<string, Float32Array | Float64Array> = { probability: Float32Array.from(probs) };
    if (labeled) cols.label = Float32Array.from(labels);
    if (raw) cols.line = Float64Array.from(lineNos);
    bytes = tableToIPC(tableFromArrays(cols), "file");
  }
  if (raw) log(v, describeRaw(raw));
  await writeFileAtomic(out, bytes);
  if (v.json) cliHost.write(JSON.stringify({ output: out, predictions: probs.length, checkpoint: v.loadModel, step: model.step, split, version: VERSION }) + "\n");
  else cliHost.write(`wrote ${probs.length} predictions to ${out}\n`);
  model.destroy();
  ctx.destroy();
  return 0;
}
