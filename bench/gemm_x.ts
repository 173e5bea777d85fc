// scratch exploration bench (to be deleted)
import { createStorage, uploadStorage, uploadUniform, readF32 } from "../src/gpu/buffers.ts";
import { createContext } from "../src/gpu/context.ts";
import type { Dispatch } from "../src/gpu/dispatch.ts";
import { bindGroup, getKernel } from "../src/gpu/pipelines.ts";
import { gemmRef } from "../src/kernels/reference/gemm.ts";
import { Rng } from "../src/util/rng.ts";
const args = (globalThis as any).Deno?.args ?? (globalThis as any).process.argv.slice(2);
const ctx = await createContext({ label: "bench" });
const device = ctx.device;
async function time(d: Dispatch[], target = 0.3, runs = 3) {
  const run = async (reps: number) => {
    const enc = device.createCommandEncoder(); const pass = enc.beginComputePass();
    for (let r = 0; r < reps; r++) for (const x of d) { pass.setPipeline(x.kernel.pipeline); pass.setBindGroup(0, x.bindGroups[0]!); pass.dispatchWorkgroups(x.workgroups[0], x.workgroups[1] ?? 1); }
    pass.end(); await device.queue.onSubmittedWorkDone();
    const t0 = performance.now(); device.queue.submit([enc.finish()]); await device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / 1000;
  };
  const f = await run(1); const reps = Math.max(1, Math.round(target / f));
  const ts = []; for (let i = 0; i < runs; i++) ts.push((await run(reps)) / reps);
  ts.sort(); return ts[Math.floor(runs / 2)]!;
}
const rng = new Rng(1);
const M = 1024, N = 1024, K = 1024;
const A = rng.f32(M * K), B = rng.f32(K * N);
const a = uploadStorage(device, A, "a"), b = uploadStorage(device, B, "b"), c = createStorage(device, M * N * 4, "c");
const params = uploadUniform(device, new Uint32Array([M, N, K, 0]), "p");
const rounds = Number((globalThis as any).Deno?.env.get("ROUNDS") ?? (globalThis as any).process?.env.ROUNDS ?? 5);
const cases: { spec: string; d: Dispatch; g: number[] }[] = [];
for (const spec of args) {
  const [shader, cs, wg, mode] = spec.split(":");
  const constants = Object.fromEntries((cs ?? "").split(",").filter(Boolean).map((s: string) => { const [k, v] = s.split("="); return [k, Number(v)]; }));
  const kernel = getKernel(device, { shader, constants });
  const d: Dispatch = { label: spec, kernel, bindGroups: [bindGroup(device, kernel, { params, a, b, c }, spec)], workgroups: wg.split(",").map(Number) as [number, number] };
  device.queue.writeBuffer(c, 0, new Float32Array(M * N).fill(NaN));
  await time([d], 0.01, 1);
  const out = await readF32(device, c, M * N);
  let bad = 0;
  for (let t = 0; t < 50; t++) {
    const i = (t * 7919) % M, j = (t * 104729) % N; let ref = 0;
    for (let p = 0; p < K; p++) ref += A[i * K + p]! * (mode === "nt" ? B[j * K + p]! : B[p * N + j]!);
    if (!(Math.abs(out[i * N + j]! - ref) < 1e-2)) bad++;
  }
  if (bad) console.log(`${spec} WRONG ${bad}`);
  cases.push({ spec, d, g: [] });
}
for (let r = 0; r < rounds; r++) for (const cs of cases) cs.g.push(2 * M * N * K / (await time([cs.d], 0.15, 1)) / 1e9);
for (const cs of cases) { cs.g.sort((x, y) => x - y); console.log(`${cs.spec.padEnd(50)} median ${cs.g[cs.g.length >> 1]!.toFixed(2)} best ${cs.g.at(-1)!.toFixed(2)} GFLOP/s`); }
ctx.destroy();
