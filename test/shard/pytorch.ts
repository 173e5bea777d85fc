/**
 * The PyTorch fixtures of test/model/pytorch.test.ts, trained sharded: the
 * QR / MD cases on 2 devices (those tables whole, the plain ones row-wise; the
 * QR cases also with the QR tables split by sub-table rows, the MD cases with
 * the MD tables split by rows), the
 * plain-embedding cases on 3 devices with a mixed plan (table 0 row-wise,
 * table 1 column-wise or data-parallel, table 2 table-wise) and uneven
 * batch shares, and on 2 devices row-wise, against PyTorch's losses of all 10
 * steps and parameters after 10 steps. The tolerance is the one of the
 * single-device test (11 · 4 · Σ_l K_l · u relative; see there); sharding
 * only reorders sums of at most B = 6 terms, far inside it.
 */
import { beforeAll, describe, expect, it } from "vitest";
import type { GpuContext } from "../../src/gpu/context.ts";
import { layoutOf, type StateDict } from "../../src/model/params.ts";
import { ShardedDlrm } from "../../src/shard/model.ts";
import { rowWisePlan, type ShardingPlan } from "../../src/shard/plan.ts";
import { U32 } from "../helpers/assert.ts";
import { type Fixture, loadFixture } from "../model/fixtures.ts";

const CASES = ["dot_mse_sgd", "dot_itself_bce_adagrad_lrsched", "cat_wbce_rwsadagrad"];
/** QR / MD fixtures: those tables are placed whole (table-wise), the plain ones row-wise. */
const TRICK_CASES = ["qr_concat_dot_mse_adagrad", "qr_add_cat_bce_rwsadagrad", "md_dot_bce_rwsadagrad", "md_cat_mse_sgd", "qr_mult_dot_bce_sgd_clamp"];

let ctxs: GpuContext[] = [];

function depth(f: Fixture): number {
  const c = f.config;
  return [...c.bottomMlp.slice(0, -1), ...c.topMlp.slice(0, -1), c.embeddingDim].reduce((a, b) => a + b, 0);
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, factor: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let meanAbs = 0;
  for (let i = 0; i < expected.length; i++) meanAbs += Math.abs(expected[i]!);
  meanAbs /= Math.max(1, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const tol = factor * U32 * (Math.abs(expected[i]!) + meanAbs) + 1e-30;
    const err = Math.abs(actual[i]! - expected[i]!);
    if (!(err <= tol)) expect.fail(`${what}[${i}] = ${actual[i]}, PyTorch ${expected[i]} (|err| ${err.toExponential(2)} > tol ${tol.toExponential(2)})`);
  }
}

function mixed(f: Fixture): ShardingPlan {
  const [r0, r1, r2] = f.config.tableRows as [number, number, number];
  const d = f.config.embeddingDim;
  const colWise = true;
  return {
    devices: 3,
    tables: [
      { table: 0, kind: "row", shards: [{ device: 1, rowStart: 0, rowEnd: 3, colStart: 0, colEnd: d }, { device: 2, rowStart: 3, rowEnd: r0, colStart: 0, colEnd: d }] },
      colWise
        ? { table: 1, kind: "column", shards: [{ device: 0, rowStart: 0, rowEnd: r1, colStart: 0, colEnd: 1 }, { device: 2, rowStart: 0, rowEnd: r1, colStart: 1, colEnd: d }] }
        : { table: 1, kind: "data", shards: [0, 1, 2].map((device) => ({ device, rowStart: 0, rowEnd: r1, colStart: 0, colEnd: d })) },
      { table: 2, kind: "table", shards: [{ device: 1, rowStart: 0, rowEnd: r2, colStart: 0, colEnd: d }] },
    ],
    batchShare: [0.5, 1 / 3, 1 / 6],
  };
}

/** 2 devices: QR/MD tables whole on device t mod 2, plain tables row-wise; shares 2/3, 1/3. */
function whole(f: Fixture): ShardingPlan {
  const c = f.config;
  const kinds = layoutOf(c).tables.map((t) => t.kind);
  const d = c.embeddingDim;
  return {
    devices: 2,
    tables: c.tableRows.map((rows, t) =>
      kinds[t] !== "plain" || rows < 2
        ? { table: t, kind: "table" as const, shards: [{ device: t % 2, rowStart: 0, rowEnd: rows, colStart: 0, colEnd: d }] }
        : { table: t, kind: "row" as const, shards: [0, 1].map((device) => ({ device, rowStart: device ? Math.floor(rows / 2) : 0, rowEnd: device ? rows : Math.floor(rows / 2), colStart: 0, colEnd: d })) },
    ),
    batchShare: [2 / 3, 1 / 3],
  };
}

