/**
 * float64 references for the QR / MD embedding combine (embedding_combine_fwd/bwd.wgsl,
 * embedding_proj_grad.wgsl), written from the math, not from the kernels:
 * P [B, W] pooled sub-tables, E [B, n, d], descriptors as in src/model/embedding_layout.ts.
 * Each returns the values and the sum of |terms| per element (for sumTolerance()).
 */
import type { CombineDescriptor } from "../../model/embedding_layout.ts";

export interface RefResult {
  value: Float64Array;
  abs: Float64Array;
}

/** E[b, t, :] from P[b, :] per descriptor. */
export function combineForwardRef(P: ArrayLike<number>, desc: readonly CombineDescriptor[], proj: ArrayLike<number>, B: number, d: number, W: number): RefResult {
  const n = desc.length;
  const value = new Float64Array(B * n * d);
  const abs = new Float64Array(B * n * d);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < n; t++) {
      const c = desc[t]!;
      const pa = (j: number) => P[b * W + c.a + j]!;
      const pb = (j: number) => P[b * W + c.b + j]!;
      for (let k = 0; k < d; k++) {
        let v = 0;
        let s = 0;
        if (c.op === "copy") v = pa(k);
        else if (c.op === "add") {
          v = pa(k) + pb(k);
          s = Math.abs(pa(k)) + Math.abs(pb(k));
        } else if (c.op === "mult") v = pa(k) * pb(k);
        else if (c.op === "concat") v = k < c.wa ? pa(k) : pb(k - c.wa);
        else {
          for (let j = 0; j < c.wa; j++) {
            const term = pa(j) * proj[c.projOffset + k * c.wa + j]!;
            v += term;
            s += Math.abs(term);
          }
        }
        const i = (b * n + t) * d + k;
        value[i] = v;
        abs[i] = Math.max(s, Math.abs(v));
      }
    }
  }
  return { value, abs };
}

/** dP [B, W] from dE: the transpose of combineForwardRef (columns owned by no table stay 0). */
export function combineBackwardRef(
  P: ArrayLike<number>,
  desc: readonly CombineDescriptor[],
  proj: ArrayLike<number>,
  dE: ArrayLike<number>,
  B: number,
  d: number,
  W: number,
): RefResult {
  const n = desc.length;
  const value = new Float64Array(B * W);
  const abs = new Float64Array(B * W);
  const add = (i: number, v: number) => {
    value[i] += v;
    abs[i] += Math.abs(v);
  };
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < n; t++) {
      const c = desc[t]!;
      const row = b * W;
      for (let k = 0; k < d; k++) {
        const g = dE[(b * n + t) * d + k]!;
        if (c.op === "copy") add(row + c.a + k, g);
        else if (c.op === "add") {
          add(row + c.a + k, g);
          add(row + c.b + k, g);
        } else if (c.op === "mult") {
          add(row + c.a + k, g * P[row + c.b + k]!);
          add(row + c.b + k, g * P[row + c.a + k]!);
        } else if (c.op === "concat") {
          if (k < c.wa) add(row + c.a + k, g);
          else add(row + c.b + k - c.wa, g);
        } else {
          for (let j = 0; j < c.wa; j++) add(row + c.a + j, g * proj[c.projOffset + k * c.wa + j]!);
        }
      }
    }
  }
  return { value, abs };
}

/** d(proj) packed like proj: dproj[off + k*wa + j] = sum_b dE[b,t,k] P[b, a+j]. */
export function projGradRef(P: ArrayLike<number>, desc: readonly CombineDescriptor[], dE: ArrayLike<number>, B: number, d: number, W: number, projSize: number): RefResult {
  const n = desc.length;
  const value = new Float64Array(projSize);
  const abs = new Float64Array(projSize);
  desc.forEach((c, t) => {
    if (c.op !== "project") return;
    for (let k = 0; k < d; k++) {
      for (let j = 0; j < c.wa; j++) {
        let v = 0;
        let s = 0;
        for (let b = 0; b < B; b++) {
          const term = dE[(b * n + t) * d + k]! * P[b * W + c.a + j]!;
          v += term;
          s += Math.abs(term);
        }
        value[c.projOffset + k * c.wa + j] = v;
        abs[c.projOffset + k * c.wa + j] = s;
      }
    }
  });
  return { value, abs };
}
