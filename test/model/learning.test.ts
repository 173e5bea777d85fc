/**
 * The model really learns: trained on synthetic data whose labels come from
 * a hidden teacher model, its test AUC must close most of the gap between
 * chance (0.5) and the teacher's own AUC on the same test samples (the
 * best any model can do on those labels). The same training on labels that
 * are pure noise must stay near chance — so a model that only memorizes
 * noise, or a broken backward pass, fails.
 */
import { describe, expect, it } from "vitest";
import { randomSource } from "../../src/data/random.ts";
import { syntheticSource } from "../../src/data/synthetic.ts";
import { resolveConfig } from "../../src/model/config.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { rocAuc } from "../../src/model/metrics.ts";
import { initParameters } from "../../src/model/params.ts";
import { evaluate, train } from "../../src/model/trainer.ts";
import { testDevice } from "../helpers/gpu.ts";

const tableRows = [50, 200, 1000, 30];
const config = resolveConfig({
  embeddingDim: 8,
  tableRows,
  bottomMlp: [13, 32, 8],
  topMlp: [8 + 10, 32, 1],
  loss: "bce-logits",
  optimizer: "adagrad",
  learningRate: 0.05,
  miniBatchSize: 128,
  seed: 7,
});
const STEPS = 250;
const TEST_BATCHES = 8;

describe("learning", () => {
  it("reaches most of the teacher's AUC on synthetic data", async () => {
    const source = syntheticSource({ numDense: 13, tableRows, seed: 11, distribution: { kind: "zipf", s: 1.05 } });
    // The teacher's AUC on the test split: the ceiling for any model.
    const probs: number[] = [];
    const labels: number[] = [];
    for await (const b of source.batches({ batchSize: 128, split: "test", limit: TEST_BATCHES })) {
      probs.push(...source.teacher.probabilities(b));
      labels.push(...b.labels);
    }
    const ceiling = rocAuc(probs, labels);
    expect(ceiling).toBeGreaterThan(0.7);

    const model = new DlrmModel(await testDevice(), config, initParameters(config));
    const before = await evaluate(model, source, { batchSize: 128, split: "test", limit: TEST_BATCHES });
    const r = await train(model, { source, batchSize: 128, numBatches: STEPS, testBatches: TEST_BATCHES, printFreq: 50 });
    const after = r.evals.at(-1)!;
    const required = 0.5 + 0.75 * (ceiling - 0.5);
    console.log(`learning: teacher AUC ${ceiling.toFixed(4)}, model AUC ${before.auc.toFixed(4)} -> ${after.auc.toFixed(4)} (required ${required.toFixed(4)}), loss ${r.losses[0]!.loss.toFixed(4)} -> ${r.losses.at(-1)!.loss.toFixed(4)}`);
    expect(after.auc).toBeGreaterThan(required);
    expect(r.losses.at(-1)!.loss).toBeLessThan(r.losses[0]!.loss);
    model.destroy();
  });

  it("stays near chance on labels that are pure noise", async () => {
    const source = randomSource({ numDense: 13, tableRows, seed: 11 });
    const model = new DlrmModel(await testDevice(), config, initParameters(config));
    const r = await train(model, { source, batchSize: 128, numBatches: STEPS, testBatches: TEST_BATCHES, printFreq: 50 });
    const auc = r.evals.at(-1)!.auc;
    // 1024 test samples: the AUC of an uninformative score has a standard deviation of about 0.018.
    expect(Math.abs(auc - 0.5)).toBeLessThan(0.07);
    model.destroy();
  });
});
