/**
 * Sharded training on two DIFFERENT adapters in one process (lavapipe and
 * SwiftShader, `npm run test:pair`): a mixed plan with uneven batch shares
 * trains like one device (the bound of test/shard/equivalence.test.ts, plus
 * the two adapters' own rounding differences, which are of the same size:
 * one rounding per operation), and the MLP replicas stay bit-identical.
 * Also with row-wise Adagrad, whose column-wise table's per-row allreduce then
 * runs between the two adapters: both shards' row accumulators must agree.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContexts, type GpuContext } from "../../src/gpu/context.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { initParameters } from "../../src/model/params.ts";
import { ShardedDlrm } from "../../src/shard/model.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { expectNearOneDevice, mixedPlan, randomBatches, smallConfig } from "../shard/helpers.ts";

const B = 24;
const L = 3;
const STEPS = 3;
const FACTOR = (STEPS + 1) * 2 * (B + L);
const config = smallConfig();
const init = initParameters(config);
const batches = randomBatches(config, STEPS, B, 23);

let ctxs: GpuContext[] = [];
beforeAll(async () => {
  ctxs = await createContexts(["llvmpipe", "swiftshader"], { label: "pair-shard" });
}, 600_000);
afterAll(() => ctxs.forEach((c) => c.destroy()));

const expectNear = (actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) => expectNearOneDevice(actual, expected, FACTOR, what);

describe("lavapipe + SwiftShader sharded training", () => {
  it("mixed plan, uneven shares: same losses and weights as one device; replicas identical", { timeout: 600_000 }, async () => {
    expect(ctxs[0]!.adapter.name.toLowerCase()).toContain("llvmpipe");
    expect(ctxs[1]!.adapter.name.toLowerCase()).toContain("swiftshader");
    const one = new DlrmModel(ctxs[0]!.device, config, init);
    for (const b of batches) one.trainStep(b);
    const refLosses = await one.readLosses();
    const ref = await one.stateDict();
    one.destroy();

    const plan = { ...mixedPlan(config.tableRows, config.embeddingDim, 2), batchShare: [0.625, 0.375] };
    const m = new ShardedDlrm(ctxs, config, init, plan);
    for (const b of batches) await m.trainStep(b);
    expectNear(await m.readLosses(), refLosses, "losses");
    const sd = await m.stateDict();
    for (const [n, t] of Object.entries(ref)) expectNear(sd[n]!.data, t.data, n);
    const [r0, r1] = await m.replicaStateDicts();
    for (const [n, t] of Object.entries(r0!)) expectBitIdentical(r1![n]!.data, t.data, `replica on SwiftShader vs lavapipe: ${n}`);
    m.destroy();
  });

  it("rwsadagrad, mixed plan (a table split 3 + 5 columns over the two adapters): same as one device; row accumulators and replicas identical", { timeout: 600_000 }, async () => {
    const rc = smallConfig({ optimizer: "rwsadagrad" });
    const rinit = initParameters(rc);
    const rfactor = (STEPS + 1) * 2 * (B + L + rc.embeddingDim);
    const one = new DlrmModel(ctxs[0]!.device, rc, rinit);
    for (const b of batches) one.trainStep(b);
    const refLosses = await one.readLosses();
    const ref = { ...(await one.stateDict()), ...(await one.optimizerState()) };
    one.destroy();
    const plan = { ...mixedPlan(rc.tableRows, rc.embeddingDim, 2), batchShare: [0.625, 0.375] };
    expect(plan.tables[2]!.kind).toBe("column");
    const m = new ShardedDlrm(ctxs, rc, rinit, plan);
    for (const b of batches) await m.trainStep(b);
    expectNearOneDevice(await m.readLosses(), refLosses, rfactor, "losses");
    const got = { ...(await m.stateDict()), ...(await m.optimizerState()) };
    for (const [n, t] of Object.entries(ref)) expectNearOneDevice(got[n]!.data, t.data, rfactor, n);
    const [s0, s1] = await m.shardOptimizerStates(2);
    expectBitIdentical(s1!, s0!, "row accumulators of table 2 on SwiftShader vs lavapipe");
    const [r0, r1] = await m.replicaStateDicts();
    for (const [n, t] of Object.entries(r0!)) expectBitIdentical(r1![n]!.data, t.data, `replica on SwiftShader vs lavapipe: ${n}`);
    m.destroy();
  });
});
