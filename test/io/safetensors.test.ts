import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { DlrmError } from "../../src/gpu/errors.ts";
import { readFileBytes, writeFileAtomic } from "../../src/io/atomic_write.ts";
import { CheckpointError, SafetensorsError, type SafetensorsProblem } from "../../src/io/errors.ts";
import {
  type DecodedSafetensors,
  decodeSafetensors,
  dtypeSize,
  encodeSafetensors,
  expectTensor,
  type SafetensorsDtype,
  type TensorToWrite,
} from "../../src/io/safetensors.ts";
import { Rng } from "../helpers/random.ts";

const FIXTURES = fileURLToPath(new URL("../fixtures/dlrm/", import.meta.url));
const CASES = [
  "dot_mse_sgd",
  "dot_itself_bce_adagrad_lrsched",
  "cat_wbce_rwsadagrad",
  "qr_mult_dot_bce_sgd_clamp",
  "qr_concat_dot_mse_adagrad",
  "qr_add_cat_bce_rwsadagrad",
  "md_dot_bce_rwsadagrad",
  "md_cat_mse_sgd",
];

/** Random bytes of the right length for a dtype (raw bits; any pattern is a valid element). */
function randomTensor(rng: Rng, dtype: SafetensorsDtype, shape: number[]): TensorToWrite {
  const n = shape.reduce((a, b) => a * b, 1);
  const bytes = new Uint8Array(n * dtypeSize(dtype));
  for (let i = 0; i < bytes.length; i++) bytes[i] = rng.nextU32() & 0xff;
  return { dtype, shape, data: bytes };
}

/** A file assembled by hand: header object (serialised as is, no padding unless asked) + data bytes. */
function rawFile(header: unknown, data: Uint8Array, headerLength?: bigint, padTo8 = false): Uint8Array {
  let text = JSON.stringify(header);
  if (padTo8) text += " ".repeat((8 - (text.length % 8)) % 8);
  const json = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

function expectProblem(f: () => unknown, problem: SafetensorsProblem, message: RegExp): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err, `expected a SafetensorsError (${problem})`).toBeInstanceOf(SafetensorsError);
  expect(err).toBeInstanceOf(DlrmError);
  expect((err as SafetensorsError).problem).toBe(problem);
  expect((err as Error).message).toMatch(message);
}

