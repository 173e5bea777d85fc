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
  // Data and evaluation options the training run recorded apply unless given here:
  // `eval` of a checkpoint uses the samples the run's own final evaluation used.
  const recorded = ckpt.extra.data ? (JSON.parse(ckpt.extra.data) as FlagValues) : {};
  for (const [k, val] of Object.entries(recorded)) if (!given.has(k)) v[k] = val;
  if (!given.has("archEmbeddingSize")) v.archEmbeddingSize = ckpt.config.tableRows;
  if (!given.has("archMlpBot")) v.archMlpBot = ckpt.config.bottomMlp;
  const { source, generated } = await makeSource(v, (s) => log(v, s));
  if (source.tableRows.length !== ckpt.config.tableRows.length || source.numDense !== ckpt.config.bottomMlp[0]) {
    throw new UsageError(
      `${v.loadModel} expects ${ckpt.config.bottomMlp[0]} dense and ${ckpt.config.tableRows.length} sparse features; the data has ${source.numDense} and ${source.tableRows.length}`,
    );
  }
  const ctx = await createContext({ label: command });
  const model = new DlrmModel(ctx.device, ckpt.config, ckpt.params, { inferenceOnly: true });
  model.step = ckpt.step;
  const plan = evalPlan(v, generated);
  return { v, ctx, model, source, limit: plan.limit, batchSize: plan.batchSize, split: v.split as "train" | "val" | "test", loss: ckpt.config.loss };
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
  const { v, ctx, model, source, limit, batchSize, split, loss } = await openModel(argv, EVAL_FLAGS, "eval");
  const r = await evaluate(model, source, { batchSize, split, limit });
  const teacher = await teacherAuc(source, { batchSize, limit }, split);
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
  const { v, ctx, model, source, limit, batchSize, split } = await openModel(argv, PREDICT_FLAGS, "predict");
  const out = v.output as string;
  const probs: number[] = [];
  const labels: number[] = [];
  for await (const batch of source.batches({ batchSize, split, limit })) {
    const p = await model.predict(batch);
    for (let i = 0; i < batch.size; i++) {
      probs.push(p[i]!);
      labels.push(batch.labels[i]!);
    }
  }
  let bytes: Uint8Array;
  if (out.endsWith(".csv")) {
    const lines = ["sample,probability,label", ...probs.map((p, i) => `${i},${p},${labels[i]}`)];
    bytes = new TextEncoder().encode(lines.join("\n") + "\n");
  } else {
    bytes = tableToIPC(tableFromArrays({ probability: Float32Array.from(probs), label: Float32Array.from(labels) }), "file");
  }
  await writeFileAtomic(out, bytes);
  if (v.json) cliHost.write(JSON.stringify({ output: out, predictions: probs.length, checkpoint: v.loadModel, step: model.step, split, version: VERSION }) + "\n");
  else cliHost.write(`wrote ${probs.length} predictions to ${out}\n`);
  model.destroy();
  ctx.destroy();
  return 0;
}
