/**
 * Device calibration: a few small microbenchmarks on the project's own
 * kernels, measured once per adapter and cached, that feed the planner's cost
 * model (cost_model.ts):
 *
 *   lookups    embedding-bag forward (sum pooling) on a 64k x 64 table,
 *              2048 bags x 8 indices: seconds per looked-up row element
 *              and, derived, GB/s of rows read
 *   backward   the fused, deterministic embedding backward + SGD update on the
 *              same bags: seconds per looked-up row element
 *   gemm       nn.Linear forward 512 x 512 -> 256 (relu): GFLOP/s
 *   dispatch   one tiny dispatch submitted and waited for: the fixed cost of
 *              a kernel launch + queue round trip (ms); and the cost of each
 *              further dispatch in the same command buffer (64 in one pass)
 *   transfer   host-staged copy (copy to a mappable buffer, map, write into a
 *              device buffer) of 4 KiB and 4 MiB: latency (the 4 KiB time)
 *              and bandwidth (from the difference), the α and β of this
 *              machine's "interconnect"
 *
 * Times are wall clock around submit + onSubmittedWorkDone, the median of a
 * few repetitions after a warm-up. The cache is a JSON file,
 * ~/.cache/webgpu-dlrm/calibration.json (or $DLRM_CACHE_DIR), keyed by
 * machine, runtime, adapter name and driver; `recalibrate` measures anew.
 */
import { createStorage, uploadStorage } from "../gpu/buffers.ts";
import type { AdapterFacts, GpuContext } from "../gpu/context.ts";
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { uploadBagBatch } from "../kernels/bag_batch.ts";
import { prepareCopy } from "../kernels/copy.ts";
import { prepareEmbeddingBagBackward } from "../kernels/embedding_bag_backward.ts";
import { prepareEmbeddingBagForward } from "../kernels/embedding_bag_forward.ts";
import { createEmbeddingOptimizerState } from "../kernels/embedding_optimizer_state.ts";
import { createTableSet, destroyTableSet } from "../kernels/embedding_tables.ts";
import { prepareLinearForward } from "../kernels/linear.ts";
import { createOptimizerParams } from "../kernels/optimizer_params.ts";
import { Rng } from "../util/rng.ts";

export const CALIBRATION_VERSION = 2;

/** What one device measured. */
export interface DeviceCalibration {
  version: number;
  /** Cache key: machine | runtime | adapter | driver. */
  key: string;
  adapter: string;
  runtime: string;
  measuredAt: string;
  /** Embedding forward: seconds per looked-up f32 element (rows x d). */
  lookupSecPerElem: number;
  /** Rows read by the forward, GB/s (d x 4 bytes per lookup). */
  lookupGBs: number;
  /** Embedding backward + optimizer update: seconds per looked-up f32 element. */
  backwardSecPerElem: number;
  /** Linear forward throughput, GFLOP/s. */
  gemmGflops: number;
  /** Fixed cost of one submitted dispatch waited for, ms. */
  dispatchMs: number;
  /** Cost of one more tiny dispatch inside a command buffer, ms. */
  perDispatchMs: number;
  /** Host-staged transfer latency (α), ms. */
  transferLatencyMs: number;
  /** Host-staged transfer bandwidth (1/β), GB/s. */
  transferGBs: number;
}

/** A one-number speed figure for listings: the GEMM throughput. */
export function speedFigure(c: DeviceCalibration): string {
  return `${c.gemmGflops.toFixed(1)} GFLOP/s gemm, ${c.lookupGBs.toFixed(2)} GB/s lookups`;
}

function runtimeName(): string {
  const g = globalThis as { Deno?: { version: { deno: string } }; process?: { versions?: { node?: string } } };
  if (g.Deno) return `deno ${g.Deno.version.deno}`;
  if (g.process?.versions?.node) return `node ${g.process.versions.node}`;
  return "browser";
}

async function machineName(): Promise<string> {
  try {
    const os = await import(/* @vite-ignore */ "node:os");
    return os.hostname();
  } catch {
    return "browser";
  }
}

/** The cache key of an adapter on this machine and runtime. */
export async function calibrationKey(facts: AdapterFacts): Promise<string> {
  return [await machineName(), runtimeName().split(" ")[0], facts.name, facts.driver].filter(Boolean).join(" | ");
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * Median wall-clock seconds of one submission of `ds`: one warm-up (pipeline
 * compilation), then rounds of back-to-back submissions sized to take about
 * `targetSec` each.
 */
async function timeDispatches(device: GPUDevice, ds: readonly Dispatch[], targetSec: number, rounds = 3): Promise<number> {
  const submit = () => {
    const enc = device.createCommandEncoder({ label: "calibrate" });
    encodeDispatches(enc, ds);
    device.queue.submit([enc.finish()]);
  };
  const timed = async (reps: number) => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) submit();
    await device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / 1000 / reps;
  };
  submit();
  await device.queue.onSubmittedWorkDone();
  const first = await timed(1);
  const reps = Math.max(1, Math.min(50, Math.round(targetSec / first)));
  const out = [first];
  for (let r = 1; r < rounds; r++) out.push(await timed(reps));
  return median(out);
}