function bytesOf(v: ArrayBufferView): Uint8Array {
  return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

describe("safetensors encode/decode", () => {
  const ALL: SafetensorsDtype[] = ["F64", "F32", "F16", "BF16", "I64", "U64", "I32", "U32", "I16", "U16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"];

  it("round-trips every dtype, scalar and empty shapes, and metadata", () => {
    const rng = new Rng(7);
    const tensors: Record<string, TensorToWrite> = {};
    // Odd sizes first in insertion order, so the writer must reorder to keep alignment.
    for (const dt of [...ALL].reverse()) {
      tensors[`t.${dt}.odd`] = randomTensor(rng, dt, [3]);
      tensors[`t.${dt}.2d`] = randomTensor(rng, dt, [2, 5]);
      tensors[`t.${dt}.scalar`] = randomTensor(rng, dt, []);
      tensors[`t.${dt}.empty`] = randomTensor(rng, dt, [0, 4]);
    }
    const meta = { config: JSON.stringify({ a: [1, 2], b: "ü" }), step: "12" };
    const file = encodeSafetensors(tensors, meta);
    const headerLen = Number(new DataView(file.buffer).getBigUint64(0, true));
    expect(headerLen % 8, "header padded to 8").toBe(0);
    const back = decodeSafetensors(file);
    expect(back.metadata).toEqual(meta);
    expect(Object.keys(back.tensors).sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const d = back.tensors[name]!;
      expect(d.dtype, name).toBe(t.dtype);
      expect(d.shape, name).toEqual(t.shape);
      expect(d.data.constructor.name, name).toBe(
        { F64: "Float64Array", F32: "Float32Array", I64: "BigInt64Array", U64: "BigUint64Array", I32: "Int32Array", U32: "Uint32Array", I16: "Int16Array", I8: "Int8Array" }[
          d.dtype as string
        ] ?? (dtypeSize(d.dtype) === 2 ? "Uint16Array" : "Uint8Array"),
      );
      expect(d.data.byteOffset % dtypeSize(d.dtype), `${name} aligned view`).toBe(0);
      expect(d.data.buffer, `${name} is a view of the input`).toBe(file.buffer);
      expect(bytesOf(d.data), name).toEqual(bytesOf(t.data));
    }
  });

  it("keeps typed values (F32, I64, U32) and omits __metadata__ when none is given", () => {
    const f32 = new Float32Array([1.5, -0, NaN, Infinity, 3.4028234663852886e38, 1e-45]);
    const i64 = new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 0n]);
    const u32 = new Uint32Array([0, 1, 0xffffffff]);
    const file = encodeSafetensors({ f: { dtype: "F32", shape: [2, 3], data: f32 }, i: { dtype: "I64", shape: [3], data: i64 }, u: { dtype: "U32", shape: [3], data: u32 } });
    expect(new TextDecoder().decode(file.subarray(8, 40))).not.toContain("__metadata__");
    const back = decodeSafetensors(file);
    expect(back.metadata).toEqual({});
    expect(Array.from(expectTensor(back, "f", "F32", [2, 3]).data)).toEqual(Array.from(f32));
    expect(Object.is(expectTensor(back, "f", "F32").data[1], -0)).toBe(true);
    expect(Array.from(expectTensor(back, "i", "I64").data)).toEqual(Array.from(i64));
    expect(Array.from(expectTensor(back, "u", "U32").data)).toEqual([0, 1, 0xffffffff]);
    expect(() => expectTensor(back, "u", "I32")).toThrow(/'u' is U32, expected I32/);
    expect(() => expectTensor(back, "f", "F32", [3, 2])).toThrow(/shape \[2, 3\], expected \[3, 2\]/);
    expect(() => expectTensor(back, "nope", "F32")).toThrow(/no tensor 'nope'/);
  });

  it("encodes from a view with a byte offset (subarray of a larger buffer)", () => {
    const big = new Float32Array([9, 1, 2, 3, 9]);
    const back = decodeSafetensors(encodeSafetensors({ x: { dtype: "F32", shape: [3], data: big.subarray(1, 4) } }));
    expect(Array.from(expectTensor(back, "x", "F32").data)).toEqual([1, 2, 3]);
  });

  it("copies tensors whose offsets are unaligned, and on request", () => {
    // An unpadded 3-byte U8 tensor before an F32 one and an odd header length: nothing is aligned.
    const f = new Float32Array([1.25, -2.5, 1e-3]);
    const f64 = new Float64Array([Math.PI]);
    const data = new Uint8Array(3 + 12 + 8);
    data.set([7, 8, 9], 0);
    data.set(bytesOf(f), 3);
    data.set(bytesOf(f64), 15);
    const header = {
      b: { dtype: "U8", shape: [3], data_offsets: [0, 3] },
      f: { dtype: "F32", shape: [3], data_offsets: [3, 15] },
      d: { dtype: "F64", shape: [1], data_offsets: [15, 23] },
    };
    // Header padded to 8: the F32 data starts at 3 mod 4, the F64 data at 7 mod 8.
    const file = rawFile(header, data, undefined, true);
    const back = decodeSafetensors(file);
    expect(expectTensor(back, "f", "F32").data.buffer, "unaligned F32 is a copy").not.toBe(file.buffer);
    expect(expectTensor(back, "b", "U8").data.buffer, "U8 is always a view").toBe(file.buffer);
    expect(Array.from(expectTensor(back, "f", "F32").data)).toEqual(Array.from(f));
    expect(expectTensor(back, "d", "F64").data[0]).toBe(Math.PI);
    expect(Array.from(expectTensor(back, "b", "U8").data)).toEqual([7, 8, 9]);
    // A file that starts at an odd byteOffset of a larger buffer.
    const shifted = new Uint8Array(file.length + 1);
    shifted.set(file, 1);
    expect(Array.from(expectTensor(decodeSafetensors(shifted.subarray(1)), "f", "F32").data)).toEqual(Array.from(f));
    // copy: true never aliases the input.
    const aligned = encodeSafetensors({ f: { dtype: "F32", shape: [3], data: f } });
    const copied = expectTensor(decodeSafetensors(aligned, { copy: true }), "f", "F32").data;
    expect(copied.buffer).not.toBe(aligned.buffer);
    expect(Array.from(copied)).toEqual(Array.from(f));
  });
});

