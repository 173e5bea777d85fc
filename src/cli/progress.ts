/**
 * Training progress for people and tools: a one-line progress bar on a
 * terminal, plain periodic lines otherwise (CI logs), and optionally JSON
 * lines appended to a file.
 */
import type { EvalEvent, StepEvent } from "../model/trainer.ts";

export interface ProgressSink {
  step(e: StepEvent): void;
  eval(e: EvalEvent): void;
  message(text: string): void;
  close(): void;
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

export function formatEval(e: EvalEvent): string {
  return `eval @ step ${e.step} on ${e.split} (${e.samples} samples): auc ${e.auc.toFixed(4)}  accuracy ${(100 * e.accuracy).toFixed(2)}%  logloss ${e.logLoss.toFixed(5)}  loss ${e.loss.toFixed(5)}`;
}

export function createProgress(opts: { write: (s: string) => void; tty: boolean; jsonl?: (line: string) => void }): ProgressSink {
  let barShown = false;
  const clearBar = () => {
    if (barShown) opts.write("\r\x1b[2K");
    barShown = false;
  };
  return {
    step(e) {
      opts.jsonl?.(JSON.stringify({ type: "step", ...e }));
      if (opts.tty) {
        const width = 24;
        const frac = e.totalSteps ? Math.min(1, e.step / e.totalSteps) : 0;
        const filled = Math.round(frac * width);
        const bar = e.totalSteps ? `[${"#".repeat(filled)}${".".repeat(width - filled)}] ` : "";
        opts.write(`\r\x1b[2K${bar}${formatStep(e)}`);
        barShown = true;
      } else {
        opts.write(formatStep(e) + "\n");
      }
    },
    eval(e) {
      opts.jsonl?.(JSON.stringify({ type: "eval", ...e }));
      clearBar();
      opts.write(formatEval(e) + "\n");
    },
    message(text) {
      opts.jsonl?.(JSON.stringify({ type: "message", text }));
      clearBar();
      opts.write(text + "\n");
    },
    close() {
      clearBar();
    },
  };
}
