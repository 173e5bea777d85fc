/**
 * Dot interaction (src/kernels/interaction.ts, variant "auto"), B = 2048,
 * (n, d) = (26, 16) and (8, 64). Bytes moved, each array once:
 *   forward  read x [B,d] + emb [B,n,d], write out [B, d + n(n+1)/2]
 *   backward read x, emb, gradOut, write gradX, gradEmb
 * reported against the copy bandwidth. Peer (forward only): tf.matMul of
 * T [B, n+1, d] with its transpose, i.e. the full Z = T T^T without the
 * lower-triangle gather and concat our kernel also does.
 */
import { createStorage, uploadStorage } from "../../src/gpu/buffers.ts";
import { interactionOutputDim, prepareInteractionBackward, prepareInteractionForward } from "../../src/kernels/interaction.ts";
import { Rng } from "../../src/util/rng.ts";
import { table } from "../report.ts";
import { type BenchEnv, type Cell, fmt, pct, peerCols, renderCells } from "./common.ts";

const HEAD = ["case", "ms", "GB/s", "% copy BW", "GFLOP/s", "wall ms", "tfjs ms (batched matMul)", "tfjs / ours"];

export async function runInteraction(env: BenchEnv): Promise<() => string> {
  const { device, timer, peer, roof, log } = env;
  const tf = peer?.tf;
  const rows: Cell[][] = [];
  const B = 2048;
  for (const [n, d] of [[26, 16], [8, 64]] as const) {
    const rng = new Rng(n * 100 + d);
    const outDim = interactionOutputDim(n, d, "dot");
    const xH = rng.f32(B * d), embH = rng.f32(B * n * d);
    const x = uploadStorage(device, xH, "ix:x"), emb = uploadStorage(device, embH, "ix:emb");
    const out = createStorage(device, B * outDim * 4, "ix:out");
    const gradOut = uploadStorage(device, rng.f32(B * outDim), "ix:gradOut");
    const gradX = createStorage(device, B * d * 4, "ix:gradX"), gradEmb = createStorage(device, B * n * d * 4, "ix:gradEmb");
    const shape = { x, emb, batch: B, numEmb: n, dim: d, op: "dot" as const };
    const fwd = prepareInteractionForward(device, { ...shape, out });
    const bwd = prepareInteractionBackward(device, { ...shape, gradOut, gradX, gradEmb });
    const tIn = B * (n + 1) * d * 4;
    const outBytes = B * outDim * 4;
    const pairs = outDim - d;
    const cases = [
      { pass: "fwd", ds: fwd, bytes: tIn + outBytes, flops: 2 * B * pairs * d },
      { pass: "bwd", ds: bwd, bytes: 2 * tIn + outBytes, flops: 4 * B * pairs * d },
    ];
    let tT: import("@tensorflow/tfjs-core").Tensor3D | undefined;
    if (tf) {
      // T = cat(x, e_1..e_n) per sample: [B, n+1, d].
      const tH = new Float32Array(B * (n + 1) * d);
      for (let b = 0; b < B; b++) {
        tH.set(xH.subarray(b * d, (b + 1) * d), b * (n + 1) * d);
        tH.set(embH.subarray(b * n * d, (b + 1) * n * d), b * (n + 1) * d + d);
      }
      tT = tf.tensor3d(tH, [B, n + 1, d]);
    }
    for (const c of cases) {
      const ours = await timer.time(c.ds, `interaction ${c.pass} n${n} d${d}`);
      const p = c.pass === "fwd" && tf && tT ? await peer!.time(() => tf.matMul(tT!, tT!, false, true)) : undefined;
      const gbs = c.bytes / (ours.ms * 1e6);
      const [pm, pr] = p ? peerCols(ours, p) : ["n/a (not run)", "n/a"];
      const cells = [`B=${B} n=${n} d=${d} ${c.pass} (${c.ds.map((x) => x.label).join(", ")})`, fmt(ours.ms, 3), fmt(gbs), () => pct(gbs / roof.copyGBs),
        fmt(c.flops / (ours.ms * 1e6)), fmt(ours.wallMs, 3), pm, pr];
      rows.push(cells);
      log(renderCells(cells).join("  "));
    }
    tT?.dispose();
    for (const b of [x, emb, out, gradOut, gradX, gradEmb]) b.destroy();
  }
  return () => table(HEAD, rows.map(renderCells));
}
