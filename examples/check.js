// Seeded inputs, a float64 CPU computation of what runKernels() returns, and the
// comparison. The hosts' examples (node.mjs, deno.ts, browser/main.js) call selfTest().
import { runKernels } from "./kernels.js";

export function makeInput(seed = 7) {
  let s = seed >>> 0;
  const rnd = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const rows = [50, 7, 129], d = 8, B = 5, k = 13, n = rows.length;
  const tables = rows.map((r) => Float32Array.from({ length: r * d }, () => rnd() * 2 - 1));
  const offsets = new Uint32Array(n * B + 1);
  const idx = [];
  for (let t = 0; t < n; t++) {
    for (let b = 0; b < B; b++) {
      const len = (t + b) % 4; // 0..3 lookups, empty bags included
      for (let j = 0; j < len; j++) idx.push(Math.floor(rnd() * rows[t]));
      offsets[t * B + b + 1] = idx.length;
    }
  }
  const dense = Float32Array.from({ length: B * k }, () => rnd());
  const W = Float32Array.from({ length: d * k }, () => rnd() - 0.5);
  return { rows, d, B, k, tables, offsets, indices: Uint32Array.from(idx), dense, W };
}

/** float64 reference with plain loops: emb, x and the interaction output, plus each value's sum of |terms|. */
export function cpuReference({ rows, d, B, k, tables, offsets, indices, dense, W }) {
  const n = rows.length;
  const emb = new Float64Array(B * n * d), embAbs = new Float64Array(B * n * d);
  for (let t = 0; t < n; t++) for (let b = 0; b < B; b++) {
    for (let p = offsets[t * B + b]; p < offsets[t * B + b + 1]; p++) {
      for (let c = 0; c < d; c++) {
        const v = tables[t][indices[p] * d + c];
        emb[(b * n + t) * d + c] += v;
        embAbs[(b * n + t) * d + c] += Math.abs(v);
      }
    }
  }
  const x = new Float64Array(B * d), xAbs = new Float64Array(B * d);
  for (let b = 0; b < B; b++) for (let j = 0; j < d; j++) {
    for (let q = 0; q < k; q++) {
      x[b * d + j] += dense[b * k + q] * W[j * k + q];
      xAbs[b * d + j] += Math.abs(dense[b * k + q] * W[j * k + q]);
    }
  }
  const width = d + ((n + 1) * n) / 2;
  const out = new Float64Array(B * width), outAbs = new Float64Array(B * width);
  for (let b = 0; b < B; b++) {
    const T = (i, c) => (i === 0 ? x[b * d + c] : emb[(b * n + i - 1) * d + c]);
    const TA = (i, c) => (i === 0 ? xAbs[b * d + c] : embAbs[(b * n + i - 1) * d + c]);
    for (let c = 0; c < d; c++) {
      out[b * width + c] = x[b * d + c];
      outAbs[b * width + c] = xAbs[b * d + c];
    }
    let o = d;
    for (let i = 1; i <= n; i++) for (let j = 0; j < i; j++, o++) {
      for (let c = 0; c < d; c++) {
        out[b * width + o] += T(i, c) * T(j, c);
        outAbs[b * width + o] += TA(i, c) * TA(j, c); // the inputs' own rounding propagates
      }
    }
  }
  return { emb, embAbs, x, xAbs, out, outAbs, terms: { emb: 3, x: k, out: d + 2 * Math.max(k, 3) + 2 } };
}

/** Largest |gpu - cpu| divided by its float32 rounding bound (about K * 2^-24 * sum|terms|): <= 1 passes. */
function worst(gpu, ref, abs, terms) {
  if (gpu.length !== ref.length) return Infinity;
  let w = 0;
  for (let i = 0; i < ref.length; i++) {
    const bound = terms * 2 ** -24 * abs[i] + 1e-30;
    const r = Math.abs(gpu[i] - ref[i]) / bound;
    w = Number.isNaN(r) ? Infinity : Math.max(w, r);
  }
  return w;
}

/** Runs the example on `device` and compares with the CPU; `ok` when every value is within its bound. */
export async function selfTest(device) {
  const input = makeInput();
  const gpu = await runKernels(device, input);
  const ref = cpuReference(input);
  const ratio = {
    emb: worst(gpu.emb, ref.emb, ref.embAbs, ref.terms.emb),
    x: worst(gpu.x, ref.x, ref.xAbs, ref.terms.x),
    out: worst(gpu.out, ref.out, ref.outAbs, ref.terms.out),
  };
  return { ok: Object.values(ratio).every((r) => r <= 1), ratio, sample: { emb0: gpu.emb[0], x0: gpu.x[0], out0: gpu.out[gpu.out.length - 1] } };
}
