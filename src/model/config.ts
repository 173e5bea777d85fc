/**
 * DLRM configuration: the reference's architecture and training options
 * (facebookresearch/dlrm dlrm_s_pytorch.py), validated with messages that
 * say how to fix the problem.
 */
import { ConfigError } from "../gpu/errors.ts";
import { embeddingLayout, type MdOptions, type QrOptions } from "./embedding_layout.ts";

export type InteractionOp = "dot" | "cat";
/** bce is torch.nn.BCELoss on the probability (the reference); bce-logits the numerically stable BCE with logits (ours). */
export type LossName = "mse" | "bce" | "wbce" | "bce-logits";
export type OptimizerName = "sgd" | "adagrad" | "rwsadagrad";

export interface DlrmConfig {
  /** Embedding dimension d (--arch-sparse-feature-size). */
  embeddingDim: number;
  /** Rows of each embedding table (--arch-embedding-size). */
  tableRows: number[];
  /** Bottom MLP layer sizes including the dense input width (--arch-mlp-bot), e.g. [13, 512, 256, 64, 16]. */
  bottomMlp: number[];
  /** Top MLP layer sizes including its input width and the final 1 (--arch-mlp-top), e.g. [367, 512, 256, 1]. */
  topMlp: number[];
  interaction: InteractionOp;
  /** Include the diagonal of T·Tᵀ (--arch-interaction-itself). */
  interactionItself: boolean;
  loss: LossName;
  /** wbce: weight of a sample with label 0 and label 1 (--loss-weights "w0-w1"). */
  lossWeights: [number, number];
  optimizer: OptimizerName;
  learningRate: number;
  lrWarmupSteps: number;
  lrDecayStartStep: number;
  lrDecaySteps: number;
  miniBatchSize: number;
  seed: number;
  /** Clamp the probability to [t, 1 - t] before the loss when 0 < t < 1 (--loss-threshold). */
  lossThreshold: number;
  /** Quotient-remainder embeddings (--qr-flag) for tables with more rows than the threshold. */
  qr: QrOptions | null;
  /** Mixed-dimension embeddings (--md-flag) with projections up to d. */
  md: MdOptions | null;
}

export type { MdOptions, QrOptions };

export const DEFAULTS: Omit<DlrmConfig, "tableRows" | "bottomMlp" | "topMlp" | "embeddingDim"> = {
  interaction: "dot",
  interactionItself: false,
  loss: "mse",
  lossWeights: [1, 1],
  optimizer: "sgd",
  learningRate: 0.01,
  lrWarmupSteps: 0,
  lrDecayStartStep: 0,
  lrDecaySteps: 0,
  miniBatchSize: 1,
  seed: 123,
  lossThreshold: 0,
  qr: null,
  md: null,
};

/** Width of the interaction output (= top MLP input) as the reference computes it. */
export function interactionWidth(numTables: number, dim: number, op: InteractionOp, itself: boolean): number {
  if (op === "cat") return (numTables + 1) * dim;
  const n = numTables + 1;
  return dim + (itself ? (n * (n + 1)) / 2 : (n * (n - 1)) / 2);
}

function positiveInt(name: string, v: unknown): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) throw new ConfigError(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
}

