/**
 * DLRM parameters on the CPU as a state dict with the reference's names
 * (bot_l.{2k}.weight [out, in], bot_l.{2k}.bias, top_l.{2k}.*, emb_l.{t}.weight
 * [rows, d]), and their initialization as the reference does it:
 * Linear weight ~ N(0, sqrt(2 / (in + out))), bias ~ N(0, sqrt(1 / out)),
 * embedding ~ U(-sqrt(1 / rows), sqrt(1 / rows)); seeded. QR and MD
 * embeddings (names and init) come from embedding_layout.ts.
 */
import { Rng } from "../util/rng.ts";
import type { DlrmConfig } from "./config.ts";
import { embeddingLayout, type EmbeddingLayout, embeddingParameterShapes, initEmbeddingParameters } from "./embedding_layout.ts";

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export type StateDict = Record<string, Tensor>;

/** Names and shapes of every parameter, in a fixed order. */
export function parameterShapes(c: DlrmConfig): [string, number[]][] {
  const out: [string, number[]][] = [];
  const mlp = (prefix: string, sizes: number[]) => {
    for (let i = 0; i + 1 < sizes.length; i++) {
      out.push([`${prefix}.${2 * i}.weight`, [sizes[i + 1]!, sizes[i]!]]);
      out.push([`${prefix}.${2 * i}.bias`, [sizes[i + 1]!]]);
    }
  };
  mlp("bot_l", c.bottomMlp);
  mlp("top_l", c.topMlp);
  out.push(...embeddingParameterShapes(layoutOf(c)));
  return out;
}

/** The physical embedding layout (plain, QR, MD tables) of a configuration. */
export function layoutOf(c: DlrmConfig): EmbeddingLayout {
  return embeddingLayout({ embeddingDim: c.embeddingDim, tableRows: c.tableRows, qr: c.qr, md: c.md });
}

export function initParameters(c: DlrmConfig, seed = c.seed): StateDict {
  const rng = new Rng(seed);
  const sd: StateDict = {};
  for (const [name, shape] of parameterShapes(c)) {
    if (name.startsWith("emb_l.")) continue;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith(".weight")) {
      const std = Math.sqrt(2 / (shape[0]! + shape[1]!));
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    } else {
      const std = Math.sqrt(1 / shape[0]!);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    sd[name] = { shape, data };
  }
  return { ...sd, ...initEmbeddingParameters(layoutOf(c), rng) };
}
