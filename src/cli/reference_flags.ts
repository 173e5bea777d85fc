/**
 * The flags of the reference's dlrm_s_pytorch.py that have no counterpart
 * here, so its command lines run unchanged:
 * - "none": nothing to do on WebGPU (workers, GPU selection, logging
 *   formats...); accepted with a one-line note when given;
 * - "default-only": they change the result, are not implemented here, and are
 *   accepted only with the reference's default value (anything else is a
 *   one-line error saying so, never a silent difference).
 * And the presets: named sets of options applied under the command line.
 */
import { type FlagSpec, type FlagValues, UsageError } from "./args.ts";
import { DEFAULT_TABLE_ROWS } from "./flags.ts";

interface ReferenceOnly {
  spec: FlagSpec;
  effect: "none" | "default-only";
  note: string;
}

const none = (name: string, type: FlagSpec["type"], def: FlagSpec["default"], note: string): ReferenceOnly => ({
  spec: { name, type, default: def, help: `the reference's; ${note}`, meta: type === "bool" ? undefined : "X" },
  effect: "none",
  note,
});
const only = (name: string, type: FlagSpec["type"], def: FlagSpec["default"], note: string): ReferenceOnly => ({
  spec: { name, type, default: def, help: `the reference's; only ${def === undefined ? "unset" : String(def)} (${note})`, meta: type === "bool" ? undefined : "X" },
  effect: "default-only",
  note,
});

export const REFERENCE_ONLY: ReferenceOnly[] = [
  none("use-gpu", "bool", false, "training always runs on the WebGPU adapter"),
  none("num-workers", "int", 0, "data loading runs in this process"),
  none("test-num-workers", "int", -1, "data loading runs in this process"),
  none("memory-map", "bool", false, "the Arrow cache is always streamed from disk"),
  none("dataset-multiprocessing", "bool", false, "preprocessing streams in one process"),
  none("print-time", "bool", false, "the time per step is always shown (samples/s)"),
  none("print-wall-time", "bool", false, "the elapsed time is printed at the end"),
  none("print-precision", "int", 5, "numbers print with fixed precision"),
  none("debug-mode", "bool", false, "no debug printing"),
  none("enable-profiling", "bool", false, "GPU time per kernel always goes to the HTML report"),
  none("plot-compute-graph", "bool", false, "no graph plotting"),
  none("tensor-board-filename", "string", "run_kaggle_pt", "use --log-jsonl for machine-readable progress"),
  none("sync-dense-params", "bool", true, "one device: nothing to synchronize"),
  none("local_rank", "int", -1, "no torch.distributed here"),
  none("dist-backend", "string", "", "no torch.distributed here"),
  none("mlperf-logging", "bool", false, "no MLPerf log format"),
  none("mlperf-bin-loader", "bool", false, "the Arrow cache is the binary loader"),
  none("mlperf-bin-shuffle", "bool", false, "see --data-randomize"),
  none("rand-data-min", "float", 0, "only used by --rand-data-dist gaussian"),
  none("rand-data-max", "float", 1, "only used by --rand-data-dist gaussian"),
  none("rand-data-mu", "float", -1, "only used by --rand-data-dist gaussian"),
  none("rand-data-sigma", "float", 1, "only used by --rand-data-dist gaussian"),
  only("activation-function", "string", "relu", "the MLPs use ReLU"),
  only("weighted-pooling", "string", undefined, "per-index weights are available in the kernels, not yet in the model"),
  only("rand-data-dist", "string", "uniform", "gaussian random indices are not implemented"),
  only("quantize-mlp-with-bit", "int", 32, "no quantization"),
  only("quantize-emb-with-bit", "int", 32, "no quantization"),
  only("save-onnx", "bool", false, "no ONNX export; checkpoints load into PyTorch"),
  only("mlperf-acc-threshold", "float", 0, "no early stop at a target"),
  only("mlperf-auc-threshold", "float", 0, "no early stop at a target"),
  only("mlperf-grad-accum-iter", "int", 1, "no gradient accumulation"),
];

export const REFERENCE_ONLY_FLAGS: FlagSpec[] = REFERENCE_ONLY.map((r) => r.spec);

const camel = (name: string) => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * Checks the reference-only flags that were given: returns one note per
 * flag without effect; throws for a non-default value of an unimplemented one.
 */
export function referenceOnlyNotes(v: FlagValues, given: Set<string>): string[] {
  const notes: string[] = [];
  for (const r of REFERENCE_ONLY) {
    const k = camel(r.spec.name);
    if (!given.has(k)) continue;
    if (r.effect === "none") {
      notes.push(`note: --${r.spec.name} changes nothing here (${r.note})`);
      continue;
    }
    const val = v[k];
    const def = r.spec.default;
    const same = def === undefined ? val === "None" || val === "" : String(val).toLowerCase() === String(def).toLowerCase();
    if (!same) throw new UsageError(`--${r.spec.name} ${val} is not supported here (${r.note}); only the reference's default ${def === undefined ? "(unset)" : def} is accepted`);
    notes.push(`note: --${r.spec.name} ${val} is the only setting here`);
  }
  return notes;
}

/** Named option sets, applied under the command line and --config (flag names as keys). */
export const PRESETS: Record<string, { help: string; options: Record<string, string | number | boolean> }> = {
  main: {
    help: "the built-in main job (`npm run train`): a Kaggle-shaped model on teacher-labelled data, BCE with logits, Adagrad 0.05, 600 steps of 128, AUC on 8 test batches of 1024",
    options: {
      "arch-sparse-feature-size": 16,
      "arch-embedding-size": DEFAULT_TABLE_ROWS,
      "arch-mlp-bot": "13-512-256-64-16",
      "arch-mlp-top": "512-256-1",
      "loss-function": "bce-logits",
      optimizer: "adagrad",
      "learning-rate": 0.05,
      "data-generation": "teacher",
      "num-indices-per-lookup": 1,
      "num-indices-per-lookup-fixed": true,
      "mini-batch-size": 128,
      "num-batches": 600,
      "print-freq": 20,
      "test-freq": 600,
      "test-mini-batch-size": 1024,
      "test-num-batches": 8,
    },
  },
};
