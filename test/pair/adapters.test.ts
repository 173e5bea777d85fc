/**
 * Two different adapters in one Node process: lavapipe (llvmpipe) and
 * SwiftShader, both Vulkan ICDs listed in VK_ICD_FILENAMES. Run by
 * `npm run test:pair`, which sets that variable.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createStorage, readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { createContexts, listAdapters } from "../../src/gpu/context.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const CACHE = mkdtempSync(join(tmpdir(), "dlrm-pair-"));

function dlrm(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync("node_modules/.bin/tsx", ["src/cli/main.ts", ...args], { cwd: ROOT, env: { ...process.env, DLRM_CACHE_DIR: CACHE }, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
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

  it("`plan` over the pair calibrates both and gives the slower one less work; unknown names list the adapters", () => {
    const r = dlrm(["plan", "--adapters", "llvmpipe,swiftshader", "--device-memory", "1GiB"]);
    expect(r.code, r.err).toBe(0);
    const rows = r.out.split("\n").filter((l) => /^[01]\s{2,}/.test(l));
    expect(rows[0]).toMatch(/^0\s+llvmpipe/);
    expect(rows[1]).toMatch(/^1\s+SwiftShader/);
    // Both are software adapters: `plan` prints the shared-host plan train runs (each device's own work balanced).
    expect(r.out).toMatch(/^mode: shared host, as train runs it: /m);
    const balance = Number(/balance \(slowest \/ mean device work\): ([\d.]+)/.exec(r.out)![1]);
    expect(balance).toBeGreaterThanOrEqual(1);
    expect(balance).toBeLessThanOrEqual(1.15);
    const bad = dlrm(["plan", "--adapters", "llvmpipe,nvidia"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/webgpu-dlrm plan: no adapter matches 'nvidia'; available: 'SwiftShader Device \(Subzero\)'.*'llvmpipe/);
  });
});
