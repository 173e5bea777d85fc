/**
 * Two different adapters in one Node process: lavapipe (llvmpipe) and
 * SwiftShader, both Vulkan ICDs listed in VK_ICD_FILENAMES. Run by
 * `npm run test:pair`, which sets that variable.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { createStorage, readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { createContexts, listAdapters } from "../../src/gpu/context.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

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
    const r = spawnSync("node_modules/.bin/tsx", ["src/cli/main.ts", "adapters", "--no-calibrate"], { cwd: ROOT, env: process.env, encoding: "utf8", timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^2 adapters on Node/);
    expect(r.stdout).toMatch(/\[\d\] SwiftShader Device.*\n.*\n\s+limits: maxBufferSize 1 GiB, maxStorageBufferBindingSize 1 GiB/);
    expect(r.stdout).toMatch(/\[\d\] llvmpipe.*\n.*\n\s+limits: maxBufferSize [\d.]+ GiB, maxStorageBufferBindingSize 128 MiB/);
  });
});