/** 2 devices: QR tables split by sub-table rows (q halves on devices 0 / 1, r halves on 1 / 0), others as whole(); shares 2/3, 1/3. */
function qrSplit(f: Fixture): ShardingPlan {
  const c = f.config;
  const d = c.embeddingDim;
  const base = whole(f);
  const op = c.qr!.operation;
  layoutOf(c).tables.forEach((t, i) => {
    if (t.kind !== "qr") return;
    const cols = (part: "q" | "r") => (op === "concat" ? (part === "q" ? [0, d / 2] : [d / 2, d]) : [0, d]);
    const halves = (part: "q" | "r", rows: number, first: number) =>
      (rows < 2 ? [[first, 0, rows]] : [[first, 0, Math.floor(rows / 2)], [1 - first, Math.floor(rows / 2), rows]]).map(([device, rowStart, rowEnd]) => ({ device: device!, rowStart: rowStart!, rowEnd: rowEnd!, colStart: cols(part)[0]!, colEnd: cols(part)[1]!, part }));
    base.tables[i] = { table: i, kind: "row", shards: [...halves("q", t.places[0]!.rows, 0), ...halves("r", t.places[1]!.rows, 1)] };
  });
  return base;
}

/** 2 devices: MD tables split by rows (halves on devices 1 / 0: each holds a projection copy), others as whole(); shares 2/3, 1/3. */
function mdSplit(f: Fixture): ShardingPlan {
  const c = f.config;
  const base = whole(f);
  layoutOf(c).tables.forEach((t, i) => {
    if (t.kind !== "md" || t.rows < 2) return;
    const h = Math.floor(t.rows / 2);
    base.tables[i] = { table: i, kind: "row", shards: [[1, 0, h], [0, h, t.rows]].map(([device, rowStart, rowEnd]) => ({ device: device!, rowStart: rowStart!, rowEnd: rowEnd!, colStart: 0, colEnd: c.embeddingDim })) };
  });
  return base;
}

/** 10 sharded steps from the fixture's init: losses and step-10 parameters as PyTorch's, within the reordered-sum bound 11*4*k. */
async function trainMatchesFixture(f: Fixture, plan: ShardingPlan, k: number): Promise<void> {
  const m = new ShardedDlrm(ctxs.slice(0, plan.devices), f.config, f.stateDict("init"), plan);
  for (const b of f.batches) await m.trainStep(b);
  expectClose(await m.readLosses(), f.tensors["losses"]!.data as Float32Array, 11 * 4 * k, "losses");
  const sd: StateDict = await m.stateDict();
  for (const [n, t] of Object.entries(f.stateDict("step10"))) {
    expect(sd[n]?.shape, n).toEqual(t.shape);
    expectClose(sd[n]!.data, t.data, 11 * 4 * k, `step10 ${n}`);
  }
  m.destroy();
}

/** The PyTorch fixtures sharded over `devices()` (at least 3 contexts, set up by the caller). */
export function pytorchSuite(devices: () => GpuContext[]): void {
beforeAll(() => {
  ctxs = devices();
});
describe.each(CASES)("sharded DLRM vs PyTorch: %s", (name) => {
  const f = loadFixture(name);
  const k = depth(f);
  for (const [label, planOf] of [["3 devices, mixed plan", mixed], ["2 devices, row-wise", (x: Fixture) => rowWisePlan(x.config.tableRows, x.config.embeddingDim, 2)]] as const) {
    it(`${label}: 10 steps, losses and parameters`, { timeout: 600_000 }, async () => {
      await trainMatchesFixture(f, planOf(f), k);
    });
  }
});
describe.each(TRICK_CASES)("sharded DLRM vs PyTorch (QR/MD tables whole): %s", (name) => {
  const f = loadFixture(name);
  const k = depth(f);
  it("2 devices, QR/MD tables table-wise, plain tables row-wise, shares 2/3 1/3: 10 steps, losses and parameters", { timeout: 600_000 }, async () => {
    const plan = whole(f);
    expect(layoutOf(f.config).tables.some((t) => t.kind !== "plain")).toBe(true);
    await trainMatchesFixture(f, plan, k);
  });
  if (name.startsWith("md_")) {
    it("2 devices, MD tables split by rows (a projection copy per shard, gradients allreduced): 10 steps, losses and parameters", { timeout: 600_000 }, async () => {
      const plan = mdSplit(f);
      expect(plan.tables.some((p) => p.kind === "row" && layoutOf(f.config).tables[p.table]!.kind === "md")).toBe(true);
      await trainMatchesFixture(f, plan, k);
    });
  }
  if (name.startsWith("qr_")) {
    it("2 devices, QR tables split by sub-table rows (q and r halves on different devices): 10 steps, losses and parameters", { timeout: 600_000 }, async () => {
      await trainMatchesFixture(f, qrSplit(f), k);
    });
  }
});
}
