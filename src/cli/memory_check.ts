/**
 * Does the model fit? Before a training run allocates anything: the bytes its
 * embeddings and optimizer state take, and on a CPU adapter (lavapipe,
 * SwiftShader: device memory is host memory) the host memory creating it
 * needs, against what the host has available. A model that cannot fit fails
 * with the numbers and what to change, instead of an out-of-memory kill or a
 * WebGPU error half-way through.
 */
import type { AdapterFacts } from "../gpu/context.ts";
import { DlrmError } from "../gpu/errors.ts";
import type { DlrmConfig } from "../model/config.ts";
import { layoutOf } from "../model/params.ts";
import { embeddingRowBytes, type EmbeddingPrecision } from "../model/precision.ts";

/** The model does not fit the memory of its device(s). */
export class ModelMemoryError extends DlrmError {}

const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

/**
 * Bytes of the embedding tables as stored (bf16 tables: half, src/model/precision.ts), their
 * optimizer state (f32), and the MLPs (parameters, gradients, state); hostTables: the f32 host
 * copy of the initial tables.
 */
export function modelBytes(c: DlrmConfig, precision: EmbeddingPrecision = "fp32"): { embeddings: number; state: number; dense: number; hostTables: number } {
  const L = layoutOf(c);
  let embeddings = 0;
  let hostTables = 0;
  let stateRows = 0;
  for (const s of L.sets) {
    const rows = s.rows.reduce((a, b) => a + b, 0);
    embeddings += rows * embeddingRowBytes(s.dim, precision);
    hostTables += rows * s.dim * 4;
    stateRows += rows;
  }
  const state = c.optimizer === "adagrad" ? hostTables : c.optimizer === "rwsadagrad" ? stateRows * 4 : 0;
  const mlp = (sizes: number[]) => sizes.slice(1).reduce((acc, out, i) => acc + (sizes[i]! + 1) * out, 0);
  const denseParams = mlp(c.bottomMlp) + mlp(c.topMlp) + L.projSize;
  const dense = denseParams * 4 * (c.optimizer === "sgd" ? 2 : 3);
  return { embeddings, state, dense, hostTables };
}

/** Host memory available now (Linux MemAvailable, else node:os freemem); undefined where neither exists (a browser). */
export async function availableHostMemory(): Promise<number | undefined> {
  try {
    const fs = (await import(/* @vite-ignore */ "node:fs")) as typeof import("node:fs");
    const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync("/proc/meminfo", "utf8"));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  try {
    return (await import(/* @vite-ignore */ "node:os")).freemem();
  } catch {
    return undefined;
  }
}

/** A CPU adapter: its buffers live in host memory. */
export function isCpuAdapter(a: AdapterFacts): boolean {
  return a.isFallbackAdapter || /llvmpipe|lavapipe|swiftshader/i.test(`${a.name} ${a.listedName} ${a.driver}`);
}

/**
 * Throws ModelMemoryError when a one-device model cannot be created on a CPU
 * adapter: it needs its buffers (embeddings + optimizer state + MLPs) plus,
 * while it is created, the host copy of the initial tables and the queue's
 * staging copy of them (measured: about 3 x the tables + the state at the
 * first step, BENCHMARKS.md "Criteo at full scale").
 */
export async function checkModelFits(config: DlrmConfig, adapter: AdapterFacts, available?: number, precision: EmbeddingPrecision = "fp32"): Promise<void> {
  if (!isCpuAdapter(adapter)) return;
  const have = available ?? (await availableHostMemory());
  if (have === undefined) return;
  const b = modelBytes(config, precision);
  // The f32 host copy, the staging copy and the buffers (the last two as stored: bf16 tables half).
  const need = b.hostTables + 2 * b.embeddings + b.state + b.dense + 256 * 2 ** 20;
  if (need <= have) return;
  const rows = config.tableRows.reduce((a, r) => a + r, 0);
  throw new ModelMemoryError(
    `the model does not fit: ${rows} embedding rows x d=${config.embeddingDim} take ${gib(b.embeddings)}` +
      (b.state ? ` (+ ${gib(b.state)} of ${config.optimizer} state)` : "") +
      `; creating it on the CPU adapter "${adapter.name}" (its buffers are host memory) needs about ${gib(need)}, the host has ${gib(have)} available. ` +
      `Free memory, hash the ids into fewer rows (--max-ind-range, e.g. 10000000), use --optimizer sgd or rwsadagrad, ${precision === "fp32" ? "store the tables as bf16 (--embedding-precision bf16), " : ""}or split the tables over several devices (--devices N).`,
  );
}
