/**
 * Learning-rate schedule of the reference (dlrm_s_pytorch.py,
 * LRPolicyScheduler), reproduced with its quirks:
 * - PyTorch's scheduler has already stepped once when training starts, so
 *   0-based optimizer step t uses the scheduler's step count c = t + 1;
 * - warmup (c < W): lr = base · (1 - (W - c) / W);
 * - decay (S <= c < S + N): lr = max(1e-7, base · ((N - (c - S)) / N)^2);
 * - otherwise, when N > 0 the last computed lr is kept (between warmup and
 *   decay it stays at the last warmup value; after the decay at its last
 *   value); when N = 0 the base lr is used.
 */
export interface LrSchedule {
  baseLr: number;
  warmupSteps: number;
  decayStartStep: number;
  decaySteps: number;
}

const MIN_LR = 1e-7;

function computed(s: LrSchedule, c: number): number | undefined {
  if (c < s.warmupSteps) return s.baseLr * (1 - (s.warmupSteps - c) / s.warmupSteps);
  if (s.decayStartStep <= c && c < s.decayStartStep + s.decaySteps) {
    const k = c - s.decayStartStep;
    return Math.max(MIN_LR, s.baseLr * ((s.decaySteps - k) / s.decaySteps) ** 2);
  }
  return undefined;
}

/** Learning rate for 0-based optimizer step `t`. */
export function learningRateAt(s: LrSchedule, t: number): number {
  if (s.decaySteps > 0 && s.decayStartStep < s.warmupSteps) {
    throw new RangeError("learning-rate warmup must finish before the decay starts (--lr-decay-start-step >= --lr-num-warmup-steps)");
  }
  const c = t + 1;
  const now = computed(s, c);
  if (now !== undefined) return now;
  if (s.decaySteps === 0) return s.baseLr;
  // Keep the last computed value: the latest c' < c where a branch applied.
  const candidates = [s.decayStartStep + s.decaySteps - 1, s.warmupSteps - 1].filter((x) => x >= 1 && x < c);
  for (const cc of candidates.sort((a, b) => b - a)) {
    const v = computed(s, cc);
    if (v !== undefined) return v;
  }
  return s.baseLr;
}
