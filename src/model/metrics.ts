/**
 * Evaluation metrics over many batches: exact ROC AUC (sort-based, ties
 * share the average rank), accuracy at threshold 0.5, log loss.
 */

export interface MetricsResult {
  samples: number;
  auc: number;
  accuracy: number;
  logLoss: number;
}

export class MetricsAccumulator {
  private preds: Float32Array = new Float32Array(1024);
  private labels: Uint8Array = new Uint8Array(1024);
  private n = 0;
  private correct = 0;
  private logLossSum = 0;

  /** Adds predicted probabilities and 0/1 labels (targets >= 0.5 count as positive). */
  add(probs: ArrayLike<number>, labels: ArrayLike<number>, count = probs.length): void {
    if (labels.length < count || probs.length < count) throw new RangeError("metrics: fewer labels or predictions than count");
    if (this.n + count > this.preds.length) {
      let cap = this.preds.length;
      while (cap < this.n + count) cap *= 2;
      const p = new Float32Array(cap);
      p.set(this.preds.subarray(0, this.n));
      const l = new Uint8Array(cap);
      l.set(this.labels.subarray(0, this.n));
      this.preds = p;
      this.labels = l;
    }
    const eps = 1e-7;
    for (let i = 0; i < count; i++) {
      const p = probs[i]!;
      const y = labels[i]! >= 0.5 ? 1 : 0;
      this.preds[this.n + i] = p;
      this.labels[this.n + i] = y;
      if ((p >= 0.5 ? 1 : 0) === y) this.correct++;
      const pc = Math.min(1 - eps, Math.max(eps, p));
      this.logLossSum -= y ? Math.log(pc) : Math.log(1 - pc);
    }
    this.n += count;
  }

  get count(): number {
    return this.n;
  }

  result(): MetricsResult {
    return {
      samples: this.n,
      auc: rocAuc(this.preds.subarray(0, this.n), this.labels.subarray(0, this.n)),
      accuracy: this.n ? this.correct / this.n : NaN,
      logLoss: this.n ? this.logLossSum / this.n : NaN,
    };
  }
}

/**
 * ROC AUC by the rank-sum (Mann-Whitney) statistic; tied scores get the
 * average rank. NaN when one class is absent.
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  const n = scores.length;
  const order = new Uint32Array(n);
  for (let i = 0; i < n; i++) order[i] = i;
  order.sort((a, b) => scores[a]! - scores[b]!);
  let pos = 0;
  let rankSumPos = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && scores[order[j + 1]!] === scores[order[i]!]) j++;
    const avgRank = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) {
      if (labels[order[k]!]! >= 0.5) {
        pos++;
        rankSumPos += avgRank;
      }
    }
    i = j + 1;
  }
  const neg = n - pos;
  if (pos === 0 || neg === 0) return NaN;
  return (rankSumPos - (pos * (pos + 1)) / 2) / (pos * neg);
}
