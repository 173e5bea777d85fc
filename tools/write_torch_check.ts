/**
 * Writes a checkpoint for tools/torch_load_check.py: trains a fixture's
 * model 3 steps on its batches, saves it as our checkpoint, and adds our
 * predictions on the fixture's batch 0 as the extra tensor "check.prob".
 *
 *   npx tsx tools/write_torch_check.ts dot_mse_sgd /tmp/check.safetensors
 *   /usr/bin/python3 tools/torch_load_check.py dot_mse_sgd /tmp/check.safetensors
 */
import { writeFileSync } from "node:fs";
import { createContext } from "../src/gpu/context.ts";
import { checkpointBytes } from "../src/io/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors } from "../src/io/safetensors.ts";
import { DlrmModel } from "../src/model/dlrm.ts";
import { loadFixture } from "../test/model/fixtures.ts";

const [name = "dot_mse_sgd", out = "/tmp/check.safetensors"] = process.argv.slice(2);
const f = loadFixture(name);
const ctx = await createContext();
const model = new DlrmModel(ctx.device, f.config, f.stateDict("init"));
for (const b of f.batches.slice(1, 4)) model.trainStep(b);
const prob = await model.predict(f.batches[0]!);
const { tensors, metadata } = decodeSafetensors(await checkpointBytes(model), { copy: true });
const all: Parameters<typeof encodeSafetensors>[0] = { ...tensors, "check.prob": { dtype: "F32", shape: [prob.length], data: prob } };
writeFileSync(out, encodeSafetensors(all, metadata));
console.log(`wrote ${out}: ${name} after 3 steps, with our predictions on batch 0`);
model.destroy();
ctx.destroy();
