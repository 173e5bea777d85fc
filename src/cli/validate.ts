/**
 * Checks made before any work starts, so a run never trains for an hour and
 * then fails (or silently does something else than asked):
 * - contradictory or meaningless flag combinations, one line each;
 * - every output path (checkpoint, JSON lines, report, predictions): its
 *   directory is created if missing and must be writable;
 * - stale temporary files that a killed run left beside an atomic output.
 */
import process from "node:process";
import { access, constants, mkdir, readdir, rm, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import type { FlagValues } from "./args.ts";
import { UsageError } from "./args.ts";

/** Flag combinations that contradict each other or ask for nothing; throws the first as one line. */
export function checkFlagConflicts(v: FlagValues, given: Set<string>, command: string): void {
  if (given.has("seed") && given.has("numpyRandSeed")) {
    throw new UsageError(`--seed and --numpy-rand-seed are the same option (the reference's name); give only one`);
  }
  if (v.qrFlag && v.mdFlag) {
    throw new UsageError(`--qr-flag and --md-flag cannot be combined: choose quotient-remainder or mixed-dimension embeddings`);
  }
  for (const f of ["processedDataFile", "rawDataFile"] as const) {
    if (v[f] !== undefined && v.dataGeneration !== "dataset") {
      const flag = f === "processedDataFile" ? "--processed-data-file" : "--raw-data-file";
      throw new UsageError(`${flag} is a data file but --data-generation is '${v.dataGeneration}' (generated data): add --data-generation dataset, or drop ${flag}`);
    }
  }
  if (v.testMiniBatchSize !== undefined && (v.testMiniBatchSize as number) < 1) {
    throw new UsageError(`--test-mini-batch-size must be at least 1, got ${v.testMiniBatchSize}`);
  }
  if (v.testNumBatches !== undefined && (v.testNumBatches as number) < 0) {
    throw new UsageError(`--test-num-batches must be 0 (the whole split) or more, got ${v.testNumBatches}`);
  }
  if (command !== "train") return;
  if ((v.checkpointEvery as number) > 0 && !v.saveModel) {
    throw new UsageError(`--checkpoint-every ${v.checkpointEvery} needs --save-model FILE (where to write the checkpoints)`);
  }
  if ((v.nepochs as number) < 1 && !v.inferenceOnly) {
    throw new UsageError(`--nepochs must be at least 1, got ${v.nepochs} (to evaluate a model without training use --inference-only --load-model FILE)`);
  }
  if ((v.miniBatchSize as number) < 1) throw new UsageError(`--mini-batch-size must be at least 1, got ${v.miniBatchSize}`);
  if ((v.numBatches as number) < 0) throw new UsageError(`--num-batches must be 0 (the whole split) or more, got ${v.numBatches}`);
  if ((v.checkpointEvery as number) < 0) throw new UsageError(`--checkpoint-every must be 0 (only at the end) or more, got ${v.checkpointEvery}`);
  if (v.inferenceOnly && !v.loadModel && !v.resume) {
    throw new UsageError(`--inference-only needs --load-model FILE (the model to evaluate)`);
  }
}

export interface OutputPath {
  /** The flag that names it, for messages ("--save-model"). */
  flag: string;
  path: string;
  /** Written through writeFileAtomic: stale `<name>.tmp-*` files beside it are removed. */
  atomic?: boolean;
}

function reason(e: unknown): string {
  const err = e as { code?: string; message?: string };
  return err.code === "EACCES" || err.code === "EPERM" ? "permission denied" : err.code === "EROFS" ? "read-only file system" : err.code === "ENOTDIR" ? "a parent is a file, not a directory" : err.code === "EEXIST" ? "a file, not a directory, has that name" : (err.message ?? String(e));
}

/**
 * Makes sure every output can be written before the first step: creates
 * missing directories, refuses directories given as files and unwritable
 * places, and removes temporary files a killed run left behind. Returns one
 * line per stale file removed.
 */
export async function prepareOutputs(outputs: OutputPath[]): Promise<string[]> {
  const notes: string[] = [];
  for (const { flag, path, atomic } of outputs) {
    if (!path) throw new UsageError(`${flag} needs a file name`);
    const dir = dirname(path);
    try {
      await mkdir(dir, { recursive: true });
    } catch (e) {
      throw new UsageError(`${flag} ${path}: cannot create the directory ${dir} (${reason(e)})`);
    }
    try {
      await access(dir, constants.W_OK);
    } catch (e) {
      throw new UsageError(`${flag} ${path}: the directory ${dir} is not writable (${reason(e)})`);
    }
    let info: Awaited<ReturnType<typeof stat>> | undefined;
    try {
      info = await stat(path);
    } catch {
      info = undefined;
    }
    if (info?.isDirectory()) throw new UsageError(`${flag} ${path} is a directory; give a file name inside it, e.g. ${join(path, flag === "--save-model" ? "model.safetensors" : "out")}`);
    if (info) {
      try {
        await access(path, constants.W_OK);
      } catch (e) {
        throw new UsageError(`${flag} ${path} exists and is not writable (${reason(e)})`);
      }
    }
    if (atomic) {
      // writeFileAtomic's temporaries: `<file>.tmp-<12 hex>`, also of files written beside it
      // (`<stem>.<anything>.tmp-...`, e.g. an optimizer-state sidecar).
      const base = basename(path);
      const stem = base.replace(/\.safetensors$/, "");
      for (const name of await readdir(dir)) {
        const m = /^(.*)\.tmp-[0-9a-f]{12}$/.exec(name);
        if (!m || !(m[1] === base || m[1]!.startsWith(`${stem}.`))) continue;
        const file = join(dir, name);
        const size = (await stat(file)).size;
        await rm(file, { force: true });
        notes.push(`removed ${file} (${(size / 2 ** 20).toFixed(1)} MiB), a temporary file left by an interrupted write`);
      }
    }
  }
  return notes;
}

/** The process umask (Node: process.umask(); Deno: Deno.umask() where available), else the common 0o022. */
export function currentUmask(): number {
  try {
    const d = (globalThis as { Deno?: { umask?: () => number } }).Deno;
    if (d?.umask) return d.umask();
    return process.umask();
  } catch {
    return 0o022;
  }
}
