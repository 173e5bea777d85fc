/** From parsed flags to a model configuration and a data source. */
import { ConfigError } from "../gpu/errors.ts";
import { type DlrmConfig, interactionWidth, resolveConfig } from "../model/config.ts";
import { randomSource } from "../data/random.ts";
import { syntheticSource, type Teacher } from "../data/synthetic.ts";
import { rocAuc } from "../model/metrics.ts";
import type { IndexDistribution } from "../data/synthetic.ts";
import { parseStackDistanceDist } from "../data/trace.ts";
import { cliHost } from "./host.ts";
import type { DataSource } from "../data/source.ts";
import { openDatasetSource } from "./dataset.ts";
import type { FlagValues } from "./args.ts";
import { UsageError } from "./args.ts";

export interface Setup {
  config: DlrmConfig;
  source: DataSource;
  /** Generated data: a default number of batches applies. */
  generated: boolean;
  describe: string;
}

function lossWeights(text: string): [number, number] {
  const parts = String(text).split("-").map(Number);
  if (parts.length !== 2 || parts.some((v) => !(v >= 0))) throw new UsageError(`--loss-weights expects two non-negative numbers like 1.0-1.0, got '${text}'`);
  return [parts[0]!, parts[1]!];
}

/** The reference's per-table trace file name: every "j" in the path becomes the table number (str.replace). */
export function traceFileFor(pattern: string, table: number): string {
  return pattern.split("j").join(String(table));
}

/**
 * Builds the data source; a dataset fixes the table sizes and the dense width.
 * Generated data (random, synthetic, teacher) is unbounded unless --num-batches
 * is 0, when --data-size samples make ceil(size / batch) batches (the last one
 * short), as the reference's RandomDataset.
 */
export async function makeSource(v: FlagValues, log: (s: string) => void): Promise<{ source: DataSource; generated: boolean; describe: string; cacheDir?: string }> {
  const gen = v.dataGeneration as string;
  const seed = (v.numpyRandSeed ?? v.seed) as number;
  const tableRows = v.archEmbeddingSize as number[];
  const numDense = (v.archMlpBot as number[])[0]!;
  const size = (v.numBatches as number) > 0 ? undefined : (v.dataSize as number) || undefined;
  const bag = { bagSize: v.numIndicesPerLookup as number, fixedBagSize: v.numIndicesPerLookupFixed as boolean };
  if (gen === "random") {
    return {
      source: randomSource({ numDense, tableRows, seed, roundTargets: v.roundTargets as boolean, numSamples: size, ...bag }),
      generated: true,
      describe: `random data (paper 4.1), ${tableRows.length} tables, ${bag.fixedBagSize ? "" : "1 to "}${bag.bagSize} indices per bag`,
    };
  }
  if (gen === "synthetic") {
    const pattern = v.dataTraceFile as string;
    const dists: IndexDistribution[] = [];
    for (let t = 0; t < tableRows.length; t++) {
      const file = traceFileFor(pattern, t);
      let text: string;
      try {
        text = await cliHost.readText(file);
      } catch {
        throw new UsageError(`--data-generation synthetic replays the reference's reuse traces: ${file} (from --data-trace-file ${pattern}, "j" = table number) cannot be read; give the reference's input/dist_emb_j.log files, or use --data-generation random or teacher`);
      }
      dists.push({ kind: "trace", dist: parseStackDistanceDist(text), enablePadding: v.dataTraceEnablePadding as boolean });
    }
    return {
      source: syntheticSource({ numDense, tableRows, seed, numSamples: size, distribution: dists, randomLabels: { round: v.roundTargets as boolean }, ...bag }),
      generated: true,
      describe: `synthetic data (paper 4.2): indices replayed from the reuse traces ${pattern}, random labels`,
    };
  }
  if (gen === "teacher") {
    return {
      source: syntheticSource({ numDense, tableRows, seed, numSamples: size, distribution: { kind: "zipf", s: v.zipfExponent as number }, ...bag }),
      generated: true,
      describe: `teacher data: Zipf(${v.zipfExponent}) indices, labels from a hidden teacher model`,
    };
  }
  return { ...(await openDatasetSource(v, log)), generated: false };
}

