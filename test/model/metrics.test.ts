import { describe, expect, it } from "vitest";
import { MetricsAccumulator, rocAuc } from "../../src/model/metrics.ts";
import { learningRateAt } from "../../src/model/schedule.ts";
import { Rng } from "../helpers/random.ts";
import { loadFixture } from "./fixtures.ts";

/** AUC by definition: P(score of a positive > score of a negative) + P(tie)/2, over all pairs. */
function pairwiseAuc(s: number[], y: number[]): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < s.length; i++) {
    for (let j = 0; j < s.length; j++) {
      if (y[i] === 1 && y[j] === 0) {
        den++;
        num += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
      }
    }
  }
  return num / den;
}

describe("metrics", () => {
  it("ROC AUC equals the pairwise definition, ties included", () => {
    const rng = new Rng(5);
    for (const n of [2, 7, 50, 301]) {
      const s = Array.from({ length: n }, () => Math.round(rng.uniform() * 10) / 10); // many ties
      const y = Array.from({ length: n }, (_, i) => (i < 2 ? i : rng.int(2)));
      expect(rocAuc(s, y)).toBeCloseTo(pairwiseAuc(s, y), 12);
    }
    expect(rocAuc([0.1, 0.2], [1, 1])).toBeNaN();
    expect(rocAuc([0.1, 0.9], [0, 1])).toBe(1);
    expect(rocAuc([0.9, 0.1], [0, 1])).toBe(0);
  });

  it("accumulates accuracy, log loss and AUC over batches", () => {
    const acc = new MetricsAccumulator();
    acc.add([0.9, 0.2], [1, 0]);
    acc.add(Float32Array.of(0.6, 0.4, 0.5), Float32Array.of(0, 1, 1));
    const r = acc.result();
    expect(r.samples).toBe(5);
    expect(r.accuracy).toBeCloseTo(3 / 5, 12); // 0.9->1 ok, 0.2->0 ok, 0.6->1 wrong, 0.4->0 wrong, 0.5->1 ok
    const ll = -(Math.log(0.9) + Math.log(0.8) + Math.log(0.4) + Math.log(0.4) + Math.log(0.5)) / 5;
    expect(r.logLoss).toBeCloseTo(ll, 6);
    expect(r.auc).toBeCloseTo(pairwiseAuc([0.9, 0.2, 0.6, 0.4, 0.5], [1, 0, 0, 1, 1]), 12);
  });

  it("learning-rate schedule matches the reference's LRPolicyScheduler (PyTorch fixture)", () => {
    const f = loadFixture("dot_itself_bce_adagrad_lrsched");
    const c = f.config;
    const lrs = f.tensors["lrs"]!.data as Float32Array;
    lrs.forEach((lr, t) => {
      const ours = learningRateAt({ baseLr: c.learningRate, warmupSteps: c.lrWarmupSteps, decayStartStep: c.lrDecayStartStep, decaySteps: c.lrDecaySteps }, t);
      expect(Math.fround(ours)).toBe(lr);
    });
    expect(learningRateAt({ baseLr: 0.1, warmupSteps: 0, decayStartStep: 0, decaySteps: 0 }, 1000)).toBe(0.1);
  });
});
