/** Small helpers shared by the focused per-kernel benchmarks (bench/embedding_*.ts). */
import { createStorage } from "../src/gpu/buffers.ts";
import { type Dispatch, submitDispatches } from "../src/gpu/dispatch.ts";
import { prepareCopy } from "../src/kernels/copy.ts";

/** A numeric environment variable in Node or Deno, or `fallback`. */
export function envNumber(name: string, fallback: number): number {
  const g = globalThis as { process?: { env: Record<string, string | undefined> }; Deno?: { env: { get(k: string): string | undefined } } };
  return Number(g.process?.env[name] ?? g.Deno?.env.get(name) ?? fallback);
}

/** Wall-clock ms per submission of `ds`, after one warm-up submission. */
export async function wallTime(device: GPUDevice, ds: readonly Dispatch[], reps: number): Promise<number> {
  submitDispatches(device, ds);
  await device.queue.onSubmittedWorkDone();
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) submitDispatches(device, ds);
  await device.queue.onSubmittedWorkDone();
  return (performance.now() - t0) / reps;
}

/** The copy roofline: a 64 MiB copy_f32 timed by wallTime; GB/s counts read + write. */
export async function copyRoofline(device: GPUDevice, reps: number): Promise<{ ms: number; gbs: number }> {
  const n = 16 << 20;
  const src = createStorage(device, n * 4, "src");
  const dst = createStorage(device, n * 4, "dst");
  const ms = await wallTime(device, [prepareCopy(device, { src, dst, count: n })], reps);
  src.destroy();
  dst.destroy();
  return { ms, gbs: (2 * n * 4) / ms / 1e6 };
}
