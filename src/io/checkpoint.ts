/**
 * Checkpoints: a safetensors file holding only the parameters under the
 * reference's state_dict names (so PyTorch loads it with
 * load_state_dict(strict=True), whatever the optimizer), in its metadata the
 * configuration and step; the optimizer state ("optim.*" tensors) goes to a
 * sidecar `<model>.optim.safetensors` that the metadata names with its
 * SHA-256 (optimizer_file, optimizer_sha256), so --resume restores it
 * bit for bit. checkpointBytes() (one file in memory) keeps the optimizer
 * state inline, as does parseCheckpoint. Each file is written to a temporary
 * file and renamed, so a crash never leaves half a file.
 * Loading validates every name, shape and dtype before touching the model.
 */
import { CheckpointError, NonFiniteTensorError, SafetensorsError } from "./errors.ts";
import { type DlrmConfig, interactionWidth, resolveConfig } from "../model/config.ts";
import type { DlrmModel } from "../model/dlrm.ts";
import { rowSize, type StateDict, type TensorRows } from "../model/params.ts";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
import { type AtomicWriter, openAtomicWriter, openFileReader, readFileBytes } from "./atomic_write.ts";
import { checkTensorFile, openTensorFile, readTensorStream, type TensorFile, writeTensorStream } from "./checkpoint_stream.ts";
import { isTensor, loadTorchSave, torchSaveKind } from "./torch_zip.ts";

export const CHECKPOINT_FORMAT = "webgpu-dlrm/1";


export interface Checkpoint {
  config: DlrmConfig;
  step: number;
  params: StateDict;
  optimizer: StateDict;
  /** Free-form extra metadata (data position, run id...). */
  extra: Record<string, string>;
  /** Written by webgpu-dlrm (config in its metadata), not a plain PyTorch state_dict. */
  native?: boolean;
  /** The optimizer-state sidecar named in the metadata, when it could not be loaded (why). */
  optimizerMissing?: string;
}

export const OPTIMIZER_FORMAT = "webgpu-dlrm-optimizer/1";

/** File name of the optimizer-state sidecar of checkpoint `path`. */
export function optimizerSidecar(path: string): string {
  return path.replace(/(\.safetensors)?$/, ".optim.safetensors");
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The first NaN/Inf of a set of tensors, as [name, flat index, value]; undefined when all are finite. */
export function firstNonFinite(tensors: StateDict): [string, number, number] | undefined {
  for (const [name, t] of Object.entries(tensors)) {
    const d = t.data;
    for (let i = 0; i < d.length; i++) if (!Number.isFinite(d[i]!)) return [name, i, d[i]!];
  }
  return undefined;
}

/**
 * What saving and loading need of a model: DlrmModel, and the sharded model
 * of src/shard/ (which gathers its shards on save and reshards on load).
 */
export type CheckpointModel = Pick<DlrmModel, "config" | "step" | "stateDict" | "optimizerState" | "validateStateDict" | "validateOptimizerState" | "loadStateDict" | "loadOptimizerState"> & {
  readonly options: { inferenceOnly?: boolean };
  /**
   * Parameters, then optimizer state, readable and writable in row ranges
   * (DlrmModel, ShardedDlrm): saves and streaming loads then hold only pieces
   * of the model in host memory. Without it, tensors go whole through stateDict().
   */
  checkpointTensors?(): TensorRows[];
};

export async function checkpointBytes(model: CheckpointModel, extra: Record<string, string> = {}): Promise<Uint8Array> {
  const params = await model.stateDict();
  const optimizer = model.options.inferenceOnly ? {} : await model.optimizerState();
  // A checkpoint is a point to come back to: never write one that holds NaN or Infinity.
  const bad = firstNonFinite({ ...params, ...optimizer });
  if (bad) {
    throw new NonFiniteTensorError(bad[0], bad[1], bad[2], `the model at step ${model.step} holds ${bad[2]} in ${bad[0]} (element ${bad[1]}): checkpoint not written`);
  }
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [name, t] of Object.entries({ ...params, ...optimizer })) tensors[name] = { dtype: "F32", shape: t.shape, data: t.data };
  return encodeSafetensors(tensors, { ...extra, format: CHECKPOINT_FORMAT, config: JSON.stringify(model.config), step: String(model.step) });
}

