/**
 * The progress display driven with a fake clock and timer: it redraws at
 * least once a second between loss read-backs, shows a "compiling kernels"
 * phase, and leaves the final status and a loss history on screen.
 */
import { describe, expect, it } from "vitest";
import { createProgress, lossHistory } from "../../src/cli/progress.ts";
import type { StepEvent } from "../../src/model/trainer.ts";

function fakeTerminal(tty = true) {
  let t = 0;
  const timers: (() => void)[] = [];
  let out = "";
  const jsonl: string[] = [];
  const p = createProgress({
    write: (s) => (out += s),
    tty,
    jsonl: (l) => jsonl.push(l),
    now: () => t,
    wallClock: () => Date.UTC(2026, 0, 1) + t,
    setTimer: (fn, ms) => {
      expect(ms).toBeLessThanOrEqual(1000);
      timers.push(fn);
      return timers.length;
    },
    clearTimer: (h) => void (timers[(h as number) - 1] = () => {}),
  });
  return {
    p,
    jsonl,
    /** Advances the clock by `ms`, firing the interval timer every second as the host would. */
    advance(ms: number) {
      for (let left = ms; left > 0; left -= 1000) {
        t += Math.min(1000, left);
        for (const f of timers) f();
      }
    },
    tick(ms: number) {
      t += ms;
    },
    take() {
      const s = out;
      out = "";
      return s;
    },
    /** What a terminal shows: carriage returns and erase-line codes applied. */
    screen(all: string) {
      const lines: string[] = [""];
      for (const part of all.split(/(\r\x1b\[2K|\n)/)) {
        if (part === "\r\x1b[2K") lines[lines.length - 1] = "";
        else if (part === "\n") lines.push("");
        else lines[lines.length - 1] += part;
      }
      return lines.filter((l, i) => l !== "" || i < lines.length - 1);
    },
  };
}

const ev = (step: number, loss: number): StepEvent => ({ step, epoch: 0, loss, lr: 0.05, samplesPerSec: 1000, totalSteps: 100, etaSec: 10 });

describe("progress display", () => {
  it("shows the compiling phase with its elapsed time, redrawn every second", () => {
    const f = fakeTerminal();
    f.p.phase("compiling kernels");
    expect(f.take()).toContain("compiling kernels... 0 s");
    for (let s = 1; s <= 3; s++) {
      f.advance(1000);
      expect(f.take()).toContain(`compiling kernels... ${s} s`);
    }
    f.p.submitted(1, 0, 100);
    f.advance(2000); // the first step is slow: kernels compile on first use; still the phase
    expect(f.take()).toContain("compiling kernels... 5 s");
    f.p.step(ev(5, 0.69));
    const out = f.take();
    expect(out).toContain("compiling kernels: 5.0 s (until the first loss read back, at step 5)\n");
    expect(out).toContain("step 5/100");
  });

  it("moves at least once a second between loss read-backs", () => {
    const f = fakeTerminal();
    f.p.phase("compiling kernels");
    f.p.step(ev(1, 0.7));
    f.take();
    // 20 steps submitted over 10 s with no loss read back: every second shows a newer step and ETA.
    const seen: string[] = [];
    for (let s = 2; s <= 21; s++) {
      f.tick(250);
      f.p.submitted(s, 0, 100);
      f.advance(250);
      const out = f.take();
      if (s % 2 === 1) {
        expect(out, `second ${(s - 1) / 2}`).toMatch(/step \d+\/100/);
        seen.push(/step (\d+)\/100/.exec(out.split("\r").at(-1)!)![1]!);
      }
    }
    expect(new Set(seen).size).toBe(seen.length); // a new step count every second
    expect(seen.at(-1)).toBe("21");
  });

  it("a timer alone redraws when no step is submitted (a slow GPU read-back)", () => {
    const f = fakeTerminal();
    f.p.phase("compiling kernels");
    f.p.submitted(10, 0, 100);
    f.p.step(ev(10, 0.5));
    f.take();
    f.advance(3000);
    const draws = f.take().split("\r\x1b[2K").filter((s) => s.includes("step 10/100"));
    expect(draws.length).toBeGreaterThanOrEqual(3);
    // The elapsed time moves on every redraw, so a waiting run visibly lives.
    expect(draws.slice(-3).map((d) => /elapsed (\d+:\d\d)/.exec(d)?.[1])).toEqual(["0:01", "0:02", "0:03"]);
  });

  it("leaves the final status, the summary and a loss history on screen", () => {
    const f = fakeTerminal();
    f.p.phase("compiling kernels");
    for (let s = 1; s <= 100; s++) {
      f.tick(100);
      f.p.submitted(s, 0, 100);
      if (s % 10 === 0) f.p.step(ev(s, 0.7 - s / 400));
    }
    f.p.close();
    f.p.message("trained 100 steps in 10.0 s");
    const screen = f.screen(f.take());
    expect(screen.at(-3)).toMatch(/^\[#{24}\] step 100\/100 +epoch 0 +loss 0\.45000/);
    expect(screen.at(-2)).toMatch(/^loss history, steps 10-100: 0\.6750 [▁▂▃▄▅▆▇█]{10} 0\.4500$/);
    expect(screen.at(-1)).toBe("trained 100 steps in 10.0 s");
  });

  it("JSON lines: the start record first (records before it are held back), timestamps on all, end last", () => {
    const f = fakeTerminal(false);
    f.p.message("preparing data");
    f.p.begin({ version: "9.9.9", config: { embeddingDim: 4 } });
    f.p.step(ev(5, 0.6));
    f.p.end({ exitCode: 0 });
    const recs = f.jsonl.map((l) => JSON.parse(l));
    expect(recs.map((r) => r.type)).toEqual(["start", "message", "step", "end"]);
    expect(recs[0]).toMatchObject({ version: "9.9.9", config: { embeddingDim: 4 } });
    for (const r of recs) expect(r.time).toMatch(/^2026-01-01T00:00:0\d\.\d{3}Z$/);
  });

  it("a loss history resists one early spike", () => {
    const pts = Array.from({ length: 60 }, (_, i) => ({ step: i + 1, loss: i === 0 ? 50 : 1 - i / 100 }));
    const h = lossHistory(pts)!;
    const bars = h.split(" ")[5]!;
    // Without clipping the spike every later bucket would be the lowest block.
    expect(new Set(bars.slice(2)).size).toBeGreaterThan(3);
  });
});
