/**
 * Training progress for people and tools.
 * - Terminal: one status line redrawn at least once a second (from a timer
 *   and from every submitted step, not only when the loss is read back): a
 *   "compiling kernels" phase first, then bar, step, loss, speed and ETA.
 *   At the end the last status stays on screen, followed by a short loss
 *   history.
 * - Not a terminal (CI logs): one plain line per loss report.
 * - JSON lines (optional): a first "start" record (given by the caller: config,
 *   versions), then every event, each with an ISO timestamp; "end" last.
 * The clock and timer are injectable so tests drive the renderer directly.
 */
import type { EvalEvent, StepEvent } from "../model/trainer.ts";

export interface ProgressSink {
  /** Writes the first JSON-lines record; records before it are held back until then. */
  begin(header: Record<string, unknown>): void;
  /** A named phase before training (e.g. "compiling kernels"), shown with its elapsed time until the first step. */
  phase(text: string): void;
  /** A step was submitted (no loss yet): moves the display between loss reports. */
  submitted(step: number, epoch: number, totalSteps?: number): void;
  step(e: StepEvent): void;
  eval(e: EvalEvent, lossName?: string): void;
  message(text: string): void;
  /** Leaves the final status and the loss history on screen; stops the timer. */
  close(): void;
  /** The last JSON-lines record. */
  end(record: Record<string, unknown>): void;
}

