/**
 * Streamed checkpoints of the sharded model (ShardedDlrm.checkpointTensors):
 * the shards are gathered piece by piece on save (one file, byte-identical to
 * the in-memory writer's) and cut again piece by piece on load, for another
 * plan or for one device; the loaded models hold exactly the saved weights and
 * optimizer state.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContexts, type GpuContext } from "../../src/gpu/context.ts";
import { checkpointBytes, loadCheckpointInto, optimizerSidecar, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { decodeSafetensors } from "../../src/io/safetensors.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { initParameters, type StateDict } from "../../src/model/params.ts";
import { ShardedDlrm } from "../../src/shard/model.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { makePlan, mixedPlan, randomBatches, smallConfig } from "../shard/helpers.ts";

const config = smallConfig();
const dir = mkdtempSync(join(tmpdir(), "dlrm-stream-shard-"));
let ctxs: GpuContext[] = [];
beforeAll(async () => {
  ctxs = await createContexts(2, { label: "stream-shard" });
}, 600_000);
afterAll(() => ctxs.forEach((c) => c.destroy()));

function expectSame(a: StateDict, b: StateDict, what: string): void {
  expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
  for (const k of Object.keys(a)) expectBitIdentical(b[k]!.data, a[k]!.data, `${what} ${k}`);
}

describe("streamed sharded checkpoints", () => {
  it("2 devices (mixed plan) save in small pieces the in-memory writer's bytes; load on 2 devices (row-wise) and on 1 device exactly", { timeout: 600_000 }, async () => {
    const batches = randomBatches(config, 2, 16, 5);
    const a = new ShardedDlrm(ctxs, config, initParameters(config), mixedPlan(config.tableRows, config.embeddingDim, 2));
    for (const b of batches) await a.trainStep(b);
    const path = join(dir, "n2.safetensors");
    await saveCheckpoint(path, a, {}, { chunkBytes: 600 });
    const [params, optim] = [await a.stateDict(), await a.optimizerState()];
    // The same tensors, bytes and order as the whole-in-memory writer (checkpointBytes holds both parts inline).
    const whole = decodeSafetensors(await checkpointBytes(a));
    const main = decodeSafetensors(new Uint8Array(readFileSync(path)));
    const side = decodeSafetensors(new Uint8Array(readFileSync(optimizerSidecar(path))));
    expect([...Object.keys(main.tensors), ...Object.keys(side.tensors)]).toEqual(Object.keys(whole.tensors));
    for (const [k, t] of Object.entries({ ...main.tensors, ...side.tensors })) expectBitIdentical(t.data as Float32Array, whole.tensors[k]!.data as Float32Array, k);
    a.destroy();

    const other = initParameters(config, 77);
    const b = new ShardedDlrm(ctxs, config, other, makePlan("row", config.tableRows, config.embeddingDim, 2));
    await loadCheckpointInto(path, b, { chunkBytes: 600 });
    expect(b.step).toBe(2);
    expectSame(params, await b.stateDict(), "2 devices, row-wise:");
    expectSame(optim, await b.optimizerState(), "2 devices, row-wise:");
    // Every MLP replica got the weights.
    for (const r of await b.replicaStateDicts()) for (const [k, t] of Object.entries(r)) expectBitIdentical(t.data, params[k]!.data, `replica ${k}`);
    b.destroy();

    const one = new DlrmModel(ctxs[0]!.device, config, other);
    await loadCheckpointInto(path, one, { chunkBytes: 600 });
    expect(one.step).toBe(2);
    expectSame(params, await one.stateDict(), "1 device:");
    expectSame(optim, await one.optimizerState(), "1 device:");
    one.destroy();
  });
});