/**
 * The tensors a save writes, in order (parameters, then optimizer state unless
 * inference-only): the model's checkpointTensors() when it has them (read in
 * row ranges from the GPU), else stateDict() / optimizerState() read whole.
 */
async function tensorsToSave(model: CheckpointModel): Promise<TensorRows[]> {
  if (model.checkpointTensors) {
    const all = model.checkpointTensors();
    return model.options.inferenceOnly ? all.filter((t) => !t.name.startsWith("optim.")) : all;
  }
  const sd = { ...(await model.stateDict()), ...(model.options.inferenceOnly ? {} : await model.optimizerState()) };
  return Object.entries(sd).map(([name, t]) => ({
    name,
    shape: t.shape,
    read: async (start: number, count: number) => {
      const k = rowSize(t.shape);
      return t.data.subarray(start * k, (start + count) * k);
    },
    write: () => {
      throw new CheckpointError("this model's tensors are read-only here");
    },
    flush: async () => {},
  }));
}

/**
 * Saves `model` to `path` (and its optimizer state to the sidecar
 * optimizerSidecar(path)), streaming: each tensor is read from the GPU in
 * pieces of at most `chunkBytes` (default 64 MiB) and written straight to a
 * temporary file, so host memory stays bounded whatever the model's size.
 * Both files are complete and flushed before either replaces its old version
 * (sidecar first, then the main file); a NaN/Inf anywhere leaves the old files
 * as they were. The files are the same bytes encodeSafetensors writes.
 */
export async function saveCheckpoint(path: string, model: CheckpointModel, extra: Record<string, string> = {}, opts: { chunkBytes?: number } = {}): Promise<void> {
  const all = await tensorsToSave(model);
  const params = all.filter((t) => !t.name.startsWith("optim."));
  const optim = all.filter((t) => t.name.startsWith("optim."));
  const step = model.step;
  // A checkpoint is a point to come back to: never write one that holds NaN or Infinity.
  const onNonFinite = (name: string, index: number, value: number) =>
    new NonFiniteTensorError(name, index, value, `the model at step ${step} holds ${value} in ${name} (element ${index}): checkpoint not written`);
  const meta: Record<string, string> = { ...extra, format: CHECKPOINT_FORMAT, config: JSON.stringify(model.config), step: String(step) };
  const writers: AtomicWriter[] = [];
  try {
    if (optim.length) {
      // The sidecar first: the main file never names optimizer state that is not on disk.
      const side = optimizerSidecar(path);
      const w = await openAtomicWriter(side);
      writers.push(w);
      const { sha256 } = await writeTensorStream(w, optim, { format: OPTIMIZER_FORMAT, step: String(step), optimizer: model.config.optimizer }, { chunkBytes: opts.chunkBytes, onNonFinite });
      meta.optimizer_file = side.slice(side.lastIndexOf("/") + 1);
      meta.optimizer_sha256 = sha256;
    }
    const w = await openAtomicWriter(path);
    writers.push(w);
    await writeTensorStream(w, params, meta, { chunkBytes: opts.chunkBytes, onNonFinite });
    for (const x of writers) await x.close();
    for (const x of writers) await x.commit();
  } catch (e) {
    for (const x of writers) await x.abort();
    throw e;
  }
}

/**
 * Parses a checkpoint. A plain PyTorch DLRM state_dict (no webgpu-dlrm
 * metadata) is accepted too: its architecture is inferred from the tensor
 * shapes, with `fallback` supplying what shapes cannot tell (loss, optimizer...).
 */
