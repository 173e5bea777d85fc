/**
 * N devices train exactly like one: for N = 2, 3, 4 and every plan kind
 * (table-, row-, column-wise, data-parallel, and a mixed plan with uneven
 * batch shares), K steps from the same initial weights give the same
 * per-step losses, parameters and optimizer state as the single-device
 * DlrmModel; the MLP replicas are bit-identical after every run; N = 1 is
 * bit-identical to DlrmModel; the same N and plan twice is bit-identical;
 * and a deliberate error (one lookup routed to the wrong row, one gradient
 * block dropped) fails the same check.
 *
 * Tolerance. Only the order of some sums changes between N devices and one;
 * every per-sample computation is the same kernel on the same inputs. The
 * reordered sums are
 *   - a bag's pooled vector (at most L terms; row-wise shards add partial
 *     sums in device order),
 *   - the batch sums of the MLP weight/bias gradients and of the loss (B
 *     terms: N partial sums, then N - 1 ring additions, instead of one tree).
 * Two float32 evaluations of a K-term sum differ by at most 2(K - 1)u·Σ|terms|
 * (u = 2^-24), so each step perturbs the changed sums by a relative
 * 2(B + L)u of their magnitude. After s steps a parameter holds s such
 * perturbations plus what earlier ones change in later gradients; as in the
 * PyTorch tests we bound the latter by one more factor (s + 1):
 *   tol_i = (s + 1) · 2(B + L) · u · (|expected_i| + mean|expected|).
 * Here B = 24, L = 3, s = 3: tol ≈ 216 u (1.3e-5) relative. Measured
 * differences are below 2e-7 absolute; the deliberate errors exceed the
 * tolerance by orders of magnitude.
 *
 * Row-wise Adagrad over column shards adds one reordered sum: a row's
 * accumulator increment sum_k g_k^2 over d columns is summed per shard, then
 * the shards' partials by the ring allreduce (d terms), so the factor becomes
 * (s + 1) · 2(B + L + d).
 */
import { beforeAll, describe, expect, it, vi } from "vitest";
import type { GpuContext } from "../../src/gpu/context.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import type { DlrmConfig } from "../../src/model/config.ts";
import { initParameters, type StateDict } from "../../src/model/params.ts";
import { ShardedDlrm, type ShardedOptions } from "../../src/shard/model.ts";
import { type ShardingPlan, validatePlan } from "../../src/shard/plan.ts";
import { shapeFromConfig } from "../../src/shard/cost_model.ts";
import { tunePlan } from "../../src/shard/autotune.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { makePlan, PLAN_KINDS, randomBatches, smallConfig, worstOverBound } from "./helpers.ts";

const B = 24;
const L = 3; // largest bag (randomBatches draws 0..3 rows)
const STEPS = 3;
const config = smallConfig();
const init = initParameters(config);
const batches = randomBatches(config, STEPS, B);
const FACTOR = (STEPS + 1) * 2 * (B + L);

let ctxs: GpuContext[] = [];

type State = { params: StateDict; optim: StateDict };
type Run = State & { losses: number[] };
/** Every weight and optimizer tensor of `a` equals `b`'s bit for bit. */
function expectSameState(a: State, b: State): void {
  for (const [name, t] of Object.entries(a.params)) expectBitIdentical(b.params[name]!.data, t.data, name);
  for (const [name, t] of Object.entries(a.optim)) expectBitIdentical(b.optim[name]!.data, t.data, name);
}
/** Two runs of the same plan: losses, weights and optimizer state bit for bit. */
function expectSameRun(a: Run, b: Run): void {
  expectBitIdentical(Float32Array.from(a.losses), Float32Array.from(b.losses), "losses");
  expectSameState(a, b);
}
/** `got` loaded (resharded) onto `plan` over `devices` reads back the same bits. */
async function expectReloads(devices: GpuContext[], cfg: ConstructorParameters<typeof ShardedDlrm>[1], got: State, plan: ShardingPlan): Promise<void> {
  const m = new ShardedDlrm(devices, cfg, got.params, plan);
  m.loadOptimizerState(got.optim);
  expectSameState(got, { params: await m.stateDict(), optim: await m.optimizerState() });
  m.destroy();
}
/** The losses since the last read, the parameters and the optimizer state of a model. */
async function readRun(m: DlrmModel | ShardedDlrm): Promise<Run> {
  return { losses: await m.readLosses(), params: await m.stateDict(), optim: await m.optimizerState() };
}
/** Every MLP replica equals the first bit for bit. */
function expectReplicasIdentical(replicas: StateDict[]): void {
  for (let i = 1; i < replicas.length; i++) {
    for (const [name, t] of Object.entries(replicas[0]!)) expectBitIdentical(replicas[i]![name]!.data, t.data, `replica ${i} ${name}`);
  }
}
let ref: Run;

