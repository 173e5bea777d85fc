/**
 * Which allreduce `train` builds for `--allreduce auto`: by the α-β model of
 * the `--interconnect` link, and with `host` by this machine's calibrated
 * host-staged copy, shared by the devices when the adapters are software ones
 * (before, `host` fell back to the PCIe 4 link). Calibration figures are
 * seeded into a temporary cache, so nothing is measured.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { FlagValues } from "../../src/cli/args.ts";
import { createSharded } from "../../src/cli/shard.ts";
import { allreduceChoice } from "../../src/cli/shard_setup.ts";
import { createContexts, type GpuContext } from "../../src/gpu/context.ts";
import { initParameters } from "../../src/model/params.ts";
import { CALIBRATION_VERSION, calibrationKey, type DeviceCalibration } from "../../src/shard/calibrate.ts";
import { smallConfig } from "./helpers.ts";

const FIGURES = { lookupSecPerElem: 3e-9, lookupGBs: 1.3, backwardSecPerElem: 4e-9, gemmGflops: 2.6, dispatchMs: 0.07, perDispatchMs: 0.02, transferLatencyMs: 0.15, transferGBs: 0.25 };

let ctxs: GpuContext[] = [];
const before = process.env.DLRM_CACHE_DIR;
beforeAll(async () => {
  ctxs = await createContexts(3, { label: "allreduce-choice" });
  const dir = mkdtempSync(join(tmpdir(), "dlrm-allreduce-choice-"));
  const key = await calibrationKey(ctxs[0]!.adapter);
  const cal: DeviceCalibration = { ...FIGURES, version: CALIBRATION_VERSION, key, adapter: ctxs[0]!.adapter.name, runtime: "test", measuredAt: "2026-11-30T00:00:00Z" };
  writeFileSync(join(dir, "calibration.json"), JSON.stringify({ version: CALIBRATION_VERSION, devices: { [key]: cal } }));
  process.env.DLRM_CACHE_DIR = dir;
});
afterAll(() => {
  for (const c of ctxs) c.destroy();
  if (before === undefined) delete process.env.DLRM_CACHE_DIR;
  else process.env.DLRM_CACHE_DIR = before;
});

const flags = (interconnect: string, allreduce = "auto") => ({ devices: 3, shardPlan: "table", allToAll: "auto", interconnect, allreduce, recalibrate: false }) as unknown as FlagValues;

describe("--allreduce auto on 3 devices", () => {
  it("--interconnect host: the calibrated host-staged link, shared on software adapters, picks halving/doubling; pcie4 picks the ring", async () => {
    const c = smallConfig();
    const init = initParameters(c);
    const host = allreduceChoice(flags("host"), ["llvmpipe", "SwiftShader Device"], [{ ...FIGURES, transferLatencyMs: 0.3 } as DeviceCalibration, FIGURES as DeviceCalibration]);
    expect(host.link).toEqual({ alpha: 0.3e-3, bandwidth: 0.25e9, shared: true });
    expect(allreduceChoice(flags("host"), ["llvmpipe", "NVIDIA RTX"], [FIGURES as DeviceCalibration, FIGURES as DeviceCalibration]).link!.shared).toBe(false);
    expect(allreduceChoice(flags("nvlink", "ring"), ["llvmpipe"])).toEqual({ schedule: "ring", link: { alpha: 11.8e-6, bandwidth: 600 * 2 ** 30 } });
    for (const [ic, kind] of [["host", "rhd"], ["pcie4", "ring"]] as const) {
      const m = await createSharded(ctxs, c, init, flags(ic));
      try {
        expect(m.allreduce.kind, ic).toBe(kind);
      } finally {
        m.destroy();
      }
    }
  });
});
