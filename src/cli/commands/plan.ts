/** `plan`: the sharding plan the planner makes for a run (same flags as train), as a table; allocates nothing of the model. */
import type { TablePlacement } from "../../shard/plan.ts";
import { estimatePlan } from "../../shard/cost_model.ts";
import { helpText, parseFlags, UsageError } from "../args.ts";
import { DATA_FLAGS, MODEL_FLAGS, RUN_FLAGS } from "../flags.ts";
import { cliHost } from "../host.ts";
import { makeConfig, makeSource, mergeConfigFile, registerKnown } from "../setup.ts";
import { PRESETS } from "../reference_flags.ts";
import { planFromFlags, SHARD_FLAGS, type ShardSetup } from "../shard_setup.ts";
import { formatBytes } from "./adapters.ts";

const PLAN_ONLY = [{ name: "save-plan", type: "string" as const, help: "also write the plan and its estimate as JSON to this file", meta: "FILE" }];
// A plan is for the main job's shape unless said otherwise: --preset main applies under the flags (none: the reference's defaults).
const PLAN_PRESET = { name: "preset", type: "choice" as const, choices: [...Object.keys(PRESETS), "none"], default: "main", help: "named options under the flags and --config (main: the built-in main job; none: the reference's defaults)" };
const PLAN_FLAGS = [...MODEL_FLAGS, ...DATA_FLAGS, ...RUN_FLAGS, ...SHARD_FLAGS.filter((f) => !MODEL_FLAGS.some((m) => m.name === f.name)), ...PLAN_ONLY, PLAN_PRESET];
registerKnown(PLAN_FLAGS.map((f) => f.name));

const HELP = helpText(
  "plan",
  "Prints the sharding plan for a run (the same flags as train): per device its shards, memory, lookups per step,\n" +
    "bytes sent and received per step, estimated compute and transfer time, and the balance (slowest / mean).\n" +
    "The planner (TorchRec-style: enumerate table/row/column/data-parallel options, estimate each with the calibrated\n" +
    "cost model, partition to balance, check memory) gives slower adapters fewer lookups and a smaller batch share.\n" +
    "It plans exactly as train does: with software adapters only (lavapipe, SwiftShader) in its shared-host mode\n" +
    "(the devices take turns on the host's cores: a step is the sum of their work), which it states.\n" +
    "Devices are calibrated once (see `adapters`). A model that cannot fit fails here, naming the table and the missing bytes.",
  PLAN_FLAGS,
  [
    "webgpu-dlrm plan --devices 4",
    "VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json:/usr/share/vulkan/icd.d/lvp_icd.json webgpu-dlrm plan --adapters llvmpipe,swiftshader",
    "webgpu-dlrm plan --devices 8 --arch-embedding-size 1000000-1000000-1000000-1000000 --arch-sparse-feature-size 64 --interconnect nvlink --device-memory 1GiB",
  ],
);

const ms = (s: number) => (s * 1e3).toFixed(s < 0.01 ? 3 : s < 1 ? 2 : 1);
const count = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : `${Math.round(n)}`);

function table(rows: string[][], right: boolean[]): string {
  const w = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (right[c] ? cell.padStart(w[c]!) : cell.padEnd(w[c]!))).join("  ").trimEnd()).join("\n") + "\n";
}

function describePlacement(p: TablePlacement): string {
  switch (p.kind) {
    case "table":
      return `t${p.table} table-wise on ${p.shards[0]!.device}`;
    case "data":
      return `t${p.table} data-parallel`;
    case "row":
      return `t${p.table} row-wise ${p.shards.map((s) => `${s.device}:${s.rowStart}-${s.rowEnd - 1}`).join(" ")}`;
    case "column":
      return `t${p.table} column-wise ${p.shards.map((s) => `${s.device}:${s.colStart}-${s.colEnd - 1}`).join(" ")}`;
  }
}

