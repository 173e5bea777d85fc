/**
 * GEMM cases: 1024^3 (prepareGemm) and the Kaggle DLRM MLP layers
 * (prepareLinearForward / prepareLinearBackward) at batch 128 and 2048.
 * Peers: tf.matMul (1024^3, dX, dW) and tf.fused.matMul with bias and
 * activation (forward). Our backward GEMMs also apply the ReLU mask inside
 * their loads; tfjs's plain matMul does not (slightly less work for tfjs).
 */
import { createStorage, uploadStorage } from "../../src/gpu/buffers.ts";
import { prepareGemm, prepareLinearBackward, prepareLinearForward } from "../../src/kernels/gemm.ts";
import { table } from "../report.ts";
import { Rng } from "../../src/util/rng.ts";
import { type BenchEnv, type Cell, fmt, pct, peerCols, renderCells } from "./common.ts";
import type { Timing } from "./timing.ts";

export interface GemmResults {
  /** Rendered when called (after the closing roofline). */
  markdown: () => string;
  /** 1024^3: ours and the peer. */
  big: { ours: Timing; gflops: number; peer?: Timing };
}

type Act = "relu" | "sigmoid";
/** [name, in, out, activation] of the Kaggle config (bottom 13-512-256-64-16, top 367-512-256-1). */
export const KAGGLE_LAYERS: [string, number, number, Act][] = [
  ["bot 13-512", 13, 512, "relu"], ["bot 512-256", 512, 256, "relu"], ["bot 256-64", 256, 64, "relu"], ["bot 64-16", 64, 16, "relu"],
  ["top 367-512", 367, 512, "relu"], ["top 512-256", 512, 256, "relu"], ["top 256-1", 256, 1, "sigmoid"],
];

const HEAD = ["case", "ms", "GFLOP/s", "% FMA peak", "wall ms", "tfjs ms", "tfjs / ours"];

export async function runGemm(env: BenchEnv): Promise<GemmResults> {
  const { device, timer, peer, roof, log } = env;
  const tf = peer?.tf;
  const rng = new Rng(7);
  const rows: Cell[][] = [];
  const own: GPUBuffer[] = [];
  const up = (data: Float32Array, label: string) => {
    const b = uploadStorage(device, data, label);
    own.push(b);
    return b;
  };
  const out = (floats: number, label: string) => {
    const b = createStorage(device, floats * 4, label);
    own.push(b);
    return b;
  };
  const row = (name: string, flops: number, ours: Timing, p: Timing | undefined): number => {
    const g = flops / (ours.ms * 1e6);
    const cells = [name, fmt(ours.ms, 3), fmt(g), () => pct(g / roof.fmaGflops), fmt(ours.wallMs, 3), ...peerCols(ours, p)];
    rows.push(cells);
    log(renderCells(cells).join("  "));
    return g;
  };

  // ---- 1024^3
  const N = env.quick ? 512 : 1024; // --quick: a smoke run
  const aH = rng.f32(N * N), bH = rng.f32(N * N);
  const A = up(aH, "gemm:A"), B = up(bH, "gemm:B"), C = out(N * N, "gemm:C");
  const big = await timer.time(prepareGemm(device, { a: A, b: B, c: C, m: N, n: N, k: N }), "gemm 1024^3");
  let bigPeer: Timing | undefined;
  if (tf && peer) {
    const ta = tf.tensor2d(aH, [N, N]), tb = tf.tensor2d(bH, [N, N]);
    bigPeer = await peer.time(() => tf.matMul(ta, tb));
    ta.dispose();
    tb.dispose();
  }
  const bigG = row(`${N}^3 C = A B`, 2 * N ** 3, big, bigPeer);
  for (const b of own.splice(0)) b.destroy();

  // ---- Kaggle layers
  for (const batch of env.quick ? [128] : [128, 2048]) {
    let oursTotal = 0, peerTotal = 0, flopsTotal = 0;
    let method: Timing["method"] = timer.method;
    for (const [name, k, n, act] of KAGGLE_LAYERS) {
      const m = batch;
      const xH = rng.f32(m * k), wH = rng.f32(n * k, -0.1, 0.1), bH2 = rng.f32(n), dyH = rng.f32(m * n);
      const x = up(xH, "x"), w = up(wH, "w"), bias = up(bH2, "b"), y = out(m * n, "y"), dy = up(dyH, "dy");
      const dx = k === 13 ? undefined : out(m * k, "dx"), dw = out(n * k, "dw"), db = out(n, "db");
      const fwd = prepareLinearForward(device, { x, w, b: bias, y, m, n, k, activation: act });
      const bwd = prepareLinearBackward(device, { x, w, y, dy, dx, dw, db, m, n, k, activation: act === "relu" ? "relu" : "none" });
      const parts: [string, typeof fwd, number][] = [["fwd", fwd, 2 * m * n * k]];
      // By label: the uniform-buffer path adds a pack dispatch and column chunks to dX, and a ReLU-mask pass (with db in the totals only).
      const pick = (prefix: string) => bwd.filter((d) => d.label.startsWith(prefix));
      if (dx) parts.push(["dX", pick("linear-dx"), 2 * m * n * k]);
      parts.push(["dW", pick("linear-dw"), 2 * m * n * k], ["db", bwd.filter((d) => !d.label.startsWith("linear-dx") && !d.label.startsWith("linear-dw")), m * n]);

      const t = tf && {
        x: tf.tensor2d(xH, [m, k]), w: tf.tensor2d(wH, [n, k]), b: tf.tensor1d(bH2), dy: tf.tensor2d(dyH, [m, n]),
      };
      for (const [pass, ds, flops] of parts) {
        const ours = await timer.time(ds, `${name} ${pass} b${batch}`);
        let p: Timing | undefined;
        if (tf && t && pass !== "db") {
          const fn = pass === "fwd"
            ? () => tf.fused.matMul({ a: t.x, b: t.w, transposeB: true, bias: t.b, activation: act })
            : pass === "dX" ? () => tf.matMul(t.dy, t.w) : () => tf.matMul(t.dy, t.x, true, false);
          p = await peer!.time(fn);
        }
        if (pass === "db") {
          // Bias gradient: a column sum, reported in the totals only.
          oursTotal += ours.ms;
          continue;
        }
        row(`b${batch} ${name} ${pass}`, flops, ours, p);
        oursTotal += ours.ms;
        flopsTotal += flops;
        if (p) {
          const same = ours.method === "timestamp" && p.method === "timestamp";
          if (!same) method = "wall";
          peerTotal += same ? p.ms : p.wallMs;
        }
      }
      if (t) for (const v of Object.values(t)) v.dispose();
      for (const b of own.splice(0)) b.destroy();
    }
    const g = flopsTotal / (oursTotal * 1e6);
    const ratio = peer ? `${(peerTotal / oursTotal).toFixed(2)}x${method === "wall" ? " (wall)" : ""}` : "n/a";
    const cells = [`**b${batch} all layers fwd+bwd** (ours incl. bias grads)`, fmt(oursTotal, 3), fmt(g), () => pct(g / roof.fmaGflops), "", peer ? fmt(peerTotal, 3) : "n/a", ratio];
    rows.push(cells);
    log(renderCells(cells).join("  "));
  }
  return { markdown: () => table(HEAD, rows.map(renderCells)), big: { ours: big, gflops: bigG, peer: bigPeer } };
}