/** Fills defaults and checks the whole configuration; throws ConfigError naming the problem. */
export function resolveConfig(partial: Partial<DlrmConfig> & Pick<DlrmConfig, "embeddingDim" | "tableRows" | "bottomMlp" | "topMlp">): DlrmConfig {
  const c: DlrmConfig = { ...DEFAULTS, ...partial } as DlrmConfig;
  positiveInt("embedding dimension (--arch-sparse-feature-size)", c.embeddingDim);
  if (!Array.isArray(c.tableRows) || c.tableRows.length === 0) throw new ConfigError("at least one embedding table is needed (--arch-embedding-size, e.g. 1000-1000-1000)");
  c.tableRows.forEach((r, t) => positiveInt(`rows of table ${t} (--arch-embedding-size)`, r));
  if (c.bottomMlp.length < 2) throw new ConfigError("the bottom MLP needs an input and at least one layer (--arch-mlp-bot, e.g. 13-512-256-64-16)");
  if (c.topMlp.length < 2) throw new ConfigError("the top MLP needs an input and at least one layer (--arch-mlp-top, e.g. 367-512-256-1)");
  c.bottomMlp.forEach((v, i) => positiveInt(`bottom MLP size ${i}`, v));
  c.topMlp.forEach((v, i) => positiveInt(`top MLP size ${i}`, v));
  if (!["dot", "cat"].includes(c.interaction)) throw new ConfigError(`interaction op must be dot or cat, got '${c.interaction}' (--arch-interaction-op)`);
  const botOut = c.bottomMlp[c.bottomMlp.length - 1]!;
  if (botOut !== c.embeddingDim) {
    throw new ConfigError(
      `the bottom MLP's output (${botOut}) must equal the embedding dimension (${c.embeddingDim}): ` +
        `end --arch-mlp-bot with ${c.embeddingDim} or set --arch-sparse-feature-size ${botOut}`,
    );
  }
  const want = interactionWidth(c.tableRows.length, c.embeddingDim, c.interaction, c.interactionItself);
  if (c.topMlp[0] !== want) {
    throw new ConfigError(
      `the top MLP's input must be ${want} for ${c.tableRows.length} tables, d=${c.embeddingDim}, ` +
        `interaction ${c.interaction}${c.interactionItself ? " with itself" : ""}; got ${c.topMlp[0]} (--arch-mlp-top ${[want, ...c.topMlp.slice(1)].join("-")})`,
    );
  }
  if (c.topMlp[c.topMlp.length - 1] !== 1) throw new ConfigError(`the top MLP must end in 1 output (a click probability); got ${c.topMlp[c.topMlp.length - 1]}`);
  if (!["mse", "bce", "wbce", "bce-logits"].includes(c.loss)) throw new ConfigError(`loss must be mse, bce, wbce or bce-logits, got '${c.loss}' (--loss-function)`);
  if (c.loss === "bce-logits" && c.lossThreshold > 0) throw new ConfigError("--loss-threshold clamps the probability: use --loss-function bce (the probability form) with it, not bce-logits");
  if (!["sgd", "adagrad", "rwsadagrad"].includes(c.optimizer)) throw new ConfigError(`optimizer must be sgd, adagrad or rwsadagrad, got '${c.optimizer}' (--optimizer)`);
  if (!(c.learningRate > 0) || !Number.isFinite(c.learningRate)) throw new ConfigError(`learning rate must be a positive number, got ${c.learningRate}`);
  for (const k of ["lrWarmupSteps", "lrDecayStartStep", "lrDecaySteps"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 0) throw new ConfigError(`${k} must be a non-negative integer, got ${c[k]}`);
  }
  if (c.lossWeights.length !== 2 || c.lossWeights.some((w) => !(w >= 0))) throw new ConfigError(`loss weights must be two non-negative numbers (--loss-weights 1.0-1.0)`);
  positiveInt("mini-batch size (--mini-batch-size)", c.miniBatchSize);
  if (!(c.lossThreshold >= 0 && c.lossThreshold < 1)) throw new ConfigError(`loss threshold must be in [0, 1), got ${c.lossThreshold} (--loss-threshold)`);
  // QR and MD options are checked where they are interpreted: the embedding layout.
  if (c.qr || c.md) embeddingLayout({ embeddingDim: c.embeddingDim, tableRows: c.tableRows, qr: c.qr, md: c.md });
  return c;
}

/** Parses "13-512-256-1" as the reference's dash-separated lists. */
export function parseDashList(flag: string, text: string): number[] {
  const parts = text.split("-").map((s) => s.trim());
  const nums = parts.map(Number);
  if (parts.some((p) => p === "") || nums.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new ConfigError(`${flag} expects positive integers separated by '-', e.g. 13-512-256-64-16; got '${text}'`);
  }
  return nums;
}
