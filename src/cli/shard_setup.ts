/**
 * Multi-device options shared by `plan` and `train`: which devices
 * (--devices, --adapters), how to price their links (--interconnect), how much
 * memory each may use (--device-memory), and the planner run on the
 * calibrated devices.
 */
import { type AdapterEntry, createContexts, type GpuContext, listAdapters, matchAdapter } from "../gpu/context.ts";
import type { DlrmConfig } from "../model/config.ts";
import { cachedCalibration, calibrate, type DeviceCalibration } from "../shard/calibrate.ts";
import { isSoftwareAdapter, type ModelShape, shapeFromConfig } from "../shard/cost_model.ts";
import { layoutOf } from "../model/params.ts";
import { INTERCONNECT_NAMES, INTERCONNECTS, type Interconnect, interconnectByName } from "../shard/interconnect.ts";
import { planSharding, type PlannerOptions, type PlanResult } from "../shard/planner.ts";
import type { AllreduceLink, AllreduceSchedule } from "../shard/collectives.ts";
import { type FlagSpec, type FlagValues, UsageError } from "./args.ts";

export const SHARD_FLAGS: FlagSpec[] = [
  { name: "devices", type: "int", default: 1, help: "WebGPU devices to shard the model over (on the first adapter, requested anew for each)", meta: "N" },
  { name: "adapters", type: "string", help: "one device per listed adapter, by case-insensitive substring (a name may repeat), e.g. llvmpipe,swiftshader; see `adapters`", meta: "NAME,NAME,..." },
  {
    name: "interconnect",
    type: "choice",
    choices: INTERCONNECT_NAMES,
    default: "pcie4",
    help:
      "link the all-to-all and allreduce are modelled on, beside the measured host-staged copies: " +
      Object.values(INTERCONNECTS)
        .map((ic) => `${ic.name} = ${ic.describe} [${ic.source}]`)
        .join("; ") +
      "; host = this machine's measured host-staged copy",
  },
  { name: "device-memory", type: "string", help: "memory each device may use, e.g. 512MiB or 2GiB (default: 3/4 of host RAM split between the devices: the software adapters allocate from it)", meta: "SIZE" },
  { name: "recalibrate", type: "bool", default: false, help: "measure the devices' speed again instead of using the cached calibration" },
];

/** "512MiB", "2GiB", "1.5GB", "1048576" -> bytes. */
export function parseBytes(text: string, flag = "--device-memory"): number {
  const m = /^\s*([\d.]+)\s*(b|kb|kib|mb|mib|gb|gib|tb|tib)?\s*$/i.exec(text);
  const units: Record<string, number> = { b: 1, kb: 1e3, kib: 2 ** 10, mb: 1e6, mib: 2 ** 20, gb: 1e9, gib: 2 ** 30, tb: 1e12, tib: 2 ** 40 };
  const v = m ? Number(m[1]) * units[(m[2] ?? "b").toLowerCase()]! : NaN;
  if (!(v > 0) || !Number.isFinite(v)) throw new UsageError(`${flag} expects a size like 512MiB or 2GiB, got '${text}'`);
  return Math.floor(v);
}

