/**
 * Interconnect model: what the all-to-all and the allreduce would cost on a
 * real link, beside the host-staged copies WebGPU makes us do here.
 *
 * α-β model (Hockney): a message of n bytes takes α + n / β. Links are full
 * duplex and every device has its own, so one round of a collective (every
 * device sending to and receiving from one peer at once) takes
 *   α + max over devices of max(sent, received) / β
 * and a collective is the sum of its rounds (rounds are sequential).
 *
 * Presets (bandwidth per device, one direction; latency per message):
 *   nvlink   600 GiB/s: TorchRec's planner, INTRA_NODE_BANDWIDTH in
 *            torchrec/distributed/planner/constants.py (600 * 1024^3 B/s;
 *            NVLink-class, e.g. A100 NVLink 3). α 11.8 µs: NCCL's tuning
 *            model (src/graph/tuning.cc), Ring/Simple base latency 8.4 µs +
 *            NVLink hardware latency 3.4 µs.
 *   pcie4    31.5 GB/s: PCI Express 4.0 x16, 16 GT/s per lane x 16 lanes
 *            with 128b/130b encoding = 31.5 GB/s per direction (PCI-SIG PCIe
 *            4.0 base specification). α 14.1 µs: NCCL tuning, 8.4 µs base +
 *            5.7 µs PCI.
 *   network  12.5 GiB/s: TorchRec's planner, CROSS_NODE_BANDWIDTH (12.5 *
 *            1024^3 B/s, about a 100 Gb/s NIC per GPU). α 18 µs: NCCL tuning,
 *            8.4 µs base + 9.6 µs network.
 *   nvlink8+network   8 devices per node on nvlink, nodes joined by network:
 *            a round whose pairs all lie within a node is priced as nvlink,
 *            else as network (the butterfly's first 3 rounds stay in a node).
 *   host     this machine's host-staged copy (copy -> map -> write), α and β
 *            from the calibration (src/shard/calibrate.ts) of the slowest
 *            device; what the trainer actually pays here.
 */
import { ConfigError } from "../gpu/errors.ts";

export interface Link {
  /** Latency per message, seconds. */
  alpha: number;
  /** Bandwidth per device and direction, bytes per second. */
  bandwidth: number;
}

export interface Interconnect {
  name: string;
  /** One line for --help and reports. */
  describe: string;
  /** Where the numbers come from. */
  source: string;
  /** The link joining devices a and b (a != b). */
  link(a: number, b: number): Link;
}

const GiB = 1024 ** 3;

function uniform(name: string, describe: string, source: string, link: Link): Interconnect {
  return { name, describe, source, link: () => link };
}

export const NVLINK: Link = { alpha: 11.8e-6, bandwidth: 600 * GiB };
export const PCIE4: Link = { alpha: 14.1e-6, bandwidth: 31.5e9 };
export const NETWORK: Link = { alpha: 18e-6, bandwidth: 12.5 * GiB };

/** `perNode` devices per node on `intra`, nodes joined by `inter`. */
export function hierarchical(name: string, perNode: number, intra: Link, inter: Link, source: string): Interconnect {
  return {
    name,
    describe: `${perNode} devices per node on ${fmtLink(intra)}, nodes joined by ${fmtLink(inter)}`,
    source,
    link: (a, b) => (Math.floor(a / perNode) === Math.floor(b / perNode) ? intra : inter),
  };
}

/** The host-staged "interconnect" of this machine, from calibrated α and β. */
export function hostStaged(latencyMs: number, gbs: number): Interconnect {
  return uniform("host", `host-staged copies on this machine: ${fmtLink({ alpha: latencyMs / 1e3, bandwidth: gbs * 1e9 })}`, "measured by the calibration (copy to a mappable buffer, map, write into the peer)", {
    alpha: latencyMs / 1e3,
    bandwidth: gbs * 1e9,
  });
}

export const INTERCONNECTS: Record<string, Interconnect> = {
  nvlink: uniform("nvlink", `NVLink-class intra-node: ${fmtLink(NVLINK)}`, "TorchRec planner INTRA_NODE_BANDWIDTH (600 GiB/s); α from NCCL tuning.cc (8.4 µs base + 3.4 µs NVLink)", NVLINK),
  pcie4: uniform("pcie4", `PCIe 4.0 x16: ${fmtLink(PCIE4)}`, "PCI-SIG PCIe 4.0: 16 GT/s x 16 lanes, 128b/130b = 31.5 GB/s per direction; α from NCCL tuning.cc (8.4 + 5.7 µs)", PCIE4),
  network: uniform("network", `cross-node networking: ${fmtLink(NETWORK)}`, "TorchRec planner CROSS_NODE_BANDWIDTH (12.5 GiB/s); α from NCCL tuning.cc (8.4 + 9.6 µs)", NETWORK),
  "nvlink8+network": hierarchical("nvlink8+network", 8, NVLINK, NETWORK, "nvlink inside a node of 8, network between nodes (sources as those presets)"),
};

/** Names accepted by --interconnect ("host" needs a calibration, so it is resolved by the caller). */
export const INTERCONNECT_NAMES = [...Object.keys(INTERCONNECTS), "host"] as const;

