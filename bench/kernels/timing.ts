/**
 * Timing of our kernels for bench/kernels.ts.
 *
 * Each case: one warm-up submit (inside error scopes, so a validation error
 * fails the run instead of timing nothing), one submit to estimate the cost,
 * then
 *  - GPU time: `reps` submits, each dispatch in its own compute pass with
 *    timestamp writes (src/gpu/timing.ts Profiler); the per-rep sum of the
 *    passes, median over the reps. Without 'timestamp-query' this is skipped
 *    and the wall-clock figure below is reported instead.
 *  - wall clock: `batch` executions encoded in one command buffer (one
 *    pass), submit + onSubmittedWorkDone, divided by `batch`; median of 3.
 */
import { withErrorScopes } from "../../src/gpu/context.ts";
import { type Dispatch, encodeDispatches } from "../../src/gpu/dispatch.ts";
import { Profiler } from "../../src/gpu/timing.ts";

export type TimingMethod = "timestamp" | "wall";

export interface Timing {
  /** Reported time per execution (ms): GPU timestamps when available, else wall clock. */
  ms: number;
  method: TimingMethod;
  /** Wall clock per execution (ms), several executions per submit. */
  wallMs: number;
  /** Timestamp repetitions (0 without timestamps). */
  reps: number;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}

export const clamp = (x: number, lo: number, hi: number): number => Math.max(lo, Math.min(hi, x));

export interface TimerOptions {
  /** Time budget of each of the two phases of a case (ms). */
  targetMs: number;
  minReps: number;
  maxReps: number;
}

export class KernelTimer {
  readonly profiler: Profiler | undefined;

  constructor(
    readonly device: GPUDevice,
    readonly opts: TimerOptions,
  ) {
    if (device.features.has("timestamp-query")) this.profiler = new Profiler(device, 256);
  }

  get method(): TimingMethod {
    return this.profiler ? "timestamp" : "wall";
  }

  private async submit(ds: readonly Dispatch[], times: number): Promise<number> {
    const enc = this.device.createCommandEncoder({ label: "bench" });
    for (let i = 0; i < times; i++) encodeDispatches(enc, ds);
    await this.device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    this.device.queue.submit([enc.finish()]);
    await this.device.queue.onSubmittedWorkDone();
    return performance.now() - t0;
  }

  async time(ds: readonly Dispatch[], label: string): Promise<Timing> {
    const { device, opts } = this;
    await withErrorScopes(device, `bench ${label}`, () => this.submit(ds, 1));
    const est = Math.max(await this.submit(ds, 1), 1e-3);

    let ms = NaN;
    let reps = 0;
    const p = this.profiler;
    if (p && ds.length > 0) {
      reps = Math.round(clamp(opts.targetMs / est, opts.minReps, opts.maxReps));
      const per: number[] = [];
      for (let r = 0; r < reps; r++) {
        p.reset();
        const enc = device.createCommandEncoder({ label: `bench ${label}` });
        encodeDispatches(enc, ds, p);
        p.resolve(enc);
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        await p.collect();
        per.push(p.rows().reduce((s, row) => s + row.ms, 0));
      }
      p.reset();
      ms = median(per);
    }
    // Several executions per submit amortise the submit overhead.
    const batch = Math.round(clamp(opts.targetMs / 3 / est, 1, 200));
    const walls: number[] = [];
    for (let i = 0; i < 3; i++) walls.push((await this.submit(ds, batch)) / batch);
    const wallMs = median(walls);
    return { ms: Number.isFinite(ms) ? ms : wallMs, method: Number.isFinite(ms) ? "timestamp" : "wall", wallMs, reps };
  }

  destroy(): void {
    this.profiler?.destroy();
  }
}
