/**
 * Checkpoints and faults of the sharded model:
 *  - a checkpoint written by N devices under one plan is ONE safetensors
 *    file with the reference's names and full tables, and loads on any other
 *    N and plan (resharded on load): training continued there matches an
 *    uninterrupted single-device run within the equivalence bound
 *    (test/shard/equivalence.test.ts);
 *  - a device destroyed in the middle of a step stops it with an error naming
 *    the device; the last checkpoint is intact, and resuming from it on the
 *    remaining devices with a new plan trains on, again matching one device.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { GpuContext } from "../../src/gpu/context.ts";
import { applyCheckpoint, loadCheckpointFile, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { initParameters, parameterShapes, type StateDict } from "../../src/model/params.ts";
import { ShardDeviceLostError, ShardedDlrm } from "../../src/shard/model.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { expectNearOneDevice, makePlan, mixedPlan, randomBatches, smallConfig } from "./helpers.ts";

const B = 24;
const L = 3;
const STEPS = 6;
const config = smallConfig();
const init = initParameters(config);
const batches = randomBatches(config, STEPS, B, 17);
// The equivalence bound (see test/shard/equivalence.test.ts) for STEPS steps.
const FACTOR = (STEPS + 1) * 2 * (B + L);
const dir = mkdtempSync(join(tmpdir(), "dlrm-shard-ckpt-"));

let ctxs: GpuContext[] = [];
let ref: { losses: number[]; params: StateDict };

/**
 * The checkpoint and device-loss tests on `devices()` (4 contexts set up by
 * the caller). The device-loss test destroys the 4th: register this suite last.
 */
export function checkpointSuite(devices: () => GpuContext[]): void {
beforeAll(async () => {
  ctxs = devices();
  const m = new DlrmModel(ctxs[0]!.device, config, init);
  for (const b of batches) m.trainStep(b);
  ref = { losses: await m.readLosses(), params: await m.stateDict() };
  m.destroy();
}, 600_000);

const expectNear = (actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) => expectNearOneDevice(actual, expected, FACTOR, what);

describe("sharded checkpoints", () => {
  it("saved by 3 devices (mixed plan), loaded by 2 (row-wise) and by 1 device: the same model, training continues", { timeout: 600_000 }, async () => {
    const path = join(dir, "n3.safetensors");
    const a = new ShardedDlrm(ctxs.slice(0, 3), config, init, mixedPlan(config.tableRows, config.embeddingDim, 3));
    for (const b of batches.slice(0, 3)) await a.trainStep(b);
    const lossesA = await a.readLosses();
    await saveCheckpoint(path, a);
    const saved = await a.stateDict();
    a.destroy();

    const ck = await loadCheckpointFile(path);
    // One file, the reference's names and full shapes, nothing per device.
    expect(Object.keys(ck.params).sort()).toEqual(parameterShapes(config).map(([n]) => n).sort());
    for (const [n, shape] of parameterShapes(config)) expect(ck.params[n]!.shape, n).toEqual(shape);
    expect(ck.step).toBe(3);
    expect(Object.keys(ck.optimizer).some((n) => n.startsWith("optim.emb_l."))).toBe(true);

    const b2 = new ShardedDlrm(ctxs.slice(0, 2), ck.config, init, makePlan("row", config.tableRows, config.embeddingDim, 2));
    applyCheckpoint(b2, ck);
    expect(b2.step).toBe(3);
    const re = await b2.stateDict();
    for (const [n, t] of Object.entries(saved)) expectBitIdentical(re[n]!.data, t.data, `resharded ${n}`);
    const opt = await b2.optimizerState();
    for (const [n, t] of Object.entries(ck.optimizer)) expectBitIdentical(opt[n]!.data, t.data, `resharded ${n}`);
    for (const b of batches.slice(3)) await b2.trainStep(b);
    const lossesB = await b2.readLosses();
    expectNear([...lossesA, ...lossesB], ref.losses, "losses (3 devices, then 2)");
    const final = await b2.stateDict();
    for (const [n, t] of Object.entries(ref.params)) expectNear(final[n]!.data, t.data, n);
    b2.destroy();

    // And on one device, as a plain DlrmModel.
    const one = new DlrmModel(ctxs[3]!.device, ck.config, init);
    applyCheckpoint(one, ck);
    for (const b of batches.slice(3)) one.trainStep(b);
    expectNear(await one.readLosses(), ref.losses.slice(3), "losses (3 devices, then 1)");
    one.destroy();
  });
});

describe("device loss", () => {
  it("a device destroyed mid-step (3-device run) stops the run naming it; the checkpoint is intact; the 2 remaining devices resume with a new plan", { timeout: 600_000 }, async () => {
    const own = ctxs.slice(1, 4);
    const path = join(dir, "fault.safetensors");
    const m = new ShardedDlrm(own, config, init, makePlan("table", config.tableRows, config.embeddingDim, 3));
    for (const b of batches.slice(0, 2)) await m.trainStep(b);
    const lossesA = await m.readLosses();
    await saveCheckpoint(path, m);
    const bytes = readFileSync(path);
    await m.trainStep(batches[2]!);
    // Lose device 2 while step 4 is in flight (its lookups are submitted, the exchange not finished).
    const inFlight = m.trainStep(batches[3]!);
    own[2]!.device.destroy();
    const err = await inFlight.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ShardDeviceLostError);
    expect((err as ShardDeviceLostError).deviceIndex).toBe(2);
    expect((err as Error).message).toMatch(/device 2 \(".*"\) was lost during step 4/);
    // Nothing else can be read or saved from the broken run.
    await expect(m.stateDict()).rejects.toThrow(/device 2/);
    await expect(saveCheckpoint(path, m)).rejects.toThrow(/device 2/);
    expect(Buffer.compare(readFileSync(path), bytes)).toBe(0);
    m.destroy();

    const ck = await loadCheckpointFile(path);
    expect(ck.step).toBe(2);
    const rest = [own[0]!, own[1]!];
    const r = new ShardedDlrm(rest, ck.config, init, makePlan("row", config.tableRows, config.embeddingDim, 2));
    applyCheckpoint(r, ck);
    for (const b of batches.slice(2)) await r.trainStep(b);
    expectNear([...lossesA, ...(await r.readLosses())], ref.losses, "losses (3 devices, then the 2 left)");
    const final = await r.stateDict();
    for (const [n, t] of Object.entries(ref.params)) expectNear(final[n]!.data, t.data, n);
    r.destroy();
  });
});
}