/** Seconds for one host-staged transfer of `bytes`: copy to a mappable buffer, map, write into `dst`. */
async function timeTransfer(device: GPUDevice, bytes: number, rounds: number): Promise<number> {
  const src = createStorage(device, bytes, "calibrate:xfer-src");
  const dst = createStorage(device, bytes, "calibrate:xfer-dst");
  const staging = device.createBuffer({ label: "calibrate:xfer-staging", size: bytes, usage: 0x0001 | 0x0008 }); // MAP_READ | COPY_DST
  const once = async () => {
    const enc = device.createCommandEncoder({ label: "calibrate:xfer" });
    enc.copyBufferToBuffer(src, 0, staging, 0, bytes);
    device.queue.submit([enc.finish()]);
    await staging.mapAsync(0x0001);
    const data = staging.getMappedRange().slice(0);
    staging.unmap();
    device.queue.writeBuffer(dst, 0, data);
    await device.queue.onSubmittedWorkDone();
  };
  await once();
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    await once();
    out.push((performance.now() - t0) / 1000);
  }
  for (const b of [src, dst, staging]) b.destroy();
  return median(out);
}

/** Measures one device (about a second on lavapipe, a few on SwiftShader). */
export async function measureDevice(ctx: GpuContext, opts: { quick?: boolean } = {}): Promise<Omit<DeviceCalibration, "key">> {
  const device = ctx.device;
  const rng = new Rng(7);
  const target = opts.quick ? 0.05 : 0.15;

  // Embedding forward and backward: one table, 2048 bags of 8.
  const rows = 1 << 16, dim = 64, B = 2048, L = 8;
  const set = createTableSet(device, { rows: [rows], dim, label: "calibrate:emb" });
  const offsets = new Uint32Array(B + 1);
  for (let b = 0; b < B; b++) offsets[b + 1] = offsets[b]! + L;
  const indices = new Uint32Array(B * L);
  for (let i = 0; i < indices.length; i++) indices[i] = rng.int(rows);
  const bags = uploadBagBatch(device, { batchSize: B, offsets, indices }, [rows], "calibrate:bags");
  const out = createStorage(device, B * dim * 4, "calibrate:emb-out");
  const fwd = prepareEmbeddingBagForward(device, { tables: set, bags, out, outStride: dim, outOffset: 0 });
  const fwdSec = await timeDispatches(device, fwd, target);
  const optim = createOptimizerParams(device, { lr: 0.01 });
  const state = createEmbeddingOptimizerState(device, set, "sgd");
  const bwd = prepareEmbeddingBagBackward(device, { tables: set, state, bags, gradOut: out, gradStride: dim, gradOffset: 0, maxIndices: B * L, optim, label: "calibrate:emb-bwd" });
  const bwdSec = await timeDispatches(device, bwd.dispatches, target);
  bwd.destroy();
  destroyTableSet(set);
  for (const b of [bags.offsets, bags.indices, out, optim]) b.destroy();

  // GEMM through nn.Linear forward.
  const m = 512, n = 256, k = 512;
  const x = uploadStorage(device, Float32Array.from({ length: m * k }, () => rng.uniform() - 0.5), "calibrate:x");
  const w = uploadStorage(device, Float32Array.from({ length: n * k }, () => rng.uniform() - 0.5), "calibrate:w");
  const bias = createStorage(device, n * 4, "calibrate:b");
  const y = createStorage(device, m * n * 4, "calibrate:y");
  const gemmSec = await timeDispatches(device, prepareLinearForward(device, { x, w, b: bias, y, m, n, k, activation: "relu" }), target);
  for (const b of [x, w, bias, y]) b.destroy();

  // Fixed cost of a dispatch: a 64-element copy, submitted and waited for one at a time.
  const s = createStorage(device, 256, "calibrate:tiny-src"), d = createStorage(device, 256, "calibrate:tiny-dst");
  const tiny = [prepareCopy(device, { src: s, dst: d, count: 64 })];
  await timeDispatches(device, tiny, 0, 1);
  const ticks: number[] = [];
  for (let i = 0; i < (opts.quick ? 5 : 9); i++) {
    const t0 = performance.now();
    const enc = device.createCommandEncoder();
    encodeDispatches(enc, tiny);
    device.queue.submit([enc.finish()]);
    await device.queue.onSubmittedWorkDone();
    ticks.push(performance.now() - t0);
  }
  // Per-dispatch cost: 64 tiny dispatches in one pass, less one round trip.
  const many = new Array(64).fill(tiny[0]!);
  const manySec = await timeDispatches(device, many, opts.quick ? 0.02 : 0.05);
  const perDispatchMs = Math.max(0, (manySec * 1e3 - median(ticks)) / 63);
  s.destroy();
  d.destroy();

  // Host-staged transfer: α from a small message, β from the difference to a large one.
  const small = 4 << 10, large = 4 << 20;
  const tSmall = await timeTransfer(device, small, opts.quick ? 3 : 5);
  const tLarge = await timeTransfer(device, large, opts.quick ? 2 : 3);
  const transferGBs = (large - small) / Math.max(1e-9, tLarge - tSmall) / 1e9;

  const elems = B * L * dim;
  return {
    version: CALIBRATION_VERSION,
    adapter: ctx.adapter.name,
    runtime: runtimeName(),
    measuredAt: new Date().toISOString(),
    lookupSecPerElem: fwdSec / elems,
    lookupGBs: (elems * 4) / fwdSec / 1e9,
    backwardSecPerElem: bwdSec / elems,
    gemmGflops: (2 * m * n * k) / gemmSec / 1e9,
    dispatchMs: median(ticks),
    perDispatchMs,
    transferLatencyMs: tSmall * 1000,
    transferGBs,
  };
}