describe("safetensors rejects malformed files", () => {
  const good = encodeSafetensors(
    { a: { dtype: "F32", shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }, b: { dtype: "I32", shape: [3], data: new Int32Array([5, 6, 7]) } },
    { k: "v" },
  );
  const data28 = new Uint8Array(28);

  it("truncated files", () => {
    expectProblem(() => decodeSafetensors(good.subarray(0, 5)), "too-short", /5 bytes.*8-byte header length/);
    expectProblem(() => decodeSafetensors(good.subarray(0, 20)), "header-length", /runs past the end of the 20-byte file/);
    expectProblem(() => decodeSafetensors(good.subarray(0, good.length - 1)), "out-of-bounds", /tensor 'b' ends at data byte 28 but the data section has only 27 bytes \(truncated/);
  });

  it("bad header lengths and headers", () => {
    const huge = good.slice();
    new DataView(huge.buffer).setBigUint64(0, 2n ** 40n, true);
    expectProblem(() => decodeSafetensors(huge), "header-length", /exceeds the 100000000-byte limit/);
    const short = good.slice();
    new DataView(short.buffer).setBigUint64(0, 10n, true); // cuts the JSON
    expectProblem(() => decodeSafetensors(short), "header-json", /not valid JSON/);
    const bad = rawFile({}, new Uint8Array(0));
    bad.set([0xff, 0xfe], 8);
    expectProblem(() => decodeSafetensors(bad), "header-json", /not valid UTF-8/);
    expectProblem(() => decodeSafetensors(rawFile([1, 2], new Uint8Array(0))), "header-json", /JSON object/);
    expectProblem(() => decodeSafetensors(rawFile({ __metadata__: { n: 3 } }, new Uint8Array(0))), "metadata", /metadata 'n' must be a string/);
  });

  it("bad entries: dtype, shape, offsets", () => {
    expectProblem(() => decodeSafetensors(rawFile({ a: { dtype: "F31", shape: [1], data_offsets: [0, 4] } }, new Uint8Array(4))), "dtype", /tensor 'a': unknown dtype "F31"/);
    expectProblem(() => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4))), "entry", /not a non-negative integer/);
    expectProblem(() => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [1], data_offsets: [4, 0] } }, new Uint8Array(4))), "entry", /data_offsets must be \[begin, end\]/);
    expectProblem(() => decodeSafetensors(rawFile({ a: { dtype: "F32", shape: [1] } }, new Uint8Array(4))), "entry", /data_offsets/);
  });

  it("shape/size mismatch", () => {
    const h = { a: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] }, b: { dtype: "I32", shape: [3], data_offsets: [16, 28] } };
    expectProblem(() => decodeSafetensors(rawFile(h, data28)), "size-mismatch", /tensor 'a': shape \[2, 3\] F32 needs 24 bytes but data_offsets \[0, 16\] span 16/);
  });

  it("overlapping offsets, holes and trailing bytes", () => {
    const overlap = { a: { dtype: "F32", shape: [4], data_offsets: [0, 16] }, b: { dtype: "I32", shape: [3], data_offsets: [12, 24] } };
    expectProblem(() => decodeSafetensors(rawFile(overlap, new Uint8Array(24))), "overlap", /tensors 'a' \[0, 16\) and 'b' \[12, 24\) overlap/);
    const same = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "U8", shape: [8], data_offsets: [0, 8] } };
    expectProblem(() => decodeSafetensors(rawFile(same, new Uint8Array(8))), "overlap", /overlap/);
    const hole = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, b: { dtype: "I32", shape: [3], data_offsets: [16, 28] } };
    expectProblem(() => decodeSafetensors(rawFile(hole, data28)), "hole", /data bytes \[8, 16\) before tensor 'b' belong to no tensor/);
    const late = { a: { dtype: "F32", shape: [2], data_offsets: [4, 12] } };
    expectProblem(() => decodeSafetensors(rawFile(late, new Uint8Array(12))), "hole", /\[0, 4\)/);
    const trailing = { a: { dtype: "F32", shape: [2], data_offsets: [0, 8] } };
    expectProblem(() => decodeSafetensors(rawFile(trailing, new Uint8Array(11))), "trailing", /3 bytes after the last tensor/);
  });

  it("the writer rejects what it cannot write", () => {
    expectProblem(() => encodeSafetensors({ a: { dtype: "F32", shape: [3], data: new Float32Array(4) } }), "encode", /tensor 'a': shape \[3\] F32 needs 12 bytes, data has 16/);
    expectProblem(() => encodeSafetensors({ __metadata__: { dtype: "U8", shape: [0], data: new Uint8Array(0) } }), "encode", /reserved/);
    expectProblem(() => encodeSafetensors({ a: { dtype: "X" as SafetensorsDtype, shape: [0], data: new Uint8Array(0) } }), "encode", /unknown dtype 'X'/);
    expectProblem(() => encodeSafetensors({}, { n: 1 as unknown as string }), "encode", /metadata 'n' must be a string/);
    expect(decodeSafetensors(encodeSafetensors({})).tensors).toEqual({});
  });
});

