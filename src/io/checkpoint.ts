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
import { CheckpointError, NonFiniteTensorError } from "./errors.ts";
import { type DlrmConfig, interactionWidth, resolveConfig } from "../model/config.ts";
import type { DlrmModel } from "../model/dlrm.ts";
import type { StateDict } from "../model/params.ts";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";
import { readFileBytes, writeFileAtomic } from "./atomic_write.ts";
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

export async function saveCheckpoint(path: string, model: CheckpointModel, extra: Record<string, string> = {}): Promise<void> {
  const all = decodeSafetensors(await checkpointBytes(model, extra), { copy: true });
  const params: Parameters<typeof encodeSafetensors>[0] = {};
  const optim: Parameters<typeof encodeSafetensors>[0] = {};
  for (const [name, t] of Object.entries(all.tensors)) (name.startsWith("optim.") ? optim : params)[name] = t;
  const meta = { ...all.metadata };
  if (Object.keys(optim).length) {
    // The sidecar first: the main file never names optimizer state that is not on disk.
    const side = optimizerSidecar(path);
    const bytes = encodeSafetensors(optim, { format: OPTIMIZER_FORMAT, step: String(model.step), optimizer: model.config.optimizer });
    await writeFileAtomic(side, bytes);
    meta.optimizer_file = side.slice(side.lastIndexOf("/") + 1);
    meta.optimizer_sha256 = await sha256Hex(bytes);
  }
  await writeFileAtomic(path, encodeSafetensors(params, meta));
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
