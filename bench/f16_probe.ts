/**
 * Does f16 pay on this adapter? (issue 14: "f16 where the adapter has shader-f16".) Lists whether
 * the adapter exposes `shader-f16`; if it does, times in one process, alternating rounds, an
 * FMA-bound microkernel in vec4<f32> vs vec4<f16> (same FMA count) and a streaming copy of the
 * same element count in f32 vs f16 (half the bytes): best wall ms of each and the f16 / f32
 * ratios. A probe with inline WGSL (bench-only, not a library kernel).
 *   DLRM_USE_SYSTEM_VULKAN=1 npx deno run -A bench/f16_probe.ts
 *   VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.json npx tsx bench/f16_probe.ts   (Dawn on lavapipe)
 *   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json npx tsx bench/f16_probe.ts
 */
import { requestAdapter } from "../src/gpu/context.ts";

const adapter = await requestAdapter();
const name = `${adapter.info?.description || adapter.info?.device || "?"}`;
const has = adapter.features.has("shader-f16");
console.log(`adapter "${name}": shader-f16 ${has ? "yes" : "no"}`);
if (!has) {
  console.log("no f16 arithmetic or storage in WGSL on this adapter: nothing to measure");
} else {
  const device = await adapter.requestDevice({ requiredFeatures: ["shader-f16"] as GPUFeatureName[] });
  const ITER = 4096;
  const fma = (t: string) => `enable f16;
@group(0) @binding(0) var<storage, read_write> out: array<vec4<${t}>>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  var a = vec4<${t}>(${t}(id.x & 7u) * ${t}(0.001));
  var b = vec4<${t}>(${t}(0.999));
  var c = vec4<${t}>(${t}(0.0001));
  var x0 = a; var x1 = a + c; var x2 = a + c + c; var x3 = a - c;
  for (var i = 0u; i < ${ITER}u; i++) { x0 = fma(x0, b, c); x1 = fma(x1, b, c); x2 = fma(x2, b, c); x3 = fma(x3, b, c); }
  out[id.x] = x0 + x1 + x2 + x3;
}`;
  const copy = (t: string) => `enable f16;
@group(0) @binding(0) var<storage, read> src: array<vec4<${t}>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<${t}>>;
@compute @workgroup_size(64) fn main(@builtin(workgroup_id) w: vec3<u32>, @builtin(local_invocation_index) l: u32) {
  let i = (w.x + w.y * 1024u) * 64u + l;
  if (i < arrayLength(&src)) { dst[i] = src[i]; }
}`;
  const THREADS = 64 * 256;
  const N = 16 * 2 ** 20; // elements copied (64 MiB as f32, 32 MiB as f16)
  const kernels = (t: "f32" | "f16") => {
    const bytes = t === "f32" ? 4 : 2;
    const fm = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code: fma(t) }), entryPoint: "main" } });
    const cp = device.createComputePipeline({ layout: "auto", compute: { module: device.createShaderModule({ code: copy(t) }), entryPoint: "main" } });
    const out = device.createBuffer({ size: THREADS * 4 * bytes, usage: GPUBufferUsage.STORAGE });
    const src = device.createBuffer({ size: N * bytes, usage: GPUBufferUsage.STORAGE });
    const dst = device.createBuffer({ size: N * bytes, usage: GPUBufferUsage.STORAGE });
    const fg = device.createBindGroup({ layout: fm.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
    const cg = device.createBindGroup({ layout: cp.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: src } }, { binding: 1, resource: { buffer: dst } }] });
    const wgs = N / 4 / 64;
    return {
      fma: async () => run((p) => { p.setPipeline(fm); p.setBindGroup(0, fg); p.dispatchWorkgroups(THREADS / 64); }),
      copy: async () => run((p) => { p.setPipeline(cp); p.setBindGroup(0, cg); p.dispatchWorkgroups(1024, Math.ceil(wgs / 1024)); }),
    };
  };
  async function run(f: (p: GPUComputePassEncoder) => void): Promise<number> {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    const p = enc.beginComputePass();
    f(p);
    p.end();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  }
  const k = { f32: kernels("f32"), f16: kernels("f16") };
  const res: Record<string, number[]> = { "f32 fma": [], "f16 fma": [], "f32 copy": [], "f16 copy": [] };
  for (const t of ["f32", "f16"] as const) {
    await k[t].fma();
    await k[t].copy();
  }
  for (let r = 0; r < 6; r++) {
    for (const t of (r % 2 ? ["f16", "f32"] : ["f32", "f16"]) as ("f32" | "f16")[]) {
      res[`${t} fma`]!.push(await k[t].fma());
      res[`${t} copy`]!.push(await k[t].copy());
    }
  }
  const best = (xs: number[]) => Math.min(...xs);
  const flops = THREADS * ITER * 4 * 4 * 2;
  for (const [key, xs] of Object.entries(res)) {
    const ms = best(xs);
    console.log(`${key}: best ${ms.toFixed(2)} ms${key.endsWith("fma") ? ` (${(flops / ms / 1e6).toFixed(1)} GFLOP/s)` : ""}`);
  }
  console.log(`f16 / f32 time: FMA ${(best(res["f16 fma"]!) / best(res["f32 fma"]!)).toFixed(2)}, copy of the same element count ${(best(res["f16 copy"]!) / best(res["f32 copy"]!)).toFixed(2)}`);
  device.destroy();
}
