/**
 * Helpers of the QR / MD embedding tests: the fixture's raw config and tensors
 * (decoded directly, independent of the model's config code), and a float64
 * CPU forward of the embedding part: split the bags per set, pool every
 * sub-table with plain loops into P, combine with the float64 reference.
 */
import { readFileSync } from "node:fs";
import { decodeSafetensors } from "../../src/io/safetensors.ts";
import { combineForwardRef } from "../../src/kernels/reference/embedding_combine.ts";
import {
  type EmbeddingLayout,
  type EmbeddingLayoutOptions,
  embeddingParameters,
  type LogicalBags,
  packProjections,
  splitBags,
} from "../../src/model/embedding_layout.ts";
import type { StateDict } from "../../src/model/params.ts";

export const EMB_FIXTURES = [
  "qr_mult_dot_bce_sgd_clamp",
  "qr_concat_dot_mse_adagrad",
  "qr_add_cat_bce_rwsadagrad",
  "md_dot_bce_rwsadagrad",
  "md_cat_mse_sgd",
  "dot_mse_sgd",
] as const;

export interface RawFixture {
  config: Record<string, any>;
  tensors: Record<string, { shape: number[]; data: Float32Array | Uint32Array }>;
}

export function loadRawFixture(name: string): RawFixture {
  const bytes = new Uint8Array(readFileSync(new URL(`../fixtures/dlrm/${name}.safetensors`, import.meta.url)));
  const { tensors, metadata } = decodeSafetensors(bytes, { copy: true });
  return { config: JSON.parse(metadata.config!), tensors: tensors as RawFixture["tensors"] };
}

/** Layout options from a fixture config; `explicitDims` passes config.md.dims instead of letting md_solver derive them. */
export function layoutOptions(cfg: Record<string, any>, explicitDims = false): EmbeddingLayoutOptions {
  return {
    embeddingDim: cfg.embeddingDim,
    tableRows: cfg.tableRows,
    qr: cfg.qr,
    md: cfg.md ? { ...cfg.md, dims: explicitDims ? cfg.md.dims : null } : null,
  };
}

export function fixtureStateDict(fx: RawFixture, prefix: string): StateDict {
  const sd: StateDict = {};
  for (const [k, v] of Object.entries(fx.tensors)) if (k.startsWith(prefix + "/")) sd[k.slice(prefix.length + 1)] = { shape: v.shape, data: v.data as Float32Array };
  return sd;
}

export function fixtureBatch(fx: RawFixture, k: number): LogicalBags {
  return {
    batchSize: fx.config.batchSize,
    offsets: fx.tensors[`batch${k}/offsets`]!.data as Uint32Array,
    indices: fx.tensors[`batch${k}/indices`]!.data as Uint32Array,
  };
}

/** Sub-table weights by [set][table in set]. */
export function setWeights(layout: EmbeddingLayout, sd: StateDict): Float32Array[][] {
  const out = layout.sets.map((s) => new Array<Float32Array>(s.rows.length));
  for (const p of embeddingParameters(layout)) if (p.place.kind === "table") out[p.place.set]![p.place.table] = sd[p.name]!.data;
  return out;
}

/**
 * float64 forward of the embeddings: E [B, n, d], a bound on the sum of
 * |terms| per element, and the most terms any element sums (longest bag + d).
 */
export function cpuEmbeddingForward(layout: EmbeddingLayout, sd: StateDict, batch: LogicalBags): { E: Float64Array; abs: Float64Array; terms: number; P: Float64Array } {
  const B = batch.batchSize;
  const W = layout.width;
  const d = layout.dim;
  const P = new Float64Array(B * W);
  const Pabs = new Float64Array(B * W);
  const weights = setWeights(layout, sd);
  let maxBag = 0;
  splitBags(layout, batch).forEach((bags, s) => {
    const set = layout.sets[s]!;
    set.rows.forEach((_, j) => {
      const w = weights[s]![j]!;
      for (let b = 0; b < B; b++) {
        const lo = bags.offsets[j * B + b]!;
        const hi = bags.offsets[j * B + b + 1]!;
        maxBag = Math.max(maxBag, hi - lo);
        for (let p = lo; p < hi; p++) {
          const row = bags.indices[p]!;
          for (let k = 0; k < set.dim; k++) {
            const v = w[row * set.dim + k]!;
            P[b * W + set.offset + j * set.dim + k] += v;
            Pabs[b * W + set.offset + j * set.dim + k] += Math.abs(v);
          }
        }
      }
    });
  });
  const proj = packProjections(layout, sd);
  const E = combineForwardRef(P, layout.combine, proj, B, d, W).value;
  // Same combine on |P| and |proj| bounds the absolute terms of the composite.
  const abs = combineForwardRef(Pabs, layout.combine, proj.map(Math.abs), B, d, W).value.map(Math.abs);
  return { E, abs, terms: maxBag + d, P };
}