// ---------------------------------------------------------------------------
// Fixtures written by tools/make_fixtures.py (PyTorch), checked against an
// independent float64 forward pass that follows docs/fixtures.md.
// ---------------------------------------------------------------------------

interface FixtureConfig {
  name: string;
  embeddingDim: number;
  tableRows: number[];
  bottomMlp: number[];
  topMlp: number[];
  interaction: "dot" | "cat";
  interactionItself: boolean;
  loss: "mse" | "bce" | "wbce";
  lossWeights: [number, number] | null;
  lossThreshold: number;
  optimizer: "sgd" | "adagrad" | "rwsadagrad";
  learningRate: number;
  qr: { operation: "concat" | "add" | "mult"; collisions: number; threshold: number } | null;
  md: { dims: number[]; threshold: number } | null;
  batchSize: number;
  numBatches: number;
  emb: { kind: "plain" | "qr" | "md"; params: Record<string, number[]> }[];
}

function f32(file: DecodedSafetensors, name: string): Float32Array {
  return expectTensor(file, name, "F32").data;
}

function linear(file: DecodedSafetensors, prefix: string, x: number[]): number[] {
  const w = expectTensor(file, `${prefix}.weight`, "F32");
  const b = f32(file, `${prefix}.bias`);
  const [out, inp] = w.shape as [number, number];
  expect(inp).toBe(x.length);
  const y: number[] = [];
  for (let o = 0; o < out; o++) {
    let s = b[o]!;
    for (let i = 0; i < inp; i++) s += w.data[o * inp + i]! * x[i]!;
    y.push(s);
  }
  return y;
}

/** Pooled embedding of bag `bag` for table t, from the parameters under `pre` ("init/"). */
function pooled(file: DecodedSafetensors, cfg: FixtureConfig, pre: string, t: number, bag: Uint32Array): number[] {
  const sumRows = (name: string, rowOf: (i: number) => number) => {
    const w = expectTensor(file, pre + name, "F32");
    const dim = w.shape[1]!;
    const s = new Array<number>(dim).fill(0);
    for (const i of bag) {
      const r = rowOf(i);
      expect(r).toBeLessThan(w.shape[0]!);
      for (let j = 0; j < dim; j++) s[j]! += w.data[r * dim + j]!;
    }
    return s;
  };
  const kind = cfg.emb[t]!.kind;
  if (kind === "plain") return sumRows(`emb_l.${t}.weight`, (i) => i);
  if (kind === "qr") {
    const c = cfg.qr!.collisions;
    const q = sumRows(`emb_l.${t}.weight_q`, (i) => Math.floor(i / c));
    const r = sumRows(`emb_l.${t}.weight_r`, (i) => i % c);
    if (cfg.qr!.operation === "concat") return [...q, ...r];
    return q.map((v, j) => (cfg.qr!.operation === "add" ? v + r[j]! : v * r[j]!));
  }
  const s = sumRows(`emb_l.${t}.embs.weight`, (i) => i);
  const proj = file.tensors[`${pre}emb_l.${t}.proj.weight`];
  if (!proj) return s;
  const p = expectTensor(file, `${pre}emb_l.${t}.proj.weight`, "F32");
  const [out, inp] = p.shape as [number, number];
  return Array.from({ length: out }, (_, o) => s.reduce((acc, v, j) => acc + p.data[o * inp + j]! * v, 0));
}

