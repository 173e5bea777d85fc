/** Loads the PyTorch reference fixtures (test/fixtures/dlrm, made by tools/make_fixtures.py). */
import { readFileSync } from "node:fs";
import type { Batch } from "../../src/data/batch.ts";
import { decodeSafetensors } from "../../src/io/safetensors.ts";
import { type DlrmConfig, resolveConfig } from "../../src/model/config.ts";
import type { StateDict } from "../../src/model/params.ts";

export interface Fixture {
  name: string;
  raw: Record<string, unknown>;
  config: DlrmConfig;
  tensors: Record<string, { shape: number[]; data: Float32Array | Uint32Array }>;
  batches: Batch[];
  /** State dict under a prefix such as "init", "grad", "step1", "opt10". */
  stateDict(prefix: string): StateDict;
}

export function loadFixture(name: string): Fixture {
  const bytes = new Uint8Array(readFileSync(new URL(`../fixtures/dlrm/${name}.safetensors`, import.meta.url)));
  const { tensors, metadata } = decodeSafetensors(bytes, { copy: true });
  const raw = JSON.parse(metadata!.config!) as Record<string, any>;
  const config = resolveConfig({
    embeddingDim: raw.embeddingDim,
    tableRows: raw.tableRows,
    bottomMlp: raw.bottomMlp,
    topMlp: raw.topMlp,
    interaction: raw.interaction,
    interactionItself: raw.interactionItself,
    loss: raw.loss,
    lossWeights: raw.lossWeights ?? [1, 1],
    lossThreshold: raw.lossThreshold,
    optimizer: raw.optimizer,
    learningRate: raw.learningRate,
    lrWarmupSteps: raw.lrSchedule.warmupSteps,
    lrDecayStartStep: raw.lrSchedule.decayStartStep,
    lrDecaySteps: raw.lrSchedule.numDecaySteps,
    miniBatchSize: raw.batchSize,
    seed: raw.seed,
    qr: raw.qr,
    md: raw.md,
  });
  const t = tensors as unknown as Fixture["tensors"];
  const B = raw.batchSize as number;
  const batches: Batch[] = [];
  for (let k = 0; k < raw.numBatches; k++) {
    batches.push({
      size: B,
      numDense: raw.numDense,
      numTables: raw.tableRows.length,
      dense: t[`batch${k}/dense`]!.data as Float32Array,
      offsets: t[`batch${k}/offsets`]!.data as Uint32Array,
      indices: t[`batch${k}/indices`]!.data as Uint32Array,
      labels: t[`batch${k}/labels`]!.data as Float32Array,
    });
  }
  return {
    name,
    raw,
    config,
    tensors: t,
    batches,
    stateDict(prefix) {
      const sd: StateDict = {};
      for (const [k, v] of Object.entries(t)) {
        if (k.startsWith(prefix + "/")) sd[k.slice(prefix.length + 1)] = { shape: v.shape, data: v.data as Float32Array };
      }
      return sd;
    },
  };
}
