/** The GPU runtime: devices, reflected layouts, pipeline cache, pool, error scopes, device loss, timing. */
import { describe, expect, it } from "vitest";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { createContext, createContexts } from "../../src/gpu/context.ts";
import { encodeDispatches } from "../../src/gpu/dispatch.ts";
import { DeviceLostError, GpuError, KernelInputError } from "../../src/gpu/errors.ts";
import { bindGroup, getKernel, shaderBindings } from "../../src/gpu/pipelines.ts";
import { Profiler } from "../../src/gpu/timing.ts";
import { prepareCopy } from "../../src/kernels/copy.ts";
import { shaders } from "../../src/shaders/all.ts";
import { copy_f32 } from "../../src/shaders/copy_f32.ts";
import { testContext } from "../helpers/gpu.ts";

describe("GPU runtime", () => {
  it("asks for the adapter's limits instead of the defaults", async () => {
    const ctx = await testContext();
    // The WebGPU default is 128 MiB / 8 buffers per stage; both software adapters offer more or equal.
    expect(ctx.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    expect(ctx.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(ctx.adapter.name.length).toBeGreaterThan(0);
  });

  it("gives several independent devices", async () => {
    const ctxs = await createContexts(3, { label: "multi" });
    expect(new Set(ctxs.map((c) => c.device)).size).toBe(3);
    // The same data copied on each device independently.
    for (const [i, c] of ctxs.entries()) {
      const src = uploadStorage(c.device, new Float32Array([i, i + 1, i + 2, i + 3]), "src");
      const dst = uploadStorage(c.device, new Float32Array(4).fill(NaN), "dst");
      const enc = c.device.createCommandEncoder();
      encodeDispatches(enc, [prepareCopy(c.device, { src, dst, count: 4 })]);
      c.device.queue.submit([enc.finish()]);
      expect([...(await readF32(c.device, dst))]).toEqual([i, i + 1, i + 2, i + 3]);
    }
    for (const c of ctxs) c.destroy();
    await expect(createContexts(0)).rejects.toThrow(/positive integer/);
  });

  it("ships every kernel's bind group layout, derived from its WGSL at build time", () => {
    for (const [name, shader] of Object.entries(shaders)) {
      expect(shader.name).toBe(name);
      const groups = shaderBindings(shader);
      expect(groups.length, name).toBeGreaterThan(0);
      for (const g of groups) for (const b of g) expect(["uniform", "storage", "read-only-storage"]).toContain(b.kind);
    }
    expect(shaderBindings(copy_f32)[0]!.map((b) => `${b.name}:${b.kind}`)).toEqual(["params:uniform", "src:read-only-storage", "dst:storage"]);
  });

  it("caches pipelines per device and key, and shares layouts of equal shape", async () => {
    const ctx = await testContext();
    const a = getKernel(ctx.device, { shader: copy_f32, constants: { WG: 64 } });
    expect(getKernel(ctx.device, { shader: copy_f32, constants: { WG: 64 } })).toBe(a);
    const b = getKernel(ctx.device, { shader: copy_f32, constants: { WG: 128 } });
    expect(b).not.toBe(a);
    expect(b.layouts[0]).toBe(a.layouts[0]);
  });

  it("names missing or unknown bindings", async () => {
    const ctx = await testContext();
    const k = getKernel(ctx.device, { shader: copy_f32, constants: { WG: 64 } });
    const buf = uploadStorage(ctx.device, new Float32Array(4), "b");
    expect(() => bindGroup(ctx.device, k, { params: buf, src: buf }, "x")).toThrow(KernelInputError);
    expect(() => bindGroup(ctx.device, k, { params: buf, src: buf, dst: buf, extra: buf }, "x")).toThrow(/unknown bindings extra/);
  });

  it("raises WebGPU validation errors as typed errors naming the work", async () => {
    const ctx = await testContext();
    const err = await ctx
      .checked("bad buffer", () => ctx.device.createBuffer({ label: "bad", size: 16, usage: 0x0001 | 0x0002 /* MAP_READ | MAP_WRITE */ }))
      .catch((e) => e);
    expect(err).toBeInstanceOf(GpuError);
    expect((err as GpuError).kind).toBe("validation");
    expect((err as Error).message).toMatch(/bad buffer/);
  });

  it("reuses pooled buffers", async () => {
    const ctx = await testContext();
    const a = ctx.pool.acquire(1000, "scratch");
    expect(a.size).toBeGreaterThanOrEqual(1000);
    ctx.pool.release(a);
    expect(ctx.pool.acquire(900, "scratch")).toBe(a);
    expect(() => ctx.pool.release(uploadStorage(ctx.device, new Float32Array(4), "x"))).toThrow(/not acquired/);
  });

  it("surfaces device loss", async () => {
    const ctx = await createContext({ label: "lost" });
    ctx.device.destroy();
    const e = await ctx.lost;
    expect(e).toBeInstanceOf(DeviceLostError);
    expect(() => ctx.assertAlive()).toThrow(DeviceLostError);
  });

  it("times dispatches with timestamp queries, or the wall clock", async () => {
    const ctx = await testContext();
    const n = 1 << 20;
    const src = uploadStorage(ctx.device, new Float32Array(n), "src");
    const dst = uploadStorage(ctx.device, new Float32Array(n), "dst");
    const d = prepareCopy(ctx.device, { src, dst, count: n });
    const prof = new Profiler(ctx.device);
    if (prof.timestamps) {
      const enc = ctx.device.createCommandEncoder();
      encodeDispatches(enc, [d, d], prof);
      prof.resolve(enc);
      ctx.device.queue.submit([enc.finish()]);
      await prof.collect();
    } else {
      await prof.wallClock("copy_f32", () => {
        const enc = ctx.device.createCommandEncoder();
        encodeDispatches(enc, [d]);
        ctx.device.queue.submit([enc.finish()]);
      });
    }
    const rows = prof.rows();
    expect(rows[0]!.label).toBe("copy_f32");
    expect(rows[0]!.ms).toBeGreaterThan(0);
    prof.destroy();
    // A query set holds at most 4096 queries: a larger profiler would read back zeros silently.
    expect(() => new Profiler(ctx.device, 2049)).toThrow(/1\.\.2048/);
    new Profiler(ctx.device, 2048).destroy();
  });
});
