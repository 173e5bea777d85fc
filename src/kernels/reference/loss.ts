/**
 * float64 references for the losses (dlrm_s_pytorch.py loss_fn: MSELoss,
 * BCELoss, weighted BCE with loss_ws[label]; plus BCE with logits).
 * "bce-prob" and "wbce" follow PyTorch's float32 BCELoss: p is rounded to
 * float32 first (so saturation happens where PyTorch's does), each log is
 * clamped at -100 and the backward is (p-y)/max(p(1-p), 1e-12) * p(1-p).
 */
export type LossKindRef = "bce" | "bce-prob" | "wbce" | "mse";

export function lossRef(
  z: ArrayLike<number>, y: ArrayLike<number>, kind: LossKindRef, weights: [number, number] = [1, 1], threshold = 0,
): { prob: Float64Array; loss: Float64Array; grad: Float64Array; mean: number } {
  const B = z.length;
  const prob = new Float64Array(B);
  const loss = new Float64Array(B);
  const grad = new Float64Array(B);
  let sum = 0;
  for (let i = 0; i < B; i++) {
    const zi = z[i]!;
    const yi = y[i]!;
    const p0 = 1 / (1 + Math.exp(-zi));
    // Output clamp: p held in [t, 1-t]; sigmoid' masked where it holds.
    const clamped = threshold > 0 && (p0 < threshold || p0 > 1 - threshold);
    const p = threshold > 0 ? Math.min(Math.max(p0, threshold), 1 - threshold) : p0;
    const dsig = clamped ? 0 : p0 * (1 - p0);
    prob[i] = p;
    if (kind === "bce") {
      loss[i] = Math.max(zi, 0) - zi * yi + Math.log1p(Math.exp(-Math.abs(zi)));
      grad[i] = (p - yi) / B;
    } else if (kind === "mse") {
      loss[i] = (p - yi) ** 2;
      grad[i] = (2 * (p - yi) * dsig) / B;
    } else {
      const pf = Math.fround(p);
      const w = kind === "wbce" ? weights[yi >= 1 ? 1 : 0] : 1;
      const lp = pf > 0 ? Math.max(Math.log(pf), -100) : -100;
      const lq = pf < 1 ? Math.max(Math.log1p(-pf), -100) : -100;
      loss[i] = -w * (yi * lp + (1 - yi) * lq);
      const pq = pf * (1 - pf);
      const dsigf = clamped ? 0 : threshold > 0 ? Math.fround(p0) * (1 - Math.fround(p0)) : pq;
      grad[i] = (w * ((pf - yi) / Math.max(pq, 1e-12)) * dsigf) / B;
    }
    sum += loss[i]!;
  }
  return { prob, loss, grad, mean: sum / B };
}