/** The plan report printed by `plan` (also used by bench/shard.ts). */
export function formatPlan(s: ShardSetup): string {
  const { result, shape, entries, calibrations, memoryBytes, interconnect } = s;
  const est = result.estimate;
  const modelled = estimatePlan(result.plan, shape, calibrations, interconnect);
  // The same plan if the devices ran in parallel (real GPUs), for comparison with the shared-host step.
  const parallel = estimatePlan(result.plan, shape, calibrations);
  const N = entries.length;
  const header = [
    "device", "adapter", "shards", "memory", "capacity", "lookups/step", "batch", "sent/step", "recv/step", "compute ms", "transfer ms", "step ms", `step on ${interconnect.name} ms`,
  ];
  const rows = est.devices.map((d, i) => {
    const kinds = result.plan.tables.filter((p) => p.shards.some((x) => x.device === i));
    const whole = kinds.filter((p) => p.kind === "table").length;
    const split = kinds.filter((p) => p.kind === "row" || p.kind === "column").length;
    const repl = kinds.filter((p) => p.kind === "data").length;
    const shards = [whole && `${whole} tables`, split && `${split} split`, repl && `${repl} replicas`].filter(Boolean).join(", ") || "none";
    return [
      String(i), entries[i]!.facts.listedName.slice(0, 28), shards, formatBytes(d.memoryBytes), formatBytes(memoryBytes[i]!), count(d.lookups), String(d.batch),
      formatBytes(d.sentBytes), formatBytes(d.receivedBytes), ms(d.computeSec), ms(d.transferSec), ms(d.totalSec), ms(d.computeSec + modelled.devices[i]!.transferSec),
    ];
  });
  const a2a = est.a2aBytes.reduce((a, r) => a + r.reduce((x, y) => x + y, 0), 0);
  const lines = [
    `sharding plan: ${shape.tableRows.length} tables (${count(shape.tableRows.reduce((a, b) => a + b, 0))} rows) x d=${shape.dim}, batch ${shape.batchSize}, ${shape.poolingFactor} ${shape.poolingFactor === 1 ? "index" : "indices"} per bag, ${shape.optimizer}; ${N} device${N === 1 ? "" : "s"}`,
    `speeds (calibrated): ${calibrations.map((c, i) => `[${i}] gemm ${c.gemmGflops.toFixed(2)} GFLOP/s, lookups ${c.lookupGBs.toFixed(3)} GB/s, host copy ${c.transferGBs.toFixed(3)} GB/s + ${c.transferLatencyMs.toFixed(2)} ms`).join("; ")}`,
    "",
    table([header, ...rows], header.map((_, c) => c >= 3 && c !== 4 ? true : c === 4)),
    `batch shares: ${result.plan.batchShare.map((x) => x.toFixed(3)).join(" / ")}; all-to-all ${formatBytes(a2a)} forward + the same backward per step, allreduce ${formatBytes(est.allreduceBytes)} per device; ${est.rounds.length} collective rounds`,
    est.sharedHost
      ? `mode: shared host, as train runs it: every adapter is a software one (the host's CPU), so the devices take turns on the same cores; a step is the SUM of the devices' work + the host-staged exchange; the batch split balances each device's own work (compute ms)`
      : `mode: devices in parallel, as train runs it: a step is the slowest device's compute + transfers`,
    est.sharedHost
      ? `estimated step ${ms(est.stepSec)} ms (shared host: devices ${ms(est.devices.reduce((a, d) => a + d.deviceWorkSec, 0))} + exchange ${ms(est.exchangeSec)}); ${ms(parallel.stepSec)} ms if the devices ran in parallel, ${ms(modelled.stepSec)} ms in parallel with the collectives on ${interconnect.name} (${interconnect.describe}); collectives ${ms(est.collectiveSec)} ms host-staged vs ${ms(modelled.collectiveSec)} ms on ${interconnect.name}`
      : `estimated step ${ms(est.stepSec)} ms (host-staged transfers), ${ms(modelled.stepSec)} ms with the collectives on ${interconnect.name} (${interconnect.describe}); collectives ${ms(est.collectiveSec)} ms host-staged vs ${ms(modelled.collectiveSec)} ms on ${interconnect.name}`,
    `balance (slowest / mean device${est.sharedHost ? " work" : ""}): ${(est.sharedHost ? est.workBalance : est.balance).toFixed(3)}`,
    "",
    "placements:",
    ...wrap(result.plan.tables.map(describePlacement), 110).map((l) => `  ${l}`),
    "",
  ];
  return lines.join("\n");
}

function wrap(items: string[], width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const it of items) {
    if (line && line.length + 2 + it.length > width) {
      out.push(line);
      line = it;
    } else line = line ? `${line}; ${it}` : it;
  }
  if (line) out.push(line);
  return out;
}

export async function planCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(HELP);
    return 0;
  }
  const { values: v, given, positional } = parseFlags(argv, PLAN_FLAGS, "plan");
  if (positional.length) throw new UsageError(`plan takes no positional arguments (got '${positional[0]}'); options start with --`);
  if (v.config) {
    let json: unknown;
    try {
      json = JSON.parse(await cliHost.readText(v.config as string));
    } catch (e) {
      throw new UsageError(`cannot read config file ${v.config}: ${(e as Error).message}`);
    }
    mergeConfigFile(v, given, json, v.config as string);
  }
  if (v.preset !== "none") mergeConfigFile(v, given, PRESETS[v.preset as string]!.options, `preset ${v.preset}`);
  const log = (s: string) => cliHost.error(`${s}\n`);
  const { source } = await makeSource(v, log);
  const config = makeConfig(v, source, given);
  const setup = await planFromFlags(v, config, log);
  cliHost.write(formatPlan(setup));
  if (v.savePlan) {
    await cliHost.writeText(v.savePlan as string, JSON.stringify({ plan: setup.result.plan, estimate: { ...setup.result.estimate, rounds: undefined, allreduce: { kind: setup.result.estimate.allreduce.kind } } }, null, 2) + "\n");
    cliHost.write(`plan written to ${v.savePlan}\n`);
  }
  return 0;
}