export function parseCheckpoint(bytes: Uint8Array, source: string, fallback: Partial<DlrmConfig> = {}, opts: { allowNonFinite?: boolean } = {}): Checkpoint {
  if (torchSaveKind(bytes)) return parseTorchCheckpoint(bytes, source, fallback, opts);
  let decoded: ReturnType<typeof decodeSafetensors>;
  try {
    decoded = decodeSafetensors(bytes);
  } catch (e) {
    throw new CheckpointError(`${source}: not a readable safetensors checkpoint: ${(e as Error).message}`);
  }
  const params: StateDict = {};
  const optimizer: StateDict = {};
  const extra: Record<string, string> = {};
  for (const [name, t] of Object.entries(decoded.tensors)) {
    if (t.dtype !== "F32") throw new CheckpointError(`${source}: tensor '${name}' is ${t.dtype}; webgpu-dlrm checkpoints hold F32 only`);
    const entry = { shape: t.shape, data: t.data as Float32Array };
    if (name.startsWith("optim.")) optimizer[name] = entry;
    else params[name] = entry;
  }
  const bad = opts.allowNonFinite ? undefined : firstNonFinite({ ...params, ...optimizer });
  if (bad) {
    throw new NonFiniteTensorError(bad[0], bad[1], bad[2], `${source}: tensor ${bad[0]} holds ${bad[2]} at element ${bad[1]}; a model with non-finite weights predicts garbage (--allow-non-finite loads it anyway)`);
  }
  const meta = decoded.metadata ?? {};
  let config: DlrmConfig;
  let step = 0;
  if (meta.format === CHECKPOINT_FORMAT) {
    try {
      config = resolveConfig(JSON.parse(meta.config ?? "null"));
    } catch (e) {
      throw new CheckpointError(`${source}: its configuration is invalid: ${(e as Error).message}`);
    }
    step = Number(meta.step ?? 0);
    if (!Number.isInteger(step) || step < 0) throw new CheckpointError(`${source}: bad step '${meta.step}' in metadata`);
    for (const [k, v] of Object.entries(meta)) if (!["format", "config", "step"].includes(k)) extra[k] = v;
  } else {
    config = inferConfig(params, source, fallback);
  }
  return { config, step, params, optimizer, extra, native: meta.format === CHECKPOINT_FORMAT };
}

/** The keys of the reference's --save-model dict beside state_dict (dlrm_s_pytorch.py model_metrics_dict). */
export const REFERENCE_SAVE_KEYS = ["iter", "epoch", "nepochs", "nbatches", "nbatches_test", "train_loss", "total_loss", "test_acc", "test_auc"] as const;

/**
 * A torch.save file: the reference's --save-model dict ({"state_dict": ...,
 * "iter", "epoch", ...}) or a bare state_dict. The architecture is inferred
 * from the shapes; the step is epoch * nbatches + iter; the reference's
 * scalars are kept in extra.reference (JSON). Its opt_state_dict is not
 * loaded (PyTorch's optimizer state, not ours).
 */
function parseTorchCheckpoint(bytes: Uint8Array, source: string, fallback: Partial<DlrmConfig>, opts: { allowNonFinite?: boolean }): Checkpoint {
  const top = loadTorchSave(bytes, source);
  if (!(top instanceof Map)) throw new CheckpointError(`${source}: torch.save of something other than a dict (a state_dict, or the reference's --save-model dict)`);
  const sd = top.has("state_dict") ? top.get("state_dict") : top;
  if (!(sd instanceof Map)) throw new CheckpointError(`${source}: its "state_dict" is not a dict`);
  const params: StateDict = {};
  for (const [k, v] of sd) {
    if (!isTensor(v)) throw new CheckpointError(`${source}: state_dict entry ${String(k)} is not a tensor`);
    if (v.dtype !== "float32" && v.dtype !== "float64") throw new CheckpointError(`${source}: state_dict entry ${String(k)} is ${v.dtype}; DLRM parameters are float`);
    params[String(k)] = { shape: v.shape, data: v.data instanceof Float32Array ? v.data : Float32Array.from(v.data) };
  }
  const bad = opts.allowNonFinite ? undefined : firstNonFinite(params);
  if (bad) throw new NonFiniteTensorError(bad[0], bad[1], bad[2], `${source}: tensor ${bad[0]} holds ${bad[2]} at element ${bad[1]} (--allow-non-finite loads it anyway)`);
  const ref: Record<string, number> = {};
  for (const k of REFERENCE_SAVE_KEYS) {
    const v = top.get(k);
    if (typeof v === "number") ref[k] = v;
  }
  const step = (ref.epoch ?? 0) * (ref.nbatches ?? 0) + (ref.iter ?? 0);
  const config = inferConfig(params, source, fallback);
  const extra: Record<string, string> = Object.keys(ref).length ? { reference: JSON.stringify(ref) } : {};
  return { config, step: Number.isInteger(step) && step >= 0 ? step : 0, params, optimizer: {}, extra, native: false };
}

