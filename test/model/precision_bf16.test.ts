/**
 * bf16 embedding tables in the model (DlrmModel option embeddingPrecision "bf16",
 * src/model/precision.ts): initial values rounded once; predictions bit-identical to an f32
 * model holding the same (bf16) values (f32 sums in the same order); checkpoints hold f32 values
 * that an f32 model and the reference read unchanged; f32 checkpoint -> bf16 run -> f32 run
 * keeps every value a bf16 run can hold (the rest rounded once, nothing else lost); a resumed
 * bf16 run continues bit for bit (stochastic rounding seeded per step); bad options are refused.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { applyCheckpoint, checkpointBytes, loadCheckpointInto, parseCheckpoint, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { decodeSafetensors } from "../../src/io/safetensors.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import type { StateDict } from "../../src/model/params.ts";
import { roundBf16Ref } from "../../src/kernels/reference/bf16.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { loadFixture } from "./fixtures.ts";
import { readFileSync } from "node:fs";

/** Embedding tables (the MD projections are dense f32 parameters). */
const isTable = (name: string) => name.startsWith("emb_l.") && !name.includes(".proj.");

function expectRounded(sd: StateDict, from: StateDict, what: string): void {
  for (const [k, t] of Object.entries(from)) {
    const want = isTable(k) ? t.data.map((v) => roundBf16Ref(v, "nearest")) : t.data;
    expectBitIdentical(sd[k]!.data, want, `${what}: ${k}`);
  }
}

describe("bf16 embedding tables in the model", () => {
  for (const name of ["dot_itself_bce_adagrad_lrsched", "qr_mult_dot_bce_sgd_clamp", "md_dot_bce_rwsadagrad"]) {
    it(`${name}: rounded once on load; predictions bit-identical to f32 tables holding the same values; checkpoint round trip`, async () => {
      const f = loadFixture(name);
      const device = await testDevice();
      const init = f.stateDict("init");
      const a = new DlrmModel(device, f.config, init, { embeddingPrecision: "bf16" });
      expectRounded(await a.stateDict(), init, "loaded");
      const same = new DlrmModel(device, f.config, await a.stateDict());
      expectBitIdentical(await a.predict(f.batches[0]!), await same.predict(f.batches[0]!), "prediction");
      same.destroy();
      // Train (the update runs on the bf16 tables), then checkpoint: f32 tensors only.
      for (const b of f.batches.slice(0, 3)) a.trainStep(b);
      const sa = await a.stateDict();
      for (const [k, t] of Object.entries(sa)) if (isTable(k)) expect(t.data.every((v) => roundBf16Ref(v, "nearest") === v), `${k} holds bf16 values`).toBe(true);
      const bytes = await checkpointBytes(a);
      for (const t of Object.values(decodeSafetensors(bytes).tensors)) expect(t.dtype).toBe("F32");
      const ckpt = parseCheckpoint(bytes, "memory");
      // An f32 run reads the bf16 run's values exactly (bf16 widens to f32 exactly).
      const f32run = new DlrmModel(device, ckpt.config, ckpt.params);
      applyCheckpoint(f32run, ckpt);
      const sf = await f32run.stateDict();
      for (const k of Object.keys(sa)) expectBitIdentical(sf[k]!.data, sa[k]!.data, `f32 run: ${k}`);
      // ... and back into a bf16 run: nothing changes (already bf16); resumed training continues bit for bit.
      const b = new DlrmModel(device, ckpt.config, sf, { embeddingPrecision: "bf16" });
      applyCheckpoint(b, ckpt);
      expect(b.step).toBe(a.step);
      a.trainStep(f.batches[3]!);
      b.trainStep(f.batches[3]!);
      const [sa2, sb2] = [await a.stateDict(), await b.stateDict()];
      for (const k of Object.keys(sa2)) expectBitIdentical(sb2[k]!.data, sa2[k]!.data, `resumed: ${k}`);
      const [oa, ob] = [await a.optimizerState(), await b.optimizerState()];
      for (const k of Object.keys(oa)) expectBitIdentical(ob[k]!.data, oa[k]!.data, `optimizer: ${k}`);
      for (const m of [a, b, f32run]) m.destroy();
    });
  }

  it("an f32 checkpoint file streams into a bf16 run (rounded once) and a bf16 run's file into an f32 run (exact)", async () => {
    const f = loadFixture("dot_itself_bce_adagrad_lrsched");
    const device = await testDevice();
    const dir = mkdtempSync(join(tmpdir(), "dlrm-bf16-"));
    const src = new DlrmModel(device, f.config, f.stateDict("init"));
    for (const b of f.batches.slice(0, 2)) src.trainStep(b);
    const p32 = join(dir, "f32.safetensors");
    await saveCheckpoint(p32, src);
    const want = await src.stateDict();
    const b16 = new DlrmModel(device, f.config, f.stateDict("init"), { embeddingPrecision: "bf16" });
    await loadCheckpointInto(p32, b16);
    expect(b16.step).toBe(2);
    expectRounded(await b16.stateDict(), want, "f32 file -> bf16 run");
    // The optimizer state stays f32: loaded exactly.
    const [os, ob] = [await src.optimizerState(), await b16.optimizerState()];
    for (const k of Object.keys(os)) expectBitIdentical(ob[k]!.data, os[k]!.data, `optimizer ${k}`);
    b16.trainStep(f.batches[2]!);
    const p16 = join(dir, "bf16.safetensors");
    await saveCheckpoint(p16, b16);
    const file = decodeSafetensors(new Uint8Array(readFileSync(p16)));
    for (const t of Object.values(file.tensors)) expect(t.dtype).toBe("F32");
    const back = new DlrmModel(device, f.config, f.stateDict("init"));
    await loadCheckpointInto(p16, back);
    const [s16, sback] = [await b16.stateDict(), await back.stateDict()];
    for (const k of Object.keys(s16)) expectBitIdentical(sback[k]!.data, s16[k]!.data, `bf16 file -> f32 run: ${k}`);
    for (const m of [src, b16, back]) m.destroy();
  });

  it("refuses unknown precision and rounding names, naming the flag", async () => {
    const f = loadFixture("dot_mse_sgd");
    const device = await testDevice();
    expect(() => new DlrmModel(device, f.config, f.stateDict("init"), { embeddingPrecision: "fp16" as never })).toThrow(/embedding precision must be fp32 or bf16.*--embedding-precision/);
    expect(() => new DlrmModel(device, f.config, f.stateDict("init"), { embeddingPrecision: "bf16", bf16Rounding: "up" as never })).toThrow(/--bf16-rounding/);
  });
});
