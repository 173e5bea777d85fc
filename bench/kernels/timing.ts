/**
 * Timing of our kernels for bench/kernels.ts.
 *
 * Each case: one warm-up submit (inside error scopes, so a validation error
 * fails the run instead of timing nothing), one submit to estimate the cost,
 * then
 * A case whose warm-up took longer than `slowMs` is measured by one more
 * execution only (timestamped; its submit's wall clock is the wall figure).
 * Otherwise:
 *  - GPU time: `reps` submits (planReps: within `targetMs`, 3-15), each dispatch in its own compute pass with
 *    timestamp writes (src/gpu/timing.ts Profiler); the per-rep sum of the
 *    passes, median over the reps. Without 'timestamp-query' this is skipped
 *    and the wall-clock figure below is reported instead.
 *  - wall clock: `batch` executions encoded in one command buffer (one
 *    pass), submit + onSubmittedWorkDone, divided by `batch`; median of 3
 *    (a single sample, the estimate, for cases slower than `targetMs`).
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
  /** A case whose warm-up execution took longer than this (ms) is measured once. */
  slowMs: number;
  minReps: number;
  maxReps: number;
}

/**
 * Repetitions for a case whose single execution took `est` ms: timestamp
 * reps within the budget, executions per wall submit, and the number of
 * wall samples (the estimate itself is the only one for cases slower than
 * the budget).
 */
export function planReps(est: number, o: TimerOptions): { reps: number; batch: number; wallSamples: number } {
  const reps = Math.round(clamp(o.targetMs / est, o.minReps, o.maxReps));
  const batch = Math.round(clamp(o.targetMs / 3 / est, 1, 200));
  return { reps, batch, wallSamples: est > o.targetMs ? 1 : 3 };
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

  /** One execution with a timed pass per dispatch: [GPU ms (sum of the passes), wall ms of the submit]. */
  private async timestamped(p: Profiler, ds: readonly Dispatch[], label: string): Promise<[number, number]> {
    const device = this.device;
    p.reset();
    const enc = device.createCommandEncoder({ label: `bench ${label}` });
    encodeDispatches(enc, ds, p);
    p.resolve(enc);
    await device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    const wall = performance.now() - t0;
    await p.collect();
    const gpu = p.rows().reduce((s, row) => s + row.ms, 0);
    p.reset();
    return [gpu, wall];
  }

  async time(ds: readonly Dispatch[], label: string): Promise<Timing> {
    const { device, opts } = this;
    const p = this.profiler;
    const first = await withErrorScopes(device, `bench ${label}`, () => this.submit(ds, 1));
    if (first > opts.slowMs) {
      // Very slow case (SwiftShader): a single measured execution after the warm-up.
      if (p) {
        const [gpu, wall] = await this.timestamped(p, ds, label);
        return { ms: gpu, method: "timestamp", wallMs: wall, reps: 1 };
      }
      const wall = await this.submit(ds, 1);
      return { ms: wall, method: "wall", wallMs: wall, reps: 0 };
    }
    const est = Math.max(await this.submit(ds, 1), 1e-3);

    let ms = NaN;
    let reps = 0;
    if (p && ds.length > 0) {
      reps = planReps(est, opts).reps;
      const per: number[] = [];
      for (let r = 0; r < reps; r++) per.push((await this.timestamped(p, ds, label))[0]);
      ms = median(per);
    }
    // Several executions per submit amortise the submit overhead.
    const { batch, wallSamples } = planReps(est, opts);
    const walls: number[] = [];
    // With one execution per submit, the estimate above is the first sample.
    if (batch === 1) walls.push(est);
    while (walls.length < wallSamples) walls.push((await this.submit(ds, batch)) / batch);
    const wallMs = median(walls);
    return { ms: Number.isFinite(ms) ? ms : wallMs, method: Number.isFinite(ms) ? "timestamp" : "wall", wallMs, reps };
  }

  destroy(): void {
    this.profiler?.destroy();
  }
}
