import { describe, expect, it } from "vitest";
import { ConfigError, KernelInputError } from "../../src/gpu/errors.ts";
import {
  embeddingLayout,
  embeddingParameters,
  embeddingParameterShapes,
  initEmbeddingParameters,
  mdSolver,
  NO_TABLE,
  packCombine,
  splitBags,
} from "../../src/model/embedding_layout.ts";
import { initParameters, parameterShapes } from "../../src/model/params.ts";
import { Rng } from "../../src/util/rng.ts";
import { expectAllClose, sumTolerance } from "../helpers/assert.ts";
import { cpuEmbeddingForward, EMB_FIXTURES, fixtureBatch, fixtureStateDict, layoutOptions, loadRawFixture } from "./embedding_fixture_helpers.ts";

describe("embedding layout vs the PyTorch fixtures", () => {
  for (const name of EMB_FIXTURES) {
    describe(name, () => {
      const fx = loadRawFixture(name);
      const cfg = fx.config;
      const layout = embeddingLayout(layoutOptions(cfg));

      it("has exactly the fixture's parameter names and shapes", () => {
        const init = Object.entries(fx.tensors)
          .filter(([k]) => k.startsWith("init/emb_l."))
          .map(([k, v]) => [k.slice(5), v.shape] as [string, number[]]);
        expect(new Map(embeddingParameterShapes(layout))).toEqual(new Map(init));
        // ...and the per-table kinds and params of the metadata, in order.
        const fromMeta = (cfg.emb as { kind: string; params: Record<string, number[]> }[]).flatMap((e) => Object.entries(e.params));
        expect(embeddingParameterShapes(layout)).toEqual(fromMeta);
        expect(layout.tables.map((t) => t.kind)).toEqual(cfg.emb.map((e: { kind: string }) => e.kind));
      });

      if (cfg.md) {
        it("md_solver gives the fixture's dims", () => {
          expect(mdSolver(cfg.tableRows, cfg.md.temperature, cfg.embeddingDim, cfg.md.roundDims)).toEqual(cfg.md.dims);
          const explicit = embeddingLayout(layoutOptions(cfg, true));
          expect(explicit.tables.map((t) => t.mdDim)).toEqual(cfg.md.dims);
        });
      }

      it("splitBags keeps every bag boundary and maps q/r", () => {
        for (const k of [0, 1, 9]) {
          const batch = fixtureBatch(fx, k);
          const B = batch.batchSize;
          const sets = splitBags(layout, batch);
          sets.forEach((bags, s) => {
            const set = layout.sets[s]!;
            expect(bags.offsets.length).toBe(set.rows.length * B + 1);
            expect(bags.offsets[0]).toBe(0);
            expect(bags.offsets.at(-1)).toBe(bags.indices.length);
            set.subTables.forEach((st, j) => {
              for (let b = 0; b < B; b++) {
                const src = batch.indices.subarray(batch.offsets[st.logical * B + b]!, batch.offsets[st.logical * B + b + 1]!);
                const got = bags.indices.subarray(bags.offsets[j * B + b]!, bags.offsets[j * B + b + 1]!);
                const c = cfg.qr?.collisions;
                const want = [...src].map((i) => (st.part === "q" ? Math.floor(i / c) : st.part === "r" ? i % c : i));
                expect([...got]).toEqual(want);
                for (const i of got) expect(i).toBeLessThan(set.rows[j]!);
              }
            });
          });
        }
      });

      it("float64 pooled + combined embeddings match act/ly.{t}", () => {
        const { E, abs, terms } = cpuEmbeddingForward(layout, fixtureStateDict(fx, "init"), fixtureBatch(fx, 0));
        const B = cfg.batchSize;
        const n = cfg.tableRows.length;
        const d = cfg.embeddingDim;
        for (let t = 0; t < n; t++) {
          const got = fx.tensors[`act/ly.${t}`]!.data as Float32Array;
          const want = new Float64Array(B * d);
          const tol = new Float64Array(B * d);
          for (let b = 0; b < B; b++) {
            for (let k = 0; k < d; k++) {
              want[b * d + k] = E[(b * n + t) * d + k]!;
              tol[b * d + k] = sumTolerance(terms, abs[(b * n + t) * d + k]!);
            }
          }
          // The fixture is float32 PyTorch: within a K-term float32 sum of the float64 value.
          expectAllClose(got, want, (i) => tol[i]!, `${name} ly.${t}`);
        }
      });
    });
  }

  it("the float64 forward can fail: a perturbed weight is caught", () => {
    const fx = loadRawFixture("qr_mult_dot_bce_sgd_clamp");
    const layout = embeddingLayout(layoutOptions(fx.config));
    const sd = fixtureStateDict(fx, "init");
    sd["emb_l.0.weight_r"] = { ...sd["emb_l.0.weight_r"]!, data: sd["emb_l.0.weight_r"]!.data.map((v) => v * 1.001) };
    const { E } = cpuEmbeddingForward(layout, sd, fixtureBatch(fx, 0));
    const ly0 = fx.tensors["act/ly.0"]!.data;
    let worst = 0;
    for (let b = 0; b < 6; b++) for (let k = 0; k < 4; k++) worst = Math.max(worst, Math.abs(E[(b * 3) * 4 + k]! - ly0[b * 4 + k]!));
    expect(worst).toBeGreaterThan(1e-5);
  });
});

