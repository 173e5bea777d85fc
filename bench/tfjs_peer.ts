/**
 * The peer: @tensorflow/tfjs-backend-webgpu on the same adapter (tfjs asks
 * navigator.gpu for the adapter and makes its own device). Under Node,
 * navigator.gpu is installed from the `webgpu` package (src/gpu/host.ts
 * getGPU()) before the backend is imported, since the backend registers
 * itself only when navigator.gpu exists at import time.
 *
 * Timing of an op `fn` (returns a tensor; intermediates are freed by tidy):
 *  - an op whose warm-up took longer than `slowMs` is measured by one tf.time()
 *    call only (kernelMs; its wallMs as the wall figure);
 *  - warm-up: one call awaited with data() (compiles the pipelines, uploads
 *    the inputs), then one wall-clock call that sizes the repetitions
 *    (planReps in bench/kernels/timing.ts, the same rule as for our kernels);
 *  - GPU time: tf.time() per call, whose kernelMs sums timestamp queries over
 *    every program tfjs ran for it; median over `reps` calls;
 *  - wall clock: `batch` calls, then the backend's pending command buffer is
 *    submitted and queue.onSubmittedWorkDone awaited (tfjs records lazily and
 *    submits every 15 dispatches); divided by `batch`, median of 3 (1 for
 *    calls slower than the time budget).
 */
import type * as TF from "@tensorflow/tfjs-core";
import { getGPU } from "../src/gpu/host.ts";
import { median, planReps, type TimerOptions, type Timing } from "./kernels/timing.ts";

type Tf = typeof TF;

/** The parts of tfjs-backend-webgpu's WebGPUBackend used here. */
interface WebGpuBackendLike {
  device: GPUDevice;
  supportTimestampQuery: boolean;
  adapterInfo?: { vendor?: string; architecture?: string };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

export class TfjsPeer {
  private constructor(
    readonly tf: Tf,
    readonly backend: WebGpuBackendLike,
    readonly version: string,
    readonly opts: TimerOptions,
  ) {}

  static async create(opts: TimerOptions): Promise<TfjsPeer> {
    const gpu = await getGPU();
    const g = globalThis as { navigator?: { gpu?: GPU } };
    if (!g.navigator?.gpu) {
      Object.defineProperty(globalThis, "navigator", { value: { ...(g.navigator ?? {}), gpu }, configurable: true, writable: true });
    }
    const tf = (await import("@tensorflow/tfjs-core")) as Tf;
    await import("@tensorflow/tfjs-backend-webgpu");
    tf.env().set("WEBGPU_CPU_FORWARD", false); // never run small ops on the CPU
    if (!(await tf.setBackend("webgpu"))) throw new Error("tfjs: the webgpu backend failed to initialise");
    await tf.ready();
    const backend = tf.backend() as unknown as WebGpuBackendLike;
    return new TfjsPeer(tf, backend, tf.version_core, opts);
  }

  get method(): "timestamp" | "wall" {
    return this.backend.supportTimestampQuery ? "timestamp" : "wall";
  }

  /** Submits what tfjs has recorded and waits for the queue. */
  private async flush(): Promise<void> {
    const be = this.backend;
    be.ensureCommandEncoderReady();
    be.endComputePassEncoder();
    be.submitQueue();
    await be.device.queue.onSubmittedWorkDone();
  }

  private async wall(fn: () => TF.Tensor, times: number): Promise<number> {
    await this.flush();
    const t0 = performance.now();
    for (let i = 0; i < times; i++) this.tf.tidy(fn).dispose();
    await this.flush();
    return performance.now() - t0;
  }

  async time(fn: () => TF.Tensor): Promise<Timing> {
    const tf = this.tf;
    const t0 = performance.now();
    const y = tf.tidy(fn);
    await y.data();
    y.dispose();
    if (performance.now() - t0 > this.opts.slowMs) {
      // Very slow op: one measured call after the warm-up.
      const info = await tf.time(() => {
        tf.tidy(fn).dispose();
      });
      const ts = this.backend.supportTimestampQuery;
      return { ms: ts ? (info.kernelMs as number) : info.wallMs, method: ts ? "timestamp" : "wall", wallMs: info.wallMs, reps: 1 };
    }
    const est = Math.max(await this.wall(fn, 1), 1e-3);
    const plan = planReps(est, this.opts);
    let ms = NaN;
    let reps = 0;
    if (this.backend.supportTimestampQuery) {
      reps = plan.reps;
      const per: number[] = [];
      for (let r = 0; r < reps; r++) {
        const info = await tf.time(() => {
          tf.tidy(fn).dispose();
        });
        per.push(info.kernelMs as number);
      }
      ms = median(per);
    }
    const walls: number[] = [];
    if (plan.batch === 1) walls.push(est);
    while (walls.length < plan.wallSamples) walls.push((await this.wall(fn, plan.batch)) / plan.batch);
    const wallMs = median(walls);
    return { ms: Number.isFinite(ms) ? ms : wallMs, method: Number.isFinite(ms) ? "timestamp" : "wall", wallMs, reps };
  }

  /** Live tensors (a leak check for the bench). */
  numTensors(): number {
    return this.tf.memory().numTensors;
  }
}

/** tfjs time / ours, on the same method (timestamps when both have them, else wall clock). */
export function peerRatio(ours: Timing, peer: Timing): { ratio: number; method: "timestamp" | "wall" } {
  if (ours.method === "timestamp" && peer.method === "timestamp") return { ratio: peer.ms / ours.ms, method: "timestamp" };
  return { ratio: peer.wallMs / ours.wallMs, method: "wall" };
}
