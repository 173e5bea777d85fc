/**
 * float64 references for one dense optimizer step, written from PyTorch's
 * update rules (torch.optim.SGD / Adagrad / Adam; the reference's RWSAdagrad
 * on a dense gradient is element-wise Adagrad). Mutates `param` and `state`.
 * Also returns, per element, the sum of |terms| of the parameter update for tolerances.
 */
export interface DenseHyperRef {
  lr: number;
  eps: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  /** 1-based step (Adam). */
  step: number;
}

export function denseOptimizerRef(
  kind: "sgd" | "adagrad" | "adam" | "rowwise-adagrad",
  param: Float64Array, grad: ArrayLike<number>, state: Float64Array[], h: DenseHyperRef,
): Float64Array {
  // The kernels read f32 hyperparameters from the OptimParams uniform, and form
  // 1 - beta from the f32 beta (PyTorch casts 1 - beta from double instead: a
  // relative 1.3e-5 difference in (1 - beta2) for beta2 = 0.999).
  const f = Math.fround;
  const beta1 = f(h.beta1);
  const beta2 = f(h.beta2);
  const b1 = f(1 - h.beta1 ** h.step);
  const b2 = f(1 - h.beta2 ** h.step);
  const lr = f(h.lr);
  const eps = f(h.eps);
  const wd = f(h.weightDecay);
  const mag = new Float64Array(param.length);
  for (let i = 0; i < param.length; i++) {
    const w = param[i]!;
    const g = grad[i]! + wd * w;
    let upd: number;
    if (kind === "sgd") {
      upd = lr * g;
    } else if (kind === "adam") {
      const m = beta1 * state[0]![i]! + (1 - beta1) * g;
      const v = beta2 * state[1]![i]! + (1 - beta2) * g * g;
      state[0]![i] = m;
      state[1]![i] = v;
      upd = (lr / b1) * (m / (Math.sqrt(v / b2) + eps));
    } else {
      const s = state[0]![i]! + g * g;
      state[0]![i] = s;
      upd = (lr * g) / (Math.sqrt(s) + eps);
    }
    param[i] = w - upd;
    mag[i] = Math.abs(w) + Math.abs(upd);
  }
  return mag;
}