describe("embedding layout", () => {
  it("plain tables: one set, P is E (identity), same params and init as params.ts", () => {
    const layout = embeddingLayout({ embeddingDim: 16, tableRows: [10, 3, 7] });
    expect(layout.identity).toBe(true);
    expect(layout.sets).toEqual([{ dim: 16, rows: [10, 3, 7], offset: 0, subTables: [0, 1, 2].map((t) => ({ logical: t, part: "plain" })) }]);
    expect(layout.width).toBe(48);
    const cfg = { embeddingDim: 16, tableRows: [10, 3, 7], bottomMlp: [2, 16], topMlp: [22, 1] } as never;
    const shapes = parameterShapes(cfg);
    expect(embeddingParameterShapes(layout)).toEqual(shapes.filter(([n]) => n.startsWith("emb_l.")));
    // Drawing the embeddings after the MLPs from one Rng reproduces initParameters().
    const sd = initParameters(cfg, 42);
    const rng = new Rng(42);
    for (const [name, shape] of shapes) if (!name.startsWith("emb_l.")) for (let i = 0; i < shape.reduce((a, b) => a * b, 1); i++) rng.normal();
    const emb = initEmbeddingParameters(layout, rng);
    for (const [name] of embeddingParameterShapes(layout)) expect(emb[name]!.data).toEqual(sd[name]!.data);
  });

  it("QR precedence over MD, sets widest first, vec4-aligned offsets, padding columns unowned", () => {
    const layout = embeddingLayout({
      embeddingDim: 8,
      tableRows: [100, 5, 50, 20, 3],
      qr: { operation: "add", collisions: 7, threshold: 60 },
      md: { temperature: 1, roundDims: false, threshold: 4, dims: [8, 8, 3, 6, 8] },
    });
    expect(layout.tables.map((t) => t.kind)).toEqual(["qr", "md", "md", "md", "plain"]);
    expect(layout.sets.map((s) => s.dim)).toEqual([8, 6, 3]);
    // dim 8: q0, r0, md1 (identity), plain4 -> 32 columns; dim 6: md3 at 32 -> 38; dim 3: md2 at 38 -> 41; W = 44.
    expect(layout.sets.map((s) => s.offset)).toEqual([0, 32, 38]);
    expect(layout.sets[0]!.rows).toEqual([15, 7, 5, 3]);
    expect(layout.width).toBe(44);
    expect(layout.combine.map((c) => c.op)).toEqual(["add", "copy", "project", "project", "copy"]);
    expect(layout.combine[0]).toMatchObject({ a: 0, b: 8, wa: 8, wb: 8 });
    expect(layout.combine[2]).toMatchObject({ a: 38, wa: 3, projOffset: 0 });
    expect(layout.combine[3]).toMatchObject({ a: 32, wa: 6, projOffset: 24 });
    expect(layout.projSize).toBe(8 * 3 + 8 * 6);
    expect(layout.identity).toBe(false);
    const packed = packCombine(layout);
    const owner = (c: number) => packed.data[packed.colMapOffset + 2 * c];
    expect([41, 42, 43].map(owner)).toEqual([NO_TABLE, NO_TABLE, NO_TABLE]);
    expect(owner(0)).toBe(0);
    expect(owner(12)).toBe(0); // r side of table 0
    expect(packed.data[packed.colMapOffset + 2 * 12 + 1]).toBe((1 << 16) | 4);
    const params = embeddingParameters(layout);
    expect(params.map((p) => p.name)).toEqual([
      "emb_l.0.weight_q", "emb_l.0.weight_r", "emb_l.1.embs.weight", "emb_l.2.embs.weight", "emb_l.2.proj.weight",
      "emb_l.3.embs.weight", "emb_l.3.proj.weight", "emb_l.4.weight",
    ]);
    expect(params.find((p) => p.name === "emb_l.3.proj.weight")!.place).toEqual({ kind: "proj", logical: 3, offset: 24 });
    expect(params.find((p) => p.name === "emb_l.4.weight")!.place).toEqual({ kind: "table", set: 0, table: 3 });
  });

  it("init ranges as the reference", () => {
    const layout = embeddingLayout({ embeddingDim: 4, tableRows: [9, 400], qr: { operation: "mult", collisions: 16, threshold: 200 }, md: null });
    const sd = initEmbeddingParameters(layout, new Rng(1), { qrInitScale: 1 });
    const inRange = (a: Float32Array, lo: number, hi: number) => a.every((v) => v >= lo && v <= hi);
    expect(inRange(sd["emb_l.0.weight"]!.data, -1 / 3, 1 / 3)).toBe(true);
    expect(inRange(sd["emb_l.1.weight_q"]!.data, 0.05, 1)).toBe(true);
    expect(inRange(sd["emb_l.1.weight_r"]!.data, 0.05, 1)).toBe(true);
    expect(sd["emb_l.1.weight_q"]!.shape).toEqual([25, 4]);
    const md = embeddingLayout({ embeddingDim: 16, tableRows: [9, 400], md: { temperature: 1, roundDims: false, threshold: 0, dims: [16, 2] } });
    const sd2 = initEmbeddingParameters(md, new Rng(2));
    const bound = Math.sqrt(6 / (2 + 16)); // xavier-uniform of a [16, 2] weight
    expect(sd2["emb_l.1.proj.weight"]!.shape).toEqual([16, 2]);
    expect(inRange(sd2["emb_l.1.proj.weight"]!.data, -bound, bound)).toBe(true);
    expect(Math.max(...sd2["emb_l.1.proj.weight"]!.data.map(Math.abs))).toBeGreaterThan(0.8 * bound);
    expect(inRange(sd2["emb_l.1.embs.weight"]!.data, -0.05, 0.05)).toBe(true);
  });

  it("md_solver: power rule, rounding half to even, pow2 rounding", () => {
    expect(mdSolver([5, 7, 13], 1, 4, false)).toEqual([4, 3, 2]);
    expect(mdSolver([1000, 10, 100000], 0.5, 16, false)).toEqual([2, 16, 1]); // 16*sqrt(10/1000) = 1.6
    expect(mdSolver([100, 100, 300], 1, 16, true)).toEqual([16, 16, 4]); // 5.33 -> 5 -> 2^round(2.32) = 4
    expect(mdSolver([8, 20], 1, 5, false)).toEqual([5, 2]); // 2.0
    expect(mdSolver([8, 16], 1, 5, false)).toEqual([5, 2]); // 2.5 rounds to even
  });

  it("rejects impossible configurations", () => {
    expect(() => embeddingLayout({ embeddingDim: 4, tableRows: [7, 3], qr: { operation: "concat", collisions: 2, threshold: 5 } })).toThrow(ConfigError);
    expect(() => embeddingLayout({ embeddingDim: 3, tableRows: [7], qr: { operation: "concat", collisions: 2, threshold: 0 } })).toThrow(/even/);
    expect(() => embeddingLayout({ embeddingDim: 4, tableRows: [7], qr: { operation: "add", collisions: 0, threshold: 0 } })).toThrow(/collisions/);
    expect(() => embeddingLayout({ embeddingDim: 4, tableRows: [7, 9], md: { temperature: 1, roundDims: false, threshold: 0, dims: [4, 5] } })).toThrow(/1\.\.4/);
    expect(() => embeddingLayout({ embeddingDim: 12, tableRows: [7, 9], md: { temperature: 1, roundDims: true, threshold: 0 } })).toThrow(/power-of-two/);
  });

  it("splitBags rejects an index past the logical table even when q would be valid", () => {
    const layout = embeddingLayout({ embeddingDim: 4, tableRows: [7], qr: { operation: "add", collisions: 4, threshold: 0 } });
    const bad = { batchSize: 2, offsets: new Uint32Array([0, 1, 2]), indices: new Uint32Array([3, 7]) };
    expect(() => splitBags(layout, bad)).toThrow(KernelInputError);
    expect(() => splitBags(layout, bad)).toThrow(/index 7 out of range for table 0 \(7 rows\) at sample 1/);
    expect(() => splitBags(layout, { ...bad, offsets: new Uint32Array([0, 2, 1]) })).toThrow(/decrease/);
  });

  it("splitBags carries per-index weights and is fast on a Criteo-sized batch", () => {
    const rows = Array.from({ length: 26 }, (_, t) => 1000 + t * 5000);
    const layout = embeddingLayout({ embeddingDim: 16, tableRows: rows, qr: { operation: "mult", collisions: 64, threshold: 20000 } });
    const B = 2048;
    const L = 20;
    const rng = new Rng(3);
    const offsets = new Uint32Array(26 * B + 1).map((_, i) => i * L);
    const indices = new Uint32Array(26 * B * L).map((_, p) => rng.int(rows[Math.floor(p / (B * L))]!));
    const weights = new Float32Array(indices.length).map((_, p) => p);
    const t0 = performance.now();
    const sets = splitBags(layout, { batchSize: B, offsets, indices, weights });
    const ms = performance.now() - t0;
    expect(sets).toHaveLength(1);
    const set = layout.sets[0]!;
    const j = set.subTables.findIndex((s) => s.logical === 25 && s.part === "r");
    const p = sets[0]!.offsets[j * B + 5]!;
    expect(sets[0]!.indices[p]).toBe(indices[25 * B * L + 5 * L]! % 64);
    expect(sets[0]!.weights![p]).toBe(25 * B * L + 5 * L);
    console.log(`splitBags: ${indices.length} indices, ${set.rows.length} sub-tables in ${ms.toFixed(1)} ms`);
  });
});
