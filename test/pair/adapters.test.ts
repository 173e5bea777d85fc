/**
 * Two different adapters in one Node process: lavapipe (llvmpipe) and
 * SwiftShader, both Vulkan ICDs listed in VK_ICD_FILENAMES. Run by
 * `npm run test:pair`, which sets that variable.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createStorage, readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { createContexts, listAdapters } from "../../src/gpu/context.ts";
import { CALIBRATION_VERSION, calibrationKey, type DeviceCalibration } from "../../src/shard/calibrate.ts";
import type { PlanEstimate } from "../../src/shard/cost_model.ts";
import type { ShardingPlan } from "../../src/shard/plan.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const CACHE = mkdtempSync(join(tmpdir(), "dlrm-pair-"));

function dlrm(args: string[], cache = CACHE): { code: number; out: string; err: string } {
  const r = spawnSync("node_modules/.bin/tsx", ["src/cli/main.ts", ...args], { cwd: ROOT, env: { ...process.env, DLRM_CACHE_DIR: cache }, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** The figures `calibrate` measured for the two adapters under Node at load 0.9 (the planner's input in the fixed-figures test). */
const QUIET_CALIBRATION: Record<string, Omit<DeviceCalibration, "version" | "key" | "adapter" | "runtime" | "measuredAt">> = {
  llvmpipe: { lookupSecPerElem: 3.1242505179511357e-9, lookupGBs: 1.2803070614910788, backwardSecPerElem: 3.5763543764750096e-9, gemmGflops: 2.649656905375573, dispatchMs: 0.06571500000018204, perDispatchMs: 0.023273925925923127, transferLatencyMs: 0.14693099999976766, transferGBs: 0.2511408510782816 },
  swiftshader: { lookupSecPerElem: 9.086111502213954e-9, lookupGBs: 0.4402323258992965, backwardSecPerElem: 4.855692704518637e-8, gemmGflops: 1.5559408338324026, dispatchMs: 0.11436699999921984, perDispatchMs: 0.021262567195779448, transferLatencyMs: 0.14990599999964616, transferGBs: 0.2375809450262774 },
};

/** The device rows, mode line and balance of a `plan` report over the pair, checked, with the plan it saved. */
function readPlan(out: string, file: string): { plan: ShardingPlan; balance: number; saved: { plan: ShardingPlan; estimate: PlanEstimate } } {
  const rows = out.split("\n").filter((l) => /^[01]\s{2,}/.test(l));
  expect(rows[0]).toMatch(/^0\s+llvmpipe/);
  expect(rows[1]).toMatch(/^1\s+SwiftShader/);
  // Both are software adapters: `plan` prints the shared-host plan train runs (each device's own work balanced).
  expect(out).toMatch(/^mode: shared host, as train runs it: /m);
  const balance = Number(/balance \(slowest \/ mean device work\): ([\d.]+)/.exec(out)![1]);
  const saved = JSON.parse(readFileSync(file, "utf8")) as { plan: ShardingPlan; estimate: PlanEstimate };
  expect(balance).toBeCloseTo(saved.estimate.workBalance, 3);
  expect(saved.estimate.sharedHost).toBe(true);
  return { plan: saved.plan, balance, saved };
}