// ----------------------------------------------------------------- cache

interface CacheFile {
  version: number;
  devices: Record<string, DeviceCalibration>;
}

async function cachePath(): Promise<string | undefined> {
  try {
    const os = await import(/* @vite-ignore */ "node:os");
    const path = await import(/* @vite-ignore */ "node:path");
    const g = globalThis as { process?: { env: Record<string, string | undefined> } };
    const dir = g.process?.env.DLRM_CACHE_DIR ?? path.join(g.process?.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "webgpu-dlrm");
    return path.join(dir, "calibration.json");
  } catch {
    return undefined; // browser: no cache
  }
}

async function readCache(file: string): Promise<CacheFile> {
  try {
    const fs = await import(/* @vite-ignore */ "node:fs/promises");
    const j = JSON.parse(await fs.readFile(file, "utf8")) as CacheFile;
    if (j.version === CALIBRATION_VERSION && j.devices && typeof j.devices === "object") return j;
  } catch {
    // missing or unreadable: start afresh
  }
  return { version: CALIBRATION_VERSION, devices: {} };
}

async function writeCache(file: string, c: CacheFile): Promise<void> {
  const fs = await import(/* @vite-ignore */ "node:fs/promises");
  const path = await import(/* @vite-ignore */ "node:path");
  await fs.mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${Date.now()}.tmp`;
  await fs.writeFile(tmp, JSON.stringify(c, null, 2) + "\n");
  await fs.rename(tmp, file);
}

export interface CalibrateOptions {
  /** Measure even when a cached figure exists (and replace it). */
  recalibrate?: boolean;
  /** Fewer repetitions (tests). */
  quick?: boolean;
  /** Cache file (default ~/.cache/webgpu-dlrm/calibration.json); null: no cache. */
  cacheFile?: string | null;
}

/** The cached calibration of an adapter, if there is one. */
export async function cachedCalibration(facts: AdapterFacts, opts: Pick<CalibrateOptions, "cacheFile"> = {}): Promise<DeviceCalibration | undefined> {
  const file = opts.cacheFile === null ? undefined : (opts.cacheFile ?? (await cachePath()));
  if (!file) return undefined;
  return (await readCache(file)).devices[await calibrationKey(facts)];
}

/** The device's calibration: from the cache when present, else measured now and cached. */
export async function calibrate(ctx: GpuContext, opts: CalibrateOptions = {}): Promise<DeviceCalibration & { cached: boolean }> {
  const key = await calibrationKey(ctx.adapter);
  const file = opts.cacheFile === null ? undefined : (opts.cacheFile ?? (await cachePath()));
  const hit = file && !opts.recalibrate ? (await readCache(file)).devices[key] : undefined;
  if (hit) return { ...hit, cached: true };
  const measured: DeviceCalibration = { key, ...(await measureDevice(ctx, { quick: opts.quick })) };
  if (file) {
    const fresh = await readCache(file); // another process may have written meanwhile
    fresh.devices[key] = measured;
    await writeCache(file, fresh);
  }
  return { ...measured, cached: false };
}

/** Calibrates each context in turn (devices on one adapter share one cache entry). */
export async function calibrateAll(ctxs: readonly GpuContext[], opts: CalibrateOptions = {}): Promise<(DeviceCalibration & { cached: boolean })[]> {
  const byKey = new Map<string, DeviceCalibration & { cached: boolean }>();
  const out: (DeviceCalibration & { cached: boolean })[] = [];
  for (const c of ctxs) {
    const key = await calibrationKey(c.adapter);
    let cal = byKey.get(key);
    if (!cal) {
      cal = await calibrate(c, opts);
      byKey.set(key, cal);
    }
    out.push(cal);
  }
  return out;
}