export function fmtLink(l: Link): string {
  const bw = l.bandwidth >= 1e9 ? `${(l.bandwidth / 1e9).toFixed(1)} GB/s` : `${(l.bandwidth / 1e6).toFixed(1)} MB/s`;
  return `${bw}, ${(l.alpha * 1e6).toFixed(1)} µs latency`;
}

/** The preset named `name`; ConfigError listing the presets otherwise. `host` is built from a calibration. */
export function interconnectByName(name: string, host?: { transferLatencyMs: number; transferGBs: number }): Interconnect {
  if (name === "host") {
    if (!host) throw new ConfigError("--interconnect host needs a device calibration");
    return hostStaged(host.transferLatencyMs, host.transferGBs);
  }
  const ic = INTERCONNECTS[name];
  if (!ic) throw new ConfigError(`unknown interconnect '${name}'; presets: ${INTERCONNECT_NAMES.join(", ")}`);
  return ic;
}

/** One round of a collective: bytes each device sends and receives, and who talks to whom. */
export interface RoundTraffic {
  sent: readonly number[];
  received: readonly number[];
  /** (from, to) pairs exchanging data; when omitted, every device is taken to talk to its butterfly/ring peer on `ic.link(0, 1)`. */
  pairs?: readonly (readonly [number, number])[];
}

/**
 * Seconds one round takes on `ic`: α + the busiest device's max(sent,
 * received) / β, with α and β of the slowest link used in the round. A round
 * in which nothing moves costs nothing.
 */
export function roundSeconds(ic: Interconnect, r: RoundTraffic): number {
  const busiest = Math.max(0, ...r.sent.map((s, i) => Math.max(s, r.received[i] ?? 0)));
  if (busiest === 0) return 0;
  const links = (r.pairs && r.pairs.length ? r.pairs : [[0, 1] as const]).map(([a, b]) => ic.link(a, b));
  const alpha = Math.max(...links.map((l) => l.alpha));
  const bw = Math.min(...links.map((l) => l.bandwidth));
  return alpha + busiest / bw;
}

/** Seconds of a whole collective (its rounds in sequence) on `ic`. */
export function collectiveSeconds(ic: Interconnect, rounds: readonly RoundTraffic[]): number {
  return rounds.reduce((t, r) => t + roundSeconds(ic, r), 0);
}

/**
 * The rounds of a butterfly all-to-all on n = 2^k devices when device i sends
 * `bytes[i][j]` to device j (recursive doubling: in round r device i
 * exchanges with i XOR 2^r everything whose destination differs from i in
 * bit r, its own and what passes through). Pure arithmetic: the traffic of
 * each round, as the trainer's all-to-all would move it.
 */
export function butterflyRounds(bytes: readonly (readonly number[])[]): RoundTraffic[] {
  const n = bytes.length;
  if (n < 1 || (n & (n - 1)) !== 0) throw new ConfigError(`the butterfly needs a power-of-two device count, got ${n}`);
  // holding[d] = items (from, to, bytes) currently on device d
  let holding: { to: number; bytes: number }[][] = bytes.map((row, i) => row.map((b, j) => ({ to: j, bytes: b })).filter((x, j) => j !== i && x.bytes > 0));
  const rounds: RoundTraffic[] = [];
  for (let bit = 1; bit < n; bit <<= 1) {
    const sent = new Array<number>(n).fill(0);
    const received = new Array<number>(n).fill(0);
    const next: { to: number; bytes: number }[][] = Array.from({ length: n }, () => []);
    const pairs: [number, number][] = [];
    for (let d = 0; d < n; d++) {
      for (const it of holding[d]!) {
        if ((it.to ^ d) & bit) {
          const peer = d ^ bit;
          sent[d]! += it.bytes;
          received[peer]! += it.bytes;
          if (it.to !== peer) next[peer]!.push(it);
        } else next[d]!.push(it);
      }
      if (sent[d]! > 0) pairs.push([d, d ^ bit]);
    }
    rounds.push({ sent, received, pairs });
    holding = next;
  }
  return rounds;
}

/** The rounds of a ring allreduce of `bytes` per device on n devices: n-1 reduce-scatter + n-1 allgather rounds of bytes/n. */
export function ringAllreduceRounds(n: number, bytes: number): RoundTraffic[] {
  if (n <= 1 || bytes <= 0) return [];
  const chunk = Math.ceil(bytes / n);
  const pairs = Array.from({ length: n }, (_, i) => [i, (i + 1) % n] as const);
  return Array.from({ length: 2 * (n - 1) }, () => ({ sent: new Array<number>(n).fill(chunk), received: new Array<number>(n).fill(chunk), pairs }));
}

/**
 * Closed form of butterflyRounds for the uniform case (every device sends
 * `perPeer` bytes to every other device), for projections to many devices:
 * each of the log2 n rounds moves n/2 items of perPeer bytes each way per
 * device. `pairs` names round r's exchange of device 0 (enough for a
 * hierarchical link, as all devices of a round cross the same level).
 */
export function uniformButterflyRounds(n: number, perPeer: number): RoundTraffic[] {
  if (n < 1 || (n & (n - 1)) !== 0) throw new ConfigError(`the butterfly needs a power-of-two device count, got ${n}`);
  const out: RoundTraffic[] = [];
  for (let bit = 1; bit < n; bit <<= 1) out.push({ sent: [(n / 2) * perPeer], received: [(n / 2) * perPeer], pairs: [[0, bit]] });
  return out;
}