/** The equivalence tests on `devices()` (at least 4 contexts, set up by the caller). */
export function equivalenceSuite(devices: () => GpuContext[]): void {
beforeAll(async () => {
  ctxs = devices();
  ref = await trainOne(config, init);
}, 600_000);

/** The reference: `batches` trained on one device (DlrmModel). */
async function trainOne(cfg: DlrmConfig, params: StateDict): Promise<Run> {
  const one = new DlrmModel(ctxs[0]!.device, cfg, params);
  for (const b of batches) one.trainStep(b);
  const out = await readRun(one);
  one.destroy();
  return out;
}

/** A ShardedDlrm on `plan`'s devices after `batches` (the caller destroys it). */
async function trainSharded(cfg: DlrmConfig, params: StateDict, plan: ShardingPlan, opts: ShardedOptions = {}): Promise<ShardedDlrm> {
  const m = new ShardedDlrm(ctxs.slice(0, plan.devices), cfg, params, plan, opts);
  for (const b of batches) await m.trainStep(b);
  return m;
}

async function runSharded(plan: ShardingPlan, opts: ShardedOptions = {}) {
  const m = await trainSharded(config, init, plan, opts);
  const out = { ...(await readRun(m)), replicas: await m.replicaStateDicts() };
  m.destroy();
  return out;
}

/**
 * The worst ratio (error over the tolerance of `factor`) over losses, every parameter and the optimizer state, and
 * what it was, against `r` (default the plain model's run); shapes must match.
 */
function compare(got: Run, r = ref, factor = FACTOR): { ratio: number; what: string } {
  const ref = r;
  const worst = (actual: ArrayLike<number>, expected: ArrayLike<number>) => worstOverBound(actual, expected, factor);
  let out = { ratio: 0, what: "" };
  const take = (what: string, w: { ratio: number; at: number }) => {
    if (w.ratio > out.ratio) out = { ratio: w.ratio, what: `${what}[${w.at}]` };
  };
  expect(got.losses.length).toBe(ref.losses.length);
  take("losses", worst(got.losses, ref.losses));
  for (const [name, t] of Object.entries(ref.params)) {
    expect(got.params[name]?.shape, name).toEqual(t.shape);
    take(name, worst(got.params[name]!.data, t.data));
  }
  for (const [name, t] of Object.entries(ref.optim)) {
    expect(got.optim[name]?.shape, name).toEqual(t.shape);
    take(name, worst(got.optim[name]!.data, t.data));
  }
  return out;
}

/** Within the tolerance of `factor` against `r` everywhere (see compare). */
function expectWithinBound(got: Run, r = ref, factor = FACTOR): void {
  const c = compare(got, r, factor);
  expect(c.ratio, `worst error / tolerance at ${c.what}`).toBeLessThanOrEqual(1);
}

describe("sharded training equals one device", () => {
  it("N = 1 (table-wise plan) is bit-identical to DlrmModel", { timeout: 600_000 }, async () => {
    const got = await runSharded(makePlan("table", config.tableRows, config.embeddingDim, 1));
    expectBitIdentical(Float32Array.from(got.losses), Float32Array.from(ref.losses), "losses");
    for (const [name, t] of Object.entries(ref.params)) expectBitIdentical(got.params[name]!.data, t.data, name);
  });

  for (const n of [2, 3, 4]) {
    for (const kind of PLAN_KINDS) {
      it(`N = ${n}, ${kind} plan: losses, parameters and optimizer state within the reordering bound; replicas identical`, { timeout: 600_000 }, async () => {
        const got = await runSharded(makePlan(kind, config.tableRows, config.embeddingDim, n));
        expectWithinBound(got);
        expect(got.replicas).toHaveLength(n);
        expectReplicasIdentical(got.replicas);
      });
    }
  }

  it("a device with no share of the batch (N = 3, mixed plan, shares 1/2, 0, 1/2) still trains its shards", { timeout: 600_000 }, async () => {
    const plan = { ...makePlan("mixed", config.tableRows, config.embeddingDim, 3), batchShare: [0.5, 0, 0.5] };
    const got = await runSharded(plan);
    expectWithinBound(got);
    expectReplicasIdentical(got.replicas);
  });

  it("the same N and plan twice is bit-identical (mixed plan, N = 3)", { timeout: 600_000 }, async () => {
    const plan = makePlan("mixed", config.tableRows, config.embeddingDim, 3);
    expectSameRun(await runSharded(plan), await runSharded(plan));
  });

  it("a lookup routed to the wrong row fails the check", { timeout: 600_000 }, async () => {
    const got = await runSharded(makePlan("row", config.tableRows, config.embeddingDim, 2), { fault: "misroute-row" });
    expect(compare(got).ratio).toBeGreaterThan(10);
  });

  it("QR and MD tables placed whole (N = 3, QR on devices 0 and 2, MD on 1 and 2, a plain table row-wise, uneven shares): within the bound; names and shapes as one device's", { timeout: 600_000 }, async () => {
    // Rows 37, 50, 23, 64, 11: tables 1 and 3 QR (> 40 rows; mult, 4 collisions), 0 and 2 MD (> 20 rows), 4 plain.
    const qc = smallConfig({ qr: { operation: "mult", collisions: 4, threshold: 40 }, md: { temperature: 0.3, roundDims: false, threshold: 20 } });
    const qinit = initParameters(qc);
    const qref = await trainOne(qc, qinit);
    expect(Object.keys(qref.params).some((k) => k.endsWith("weight_q")) && Object.keys(qref.params).some((k) => k.endsWith("proj.weight")), "the config has QR tables and projected MD tables").toBe(true);
    const whole = (table: number, device: number) => ({ table, kind: "table" as const, shards: [{ device, rowStart: 0, rowEnd: qc.tableRows[table]!, colStart: 0, colEnd: qc.embeddingDim }] });
    const plan: ShardingPlan = {
      devices: 3,
      tables: [whole(0, 1), whole(1, 0), whole(2, 2), whole(3, 2), { table: 4, kind: "row", shards: [0, 1, 2].map((device) => ({ device, rowStart: [0, 4, 8][device]!, rowEnd: [4, 8, 11][device]!, colStart: 0, colEnd: qc.embeddingDim })) }],
      batchShare: [0.5, 1 / 3, 1 / 6],
    };
    const m = await trainSharded(qc, qinit, plan);
    const got = await readRun(m);
    expect(Object.keys(got.params)).toEqual(Object.keys(qref.params));
    expect(Object.keys(got.optim).sort()).toEqual(Object.keys(qref.optim).sort());
    expectWithinBound(got, qref);
    // The checkpoint's parameters load back (resharded on another plan) bit-exactly.
    await expectReloads(ctxs.slice(0, 2), qc, got, { ...plan, devices: 2, tables: plan.tables.map((p) => (p.kind === "table" ? whole(p.table, p.table % 2) : { ...p, shards: [{ ...p.shards[0]!, device: 0, rowEnd: 11 }] })), batchShare: [0.5, 0.5] });
    m.destroy();
  });

  describe("QR tables split by sub-table rows (q and r rows on different devices; add, concat and mult)", () => {
    // Rows 37, 50, 23, 64, 11, 4 collisions (table 1: q 13 rows, table 3: q 16, r 4). add / mult: tables 1 and 3 QR (> 40 rows),
    // 0 and 2 MD (> 20 rows), 4 plain. concat needs every table QR (threshold 5).
    const qrConfig = (operation: "add" | "concat" | "mult") =>
      operation === "concat"
        ? smallConfig({ qr: { operation, collisions: 4, threshold: 5 } })
        : smallConfig({ qr: { operation, collisions: 4, threshold: 40 }, md: { temperature: 0.3, roundDims: false, threshold: 20 } });
    /** N = 3: table 1's q rows over devices 0, 1, 2 and r rows over 2, 0; table 3's q over 1, 2 and r whole on 1; tables 0, 2 whole; table 4 data-parallel (whole if QR); uneven shares. */
    const qrRowPlan = (c: ReturnType<typeof qrConfig>): ShardingPlan => {
      const d = c.embeddingDim;
      const op = c.qr!.operation;
      const cols = (part: "q" | "r") => (op === "concat" ? (part === "q" ? [0, d / 2] : [d / 2, d]) : [0, d]);
      const sub = (part: "q" | "r", ranges: [number, number, number][]) => ranges.map(([device, rowStart, rowEnd]) => ({ device, rowStart, rowEnd, colStart: cols(part)[0]!, colEnd: cols(part)[1]!, part }));
      const whole = (table: number, device: number) => ({ table, kind: "table" as const, shards: [{ device, rowStart: 0, rowEnd: c.tableRows[table]!, colStart: 0, colEnd: d }] });
      return {
        devices: 3,
        tables: [
          whole(0, 2),
          { table: 1, kind: "row", shards: [...sub("q", [[0, 0, 5], [1, 5, 9], [2, 9, 13]]), ...sub("r", [[2, 0, 2], [0, 2, 4]])] },
          whole(2, 0),
          { table: 3, kind: "row", shards: [...sub("q", [[1, 0, 7], [2, 7, 16]]), ...sub("r", [[1, 0, 4]])] },
          op === "concat" ? whole(4, 1) : { table: 4, kind: "data", shards: [0, 1, 2].map((device) => ({ device, rowStart: 0, rowEnd: c.tableRows[4]!, colStart: 0, colEnd: d })) },
        ],
        batchShare: [0.5, 1 / 3, 1 / 6],
      };
    };
    for (const op of ["add", "concat", "mult"] as const) {
      it(`${op}: within the bound of one device; names and shapes as one device's; the checkpoint reloads on a table-wise plan bit-exactly`, { timeout: 600_000 }, async () => {
        const qc = qrConfig(op);
        const qinit = initParameters(qc);
        const qref = await trainOne(qc, qinit);
        const plan = qrRowPlan(qc);
        const m = await trainSharded(qc, qinit, plan);
        const got = await readRun(m);
        expect(Object.keys(got.params)).toEqual(Object.keys(qref.params));
        expect(Object.keys(got.optim).sort()).toEqual(Object.keys(qref.optim).sort());
        expectWithinBound(got, qref);
        expectReplicasIdentical(await m.replicaStateDicts());
        // The streamed checkpoint tensors (src/io writes checkpoints through them) read the same bits, sub-table rows gathered.
        const all = { ...got.params, ...got.optim };
        const tensors = m.checkpointTensors();
        expect(tensors.map((t) => t.name).sort()).toEqual(Object.keys(all).sort());
        for (const t of tensors) expectBitIdentical(await t.read(0, t.shape[0]!), all[t.name]!.data, `streamed ${t.name}`);
        m.destroy();
        // Reshard: the split tables' weight_q / weight_r (and state) load whole on 2 devices and read back the same bits.
        await expectReloads(ctxs.slice(0, 2), qc, got, makePlan("table", qc.tableRows, qc.embeddingDim, 2));
      });
    }
    it("MD tables split row-wise (each shard runs a projection copy; the copies' gradient is allreduced) beside QR add split by sub-table rows: within the bound; streamed tensors and a table-wise reload bit-exact", { timeout: 600_000 }, async () => {
      const qc = qrConfig("add");
      const qinit = initParameters(qc);
      const qref = await trainOne(qc, qinit);
      expect(Object.keys(qref.params).filter((k) => k.endsWith("proj.weight")).length, "projected MD tables").toBeGreaterThan(0);
      const d = qc.embeddingDim;
      const rows = (table: number, parts: [number, number, number][]) => ({ table, kind: "row" as const, shards: parts.map(([device, rowStart, rowEnd]) => ({ device, rowStart, rowEnd, colStart: 0, colEnd: d })) });
      const base = qrRowPlan(qc);
      const plan: ShardingPlan = { ...base, tables: [rows(0, [[2, 0, 10], [0, 10, 30], [1, 30, 37]]), base.tables[1]!, rows(2, [[1, 0, 12], [2, 12, 23]]), base.tables[3]!, base.tables[4]!] };
      const m = await trainSharded(qc, qinit, plan);
      expect(m.lastProfile!.collectives.projections?.rounds.length, "the projection gradients were allreduced").toBeGreaterThan(0);
      const got = await readRun(m);
      expect(Object.keys(got.params)).toEqual(Object.keys(qref.params));
      expectWithinBound(got, qref);
      const all = { ...got.params, ...got.optim };
      for (const t of m.checkpointTensors()) expectBitIdentical(await t.read(0, t.shape[0]!), all[t.name]!.data, `streamed ${t.name}`);
      m.destroy();
      await expectReloads(ctxs.slice(0, 2), qc, got, makePlan("table", qc.tableRows, qc.embeddingDim, 2));
      // Without the projection gradients' allreduce each copy follows its own shard: the check fails.
      const bad = await trainSharded(qc, qinit, plan, { fault: "skip-projection-allreduce" });
      const wrong = await readRun(bad);
      bad.destroy();
      expect(compare(wrong, qref).ratio).toBeGreaterThan(10);
    });
    for (const op of ["add", "mult"] as const)
    it(`${op}, a q lookup routed to the wrong sub-table row fails the check`, { timeout: 600_000 }, async () => {
      const qc = qrConfig(op);
      const qinit = initParameters(qc);
      const qref = await trainOne(qc, qinit);
      const m = await trainSharded(qc, qinit, qrRowPlan(qc), { fault: "misroute-row" });
      const got = await readRun(m);
      m.destroy();
      expect(compare(got, qref).ratio).toBeGreaterThan(10);
    });
  });

  it("tunePlan runs real steps of each plan, measures every device's phases alone and returns a valid plan with a fitted estimate", { timeout: 600_000 }, async () => {
    const shape = shapeFromConfig(config, 2, B);
    const speed = { lookupSecPerElem: 1e-8, backwardSecPerElem: 1e-7, gemmGflops: 1, dispatchMs: 0.1, perDispatchMs: 0.05, transferLatencyMs: 0.2, transferGBs: 0.05 };
    const planner = { speeds: [speed, { ...speed, gemmGflops: 0.5 }], memoryBytes: [2 ** 30, 2 ** 30], names: ["a", "b"], estimate: { sharedHost: true } };
    const t = await tunePlan(ctxs.slice(0, 2), config, init, shape, planner, batches, { rounds: 2, steps: 1 });
    expect(t.rounds).toHaveLength(2);
    for (const r of t.rounds) {
      expect(r.measured.phases).toHaveLength(2);
      r.measured.deviceSec.forEach((x) => expect(x).toBeGreaterThan(0));
      expect(r.measured.phases[0]!.dispatches[0]! + r.measured.phases[1]!.dispatches[0]!).toBeGreaterThan(0); // the lookups were run and counted
    }
    validatePlan(t.result.plan, config.tableRows, config.embeddingDim);
    expect(t.rounds.map((r) => r.plan)).toContain(t.result.plan); // the best-balanced measured round is kept
    expect(t.result.estimate.sharedHost).toBe(true);
    t.result.estimate.devices.forEach((d) => expect(Number.isFinite(d.deviceWorkSec) && d.deviceWorkSec > 0).toBe(true));
    t.calibration.fits.flat().forEach((x) => expect(Number.isFinite(x) && x >= 0).toBe(true));
  });

  describe("row-wise Adagrad (rwsadagrad) over column shards: the per-row allreduce", () => {
    const rc = smallConfig({ optimizer: "rwsadagrad" });
    const rinit = initParameters(rc);
    const RFACTOR = (STEPS + 1) * 2 * (B + L + rc.embeddingDim);
    let rref: Run;
    beforeAll(async () => {
      rref = await trainOne(rc, rinit);
    }, 600_000);
    async function runRws(plan: ShardingPlan, opts: ShardedOptions = {}) {
      const m = new ShardedDlrm(ctxs.slice(0, plan.devices), rc, rinit, plan, opts);
      // Step buffers (row-sum slots included) are sized once and grown by doubling, not remade every step.
      const builds = vi.spyOn(m as unknown as { buildPlan: () => unknown }, "buildPlan");
      for (const b of batches) await m.trainStep(b);
      expect(builds.mock.calls.length, "step plans built").toBeLessThanOrEqual(2);
      const out = {
        ...(await readRun(m)), replicas: await m.replicaStateDicts(),
        shardStates: await Promise.all(plan.tables.map((p) => (p.kind === "column" ? m.shardOptimizerStates(p.table) : Promise.resolve([])))),
        rowSum: m.lastProfile!.collectives.rowSum,
      };
      m.destroy();
      return out;
    }
    const cases: [string, () => ShardingPlan][] = [
      ["N = 2, column-wise", () => makePlan("column", rc.tableRows, rc.embeddingDim, 2)],
      ["N = 3, column-wise (widths 3, 3, 2; each device holds pieces of several tables)", () => makePlan("column", rc.tableRows, rc.embeddingDim, 3)],
      ["N = 3, mixed (table, row, column 3 + 5, data, row; uneven shares)", () => makePlan("mixed", rc.tableRows, rc.embeddingDim, 3)],
      ["N = 4, column-wise (widths 2; the row sums go by recursive halving/doubling)", () => makePlan("column", rc.tableRows, rc.embeddingDim, 4)],
    ];
    for (const [name, plan] of cases) {
      it(`${name}: within the bound; MLP replicas and every shard's row accumulators bit-identical`, { timeout: 600_000 }, async () => {
        const got = await runRws(plan());
        expectWithinBound(got, rref, RFACTOR);
        expect(got.rowSum?.rounds.length, "the per-row allreduce ran").toBeGreaterThan(0);
        if (plan().devices === 4) expect(got.rowSum!.rounds.map((r) => r.label).join(), "auto picks halving/doubling at N = 4").toMatch(/rhd/);
        expectReplicasIdentical(got.replicas);
        got.shardStates.forEach((per, t) => per.slice(1).forEach((x, k) => expectBitIdentical(x, per[0]!, `table ${t} shard ${k + 1} row accumulators`)));
      });
    }
    it("the same column-wise plan twice (N = 3) is bit-identical", { timeout: 600_000 }, async () => {
      const plan = makePlan("column", rc.tableRows, rc.embeddingDim, 3);
      expectSameRun(await runRws(plan), await runRws(plan));
    });
    it("skipping the per-row allreduce (each shard sees only its own columns' g^2) fails the check", { timeout: 600_000 }, async () => {
      const got = await runRws(makePlan("column", rc.tableRows, rc.embeddingDim, 2), { fault: "skip-row-sum" });
      expect(compare(got, rref, RFACTOR).ratio).toBeGreaterThan(10);
    });
  });

  it("a dropped gradient block fails the check", { timeout: 600_000 }, async () => {
    const got = await runSharded(makePlan("table", config.tableRows, config.embeddingDim, 2), { fault: "drop-gradient" });
    expect(compare(got).ratio).toBeGreaterThan(10);
  });
});
}
