/** The CLI's flags, named as the reference's (dlrm_s_pytorch.py) where it has them. */
import type { FlagSpec } from "./args.ts";

/** The built-in default: a Kaggle-shaped model on synthetic data with a learnable signal. */
export const DEFAULT_TABLE_ROWS = "1460-583-10131-2202-305-24-12517-633-3-9345-5683-8351-3194-27-14992-5461-10-5652-2173-4-7046-18-15-2863-105-142";

export const MODEL_FLAGS: FlagSpec[] = [
  { name: "arch-sparse-feature-size", type: "int", default: 2, help: "embedding dimension d", meta: "D" },
  { name: "arch-embedding-size", type: "list", default: "4-3-2", help: "rows of each embedding table (a dataset sets them)", meta: "R1-R2-..." },
  { name: "arch-mlp-bot", type: "list", default: "4-3-2", help: "bottom MLP sizes, dense width first, d last", meta: "13-512-256-64-16" },
  { name: "arch-mlp-top", type: "list", default: "4-2-1", help: "top MLP layer sizes ending in 1; its input width (the interaction's) is prepended, as in the reference", meta: "512-256-1" },
  { name: "arch-interaction-op", type: "choice", choices: ["dot", "cat"], default: "dot", help: "feature interaction" },
  { name: "arch-interaction-itself", type: "bool", default: false, help: "include each feature's dot product with itself" },
  { name: "loss-function", type: "choice", choices: ["mse", "bce", "wbce", "bce-logits"], default: "mse", help: "loss: mse, bce (torch.nn.BCELoss on the probability, logs clamped at -100, as the reference), wbce (weighted bce), or bce-logits (ours: BCE with logits, numerically stable; what --preset main uses)" },
  { name: "loss-weights", type: "string", default: "1.0-1.0", help: "wbce weights of labels 0 and 1", meta: "W0-W1" },
  { name: "optimizer", type: "choice", choices: ["sgd", "adagrad", "rwsadagrad"], default: "sgd", help: "optimizer; embeddings are updated sparsely inside the backward" },
  { name: "learning-rate", type: "float", default: 0.01, help: "base learning rate", meta: "LR" },
  { name: "lr-num-warmup-steps", type: "int", default: 0, help: "linear warmup steps", meta: "N" },
  { name: "lr-decay-start-step", type: "int", default: 0, help: "step where the polynomial decay starts", meta: "N" },
  { name: "lr-num-decay-steps", type: "int", default: 0, help: "steps of polynomial decay", meta: "N" },
  { name: "loss-threshold", type: "float", default: 0, help: "clamp the probability to [t, 1-t] before the loss (0: off)", meta: "T" },
  { name: "qr-flag", type: "bool", default: false, help: "quotient-remainder embeddings for tables above --qr-threshold rows" },
  { name: "qr-threshold", type: "int", default: 200, help: "tables with more rows become QR", meta: "N" },
  { name: "qr-operation", type: "choice", choices: ["mult", "add", "concat"], default: "mult", help: "how the quotient and remainder embeddings combine" },
  { name: "qr-collisions", type: "int", default: 4, help: "rows sharing a quotient embedding (the remainder table's rows)", meta: "C" },
  { name: "md-flag", type: "bool", default: false, help: "mixed-dimension embeddings (projected up to d) for tables above --md-threshold rows" },
  { name: "md-threshold", type: "int", default: 200, help: "tables with more rows get a mixed dimension", meta: "N" },
  { name: "md-temperature", type: "float", default: 0.3, help: "power-rule temperature of the dimension solver", meta: "A" },
  { name: "md-round-dims", type: "bool", default: false, help: "round mixed dimensions to powers of two" },
  { name: "seed", type: "int", default: 123, help: "seed of parameters and generated data (also --numpy-rand-seed)", meta: "N" },
  { name: "numpy-rand-seed", type: "int", help: "the reference's name for --seed", meta: "N" },
];

export const DATA_FLAGS: FlagSpec[] = [
  { name: "data-generation", type: "choice", choices: ["random", "synthetic", "dataset", "teacher"], default: "random", help: "random (uniform indices, random labels), synthetic (indices replayed from the reuse traces of --data-trace-file, random labels), dataset (Criteo), or teacher (ours: Zipf indices, labels from a hidden teacher model, a learnable signal)" },
  { name: "data-set", type: "choice", choices: ["kaggle", "terabyte"], default: "kaggle", help: "Criteo dataset layout (with --data-generation dataset)" },
  { name: "raw-data-file", type: "string", help: "Criteo train.txt or day_N file (preprocessed into an Arrow cache on first use)", meta: "FILE" },
  { name: "processed-data-file", type: "string", help: "Arrow cache directory made by `preprocess`", meta: "DIR" },
  { name: "data-randomize", type: "choice", choices: ["total", "day", "none"], default: "total", help: "training-row order, as the reference: total (shuffle across days), day (within each day) or none; in bounded memory (pieces of 65536 rows in a shuffled order, gathered --data-shard-rows rows at a time into shards whose rows are shuffled), a new order each epoch from --seed" },
  { name: "data-shard-rows", type: "int", default: 1048576, help: "rows per shuffle shard, gathered from shard-rows / 65536 random pieces (memory: about 160 bytes per row)", meta: "N" },
  { name: "data-sub-sample-rate", type: "float", default: 0, help: "when preprocessing --raw-data-file: drop each label-0 row with this probability, as the reference", meta: "R" },
  { name: "max-ind-range", type: "int", default: -1, help: "hash categorical ids modulo this many rows (-1: dictionary)", meta: "N" },
  { name: "data-size", type: "int", default: 1, help: "generated data: samples per epoch, ceil(N / --mini-batch-size) batches when --num-batches is 0", meta: "N" },
  { name: "num-indices-per-lookup", type: "int", default: 10, help: "indices per bag of generated data", meta: "K" },
  { name: "num-indices-per-lookup-fixed", type: "bool", default: false, help: "every bag has exactly K indices (else 1..K)" },
  { name: "zipf-exponent", type: "float", default: 1.05, help: "teacher data: Zipf exponent of index popularity", meta: "S" },
  { name: "data-trace-file", type: "string", default: "./input/dist_emb_j.log", help: "synthetic data: the reference's stack-distance file per table (j is replaced with the table number)", meta: "FILE" },
  { name: "data-trace-enable-padding", type: "bool", default: false, help: "synthetic data: pad the reuse trace when it runs out of new ids, as the reference" },
  { name: "round-targets", type: "bool", default: false, help: "round generated labels to 0/1 (random and synthetic data)" },
];

