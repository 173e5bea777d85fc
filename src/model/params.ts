/**
 * DLRM parameters on the CPU as a state dict with the reference's names
 * (bot_l.{2k}.weight [out, in], bot_l.{2k}.bias, top_l.{2k}.*, emb_l.{t}.weight
 * [rows, d]), and their initialization as the reference does it:
 * Linear weight ~ N(0, sqrt(2 / (in + out))), bias ~ N(0, sqrt(1 / out)),
 * embedding ~ U(-sqrt(1 / rows), sqrt(1 / rows)); seeded. QR and MD
 * embeddings (names and init) come from embedding_layout.ts.
 */
import { readF32, writeBuffer } from "../gpu/buffers.ts";
import { Rng } from "../util/rng.ts";
import type { DlrmConfig } from "./config.ts";
import { embeddingLayout, type EmbeddingLayout, embeddingParameterShapes, initEmbeddingParameters } from "./embedding_layout.ts";

export interface Tensor {
  shape: number[];
  data: Float32Array;
}

export type StateDict = Record<string, Tensor>;

/**
 * One tensor of a model (parameter or optimizer state) read and written in
 * ranges of rows where it lives (a row is shape[1] x ... floats; a 1-D
 * tensor's rows are its elements), so checkpoints stream through bounded host
 * memory whatever the model's size (src/io/checkpoint_stream.ts).
 */
export interface TensorRows {
  readonly name: string;
  readonly shape: readonly number[];
  /** Rows [start, start + count), row-major. */
  read(start: number, count: number): Promise<Float32Array>;
  /** Writes whole rows from row `start` on (data.length a multiple of the row size); `data` may be reused after the call. */
  write(start: number, data: Float32Array): void;
  /** Resolves when the writes so far have reached the device (bounds the queue's staging memory during large loads). */
  flush(): Promise<void>;
}

/** Submits the queue's pending writes and waits for the device to finish them. */
export async function flushWrites(device: GPUDevice): Promise<void> {
  device.queue.submit([device.createCommandEncoder({ label: "flush-writes" }).finish()]);
  await device.queue.onSubmittedWorkDone();
}

/** Floats per row of a tensor of this shape. */
export function rowSize(shape: readonly number[]): number {
  return shape.slice(1).reduce((a, b) => a * b, 1);
}

/** TensorRows over a GPU buffer holding the tensor at element `offset` (reads and writes only the rows asked for). */
export function bufferRows(device: GPUDevice, name: string, shape: readonly number[], buffer: GPUBuffer, offset = 0): TensorRows {
  const k = rowSize(shape);
  return {
    name,
    shape,
    read: (start, count) => readF32(device, buffer, count * k, offset + start * k),
    write: (start, data) => writeBuffer(device, buffer, data, (offset + start * k) * 4),
    flush: () => flushWrites(device),
  };
}

/** Names and shapes of every parameter, in a fixed order. */
export function parameterShapes(c: DlrmConfig): [string, number[]][] {
  const out: [string, number[]][] = [];
  const mlp = (prefix: string, sizes: number[]) => {
    for (let i = 0; i + 1 < sizes.length; i++) {
      out.push([`${prefix}.${2 * i}.weight`, [sizes[i + 1]!, sizes[i]!]]);
      out.push([`${prefix}.${2 * i}.bias`, [sizes[i + 1]!]]);
    }
  };
  mlp("bot_l", c.bottomMlp);
  mlp("top_l", c.topMlp);
  out.push(...embeddingParameterShapes(layoutOf(c)));
  return out;
}

/** The physical embedding layout (plain, QR, MD tables) of a configuration. */
export function layoutOf(c: DlrmConfig): EmbeddingLayout {
  return embeddingLayout({ embeddingDim: c.embeddingDim, tableRows: c.tableRows, qr: c.qr, md: c.md });
}

export function initParameters(c: DlrmConfig, seed = c.seed): StateDict {
  const rng = new Rng(seed);
  const sd: StateDict = {};
  for (const [name, shape] of parameterShapes(c)) {
    if (name.startsWith("emb_l.")) continue;
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (name.endsWith(".weight")) {
      const std = Math.sqrt(2 / (shape[0]! + shape[1]!));
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    } else {
      const std = Math.sqrt(1 / shape[0]!);
      for (let i = 0; i < n; i++) data[i] = rng.normal() * std;
    }
    sd[name] = { shape, data };
  }
  return { ...sd, ...initEmbeddingParameters(layoutOf(c), rng) };
}
