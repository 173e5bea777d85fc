/** Adapter lists: enumeration, case-insensitive substring choice, the error naming what exists, calibration and its cache. */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { type AdapterFacts, createContexts, listAdapters, matchAdapter } from "../../src/gpu/context.ts";
import { ConfigError } from "../../src/gpu/errors.ts";
import { calibrate } from "../../src/shard/calibrate.ts";

const fake = (listedName: string, name = listedName): { facts: AdapterFacts } => ({
  facts: { host: "node", name, listedName, vendor: "", architecture: "", isFallbackAdapter: false, features: [], driver: "" },
});

describe("adapter lists", () => {
  it("matches a case-insensitive substring and names the adapters when nothing or several match", () => {
    const entries = [fake("SwiftShader Device (Subzero)", "SwiftShader driver 5.0.0"), fake("llvmpipe (LLVM 15.0.6, 256 bits)")];
    expect(matchAdapter(entries, "SWIFTSHADER")).toBe(entries[0]);
    expect(matchAdapter(entries, "llvm")).toBe(entries[1]);
    expect(matchAdapter(entries, "lavapipe")).toBe(entries[1]); // Mesa's name for llvmpipe's Vulkan driver
    expect(() => matchAdapter(entries, "nvidia")).toThrow(ConfigError);
    expect(() => matchAdapter(entries, "nvidia")).toThrow(/no adapter matches 'nvidia'; available: 'SwiftShader Device \(Subzero\)'.*'llvmpipe \(LLVM 15.0.6, 256 bits\)'/);
    expect(() => matchAdapter(entries, "e")).toThrow(/matches 2 adapters/);
    expect(() => matchAdapter(entries, "")).toThrow(/no adapter matches ''/);
  });

  it("lists the host's adapters and opens devices on one chosen by name", async () => {
    const entries = await listAdapters();
    expect(entries.length).toBeGreaterThanOrEqual(1);
    const first = entries[0]!;
    expect(first.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    // Two devices on the same adapter, named by an upper-cased piece of its name.
    const piece = first.facts.listedName.slice(0, 6).toUpperCase();
    const ctxs = await createContexts([piece, piece], { label: "named" });
    expect(ctxs.map((c) => c.adapter.listedName)).toEqual([first.facts.listedName, first.facts.listedName]);
    expect(ctxs[0]!.device).not.toBe(ctxs[1]!.device);
    for (const [i, c] of ctxs.entries()) {
      const b = uploadStorage(c.device, new Float32Array([i, 7]), "b");
      expect([...(await readF32(c.device, b))]).toEqual([i, 7]);
    }
    for (const c of ctxs) c.destroy();
    await expect(createContexts(["no-such-adapter"])).rejects.toThrow(new RegExp(`no adapter matches 'no-such-adapter'; available: .*${first.facts.listedName.replace(/[()]/g, "\\$&")}`));
    await expect(createContexts([])).rejects.toThrow(/empty/);
  });

  it("calibrates a device once and reads it back from the cache", async () => {
    const cacheFile = join(mkdtempSync(join(tmpdir(), "dlrm-cal-")), "calibration.json");
    const [ctx] = await createContexts(1, { label: "calibrate" });
    const a = await calibrate(ctx!, { quick: true, cacheFile });
    expect(a.cached).toBe(false);
    for (const k of ["lookupSecPerElem", "backwardSecPerElem", "gemmGflops", "dispatchMs", "transferLatencyMs", "transferGBs", "lookupGBs"] as const) {
      expect(a[k], k).toBeGreaterThan(0);
      expect(Number.isFinite(a[k]), k).toBe(true);
    }
    expect(a.adapter).toBe(ctx!.adapter.name);
    const b = await calibrate(ctx!, { quick: true, cacheFile });
    expect(b.cached).toBe(true);
    expect({ ...b, cached: false }).toEqual(a);
    const onDisk = JSON.parse(readFileSync(cacheFile, "utf8")) as { devices: Record<string, unknown> };
    expect(Object.keys(onDisk.devices)).toEqual([a.key]);
    ctx!.destroy();
  });
});
