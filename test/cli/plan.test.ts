/** `plan` as users run it (Node, Dawn): the table, the saved plan, and the memory failure before anything is allocated. */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_TABLE_ROWS } from "../../src/cli/flags.ts";
import { type ShardingPlan, validatePlan } from "../../src/shard/plan.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
// One calibration cache for the file: the first run measures the adapter, the others read it.
// The Kaggle-shaped model (train's --preset main); the flags' defaults are the reference's.
const KAGGLE = ["--arch-embedding-size", DEFAULT_TABLE_ROWS, "--arch-sparse-feature-size", "16", "--arch-mlp-bot", "13-512-256-64-16", "--arch-mlp-top", "512-256-1", "--mini-batch-size", "128", "--num-indices-per-lookup", "1", "--optimizer", "adagrad"];
const CACHE = mkdtempSync(join(tmpdir(), "dlrm-plan-"));

function dlrm(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync("node_modules/.bin/tsx", ["src/cli/main.ts", ...args], { cwd: ROOT, env: { ...process.env, DLRM_CACHE_DIR: CACHE }, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe("plan", () => {
  it("prints per device its shards, memory, lookups, bytes, times and the balance, and saves the plan", () => {
    const file = join(CACHE, "plan.json");
    const r = dlrm(["plan", "--devices", "2", "--device-memory", "1GiB", "--interconnect", "nvlink", "--save-plan", file, ...KAGGLE]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^sharding plan: 26 tables \(.* rows\) x d=16, batch 128, 1 index per bag, adagrad; 2 devices/);
    expect(r.out).toMatch(/device\s+adapter\s+shards\s+memory\s+capacity\s+lookups\/step\s+batch\s+sent\/step\s+recv\/step\s+compute ms\s+transfer ms\s+step ms\s+step on nvlink ms/);
    const rows = r.out.split("\n").filter((l) => /^[01]\s{2,}/.test(l));
    expect(rows.length).toBe(2);
    for (const row of rows) expect(row).toMatch(/1 GiB\s+\d+\s+\d+\s+[\d.]+ [KM]iB\s+[\d.]+ [KM]iB(\s+[\d.]+){4}$/);
    // Software adapters (the test hosts have only those): the shared-host mode train plans in, said so.
    expect(r.out).toMatch(/^mode: shared host, as train runs it: /m);
    expect(r.out).toMatch(/estimated step [\d.]+ ms \(shared host: devices [\d.]+ \+ exchange [\d.]+\); [\d.]+ ms if the devices ran in parallel/);
    expect(r.out).toMatch(/balance \(slowest \/ mean device work\): \d\.\d{3}/);
    expect(r.out).toMatch(/collectives [\d.]+ ms host-staged vs [\d.]+ ms on nvlink/);
    // Every table placed, and the saved plan is a valid plan for the model.
    for (let t = 0; t < 26; t++) expect(r.out).toMatch(new RegExp(`\\bt${t} (table-wise on [01]|row-wise|column-wise|data-parallel)`));
    const saved = JSON.parse(readFileSync(file, "utf8")) as { plan: ShardingPlan; estimate: { workBalance: number; sharedHost: boolean } };
    validatePlan(saved.plan, DEFAULT_TABLE_ROWS.split("-").map(Number), 16);
    expect(saved.plan.devices).toBe(2);
    expect(saved.estimate.sharedHost).toBe(true);
    expect(r.out).toContain(`balance (slowest / mean device work): ${saved.estimate.workBalance.toFixed(3)}`);
  });

  it("fails before allocating the model when a table cannot fit, naming it and the missing bytes", () => {
    const r = dlrm(["plan", "--devices", "2", "--data-generation", "random", "--arch-embedding-size", "3000000-1000", "--arch-sparse-feature-size", "64", "--arch-mlp-bot", "13-64", "--arch-mlp-top", "64-1", "--device-memory", "256MiB", "--optimizer", "adagrad"]);
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    const m = /webgpu-dlrm plan: table 0 \(3000000 rows x 64, ([\d.]+) MiB with adagrad state\) does not fit: the 2 devices have ([\d.]+) MiB free in all .*; (\d+) bytes \(([\d.]+) MiB\) missing/.exec(r.err);
    expect(m, r.err).not.toBeNull();
    // 3M rows x (64 weights + 64 Adagrad accumulators) x 4 bytes, and the shortfall is at least what the weights exceed the free memory by.
    expect(Number(m![1])).toBeCloseTo((3e6 * 128 * 4) / 2 ** 20, 1);
    expect(Number(m![3])).toBeGreaterThanOrEqual(3e6 * 128 * 4 - Number(m![2]) * 2 ** 20 - 2 ** 20);
  });
});
