/**
 * Streamed checkpoints (src/io/checkpoint_stream.ts): saveCheckpoint reads the
 * model in pieces of at most chunkBytes and writes them straight to the file;
 * loadCheckpointInto reads the file in pieces and writes them where they live.
 *  - the files are byte-identical to the previous in-memory writer's
 *    (checkpointBytes, split into the main file and the optimizer sidecar) for
 *    any piece size: pieces that split a tensor, tensors larger than a piece,
 *    tables spread over several GPU buffers, QR and MD layouts;
 *  - no read or write of the model exceeds a piece (bounded host memory);
 *  - a load round trip is bit-exact and training continues identically;
 *  - NaN/Inf is never written (the old files stay as they were, no temporary
 *    file left) and never loaded; a bad file leaves the model untouched.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type CheckpointModel, checkpointBytes, loadCheckpointInto, OPTIMIZER_FORMAT, optimizerSidecar, saveCheckpoint } from "../../src/io/checkpoint.ts";
import { NonFiniteTensorError } from "../../src/io/errors.ts";
import { decodeSafetensors, encodeSafetensors } from "../../src/io/safetensors.ts";
import { DlrmModel } from "../../src/model/dlrm.ts";
import { initParameters, rowSize, type TensorRows } from "../../src/model/params.ts";
import { expectBitIdentical } from "../helpers/assert.ts";
import { testDevice } from "../helpers/gpu.ts";
import { loadFixture } from "../model/fixtures.ts";

const dir = mkdtempSync(join(tmpdir(), "dlrm-stream-"));

/** The writer this module replaced, verbatim in effect: the whole checkpoint in memory, then split into the main file and the sidecar. */
async function previousWriter(model: CheckpointModel, extra: Record<string, string>, path: string): Promise<{ main: Uint8Array; side?: Uint8Array }> {
  const all = decodeSafetensors(await checkpointBytes(model, extra), { copy: true });
  const params: Parameters<typeof encodeSafetensors>[0] = {};
  const optim: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [name, t] of Object.entries(all.tensors)) (name.startsWith("optim.") ? optim : params)[name] = t;
  const meta = { ...all.metadata };
  let side: Uint8Array | undefined;
  if (Object.keys(optim).length) {
    const s = optimizerSidecar(path);
    side = encodeSafetensors(optim, { format: OPTIMIZER_FORMAT, step: String(model.step), optimizer: model.config.optimizer });
    meta.optimizer_file = s.slice(s.lastIndexOf("/") + 1);
    const h = new Uint8Array(await crypto.subtle.digest("SHA-256", side as Uint8Array<ArrayBuffer>));
    meta.optimizer_sha256 = Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
  }
  return { main: encodeSafetensors(params, meta), side };
}

/** `model` seen through a spy that records the largest piece read from or written to it, in bytes. */
function spied(model: DlrmModel): { m: CheckpointModel; largest: () => number } {
  let largest = 0;
  const m = Object.create(model) as DlrmModel;
  m.checkpointTensors = () =>
    model.checkpointTensors().map(
      (t): TensorRows => ({
        name: t.name,
        shape: t.shape,
        read: async (start, count) => {
          largest = Math.max(largest, count * rowSize(t.shape) * 4);
          return t.read(start, count);
        },
        write: (start, data) => {
          largest = Math.max(largest, data.byteLength);
          t.write(start, data);
        },
        flush: () => t.flush(),
      }),
    );
  return { m, largest: () => largest };
}

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.from(a).equals(Buffer.from(b));

