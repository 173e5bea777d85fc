/**
 * The reference's own --save-model file (torch.save of {"state_dict": ...,
 * "iter", "epoch", ..., "opt_state_dict"}; made by tools/make_torch_checkpoint.py
 * with Debian's python3-torch) loads without Python: every tensor equal to
 * PyTorch's, the scalars read, the architecture inferred, and the model
 * predicts what PyTorch predicted. Anything but a state dict is refused.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseCheckpoint } from "../../src/io/checkpoint.ts";
import { decodeSafetensors } from "../../src/io/safetensors.ts";
import { loadTorchSave } from "../../src/io/torch_zip.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { expectAllClose } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";

const DIR = new URL("../fixtures/torch/", import.meta.url).pathname;
const pt = new Uint8Array(readFileSync(DIR + "reference_save_model.pt"));
const expected = decodeSafetensors(new Uint8Array(readFileSync(DIR + "reference_save_model.expected.safetensors")), { copy: true });

describe("PyTorch zip checkpoints (the reference's --save-model)", () => {
  it("reads every state_dict tensor bit for bit, and the reference's scalars", () => {
    const top = loadTorchSave(pt, "reference_save_model.pt") as Map<unknown, unknown>;
    expect([...top.keys()].sort()).toEqual(["epoch", "iter", "nbatches", "nbatches_test", "nepochs", "opt_state_dict", "state_dict", "test_acc", "total_loss", "train_loss"]);
    const meta = expected.metadata!;
    for (const k of ["iter", "epoch", "nepochs", "nbatches", "nbatches_test"]) expect(top.get(k), k).toBe(Number(meta[k]));
    expect(top.get("train_loss")).toBe(Math.fround(Number(meta.train_loss))); // a numpy float32
    expect(top.get("test_acc")).toBe(0.75); // a numpy float64
    const ckpt = parseCheckpoint(pt, "reference_save_model.pt", { loss: "bce" });
    const names = Object.keys(expected.tensors).filter((k) => !k.startsWith("batch/"));
    expect(Object.keys(ckpt.params).sort()).toEqual(names.sort());
    for (const k of names) {
      expect(ckpt.params[k]!.shape, k).toEqual(expected.tensors[k]!.shape);
      expect(Buffer.from(ckpt.params[k]!.data.buffer, ckpt.params[k]!.data.byteOffset, ckpt.params[k]!.data.byteLength).equals(Buffer.from((expected.tensors[k]!.data as Float32Array).buffer)), k).toBe(true);
    }
    expect(ckpt.config).toMatchObject({ embeddingDim: 4, tableRows: [7, 13, 5], bottomMlp: [5, 8, 4], topMlp: [10, 8, 1], interaction: "dot", loss: "bce" });
    expect(ckpt.step).toBe(3); // epoch 0 * nbatches + iter 3
    expect(JSON.parse(ckpt.extra.reference!)).toMatchObject({ iter: 3, nbatches: 10, test_acc: 0.75 });
    // The optimizer state dict (nested dicts of tensors) was read too, by the same unpickler.
    const opt = top.get("opt_state_dict") as Map<string, unknown>;
    expect([...(opt.get("state") as Map<number, unknown>).keys()].length).toBe(names.length);
  });

  it("the loaded model predicts what PyTorch predicted", async () => {
    const ckpt = parseCheckpoint(pt, "reference_save_model.pt", { loss: "bce" });
    const model = new DlrmModel(await testDevice(), ckpt.config, ckpt.params, { inferenceOnly: true });
    const t = expected.tensors;
    const B = Number(expected.metadata!.batchSize);
    const batch = { size: B, numDense: 5, numTables: 3, dense: t["batch/dense"]!.data as Float32Array, offsets: t["batch/offsets"]!.data as Uint32Array, indices: t["batch/indices"]!.data as Uint32Array, labels: t["batch/labels"]!.data as Float32Array };
    expectAllClose(await model.predict(batch), t["batch/prob"]!.data as Float32Array, 2e-6, "prob");
    model.destroy();
  });

  it("refuses what is not a state dict, a damaged archive and the legacy format, by name", () => {
    const bad = pt.slice();
    const i = Buffer.from(bad).indexOf("collections\nOrderedDict");
    bad.set(new TextEncoder().encode("subprocess \nPopen      "), i);
    expect(() => loadTorchSave(bad, "evil.pt")).toThrow(/evil\.pt: the pickle holds an object of class subprocess \.Popen/);
    expect(() => parseCheckpoint(pt.subarray(0, pt.length - 30), "cut.pt")).toThrow(/cut\.pt: not a readable zip archive/);
    const legacy = new Uint8Array([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
    expect(() => parseCheckpoint(legacy, "old.pt")).toThrow(/old\.pt: PyTorch's legacy \(pre-1\.6\) torch\.save format/);
  });

  // tools/export_to_reference.py (run with python3-torch) turned ours.safetensors (+ its .optim sidecar;
  // trained from reference_save_model.pt with adagrad) into exported.pt; PyTorch loaded it into the fixture
  // DLRM with load_state_dict(strict=True) and Adagrad.load_state_dict (see tools/export_to_reference.py).
  // Here: its structure is what the reference's --load-model reads, checked with our own reader.
  it("tools/export_to_reference.py writes every key the reference's --load-model reads, our tensors inside", async () => {
    const { loadCheckpointFile } = await import("../../src/io/checkpoint.ts");
    const ours = await loadCheckpointFile(DIR + "ours.safetensors");
    const top = loadTorchSave(new Uint8Array(readFileSync(DIR + "exported.pt")), "exported.pt") as Map<string, unknown>;
    for (const k of ["state_dict", "iter", "epoch", "nepochs", "nbatches", "nbatches_test", "train_loss", "total_loss", "test_acc", "opt_state_dict"]) expect(top.has(k), k).toBe(true);
    expect(top.get("epoch")! as number * (top.get("nbatches") as number) + (top.get("iter") as number)).toBe(ours.step);
    const sd = top.get("state_dict") as Map<string, { shape: number[]; data: Float32Array }>;
    // DLRM_Net.parameters() order: tables, bottom MLP, top MLP (the optimizer state's indices follow it).
    const order = [...sd.keys()];
    const group = order.map((k) => ["emb_l", "bot_l", "top_l"].indexOf(k.split(".")[0]!));
    expect(group).toEqual([...group].sort());
    expect(order.filter((k) => k.startsWith("bot_l"))).toEqual(["bot_l.0.weight", "bot_l.0.bias", "bot_l.2.weight", "bot_l.2.bias"]);
    expect(order.sort()).toEqual(Object.keys(ours.params).sort());
    for (const [k, t] of sd) expect(Array.from(t.data), k).toEqual(Array.from(ours.params[k]!.data));
    const opt = top.get("opt_state_dict") as Map<string, unknown>;
    const groups = opt.get("param_groups") as Map<string, unknown>[];
    expect(groups.length).toBe(1);
    expect(groups[0]!.get("lr")).toBe(0.05);
    expect((groups[0]!.get("params") as number[]).length).toBe(sd.size);
    const state = opt.get("state") as Map<number, Map<string, { data: Float32Array }>>;
    [...sd.keys()].forEach((name, i) => {
      const acc = ours.optimizer[`optim.${name}.sum`] ?? ours.optimizer[`optim.${name}.0`];
      expect(Array.from(state.get(i)!.get("sum")!.data), name).toEqual(Array.from(acc!.data));
    });
  });
});