/** The adapter names a run asks for: --adapters, else --devices N copies of the first adapter (null). */
export function requestedAdapters(v: FlagValues): string[] | null {
  const list = v.adapters === undefined ? null : String(v.adapters).split(",").map((s) => s.trim());
  if (list && list.some((s) => !s)) throw new UsageError(`--adapters expects names separated by commas, got '${v.adapters}'`);
  const n = v.devices as number;
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--devices expects a positive integer, got ${n}`);
  if (list && n !== 1 && n !== list.length) throw new UsageError(`--devices ${n} and --adapters with ${list.length} names disagree; give one of them`);
  return list;
}

/** The adapter entry of each device the flags ask for (nothing is created yet). */
export async function chooseAdapters(v: FlagValues): Promise<AdapterEntry[]> {
  const list = requestedAdapters(v);
  const entries = await listAdapters();
  if (!list) return new Array<AdapterEntry>(v.devices as number).fill(entries[0]!);
  return list.map((name) => matchAdapter(entries, name));
}

/** Opens the devices the flags ask for. */
export async function openDevices(v: FlagValues, label: string): Promise<GpuContext[]> {
  const list = requestedAdapters(v);
  return list ? createContexts(list, { label }) : createContexts(v.devices as number, { label });
}

/** Each chosen adapter's calibration: cached, else measured on a device opened for it (and closed again). */
export async function calibrateAdapters(entries: readonly AdapterEntry[], recalibrate: boolean, log: (s: string) => void): Promise<DeviceCalibration[]> {
  const done = new Map<string, DeviceCalibration>();
  const out: DeviceCalibration[] = [];
  for (const e of entries) {
    let c = done.get(e.facts.listedName) ?? (recalibrate ? undefined : await cachedCalibration(e.facts));
    if (!c) {
      log(`calibrating ${e.facts.listedName} (once; cached in ~/.cache/webgpu-dlrm/calibration.json)`);
      const [ctx] = await createContexts([e.facts.listedName], { label: "calibrate" });
      try {
        c = await calibrate(ctx!, { recalibrate: true });
      } finally {
        ctx!.destroy();
      }
    }
    done.set(e.facts.listedName, c);
    out.push(c);
  }
  return out;
}

/** Memory per device from --device-memory, else 3/4 of host RAM split between the devices. */
export async function deviceMemory(v: FlagValues, devices: number): Promise<number[]> {
  if (v.deviceMemory !== undefined) return new Array<number>(devices).fill(parseBytes(String(v.deviceMemory)));
  let total = 8 * 2 ** 30;
  try {
    total = (await import(/* @vite-ignore */ "node:os")).totalmem();
  } catch {
    // no node:os (browser): assume 8 GiB
  }
  return new Array<number>(devices).fill(Math.floor((0.75 * total) / devices));
}

/** Mean indices per bag of the run's data (generated: K or (1+K)/2; Criteo: one per feature). */
export function poolingFactor(v: FlagValues): number {
  if (v.dataGeneration === "dataset") return 1;
  const k = v.numIndicesPerLookup as number;
  return v.numIndicesPerLookupFixed ? k : (1 + k) / 2;
}

export interface ShardSetup {
  shape: ModelShape;
  entries: AdapterEntry[];
  calibrations: DeviceCalibration[];
  memoryBytes: number[];
  /** The link the report models (--interconnect). */
  interconnect: Interconnect;
  result: PlanResult;
}

/**
 * The planner's options for `config` on devices of these speeds and adapter
 * names, as `train` and `plan` both use them: QR/MD tables whole, no
 * column-wise shards with row-wise Adagrad (not priced yet), and the shared-host estimate
 * (the step is the sum of the devices' work) when every adapter is a software
 * one, since those devices take turns on the host's cores.
 */
export function plannerOptions(config: DlrmConfig, speeds: PlannerOptions["speeds"], memoryBytes: number[], names: string[], allreduce: AllreduceChoice = {}): PlannerOptions {
  const layout = layoutOf(config);
  return {
    speeds,
    memoryBytes,
    names,
    // Row-wise Adagrad: column shards work (a per-row allreduce), but the cost model counts neither that allreduce nor
    // the split backward's extra dispatches (reduce + partial + update) and row-sum buffers yet.
    kinds: config.optimizer === "rwsadagrad" ? ["table", "row", "data"] : undefined,
    wholeTables: new Set(layout.tables.flatMap((t, i) => (t.kind === "plain" ? [] : [i]))),
    estimate: { sharedHost: names.every((x) => isSoftwareAdapter(x)), allreduce: allreduce.schedule, allreduceLink: allreduce.link },
  };
}

/** The MLP-gradient allreduce a run asks for: --allreduce, and the link its "auto" chooses by. */
export interface AllreduceChoice {
  schedule?: AllreduceSchedule;
  link?: AllreduceLink;
}

/**
 * --allreduce and the link "auto" models: the --interconnect preset's, or with
 * `host` this machine's host-staged copy as calibrated (the slowest device's α
 * and β), shared by the devices when every adapter is a software one (they
 * copy through the same cores). `calibrations` are needed for `host` only.
 */
export function allreduceChoice(v: FlagValues, names: readonly string[], calibrations?: readonly DeviceCalibration[]): AllreduceChoice {
  const schedule = (v.allreduce as AllreduceSchedule | undefined) ?? "auto";
  const name = (v.interconnect as string | undefined) ?? "pcie4";
  // One device has nothing to allreduce: no calibration needed.
  if (name !== "host" || !calibrations?.length) return { schedule, link: INTERCONNECTS[name]?.link(0, 1) };
  const ic = interconnectByName("host", slowestLink(calibrations));
  return { schedule, link: { ...ic.link(0, 1), shared: names.every((x) => isSoftwareAdapter(x)) } };
}

/** The slowest device's host-staged copy: the largest latency and the smallest bandwidth. */
function slowestLink(calibrations: readonly DeviceCalibration[]): { transferLatencyMs: number; transferGBs: number } {
  return { transferLatencyMs: Math.max(...calibrations.map((c) => c.transferLatencyMs)), transferGBs: Math.min(...calibrations.map((c) => c.transferGBs)) };
}

/** Chooses adapters, calibrates them and plans `config` on them as `train` will; PlanMemoryError before anything of the model is allocated. */
export async function planFromFlags(v: FlagValues, config: DlrmConfig, log: (s: string) => void): Promise<ShardSetup> {
  const entries = await chooseAdapters(v);
  const calibrations = await calibrateAdapters(entries, v.recalibrate as boolean, log);
  const memoryBytes = await deviceMemory(v, entries.length);
  const shape = shapeFromConfig(config, poolingFactor(v), v.miniBatchSize as number);
  const interconnect = interconnectByName(v.interconnect as string, slowestLink(calibrations));
  const names = entries.map((e) => e.facts.listedName);
  const result = planSharding(shape, plannerOptions(config, calibrations, memoryBytes, names, allreduceChoice(v, names, calibrations)));
  return { shape, entries, calibrations, memoryBytes, interconnect, result };
}