export const RUN_FLAGS: FlagSpec[] = [
  { name: "mini-batch-size", type: "int", default: 1, help: "samples per training step", meta: "B" },
  { name: "num-batches", type: "int", default: 0, help: "batches per epoch (0: the whole split; generated data: from --data-size)", meta: "N" },
  { name: "nepochs", type: "int", default: 1, help: "epochs", meta: "N" },
  { name: "test-freq", type: "int", default: -1, help: "evaluate every N steps and at the end of each epoch (<= 0: never, as the reference)", meta: "N" },
  { name: "test-mini-batch-size", type: "int", default: -1, help: "samples per evaluation batch (-1: --mini-batch-size)", meta: "B" },
  { name: "test-num-batches", type: "int", default: 0, help: "batches per evaluation (0: the whole split; generated data default 8)", meta: "N" },
  { name: "print-freq", type: "int", default: 1, help: "report the loss (sample-weighted mean since the last report) every N steps and at the end of each epoch", meta: "N" },
  { name: "save-model", type: "string", help: "checkpoint file (safetensors) written every --checkpoint-every steps and at the end", meta: "FILE" },
  { name: "checkpoint-every", type: "int", default: 0, help: "steps between checkpoints (0: only at the end)", meta: "N" },
  { name: "load-model", type: "string", help: "start from this checkpoint (ours, or a PyTorch DLRM state_dict in safetensors)", meta: "FILE" },
  { name: "resume", type: "bool", default: false, help: "continue the run saved in --save-model from its step, with the same data order" },
  { name: "inference-only", type: "bool", default: false, help: "skip training: evaluate the loaded model" },
  { name: "log-jsonl", type: "string", help: "append progress as JSON lines to this file", meta: "FILE" },
  { name: "report", type: "string", help: "HTML report path (default: beside --save-model, else none)", meta: "FILE" },
  { name: "allow-non-finite", type: "bool", default: false, help: "load a checkpoint even if a tensor holds NaN or Infinity (refused otherwise)" },
  { name: "config", type: "string", help: "JSON file of options (flag names as keys); flags given override it", meta: "FILE" },
  { name: "embedding-precision", type: "choice", choices: ["fp32", "bf16"], default: "fp32", help: "storage of the embedding tables (ours): bf16 halves their memory and the bytes each lookup reads (f32 sums and updates, rounded back to bf16; checkpoints stay f32; single device)" },
  { name: "bf16-rounding", type: "choice", choices: ["stochastic", "nearest"], default: "stochastic", help: "with --embedding-precision bf16: rounding of updated weights, stochastic (seeded, deterministic per step) or round-to-nearest-even" },
];

/** Multi-device training beside the device flags of shard_setup.ts: how tables are placed, how the all-to-all runs. */
export const TRAIN_SHARD_FLAGS: FlagSpec[] = [
  { name: "shard-plan", type: "choice", choices: ["auto", "table", "row", "column", "data"], default: "auto", help: "table placement on several devices: auto (the planner, on the calibrated devices) or one kind for every table, even batch split" },
  { name: "shard-tune", type: "int", default: 0, help: "with --shard-plan auto: tune the plan on N rounds of real steps before training (run, measure each device's work alone, refit the cost model, re-plan; src/shard/autotune.ts); 0 = the calibrated planner alone", meta: "N" },
  { name: "shard-profile", type: "int", default: 0, help: "with several devices: run steps 3..N+2 phase by phase (serial schedule, each device's part run alone; the same training) and print per device and phase ms and dispatches, the collectives, and what the normal schedule overlaps (timed on the step after)", meta: "N" },
  { name: "all-to-all", type: "choice", choices: ["auto", "butterfly", "bruck", "direct"], default: "auto", help: "all-to-all schedule (auto: butterfly for a power-of-two device count, else Bruck)" },
  { name: "allreduce", type: "choice", choices: ["auto", "ring", "rhd"], default: "auto", help: "allreduce of the MLP gradients (and of row-wise Adagrad's per-row sums): ring, rhd (recursive halving/doubling), or auto (the faster on --interconnect's link by the α-β model; host: the calibrated host-staged copy, on software adapters one shared by all devices)" },
];
