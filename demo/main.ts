/**
 * Minimal browser host: trains a small DLRM on synthetic data with the same
 * engine the CLI uses, on navigator.gpu. (The full training demo is a later stage.)
 */
import { createContext } from "../src/gpu/context.ts";
import { resolveConfig } from "../src/model/config.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { initParameters } from "../src/model/params.ts";
import { train } from "../src/model/trainer.ts";
import { syntheticSource } from "../src/data/synthetic.ts";

const log = document.getElementById("log")!;
const status = document.getElementById("status")!;
const button = document.getElementById("run") as HTMLButtonElement;
const say = (s: string) => {
  log.textContent += s + "\n";
};

async function run(): Promise<void> {
  button.disabled = true;
  log.textContent = "";
  try {
    const ctx = await createContext({ label: "demo" });
    say(`adapter: ${ctx.adapter.name}`);
    const tableRows = [1000, 500, 2000, 100, 50, 3000, 800, 20];
    const config = resolveConfig({
      embeddingDim: 16,
      tableRows,
      bottomMlp: [13, 64, 16],
      topMlp: [16 + 36, 64, 1],
      loss: "bce",
      optimizer: "adagrad",
      learningRate: 0.05,
      miniBatchSize: 128,
    });
    const source = syntheticSource({ numDense: 13, tableRows, seed: 1 });
    const model = new DlrmModel(ctx.device, config, initParameters(config));
    const result = await train(model, {
      source,
      batchSize: 128,
      numBatches: 200,
      printFreq: 20,
      testBatches: 8,
      onStep: (e) => {
        status.textContent = `step ${e.step}/${e.totalSteps}`;
        say(`step ${e.step}: loss ${e.loss.toFixed(4)}, ${Math.round(e.samplesPerSec)} samples/s`);
      },
      onEval: (e) => say(`test AUC ${e.auc.toFixed(4)}, accuracy ${(100 * e.accuracy).toFixed(1)}%`),
    });
    status.textContent = `done: ${result.steps} steps in ${result.seconds.toFixed(1)} s`;
    document.body.dataset.auc = String(result.evals.at(-1)?.auc ?? NaN);
    model.destroy();
    ctx.destroy();
  } catch (e) {
    say(`error: ${(e as Error).message}`);
    document.body.dataset.error = (e as Error).message;
  } finally {
    button.disabled = false;
  }
}

button.addEventListener("click", () => void run());
if (new URLSearchParams(location.search).has("autorun")) void run();