describe("PyTorch fixtures (test/fixtures/dlrm)", () => {
  for (const name of CASES) {
    it(`${name}: layout, batches and an independent float64 forward/loss`, async () => {
      const file = decodeSafetensors(await readFileBytes(join(FIXTURES, `${name}.safetensors`)));
      expect(file.metadata.format).toBe("webgpu-dlrm-fixture-v1");
      const cfg = JSON.parse(file.metadata.config!) as FixtureConfig;
      expect(cfg.name).toBe(name);
      const B = cfg.batchSize;
      const T = cfg.tableRows.length;
      const d = cfg.embeddingDim;

      // Every parameter has init/grad/step1/step10 tensors of the same shape; names as the reference's.
      const params = Object.keys(file.tensors).filter((k) => k.startsWith("init/")).map((k) => k.slice(5));
      const embNames = cfg.emb.flatMap((e) => Object.keys(e.params));
      const mlpNames = [...cfg.bottomMlp.slice(1).flatMap((_, k) => [`bot_l.${2 * k}.weight`, `bot_l.${2 * k}.bias`]), ...cfg.topMlp.slice(1).flatMap((_, k) => [`top_l.${2 * k}.weight`, `top_l.${2 * k}.bias`])];
      expect(params.sort()).toEqual([...embNames, ...mlpNames].sort());
      for (const p of params) {
        const shape = file.tensors[`init/${p}`]!.shape;
        for (const pre of ["grad/", "step1/", "step10/"]) expectTensor(file, pre + p, "F32", shape);
      }
      for (const e of cfg.emb) for (const [p, shape] of Object.entries(e.params)) expectTensor(file, `init/${p}`, "F32", shape);

      // Batches: dense [B, numDense], offsets U32 [T*B+1] CSR, table-local indices in range.
      for (let k = 0; k < cfg.numBatches; k++) {
        expectTensor(file, `batch${k}/dense`, "F32", [B, cfg.bottomMlp[0]!]);
        expectTensor(file, `batch${k}/labels`, "F32", [B]);
        const off = expectTensor(file, `batch${k}/offsets`, "U32", [T * B + 1]).data;
        const ind = expectTensor(file, `batch${k}/indices`, "U32").data;
        expect(off[0]).toBe(0);
        expect(off[T * B]).toBe(ind.length);
        for (let i = 0; i < T * B; i++) {
          expect(off[i + 1]!).toBeGreaterThanOrEqual(off[i]!);
          for (let j = off[i]!; j < off[i + 1]!; j++) expect(ind[j]!).toBeLessThan(cfg.tableRows[Math.floor(i / B)]!);
        }
      }

      // Independent forward on batch 0 from init/.
      const dense = f32(file, "batch0/dense");
      const off = expectTensor(file, "batch0/offsets", "U32").data;
      const ind = expectTensor(file, "batch0/indices", "U32").data;
      const labels = f32(file, "batch0/labels");
      const probs: number[] = [];
      let emptyBags = 0;
      for (let b = 0; b < B; b++) {
        let x = Array.from(dense.subarray(b * cfg.bottomMlp[0]!, (b + 1) * cfg.bottomMlp[0]!));
        for (let k = 0; k < cfg.bottomMlp.length - 1; k++) x = linear(file, `init/bot_l.${2 * k}`, x).map((v) => Math.max(v, 0));
        const feats = [x];
        for (let t = 0; t < T; t++) {
          const bag = ind.subarray(off[t * B + b]!, off[t * B + b + 1]!);
          if (bag.length === 0) emptyBags++;
          feats.push(pooled(file, cfg, "init/", t, bag));
        }
        expect(feats.every((f) => f.length === d)).toBe(true);
        let z: number[];
        if (cfg.interaction === "dot") {
          z = [...x];
          for (let i = 0; i <= T; i++) {
            for (let j = 0; j < i + (cfg.interactionItself ? 1 : 0); j++) z.push(feats[i]!.reduce((s, v, c) => s + v * feats[j]![c]!, 0));
          }
        } else z = feats.flat();
        expect(z.length).toBe(cfg.topMlp[0]);
        const zGot = f32(file, "act/z").subarray(b * z.length, (b + 1) * z.length);
        z.forEach((v, i) => expect(Math.abs(zGot[i]! - v), `z[${b}][${i}]`).toBeLessThan(1e-5 * (1 + Math.abs(v))));
        let h = z;
        const L = cfg.topMlp.length - 1;
        for (let k = 0; k < L; k++) h = linear(file, `init/top_l.${2 * k}`, h).map((v) => (k === L - 1 ? 1 / (1 + Math.exp(-v)) : Math.max(v, 0)));
        let p = h[0]!;
        const thr = cfg.lossThreshold;
        if (thr > 0 && thr < 1) p = Math.min(Math.max(p, thr), 1 - thr);
        probs.push(p);
      }
      expect(emptyBags, "batch 0 has empty bags").toBeGreaterThan(0);
      const probGot = f32(file, "out/prob");
      probs.forEach((p, b) => expect(Math.abs(probGot[b]! - p), `prob[${b}]`).toBeLessThan(1e-6));

      let loss = 0;
      for (let b = 0; b < B; b++) {
        const p = probs[b]!;
        const y = labels[b]!;
        const bce = -(y * Math.max(Math.log(p), -100) + (1 - y) * Math.max(Math.log(1 - p), -100));
        loss += cfg.loss === "mse" ? (p - y) ** 2 : cfg.loss === "bce" ? bce : cfg.lossWeights![y]! * bce;
      }
      loss /= B;
      expect(Math.abs(f32(file, "out/loss")[0]! - loss)).toBeLessThan(1e-5 * (1 + loss));
      expect(f32(file, "losses")[0]).toBe(f32(file, "out/loss")[0]);
      expectTensor(file, "losses", "F32", [cfg.numBatches]);
      expectTensor(file, "lrs", "F32", [cfg.numBatches]);

      // SGD: step1 = init - lr * grad, element by element (embedding gradients are dense, zero rows included).
      // PyTorch adds an uncoalesced sparse gradient one occurrence at a time (one rounding each, up to
      // 4 duplicates per bag here), hence a few ulps.
      if (cfg.optimizer === "sgd") {
        const lr = f32(file, "lrs")[0]!;
        for (const p of params) {
          const w0 = f32(file, `init/${p}`);
          const g = f32(file, `grad/${p}`);
          const w1 = f32(file, `step1/${p}`);
          for (let i = 0; i < w0.length; i++) expect(Math.abs(w1[i]! - (w0[i]! - lr * g[i]!)), `${p}[${i}]`).toBeLessThanOrEqual(2 ** -21 * (Math.abs(w0[i]!) + Math.abs(lr * g[i]!)) + 1e-30);
        }
      }
    });
  }
});