/** The model configuration from flags, with table sizes and dense width taken from the source. */
export function makeConfig(v: FlagValues, source: DataSource, given: Set<string>): DlrmConfig {
  const d = v.archSparseFeatureSize as number;
  const bottom = [...(v.archMlpBot as number[])];
  const topLayers = [...(v.archMlpTop as number[])];
  const tableRows = [...source.tableRows];
  if (bottom[0] !== source.numDense) {
    if (given.has("archMlpBot")) throw new ConfigError(`--arch-mlp-bot starts with ${bottom[0]} but the data has ${source.numDense} dense features`);
    bottom[0] = source.numDense;
  }
  const op = v.archInteractionOp as DlrmConfig["interaction"];
  const itself = v.archInteractionItself as boolean;
  // As the reference: the interaction's width is prepended to --arch-mlp-top.
  const top = [interactionWidth(tableRows.length, d, op, itself), ...topLayers];
  return resolveConfig({
    embeddingDim: d,
    tableRows,
    bottomMlp: bottom,
    topMlp: top,
    interaction: op,
    interactionItself: itself,
    loss: v.lossFunction as DlrmConfig["loss"],
    lossWeights: lossWeights(v.lossWeights as string),
    optimizer: v.optimizer as DlrmConfig["optimizer"],
    learningRate: v.learningRate as number,
    lrWarmupSteps: v.lrNumWarmupSteps as number,
    lrDecayStartStep: v.lrDecayStartStep as number,
    lrDecaySteps: v.lrNumDecaySteps as number,
    miniBatchSize: v.miniBatchSize as number,
    seed: (v.numpyRandSeed ?? v.seed) as number,
    lossThreshold: v.lossThreshold as number,
    qr: v.qrFlag ? { operation: v.qrOperation as "mult" | "add" | "concat", collisions: v.qrCollisions as number, threshold: v.qrThreshold as number } : null,
    md: v.mdFlag ? { temperature: v.mdTemperature as number, roundDims: v.mdRoundDims as boolean, threshold: v.mdThreshold as number } : null,
  });
}

/** Merges a JSON config file under the flags that were given explicitly. */
export function mergeConfigFile(values: FlagValues, given: Set<string>, json: unknown, file: string): void {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new UsageError(`${file}: expected a JSON object of options`);
  for (const [key, raw] of Object.entries(json)) {
    const camel = key.replace(/^--/, "").replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(camel in values) && !KNOWN.has(camel)) throw new UsageError(`${file}: unknown option '${key}'`);
    if (given.has(camel)) continue;
    let value = raw as FlagValues[string];
    if (typeof raw === "string" && Array.isArray(values[camel])) value = raw.split("-").map(Number);
    values[camel] = value;
    given.add(camel);
  }
}

const KNOWN = new Set<string>();
export function registerKnown(names: string[]): void {
  for (const n of names) KNOWN.add(n.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase()));
}

/** Evaluation batches of generated data when --test-num-batches is not given (train and eval alike). */
export const GENERATED_TEST_BATCHES = 8;

/** The samples an evaluation uses: the same for train-time evaluation, `eval` and the teacher's score. */
export function evalPlan(v: FlagValues, generated: boolean): { batchSize: number; limit: number | undefined } {
  return { batchSize: v.testMiniBatchSize as number, limit: (v.testNumBatches as number) || (generated ? GENERATED_TEST_BATCHES : undefined) };
}

/** AUC of the synthetic data's hidden teacher on exactly the samples `plan` selects; undefined for other data. */
export async function teacherAuc(source: DataSource, plan: { batchSize: number; limit: number | undefined }, split: "train" | "val" | "test" = "test"): Promise<number | undefined> {
  const teacher = (source as { teacher?: Teacher }).teacher;
  if (!teacher) return undefined;
  const probs: number[] = [];
  const labels: number[] = [];
  for await (const b of source.batches({ batchSize: plan.batchSize, split, limit: plan.limit })) {
    probs.push(...teacher.probabilities(b));
    labels.push(...b.labels);
  }
  return rocAuc(probs, labels);
}