export async function loadCheckpointFile(path: string, fallback: Partial<DlrmConfig> = {}, opts: { allowNonFinite?: boolean } = {}): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await readFileBytes(path);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  const ckpt = parseCheckpoint(bytes, path, fallback, opts);
  const file = ckpt.extra.optimizer_file;
  if (file) {
    const side = `${path.slice(0, path.lastIndexOf("/") + 1)}${file}`;
    try {
      const sb = await readFileBytes(side);
      if ((await sha256Hex(sb)) !== ckpt.extra.optimizer_sha256) {
        ckpt.optimizerMissing = `${side} belongs to another save of the model (SHA-256 differs)`;
      } else {
        for (const [name, t] of Object.entries(decodeSafetensors(sb).tensors)) ckpt.optimizer[name] = { shape: t.shape, data: t.data as Float32Array };
        const bad = opts.allowNonFinite ? undefined : firstNonFinite(ckpt.optimizer);
        if (bad) throw new NonFiniteTensorError(bad[0], bad[1], bad[2], `${side}: tensor ${bad[0]} holds ${bad[2]} at element ${bad[1]} (--allow-non-finite loads it anyway)`);
      }
    } catch (e) {
      if (e instanceof NonFiniteTensorError) throw e;
      ckpt.optimizerMissing ??= `${side} cannot be read (${(e as Error).message})`;
    }
  }
  return ckpt;
}

/** Applies a parsed checkpoint to `model` (same architecture); nothing changes if anything mismatches. */
export function applyCheckpoint(model: CheckpointModel, ckpt: Checkpoint, opts: { withOptimizer?: boolean } = {}): void {
  const a = model.config;
  const b = ckpt.config;
  const arch = (c: DlrmConfig) => JSON.stringify([c.embeddingDim, c.tableRows, c.bottomMlp, c.topMlp, c.interaction, c.interactionItself]);
  if (arch(a) !== arch(b)) throw new CheckpointError(`checkpoint architecture ${arch(b)} does not match the model's ${arch(a)}`);
  if ((opts.withOptimizer ?? true) && !model.options.inferenceOnly && ckpt.optimizerMissing) {
    throw new CheckpointError(`the optimizer state of this checkpoint is missing: ${ckpt.optimizerMissing}; keep the .optim.safetensors file beside the checkpoint, or start from the weights alone with --load-model and another optimizer`);
  }
  const withOpt = (opts.withOptimizer ?? true) && !model.options.inferenceOnly && Object.keys(ckpt.optimizer).length > 0;
  if (withOpt && a.optimizer !== b.optimizer) {
    throw new CheckpointError(`checkpoint optimizer state is for '${b.optimizer}', the run uses '${a.optimizer}'`);
  }
  // Validate both parts before writing either.
  model.validateStateDict(ckpt.params);
  if (withOpt) model.validateOptimizerState(ckpt.optimizer);
  model.loadStateDict(ckpt.params);
  if (withOpt) model.loadOptimizerState(ckpt.optimizer);
  model.step = ckpt.step;
}

