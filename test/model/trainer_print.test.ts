/**
 * The printed training loss is the reference's: the mean over the samples
 * since the last print (each step's mean loss weighted by its batch size, so
 * a short last batch counts less), printed every --print-freq steps and at
 * the end of each epoch; --print-freq is not capped.
 */
import { describe, expect, it } from "vitest";
import { randomSource } from "../../src/data/random.ts";
import { resolveConfig } from "../../src/model/config.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { initParameters } from "../../src/model/params.ts";
import { type StepEvent, train } from "../../src/model/trainer.ts";
import { testDevice } from "../helpers/gpu.ts";

const tableRows = [4, 3, 2];
const config = resolveConfig({ embeddingDim: 2, tableRows, bottomMlp: [4, 3, 2], topMlp: [8, 4, 2, 1], miniBatchSize: 2, seed: 3 });

async function run(numSamples: number, batchSize: number, printFreq: number, numBatches?: number) {
  const device = await testDevice();
  const model = new DlrmModel(device, config, initParameters(config));
  const events: StepEvent[] = [];
  const source = randomSource({ numDense: 4, tableRows, seed: 5, numSamples, bagSize: 3, fixedBagSize: false });
  const r = await train(model, { source, batchSize, numBatches, printFreq, onStep: (e) => events.push(e), finalEval: false });
  model.destroy();
  return { r, events };
}

describe("printed training loss", () => {
  it("is sample-weighted over the interval (a short last batch counts less)", async () => {
    // The README's tiny run with one sample less: batches of 2, 2, 1.
    const { r, events } = await run(5, 2, 3);
    expect(r.losses.length).toBe(3);
    const [a, b, c] = r.losses.map((l) => l.loss);
    expect(events.map((e) => e.step)).toEqual([3]);
    expect(events[0]!.loss).toBeCloseTo((2 * a! + 2 * b! + 1 * c!) / 5, 6);
    expect(Math.abs(events[0]!.loss - (a! + b! + c!) / 3)).toBeGreaterThan(1e-4); // not the mean of step means
  });

  it("--print-freq is not capped, and the epoch's end prints", async () => {
    const { events } = await run(1 << 20, 1, 250, 260);
    expect(events.map((e) => e.step)).toEqual([250, 260]);
  });
});
