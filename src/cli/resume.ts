/**
 * Flags versus a checkpoint (--resume / --load-model): the checkpoint's value
 * applies only to flags the user did not give; a given flag that contradicts
 * the checkpoint fails the run with the list of differences, instead of one
 * side being silently replaced by the other.
 */
import type { Checkpoint } from "../io/checkpoint.ts";
import type { DlrmConfig } from "../model/config.ts";
import type { FlagValues } from "./args.ts";
import { UsageError } from "./args.ts";

function kebab(camel: string): string {
  return camel.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function show(x: unknown): string {
  if (Array.isArray(x)) return x.join("-");
  return String(x);
}

function same(a: unknown, b: unknown, key: string): boolean {
  if (key === "lossWeights") {
    const nums = (x: unknown) => (Array.isArray(x) ? x : String(x).split("-")).map(Number).join(",");
    return nums(a) === nums(b);
  }
  if (typeof a === "number" || typeof b === "number") return Number(a) === Number(b);
  return show(a) === show(b);
}

/** The flag values that reproduce a checkpoint's configuration. */
export function configFlags(c: DlrmConfig): FlagValues {
  const f: FlagValues = {
    archSparseFeatureSize: c.embeddingDim,
    archEmbeddingSize: c.tableRows,
    archMlpBot: c.bottomMlp,
    archMlpTop: c.topMlp.slice(1),
    archInteractionOp: c.interaction,
    archInteractionItself: c.interactionItself,
    lossFunction: c.loss,
    lossWeights: c.lossWeights.join("-"),
    lossThreshold: c.lossThreshold,
    optimizer: c.optimizer,
    learningRate: c.learningRate,
    lrNumWarmupSteps: c.lrWarmupSteps,
    lrDecayStartStep: c.lrDecayStartStep,
    lrNumDecaySteps: c.lrDecaySteps,
    miniBatchSize: c.miniBatchSize,
    seed: c.seed,
    qrFlag: Boolean(c.qr),
    mdFlag: Boolean(c.md),
  };
  if (c.qr) Object.assign(f, { qrOperation: c.qr.operation, qrCollisions: c.qr.collisions, qrThreshold: c.qr.threshold });
  if (c.md) Object.assign(f, { mdTemperature: c.md.temperature, mdRoundDims: c.md.roundDims, mdThreshold: c.md.threshold });
  return f;
}

const ARCH = ["archSparseFeatureSize", "archEmbeddingSize", "archMlpBot", "archMlpTop", "archInteractionOp", "archInteractionItself", "qrFlag", "qrOperation", "qrCollisions", "qrThreshold", "mdFlag", "mdTemperature", "mdRoundDims", "mdThreshold"];
const LOSS = ["lossFunction", "lossWeights", "lossThreshold"];
const SCHEDULE = ["learningRate", "lrNumWarmupSteps", "lrDecayStartStep", "lrNumDecaySteps"];

/**
 * Merges a checkpoint's configuration (and, for --resume, its recorded data
 * options) into the flag values. Strict keys given with another value fail
 * with every difference listed; the learning-rate schedule may be changed
 * on purpose (noted). Returns lines to show the user.
 */
export function mergeCheckpointFlags(v: FlagValues, given: Set<string>, ckpt: Checkpoint, file: string, mode: "resume" | "load"): string[] {
  const notes: string[] = [];
  const from = configFlags(ckpt.config);
  // A plain PyTorch state_dict tells only its architecture (loss and optimizer came from the flags).
  const strict = ckpt.native ? [...ARCH, ...LOSS, ...(mode === "resume" ? ["optimizer", "miniBatchSize", "seed"] : [])] : ARCH.slice(0, 6);
  const soft = ckpt.native ? [...(mode === "resume" ? SCHEDULE : []), ...(mode === "load" ? ["optimizer"] : [])] : [];
  const data: FlagValues = mode === "resume" && ckpt.extra.data ? (JSON.parse(ckpt.extra.data) as FlagValues) : {};
  // --seed and --numpy-rand-seed are one option.
  if (given.has("numpyRandSeed")) {
    v.seed = v.numpyRandSeed;
    given.add("seed");
  }
  delete data.numpyRandSeed;
  const diffs: string[] = [];
  for (const key of strict) {
    if (!(key in from)) continue;
    if (given.has(key)) {
      if (!same(v[key], from[key], key)) diffs.push(`--${kebab(key)} ${show(v[key])} (the checkpoint has ${show(from[key])})`);
    } else {
      v[key] = from[key];
    }
  }
  for (const [key, value] of Object.entries(data)) {
    if (key === "seed" || value === undefined) continue;
    // Evaluation options may change freely; a run's own keep applying unless given.
    const free = key === "testMiniBatchSize" || key === "testNumBatches";
    if (given.has(key)) {
      if (free) continue;
      if (!same(v[key], value, key)) diffs.push(`--${kebab(key)} ${show(v[key])} (the run used ${show(value)})`);
    } else {
      v[key] = value;
    }
  }
  for (const key of soft) {
    if (!given.has(key)) {
      v[key] = from[key];
    } else if (!same(v[key], from[key], key)) {
      notes.push(
        key === "optimizer"
          ? `note: --optimizer ${show(v[key])} replaces the checkpoint's ${show(from[key])}; its optimizer state is not loaded`
          : `note: --${kebab(key)} ${show(v[key])} replaces the checkpoint's ${show(from[key])}`,
      );
    }
  }
  if (diffs.length) {
    const what = mode === "resume" ? "--resume continues" : "--load-model starts from";
    throw new UsageError(
      `${what} ${file}, which differs from the flags given: ${diffs.join("; ")}. Drop these flags to use the checkpoint's values${mode === "resume" ? ", or start a new run with another --save-model" : ""}.`,
    );
  }
  return notes;
}