/** The architecture of a reference DLRM state_dict, from its tensor shapes. */
export function inferConfig(sd: StateDict, source: string, fallback: Partial<DlrmConfig>): DlrmConfig {
  const layers = (prefix: string) => {
    const sizes: number[] = [];
    for (let k = 0; ; k += 2) {
      const w = sd[`${prefix}.${k}.weight`];
      if (!w) break;
      if (w.shape.length !== 2) throw new CheckpointError(`${source}: ${prefix}.${k}.weight must be 2-D, has shape [${w.shape}]`);
      if (sizes.length === 0) sizes.push(w.shape[1]!);
      else if (sizes[sizes.length - 1] !== w.shape[1]) throw new CheckpointError(`${source}: ${prefix}.${k}.weight takes ${w.shape[1]} inputs, the previous layer gives ${sizes[sizes.length - 1]}`);
      sizes.push(w.shape[0]!);
    }
    return sizes;
  };
  const bottomMlp = layers("bot_l");
  const topMlp = layers("top_l");
  const tableRows: number[] = [];
  let dim = 0;
  for (let t = 0; sd[`emb_l.${t}.weight`]; t++) {
    const s = sd[`emb_l.${t}.weight`]!.shape;
    if (s.length !== 2) throw new CheckpointError(`${source}: emb_l.${t}.weight must be 2-D, has shape [${s}]`);
    tableRows.push(s[0]!);
    dim = s[1]!;
  }
  if (!bottomMlp.length || !topMlp.length || !tableRows.length) {
    throw new CheckpointError(`${source}: not a DLRM state_dict (expected bot_l.0.weight, top_l.0.weight and emb_l.0.weight)`);
  }
  const n = tableRows.length;
  const options: [DlrmConfig["interaction"], boolean][] = [["dot", false], ["dot", true], ["cat", false]];
  const match = options.find(([op, self]) => interactionWidth(n, dim, op, self) === topMlp[0]);
  if (!match) throw new CheckpointError(`${source}: top MLP input ${topMlp[0]} fits no interaction of ${n} tables with d=${dim}`);
  try {
    return resolveConfig({ ...fallback, embeddingDim: dim, tableRows, bottomMlp, topMlp, interaction: match[0], interactionItself: match[1] });
  } catch (e) {
    throw new CheckpointError(`${source}: ${(e as Error).message}`);
  }
}

/** What loadCheckpointInto read besides the tensors. */
export type LoadedCheckpoint = Omit<Checkpoint, "params" | "optimizer"> & { optimizerLoaded: boolean };

/** A shape-only stand-in for a tensor of the file, for the model's validate*() (which read shape and length only). */
function shapesOf(file: TensorFile, names: (n: string) => boolean): StateDict {
  const sd: StateDict = {};
  for (const t of file.tensors) {
    if (!names(t.name)) continue;
    const length = t.shape.reduce((a, b) => a * b, 1);
    sd[t.name] = { shape: [...t.shape], data: { length } as unknown as Float32Array };
  }
  return sd;
}

/**
 * Loads checkpoint `path` into `model` in bounded host memory: a first pass
 * reads the header(s) and checks names, shapes, dtypes, the architecture, the
 * optimizer sidecar's SHA-256 and that every value is finite; only then a
 * second pass reads each tensor in pieces of at most `chunkBytes` and writes
 * them to the model where they live (checkpointTensors()). Nothing changes if
 * anything is wrong. A torch.save file (the reference's) is small and goes
 * through parseCheckpoint / applyCheckpoint.
 */