describe("lavapipe + SwiftShader in one process", () => {
  it("lists both adapters and opens a device on each", async () => {
    const names = (await listAdapters()).map((e) => e.facts.listedName.toLowerCase());
    expect(names.some((n) => n.includes("llvmpipe")), names.join(", ")).toBe(true);
    expect(names.some((n) => n.includes("swiftshader")), names.join(", ")).toBe(true);

    const [lvp, ss] = await createContexts(["llvmpipe", "swiftshader"], { label: "pair" });
    expect(lvp!.adapter.name.toLowerCase()).toContain("llvmpipe");
    expect(ss!.adapter.name.toLowerCase()).toContain("swiftshader");
    // A host-staged hop from one adapter's buffer into the other's.
    const data = Float32Array.from({ length: 1000 }, (_, i) => i * 0.5 - 7);
    const src = uploadStorage(lvp!.device, data, "src");
    const staging = lvp!.device.createBuffer({ size: data.byteLength, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = lvp!.device.createCommandEncoder();
    enc.copyBufferToBuffer(src, 0, staging, 0, data.byteLength);
    lvp!.device.queue.submit([enc.finish()]);
    await staging.mapAsync(GPUMapMode.READ);
    const dst = createStorage(ss!.device, data.byteLength, "dst");
    ss!.device.queue.writeBuffer(dst, 0, staging.getMappedRange());
    staging.unmap();
    expect([...(await readF32(ss!.device, dst))]).toEqual([...data]);
    lvp!.destroy();
    ss!.destroy();
  });

  it("`adapters` lists both with their limits", () => {
    const r = dlrm(["adapters", "--no-calibrate"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^2 adapters on Node/);
    expect(r.out).toMatch(/\[\d\] SwiftShader Device.*\n.*\n\s+limits: maxBufferSize 1 GiB, maxStorageBufferBindingSize 1 GiB/);
    expect(r.out).toMatch(/\[\d\] llvmpipe.*\n.*\n\s+limits: maxBufferSize [\d.]+ GiB, maxStorageBufferBindingSize 128 MiB/);
  });

  it("`plan` over the pair calibrates both and plans on what it measured: balanced within 1.15, or nothing left to move", () => {
    // The balance below follows the calibration this run measures, and calibration is wall-clock timing: under load
    // SwiftShader's per-dispatch cost read up to 150x lavapipe's (3.3 vs 0.02 ms). When the slower device's fixed
    // work (the dispatches of its MLP replica and dense update, with no samples and no tables) exceeds the faster
    // one's whole step, no plan balances: the planner must then give it nothing. The balance the planner reaches on
    // figures that do not move is asserted in the next test.
    const cache = mkdtempSync(join(tmpdir(), "dlrm-pair-cal-"));
    const file = join(cache, "plan.json");
    const r = dlrm(["plan", "--adapters", "llvmpipe,swiftshader", "--device-memory", "1GiB", "--save-plan", file], cache);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toMatch(/calibrating llvmpipe/);
    expect(r.err).toMatch(/calibrating SwiftShader/);
    const cached = JSON.parse(readFileSync(join(cache, "calibration.json"), "utf8")) as { devices: Record<string, DeviceCalibration> };
    expect(Object.keys(cached.devices).length).toBe(2);
    const { plan, balance, saved } = readPlan(r.out, file);
    console.log(`pair plan on a fresh calibration: balance ${balance.toFixed(3)}, batch shares ${plan.batchShare.map((x) => x.toFixed(3)).join(" / ")} (load average ${loadavg()[0]!.toFixed(1)})`);
    expect(balance).toBeGreaterThanOrEqual(1);
    if (balance > 1.15) {
      // Only when nothing could be moved: the device with the most work holds no table and no sample, and its
      // idle work alone is at least the other's whole step (so any work moved onto it raises the slowest device).
      const work = saved.estimate.devices.map((d) => d.deviceWorkSec);
      const idle = work.indexOf(Math.max(...work));
      expect(plan.batchShare[idle], r.out).toBe(0);
      expect(plan.tables.every((p) => p.shards.every((s) => s.device !== idle)), r.out).toBe(true);
      expect(work[idle]!, r.out).toBeGreaterThanOrEqual(work[1 - idle]!);
    }
  });

  it("`plan` over the pair on fixed calibration figures gives the slower one less work, balanced within 1.15; unknown names list the adapters", async () => {
    // A calibration measured on the development machine at load 0.9 (2026-11-30), seeded into the cache under this
    // machine's keys, so the plan is deterministic: the planner, not the machine's load, is under test.
    const cache = mkdtempSync(join(tmpdir(), "dlrm-pair-fixed-"));
    const entries = await listAdapters();
    const devices: Record<string, DeviceCalibration> = {};
    for (const [name, figures] of Object.entries(QUIET_CALIBRATION)) {
      const e = entries.find((x) => x.facts.listedName.toLowerCase().includes(name))!;
      const key = await calibrationKey(e.facts);
      devices[key] = { ...figures, version: CALIBRATION_VERSION, key, adapter: e.facts.name, runtime: "node", measuredAt: "2026-11-30T03:10:30.511Z" };
    }
    writeFileSync(join(cache, "calibration.json"), JSON.stringify({ version: CALIBRATION_VERSION, devices }));
    const file = join(cache, "plan.json");
    const r = dlrm(["plan", "--adapters", "llvmpipe,swiftshader", "--device-memory", "1GiB", "--save-plan", file], cache);
    expect(r.code, r.err).toBe(0);
    expect(r.err).not.toMatch(/calibrating/);
    const { plan, balance, saved } = readPlan(r.out, file);
    expect(balance).toBeGreaterThanOrEqual(1);
    expect(balance).toBeLessThanOrEqual(1.15);
    // SwiftShader (device 1) is the slower adapter in these figures: fewer samples and fewer lookups.
    expect(plan.batchShare[1]!).toBeLessThan(plan.batchShare[0]!);
    expect(saved.estimate.devices[1]!.lookups).toBeLessThan(saved.estimate.devices[0]!.lookups);
    const bad = dlrm(["plan", "--adapters", "llvmpipe,nvidia"], cache);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/webgpu-dlrm plan: no adapter matches 'nvidia'; available: 'SwiftShader Device \(Subzero\)'.*'llvmpipe/);
  });
});