describe("atomic file writes", () => {
  let dir: string | undefined;
  const tmp = async () => (dir ??= await mkdtemp(join(tmpdir(), "dlrm-io-")));
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("writes, overwrites and reads back, leaving no temporary file", async () => {
    const d = await tmp();
    const path = join(d, "ckpt.safetensors");
    const a = encodeSafetensors({ w: { dtype: "F32", shape: [2], data: new Float32Array([1, 2]) } }, { step: "1" });
    await writeFileAtomic(path, a);
    expect(await readFileBytes(path)).toEqual(a);
    const b = encodeSafetensors({ w: { dtype: "F32", shape: [3], data: new Float32Array([3, 4, 5]) } }, { step: "2" });
    await writeFileAtomic(path, b);
    const back = await readFileBytes(path);
    expect(back).toEqual(b);
    expect(Array.from(expectTensor(decodeSafetensors(back), "w", "F32").data)).toEqual([3, 4, 5]);
    expect(await readdir(d)).toEqual(["ckpt.safetensors"]);
  });

  it("fails with a CheckpointError naming the path, and cleans up", async () => {
    const d = await tmp();
    const missing = join(d, "no-such-dir", "x.safetensors");
    await expect(writeFileAtomic(missing, new Uint8Array(4))).rejects.toThrow(CheckpointError);
    await expect(writeFileAtomic(missing, new Uint8Array(4))).rejects.toThrow(/cannot write .*no-such-dir/);
    await expect(readFileBytes(join(d, "absent"))).rejects.toThrow(/cannot read .*absent/);
    expect((await readdir(d)).filter((f) => f.includes(".tmp-"))).toEqual([]);
  });
});