export interface ProgressOptions {
  write: (s: string) => void;
  tty: boolean;
  jsonl?: (line: string) => void;
  /** Milliseconds; default performance.now(). */
  now?: () => number;
  /** Wall-clock time for JSON-lines timestamps; default Date.now(). */
  wallClock?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

function fmtTime(sec: number | undefined): string {
  if (sec === undefined || !Number.isFinite(sec)) return "--:--";
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

export function formatStep(e: StepEvent): string {
  const of = e.totalSteps ? `/${e.totalSteps}` : "";
  return `step ${e.step}${of}  epoch ${e.epoch}  loss ${e.loss.toFixed(5)}  lr ${e.lr.toPrecision(3)}  ${Math.round(e.samplesPerSec)} samples/s  eta ${fmtTime(e.etaSec)}`;
}

/**
 * One evaluation, every figure labelled: "log loss" is the binary
 * cross-entropy of the probabilities (clipped to [1e-7, 1 - 1e-7]); the
 * last figure is the model's own training loss (mse, bce or wbce) on the
 * same samples.
 */
export function formatEval(e: EvalEvent, lossName = "model"): string {
  return `eval on ${e.split} at step ${e.step} (${e.samples} samples): AUC ${e.auc.toFixed(4)}  accuracy ${(100 * e.accuracy).toFixed(2)}%  log loss ${e.logLoss.toFixed(5)}  ${lossName} loss ${e.loss.toFixed(5)}`;
}

const BLOCKS = "▁▂▃▄▅▆▇█";

/** A one-line loss history: up to `width` buckets (mean loss each) as block characters, with first and last values. */
export function lossHistory(points: { step: number; loss: number }[], width = 40): string | undefined {
  if (points.length < 2) return undefined;
  const buckets: number[] = [];
  const n = Math.min(width, points.length);
  for (let b = 0; b < n; b++) {
    const from = Math.floor((b * points.length) / n);
    const to = Math.floor(((b + 1) * points.length) / n);
    const slice = points.slice(from, Math.max(to, from + 1));
    buckets.push(slice.reduce((a, p) => a + p.loss, 0) / slice.length);
  }
  // Scale from the lowest bucket to the 90th percentile (higher ones show as full blocks) so an early spike does not flatten the rest.
  const sorted = [...buckets].sort((a, b) => a - b);
  const lo = sorted[0]!;
  const hi = sorted[Math.floor(0.9 * (sorted.length - 1))]!;
  const bar = buckets.map((v) => BLOCKS[hi > lo ? Math.round(Math.min(1, Math.max(0, (v - lo) / (hi - lo))) * (BLOCKS.length - 1)) : 0]).join("");
  return `loss history, steps ${points[0]!.step}-${points.at(-1)!.step}: ${buckets[0]!.toFixed(4)} ${bar} ${buckets.at(-1)!.toFixed(4)}`;
}

export function createProgress(opts: ProgressOptions): ProgressSink {
  const now = opts.now ?? (() => performance.now());
  const wall = opts.wallClock ?? (() => Date.now());
  const setTimer = opts.setTimer ?? ((fn, ms) => setInterval(fn, ms));
  const clearTimer = opts.clearTimer ?? ((h) => clearInterval(h as ReturnType<typeof setInterval>));
  let held: string[] | undefined = [];
  const record = (r: Record<string, unknown>) => {
    if (!opts.jsonl) return;
    const line = JSON.stringify({ time: new Date(wall()).toISOString(), ...r });
    if (held) held.push(line);
    else opts.jsonl(line);
  };

  let barShown = false;
  let timer: unknown;
  let lastDraw = -Infinity;
  let phase: { text: string; since: number } | undefined;
  let last: StepEvent | undefined;
  let submittedStep = 0;
  let submittedEpoch = 0;
  let plannedTotal: number | undefined;
  let firstSubmit: { time: number; step: number } | undefined;
  const history: { step: number; loss: number }[] = [];
  let closed = false;

  const status = (): string | undefined => {
    const t = now();
    if (phase) return `${phase.text}... ${((t - phase.since) / 1000).toFixed(0)} s`;
    if (!last && !firstSubmit) return undefined;
    const total = last?.totalSteps ?? plannedTotal;
    const step = Math.max(submittedStep, last?.step ?? 0);
    const width = 24;
    const frac = total ? Math.min(1, step / total) : 0;
    const filled = Math.round(frac * width);
    const bar = total ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
    // Between read-backs the step count comes from submissions; speed and ETA from the elapsed time.
    const sps = last?.samplesPerSec;
    let eta = last?.etaSec;
    if (firstSubmit && step > firstSubmit.step && t > firstSubmit.time && total) {
      eta = ((t - firstSubmit.time) / 1000 / (step - firstSubmit.step)) * Math.max(0, total - step);
    }
    const loss = last ? `loss ${last.loss.toFixed(5)}${last.step < step ? ` (at ${last.step})` : ""}` : "loss --";
    const lr = last ? `  lr ${last.lr.toPrecision(3)}` : "";
    const speed = sps !== undefined ? `  ${Math.round(sps)} samples/s` : "";
    const elapsed = firstSubmit ? `  elapsed ${fmtTime((t - firstSubmit.time) / 1000)}` : "";
    return `${bar}step ${step}${total ? `/${total}` : ""}  epoch ${last?.epoch ?? submittedEpoch}  ${loss}${lr}${speed}${elapsed}  eta ${fmtTime(eta)}`;
  };

  const draw = () => {
    if (!opts.tty) return;
    const s = status();
    if (s === undefined) return;
    lastDraw = now();
    opts.write(`\r\x1b[2K${s}`);
    barShown = true;
  };
  const clearBar = () => {
    if (barShown) opts.write("\r\x1b[2K");
    barShown = false;
  };
  const startTimer = () => {
    if (opts.tty && timer === undefined) timer = setTimer(draw, 1000);
  };
  const endPhase = (atStep?: number) => {
    if (!phase) return;
    const line = `${phase.text}: ${((now() - phase.since) / 1000).toFixed(1)} s${atStep ? ` (until the first loss read back, at step ${atStep})` : ""}`;
    record({ type: "phase", text: phase.text, seconds: (now() - phase.since) / 1000 });
    phase = undefined;
    clearBar();
    opts.write(line + "\n");
  };
  /** Writes a permanent line above the status line, then redraws the status. */
  const above = (text: string) => {
    clearBar();
    opts.write(text + "\n");
    if (phase || last || firstSubmit) draw();
  };

  return {
    begin(header) {
      if (!opts.jsonl) return;
      const pending = held ?? [];
      held = undefined;
      record({ type: "start", ...header });
      for (const l of pending) opts.jsonl(l);
    },
    phase(text) {
      endPhase();
      phase = { text, since: now() };
      if (opts.tty) {
        draw();
        startTimer();
      } else {
        opts.write(`${text}...\n`);
      }
    },
    submitted(step, epoch, totalSteps) {
      // Kernels finish compiling on the GPU's first use: the phase lasts until the first loss comes back.
      plannedTotal = totalSteps;
      submittedStep = step;
      submittedEpoch = epoch;
      firstSubmit ??= { time: now(), step };
      if (opts.tty) {
        startTimer();
        if (now() - lastDraw >= 250) draw();
      }
    },
    step(e) {
      endPhase(e.step);
      record({ type: "step", ...e });
      last = e;
      history.push({ step: e.step, loss: e.loss });
      if (opts.tty) {
        startTimer();
        draw();
      } else {
        opts.write(formatStep(e) + "\n");
      }
    },
    eval(e, lossName) {
      record({ type: "eval", ...e });
      above(formatEval(e, lossName));
    },
    message(text) {
      record({ type: "message", text });
      if (opts.tty) above(text);
      else opts.write(text + "\n");
    },
    close() {
      if (closed) return;
      closed = true;
      if (timer !== undefined) clearTimer(timer);
      timer = undefined;
      endPhase();
      // The final status stays on screen (a terminal) instead of being erased.
      if (opts.tty && barShown) {
        draw();
        opts.write("\n");
        barShown = false;
      }
      last = undefined;
      firstSubmit = undefined;
      const h = lossHistory(history);
      if (h) opts.write(h + "\n");
    },
    end(r) {
      record({ type: "end", ...r });
      if (held && opts.jsonl) {
        // begin() was never called (an early failure): write what there is.
        const pending = held;
        held = undefined;
        for (const l of pending) opts.jsonl(l);
      }
    },
  };
}