describe("streamed checkpoints", () => {
  it("are byte-identical to the previous in-memory writer for any piece size; no piece larger than asked", async () => {
    const device = await testDevice();
    for (const name of ["dot_itself_bce_adagrad_lrsched", "qr_concat_dot_mse_adagrad", "md_dot_bce_rwsadagrad", "dot_mse_sgd"]) {
      const f = loadFixture(name);
      // 48-byte GPU buffers: every table spans several (3 rows of d=4 each).
      const model = new DlrmModel(device, f.config, f.stateDict("init"), { maxChunkBytes: 48 });
      for (const b of f.batches.slice(0, 2)) model.trainStep(b);
      const extra = { data: '{"dataRandomize":"day"}', run: name };
      const path = join(dir, `${name}.safetensors`);
      const before = await previousWriter(model, extra, path);
      const sizes = model.checkpointTensors().map((t) => t.shape.reduce((a, b) => a * b, 1) * 4);
      // 20 bytes: pieces of one row split every tensor of more than a row, the weights are larger than a piece.
      // (few piece sizes on the larger fixtures: every piece is a GPU readback, slow on CPU adapters)
      for (const chunkBytes of name === "dot_itself_bce_adagrad_lrsched" ? [4, 20, 52, undefined] : [52, undefined]) {
        if (chunkBytes && chunkBytes < 100) expect(Math.max(...sizes)).toBeGreaterThan(chunkBytes);
        const { m, largest } = spied(model);
        await saveCheckpoint(path, m, extra, { chunkBytes });
        expect(same(new Uint8Array(readFileSync(path)), before.main), `${name} main file, chunkBytes ${chunkBytes}`).toBe(true);
        if (before.side) expect(same(new Uint8Array(readFileSync(optimizerSidecar(path))), before.side), `${name} sidecar, chunkBytes ${chunkBytes}`).toBe(true);
        else expect(existsSync(optimizerSidecar(path))).toBe(false);
        // A piece is at most chunkBytes, or one row when a row is larger.
        const rowBytes = Math.max(...model.checkpointTensors().map((t) => rowSize(t.shape) * 4));
        expect(largest()).toBeLessThanOrEqual(Math.max(chunkBytes ?? 64 << 20, rowBytes));
      }
      model.destroy();
    }
  });

  it("load round trip in small pieces: bit-exact parameters, optimizer state and step; training continues identically", async () => {
    const device = await testDevice();
    for (const name of ["dot_itself_bce_adagrad_lrsched", "md_dot_bce_rwsadagrad", "qr_concat_dot_mse_adagrad"]) {
      const f = loadFixture(name);
      const a = new DlrmModel(device, f.config, f.stateDict("init"), { maxChunkBytes: 48 });
      for (const b of f.batches.slice(0, 3)) a.trainStep(b);
      const path = join(dir, `rt-${name}.safetensors`);
      await saveCheckpoint(path, a, {}, { chunkBytes: 52 });
      // Another initialisation: everything must come from the file.
      const b = new DlrmModel(device, f.config, initParameters(f.config, 99), { maxChunkBytes: 48 });
      const { m, largest } = spied(b);
      const info = await loadCheckpointInto(path, m, { chunkBytes: 52 });
      expect(info.step).toBe(3);
      expect(m.step).toBe(3);
      expect(info.optimizerLoaded).toBe(true);
      b.step = m.step;
      expect(largest()).toBeLessThanOrEqual(Math.max(52, ...b.checkpointTensors().map((t) => rowSize(t.shape) * 4)));
      const [sa, sb, oa, ob] = [await a.stateDict(), await b.stateDict(), await a.optimizerState(), await b.optimizerState()];
      for (const k of Object.keys(sa)) expectBitIdentical(sb[k]!.data, sa[k]!.data, `${name} ${k}`);
      expect(Object.keys(ob).sort()).toEqual(Object.keys(oa).sort());
      for (const k of Object.keys(oa)) expectBitIdentical(ob[k]!.data, oa[k]!.data, `${name} ${k}`);
      a.trainStep(f.batches[3]!);
      b.trainStep(f.batches[3]!);
      const [ta, tb] = [await a.stateDict(), await b.stateDict()];
      for (const k of Object.keys(ta)) expectBitIdentical(tb[k]!.data, ta[k]!.data, `${name} after a step ${k}`);
      a.destroy();
      b.destroy();
    }
  });

  it("never writes NaN/Inf: the previous files stay as they were and no temporary file is left", async () => {
    const device = await testDevice();
    const f = loadFixture("dot_itself_bce_adagrad_lrsched");
    const model = new DlrmModel(device, f.config, f.stateDict("init"), { maxChunkBytes: 48 });
    const sub = join(dir, "nan");
    const { mkdirSync } = await import("node:fs");
    mkdirSync(sub);
    const path = join(sub, "m.safetensors");
    await saveCheckpoint(path, model);
    const good = [readFileSync(path), readFileSync(optimizerSidecar(path))];
    // A NaN in the middle of the largest table, in a later piece than the first.
    const t = model.checkpointTensors().find((x) => x.name === "emb_l.1.weight")!;
    const row = await t.read(9, 1);
    row[2] = Number.NaN;
    t.write(9, row);
    const err = await saveCheckpoint(path, model, {}, { chunkBytes: 16 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NonFiniteTensorError);
    expect((err as NonFiniteTensorError).tensor).toBe("emb_l.1.weight");
    expect((err as NonFiniteTensorError).index).toBe(9 * 4 + 2);
    expect((err as Error).message).toMatch(/holds NaN in emb_l\.1\.weight \(element 38\): checkpoint not written/);
    expect(readFileSync(path).equals(good[0]!)).toBe(true);
    expect(readFileSync(optimizerSidecar(path)).equals(good[1]!)).toBe(true);
    expect(readdirSync(sub).sort()).toEqual(["m.optim.safetensors", "m.safetensors"]);
    model.destroy();
  });

  it("a failed read of the GPU (here in a later piece, while the previous one is written) removes the temporary files, the old ones intact", async () => {
    const device = await testDevice();
    const f = loadFixture("dot_itself_bce_adagrad_lrsched");
    const model = new DlrmModel(device, f.config, f.stateDict("init"));
    const sub = mkdtempSync(join(dir, "fail-"));
    const path = join(sub, "m.safetensors");
    await saveCheckpoint(path, model);
    const good = readFileSync(path);
    const failing = Object.create(model) as DlrmModel;
    failing.checkpointTensors = () =>
      model.checkpointTensors().map((t) => (t.name === "emb_l.1.weight" ? { ...t, read: async (start: number, count: number) => (start >= 4 ? Promise.reject(new Error("device lost")) : t.read(start, count)) } : t));
    await expect(saveCheckpoint(path, failing, {}, { chunkBytes: 16 })).rejects.toThrow(/device lost/);
    expect(readFileSync(path).equals(good)).toBe(true);
    expect(readdirSync(sub).sort()).toEqual(["m.optim.safetensors", "m.safetensors"]);
    model.destroy();
  });

  it("refuses a bad file before writing anything: NaN, truncated, another architecture, a stale sidecar", async () => {
    const device = await testDevice();
    const f = loadFixture("dot_itself_bce_adagrad_lrsched");
    const a = new DlrmModel(device, f.config, f.stateDict("init"));
    for (const b of f.batches.slice(0, 2)) a.trainStep(b);
    const path = join(dir, "good.safetensors");
    await saveCheckpoint(path, a);
    const model = new DlrmModel(device, f.config, f.stateDict("init"));
    const before = await model.predict(f.batches[5]!);
    const beforeOpt = await model.optimizerState();

    // NaN in the last tensor of the main file (the largest table): found by the first pass.
    const bytes = new Uint8Array(readFileSync(path));
    const nan = new Uint8Array(bytes);
    new DataView(nan.buffer).setFloat32(nan.length - 4, Number.NaN, true);
    writeFileSync(join(dir, "nan.safetensors"), nan);
    writeFileSync(join(dir, "nan.optim.safetensors"), readFileSync(optimizerSidecar(path)));
    await expect(loadCheckpointInto(join(dir, "nan.safetensors"), model, { chunkBytes: 20 })).rejects.toThrow(/holds NaN at element \d+; .*--allow-non-finite/);
    // Truncated.
    writeFileSync(join(dir, "cut.safetensors"), bytes.subarray(0, bytes.length - 7));
    await expect(loadCheckpointInto(join(dir, "cut.safetensors"), model)).rejects.toThrow(/cut\.safetensors: not a readable safetensors checkpoint/);
    // Another architecture.
    const other = { ...f.config, tableRows: [7, 13, 6] };
    const o = new DlrmModel(device, other, initParameters(other));
    await saveCheckpoint(join(dir, "other.safetensors"), o);
    await expect(loadCheckpointInto(join(dir, "other.safetensors"), model)).rejects.toThrow(/architecture .* does not match/);
    // A sidecar from another save: refused when the optimizer state is wanted, with what to do.
    const side = new Uint8Array(readFileSync(optimizerSidecar(path)));
    side[side.length - 1] ^= 1;
    writeFileSync(join(dir, "stale.safetensors"), bytes);
    writeFileSync(join(dir, "stale.optim.safetensors"), side);
    // (the sidecar name is recorded in the main file: point a copy at the stale one)
    const meta = decodeSafetensors(bytes).metadata;
    expect(meta.optimizer_file).toBe("good.optim.safetensors");
    writeFileSync(join(dir, "good.optim.safetensors"), side);
    await expect(loadCheckpointInto(path, model)).rejects.toThrow(/good\.optim\.safetensors belongs to another save of the model/);

    expectBitIdentical(await model.predict(f.batches[5]!), before, "prediction after refused loads");
    const afterOpt = await model.optimizerState();
    for (const k of Object.keys(beforeOpt)) expectBitIdentical(afterOpt[k]!.data, beforeOpt[k]!.data, k);
    expect(model.step).toBe(0);
    // Without the optimizer state (another optimizer, say) the weights alone load.
    const w = await loadCheckpointInto(path, model, { withOptimizer: false });
    expect(w.optimizerLoaded).toBe(false);
    const [sa, sb] = [await a.stateDict(), await model.stateDict()];
    for (const k of Object.keys(sa)) expectBitIdentical(sb[k]!.data, sa[k]!.data, k);
    a.destroy();
    o.destroy();
    model.destroy();
  });
});