export async function loadCheckpointInto(
  path: string,
  model: CheckpointModel,
  opts: { withOptimizer?: boolean; allowNonFinite?: boolean; chunkBytes?: number; fallback?: Partial<DlrmConfig> } = {},
): Promise<LoadedCheckpoint> {
  if (!model.checkpointTensors) {
    const ck = await loadCheckpointFile(path, opts.fallback, opts);
    applyCheckpoint(model, ck, opts);
    const { params: _p, optimizer, ...rest } = ck;
    return { ...rest, optimizerLoaded: Object.keys(optimizer).length > 0 && (opts.withOptimizer ?? true) && !model.options.inferenceOnly };
  }
  let main: TensorFile;
  try {
    main = await openTensorFile(path);
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e instanceof CheckpointError ? e : new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
    const first = await readFirstBytes(path, 16);
    if (torchSaveKind(first)) {
      const ck = parseCheckpoint(await readFileBytes(path), path, opts.fallback, opts);
      applyCheckpoint(model, ck, opts);
      const { params: _p, optimizer: _o, ...rest } = ck;
      return { ...rest, optimizerLoaded: false };
    }
    throw new CheckpointError(`${path}: not a readable safetensors checkpoint: ${e.message}`);
  }
  let side: TensorFile | undefined;
  try {
    const meta = main.metadata;
    const native = meta.format === CHECKPOINT_FORMAT;
    const extra: Record<string, string> = {};
    let config: DlrmConfig;
    let step = 0;
    if (native) {
      try {
        config = resolveConfig(JSON.parse(meta.config ?? "null"));
      } catch (e) {
        throw new CheckpointError(`${path}: its configuration is invalid: ${(e as Error).message}`);
      }
      step = Number(meta.step ?? 0);
      if (!Number.isInteger(step) || step < 0) throw new CheckpointError(`${path}: bad step '${meta.step}' in metadata`);
      for (const [k, v] of Object.entries(meta)) if (!["format", "config", "step"].includes(k)) extra[k] = v;
    } else {
      config = inferConfig(shapesOf(main, (n) => !n.startsWith("optim.")), path, opts.fallback ?? {});
    }
    for (const t of main.tensors) if (t.dtype !== "F32") throw new CheckpointError(`${path}: tensor '${t.name}' is ${t.dtype}; webgpu-dlrm checkpoints hold F32 only`);
    const arch = (c: DlrmConfig) => JSON.stringify([c.embeddingDim, c.tableRows, c.bottomMlp, c.topMlp, c.interaction, c.interactionItself]);
    if (arch(model.config) !== arch(config)) throw new CheckpointError(`checkpoint architecture ${arch(config)} does not match the model's ${arch(model.config)}`);
    const wantOpt = (opts.withOptimizer ?? true) && !model.options.inferenceOnly;
    const describe = (file: string) => (name: string, index: number, value: number) =>
      `${file}: tensor ${name} holds ${value} at element ${index}; a model with non-finite weights predicts garbage (--allow-non-finite loads it anyway)`;
    // Inline optimizer state ("optim.*" in the main file, as checkpointBytes writes) or the sidecar.
    const inlineOpt = main.tensors.some((t) => t.name.startsWith("optim."));
    let optimizerMissing: string | undefined;
    if (wantOpt && extra.optimizer_file) {
      const sidePath = `${path.slice(0, path.lastIndexOf("/") + 1)}${extra.optimizer_file}`;
      try {
        side = await openTensorFile(sidePath);
      } catch (e) {
        optimizerMissing = `${sidePath} cannot be read (${(e as Error).message})`;
      }
      if (side) {
        for (const t of side.tensors) if (t.dtype !== "F32") throw new CheckpointError(`${sidePath}: tensor '${t.name}' is ${t.dtype}; webgpu-dlrm checkpoints hold F32 only`);
      }
    }
    if (wantOpt && optimizerMissing) {
      throw new CheckpointError(`the optimizer state of this checkpoint is missing: ${optimizerMissing}; keep the .optim.safetensors file beside the checkpoint, or start from the weights alone with --load-model and another optimizer`);
    }
    const withOpt = wantOpt && (side !== undefined || inlineOpt);
    if (withOpt && model.config.optimizer !== config.optimizer) {
      throw new CheckpointError(`checkpoint optimizer state is for '${config.optimizer}', the run uses '${model.config.optimizer}'`);
    }
    // Validate both parts (names and shapes) before reading any data.
    model.validateStateDict(shapesOf(main, (n) => !n.startsWith("optim.")));
    if (withOpt) model.validateOptimizerState({ ...(inlineOpt ? shapesOf(main, (n) => n.startsWith("optim.")) : {}), ...(side ? shapesOf(side, () => true) : {}) });
    // First pass: every value finite, the sidecar the one this save wrote.
    await checkTensorFile(main, { chunkBytes: opts.chunkBytes, allowNonFinite: opts.allowNonFinite, describe: describe(path) });
    if (side) {
      const sha = await checkTensorFile(side, { chunkBytes: opts.chunkBytes, allowNonFinite: opts.allowNonFinite, hash: true, describe: describe(side.path) });
      if (sha !== extra.optimizer_sha256) {
        throw new CheckpointError(
          `the optimizer state of this checkpoint is missing: ${side.path} belongs to another save of the model (SHA-256 differs); keep the .optim.safetensors file beside the checkpoint, or start from the weights alone with --load-model and another optimizer`,
        );
      }
    }
    // Second pass: write the pieces where they live.
    const targets = new Map(model.checkpointTensors().map((t) => [t.name, t]));
    const write = async (file: TensorFile, keep: (name: string) => boolean) => {
      let last: TensorRows | undefined;
      await readTensorStream(
        file,
        async (t, start, data) => {
          if (!keep(t.name)) return;
          const target = targets.get(t.name)!;
          target.write(start, data);
          await target.flush();
          last = target;
        },
        { chunkBytes: opts.chunkBytes },
      );
      await last?.flush();
    };
    await write(main, (n) => !n.startsWith("optim.") || (withOpt && inlineOpt));
    if (withOpt && side) await write(side, () => true);
    model.step = step;
    return { config, step, extra, native, optimizerLoaded: withOpt };
  } finally {
    await main.close();
    await side?.close();
  }
}

