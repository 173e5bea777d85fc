/** `adapters`: the WebGPU adapters this host offers, their limits and a measured speed figure. */
import { createContexts, listAdapters } from "../../gpu/context.ts";
import { cachedCalibration, calibrate, type DeviceCalibration } from "../../shard/calibrate.ts";
import { type FlagSpec, helpText, parseFlags, UsageError } from "../args.ts";
import { cliHost } from "../host.ts";

export const ADAPTERS_FLAGS: FlagSpec[] = [
  { name: "calibrate", type: "bool", default: true, help: "measure each adapter once (cached in ~/.cache/webgpu-dlrm/calibration.json) and show its speed; --no-calibrate lists only" },
  { name: "recalibrate", type: "bool", default: false, help: "measure again even when a cached figure exists" },
];

const HELP = helpText(
  "adapters",
  "Lists the WebGPU adapters of this host with their limits and a measured speed figure (embedding lookups,\n" +
    "GEMM, host-staged transfer; the calibration the planner uses). Under Node every Vulkan ICD listed in\n" +
    "VK_ICD_FILENAMES (colon-separated) is an adapter; names given to --adapters match a substring of them.",
  ADAPTERS_FLAGS,
  [
    "webgpu-dlrm adapters",
    "VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json:/usr/share/vulkan/icd.d/lvp_icd.json webgpu-dlrm adapters",
    "webgpu-dlrm adapters --recalibrate",
  ],
);

/** Bytes as B, KiB, MiB, GiB or TiB (one decimal unless exact). */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (Math.abs(n) >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${Number.isInteger(n) ? n : n.toFixed(1)} ${units[u]}`;
}

export function formatCalibration(c: DeviceCalibration): string[] {
  return [
    `embedding lookups ${c.lookupGBs.toFixed(3)} GB/s of rows (forward), backward+update ${(c.backwardSecPerElem * 1e9).toFixed(2)} ns per element`,
    `GEMM ${c.gemmGflops.toFixed(2)} GFLOP/s (linear 512x512->256), dispatch round trip ${c.dispatchMs.toFixed(3)} ms, ${c.perDispatchMs.toFixed(3)} ms per further dispatch`,
    `host-staged transfer: latency ${c.transferLatencyMs.toFixed(3)} ms, ${c.transferGBs.toFixed(3)} GB/s`,
  ];
}

export async function adaptersCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(HELP);
    return 0;
  }
  const { values: v, positional } = parseFlags(argv, ADAPTERS_FLAGS, "adapters");
  if (positional.length) throw new UsageError(`adapters takes no positional arguments (got '${positional[0]}')`);
  const entries = await listAdapters();
  const icd = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.VK_ICD_FILENAMES;
  cliHost.write(`${entries.length} adapter${entries.length === 1 ? "" : "s"} on ${cliHost.runtime()}${icd ? ` (VK_ICD_FILENAMES=${icd})` : ""}\n`);
  for (const [i, e] of entries.entries()) {
    const f = e.facts;
    cliHost.write(`\n[${i}] ${f.listedName}${f.listedName !== f.name ? ` - ${f.name}` : ""}\n`);
    cliHost.write(`    vendor ${f.vendor || "?"}, architecture ${f.architecture || "?"}${f.isFallbackAdapter ? ", fallback adapter" : ""}\n`);
    cliHost.write(`    limits: ${Object.entries(e.limits).map(([k, n]) => `${k} ${k.endsWith("Size") ? formatBytes(n) : n}`).join(", ")}\n`);
    cliHost.write(`    features: ${f.features.join(", ") || "none"}\n`);
    if (v.calibrate) {
      let c: DeviceCalibration & { cached: boolean };
      const hit = v.recalibrate ? undefined : await cachedCalibration(f);
      if (hit) c = { ...hit, cached: true };
      else {
        const [ctx] = await createContexts([f.listedName], { label: "calibrate" });
        try {
          c = await calibrate(ctx!, { recalibrate: true });
        } finally {
          ctx!.destroy();
        }
      }
      const lines = formatCalibration(c);
      cliHost.write(`    speed (${c.cached ? `cached ${c.measuredAt}` : "measured now"}): ${lines[0]}\n${lines.slice(1).map((l) => `      ${l}\n`).join("")}`);
    }
  }
  return 0;
}
