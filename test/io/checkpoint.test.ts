/**
 * Checkpoints: exact round trip, PyTorch interop (reference state_dict
 * names; a plain PyTorch state_dict loads and predicts as PyTorch did), and
 * corrupted or mismatched files refused with the reason, leaving the model
 * untouched.
 */
import { describe, expect, it } from "vitest";
import { applyCheckpoint, checkpointBytes, parseCheckpoint } from "../../src/io/checkpoint.ts";
import { decodeSafetensors, encodeSafetensors } from "../../src/io/safetensors.ts";
import { resolveConfig } from "../../src/model/config.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { initParameters } from "../../src/model/params.ts";
import { expectAllClose, expectBitIdentical } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { loadFixture } from "../model/fixtures.ts";

function stateDictFile(sd: Record<string, { shape: number[]; data: Float32Array }>, metadata?: Record<string, string>): Uint8Array {
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [k, t] of Object.entries(sd)) tensors[k] = { dtype: "F32", shape: t.shape, data: t.data };
  return encodeSafetensors(tensors, metadata);
}

describe("checkpoints", () => {
  const f = loadFixture("dot_itself_bce_adagrad_lrsched");

  it("round trip: same predictions, parameters and optimizer state, bit for bit", async () => {
    const device = await testDevice();
    const a = new DlrmModel(device, f.config, f.stateDict("init"));
    for (const b of f.batches.slice(0, 3)) a.trainStep(b);
    const bytes = await checkpointBytes(a);
    const ckpt = parseCheckpoint(bytes, "memory");
    expect(ckpt.step).toBe(3);
    const b = new DlrmModel(device, ckpt.config, ckpt.params);
    applyCheckpoint(b, ckpt);
    expect(b.step).toBe(3);
    expectBitIdentical(await b.predict(f.batches[5]!), await a.predict(f.batches[5]!), "prediction");
    const [oa, ob] = [await a.optimizerState(), await b.optimizerState()];
    for (const k of Object.keys(oa)) expectBitIdentical(ob[k]!.data, oa[k]!.data, k);
    // Training on continues identically.
    a.trainStep(f.batches[3]!);
    b.trainStep(f.batches[3]!);
    const [sa, sb] = [await a.stateDict(), await b.stateDict()];
    for (const k of Object.keys(sa)) expectBitIdentical(sb[k]!.data, sa[k]!.data, k);
    a.destroy();
    b.destroy();
  });

  it("a saved file holds exactly the state_dict (strict loading), the optimizer state in a hashed sidecar; resume is bit-identical", async () => {
    const { mkdtempSync, readFileSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { loadCheckpointFile, saveCheckpoint } = await import("../../src/io/checkpoint.ts");
    const dir = mkdtempSync(join(tmpdir(), "dlrm-ckpt-"));
    const device = await testDevice();
    const a = new DlrmModel(device, f.config, f.stateDict("init")); // adagrad: optimizer state to keep
    for (const b of f.batches.slice(0, 2)) a.trainStep(b);
    const path = join(dir, "m.safetensors");
    await saveCheckpoint(path, a);
    const main = decodeSafetensors(new Uint8Array(readFileSync(path)));
    // Exactly the keys PyTorch's DLRM state_dict has: strict loading sees nothing else.
    expect(Object.keys(main.tensors).sort()).toEqual(Object.keys(f.stateDict("init")).sort());
    expect(main.metadata!.optimizer_file).toBe("m.optim.safetensors");
    const side = decodeSafetensors(new Uint8Array(readFileSync(join(dir, "m.optim.safetensors"))));
    expect(Object.keys(side.tensors).length).toBeGreaterThan(0);
    expect(Object.keys(side.tensors).every((k) => k.startsWith("optim."))).toBe(true);
    const ckpt = await loadCheckpointFile(path);
    const b = new DlrmModel(device, ckpt.config, ckpt.params);
    applyCheckpoint(b, ckpt);
    a.trainStep(f.batches[2]!);
    b.trainStep(f.batches[2]!);
    const [sa, sb] = [await a.stateDict(), await b.stateDict()];
    for (const k of Object.keys(sa)) expectBitIdentical(sb[k]!.data, sa[k]!.data, k);
    // A sidecar from another save is refused when the optimizer state is needed, with what to do.
    const bytes = readFileSync(join(dir, "m.optim.safetensors"));
    bytes[bytes.length - 1] ^= 1;
    writeFileSync(join(dir, "m.optim.safetensors"), bytes);
    const stale = await loadCheckpointFile(path);
    const c = new DlrmModel(device, stale.config, stale.params);
    expect(() => applyCheckpoint(c, stale)).toThrow(/m\.optim\.safetensors belongs to another save of the model/);
    a.destroy();
    b.destroy();
    c.destroy();
  });

  it("uses the reference's state_dict names, so PyTorch's load_state_dict(strict=True) accepts it", async () => {
    const model = new DlrmModel(await testDevice(), f.config, f.stateDict("init"));
    const { tensors, metadata } = decodeSafetensors(await checkpointBytes(model));
    const params = Object.keys(tensors).filter((k) => !k.startsWith("optim."));
    expect(params.sort()).toEqual(Object.keys(f.stateDict("init")).sort());
    for (const k of params) {
      expect(tensors[k]!.dtype).toBe("F32");
      expect(tensors[k]!.shape).toEqual(f.stateDict("init")[k]!.shape);
    }
    expect(metadata!.format).toBe("webgpu-dlrm/1");
    model.destroy();
  });

  it("a plain PyTorch state_dict loads (architecture inferred) and predicts as PyTorch did", async () => {
    for (const name of ["dot_mse_sgd", "dot_itself_bce_adagrad_lrsched", "cat_wbce_rwsadagrad"]) {
      const fx = loadFixture(name);
      const ckpt = parseCheckpoint(stateDictFile(fx.stateDict("init")), `${name}.safetensors`);
      expect(ckpt.config.tableRows).toEqual(fx.config.tableRows);
      expect(ckpt.config.interaction).toBe(fx.config.interaction);
      expect(ckpt.config.interactionItself).toBe(fx.config.interactionItself);
      const model = new DlrmModel(await testDevice(), ckpt.config, ckpt.params, { inferenceOnly: true });
      const prob = await model.predict(fx.batches[0]!);
      const expected = fx.tensors["out/prob"]!.data as Float32Array;
      // Forward only: a few K-term float32 sums deep (see test/model/pytorch.test.ts).
      expectAllClose(prob, expected, (i) => 64 * 2 ** -24 * (Math.abs(expected[i]!) + 1), `${name} prob`);
      model.destroy();
    }
  });

  it("corrupted or mismatched files fail with the reason and leave the model untouched", async () => {
    const device = await testDevice();
    const model = new DlrmModel(device, f.config, f.stateDict("init"));
    const before = await model.predict(f.batches[0]!);
    const good = await checkpointBytes(model);

    expect(() => parseCheckpoint(good.subarray(0, good.length - 7), "cut.safetensors")).toThrow(/cut\.safetensors: not a readable safetensors checkpoint/);
    expect(() => parseCheckpoint(new Uint8Array([1, 2, 3]), "tiny.safetensors")).toThrow(/tiny\.safetensors/);

    // Another architecture: refused by name.
    const other = resolveConfig({ ...f.config, tableRows: [7, 13, 6] });
    const otherModel = new DlrmModel(device, other, initParameters(other));
    const otherCkpt = parseCheckpoint(await checkpointBytes(otherModel), "other.safetensors");
    expect(() => applyCheckpoint(model, otherCkpt)).toThrow(/architecture .* does not match/);

    // A tensor of the wrong shape, discovered after other tensors were fine: nothing is written.
    const sd = f.stateDict("step10");
    sd["top_l.2.weight"] = { shape: [1, 7], data: new Float32Array(7) };
    const bad = parseCheckpoint(stateDictFile(sd, { format: "webgpu-dlrm/1", config: JSON.stringify(f.config), step: "10" }), "bad.safetensors");
    expect(() => applyCheckpoint(model, bad)).toThrow(/'top_l\.2\.weight' has shape \[1,7\], the model needs \[1,8\]/);

    // A missing tensor.
    const sd2 = f.stateDict("step10");
    delete sd2["emb_l.1.weight"];
    const missing = parseCheckpoint(stateDictFile(sd2, { format: "webgpu-dlrm/1", config: JSON.stringify(f.config), step: "10" }), "missing.safetensors");
    expect(() => applyCheckpoint(model, missing)).toThrow(/missing tensor 'emb_l\.1\.weight'/);

    expectBitIdentical(await model.predict(f.batches[0]!), before, "prediction after refused loads");
    expect(model.step).toBe(0);
    model.destroy();
    otherModel.destroy();
  });
});