async function readFirstBytes(path: string, n: number): Promise<Uint8Array> {
  const r = await openFileReader(path);
  try {
    return await r.read(0, Math.min(n, r.size));
  } finally {
    await r.close();
  }
}

/**
 * A checkpoint's configuration, step and metadata without its tensors
 * (`params` and `optimizer` empty, `streamed` true) when it is a safetensors
 * file: only the header is read, and loadCheckpointInto then streams the
 * tensors into the model in bounded memory. Any other file (a torch.save) is
 * read whole as loadCheckpointFile does.
 */
export async function openCheckpoint(path: string, fallback: Partial<DlrmConfig> = {}, opts: { allowNonFinite?: boolean } = {}): Promise<Checkpoint & { streamed?: boolean }> {
  let file: TensorFile;
  try {
    file = await openTensorFile(path);
  } catch (e) {
    if (e instanceof SafetensorsError) return loadCheckpointFile(path, fallback, opts);
    throw e instanceof CheckpointError ? e : new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  try {
    const meta = file.metadata;
    const native = meta.format === CHECKPOINT_FORMAT;
    if (!native) {
      return { config: inferConfig(shapesOf(file, (n) => !n.startsWith("optim.")), path, fallback), step: 0, params: {}, optimizer: {}, extra: {}, native: false, streamed: true };
    }
    let config: DlrmConfig;
    try {
      config = resolveConfig(JSON.parse(meta.config ?? "null"));
    } catch (e) {
      throw new CheckpointError(`${path}: its configuration is invalid: ${(e as Error).message}`);
    }
    const step = Number(meta.step ?? 0);
    if (!Number.isInteger(step) || step < 0) throw new CheckpointError(`${path}: bad step '${meta.step}' in metadata`);
    const extra: Record<string, string> = {};
    for (const [k, v] of Object.entries(meta)) if (!["format", "config", "step"].includes(k)) extra[k] = v;
    return { config, step, params: {}, optimizer: {}, extra, native: true, streamed: true };
  } finally {
    await file.close();
  }
}
