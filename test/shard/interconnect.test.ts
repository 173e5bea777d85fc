/** The α-β interconnect model: presets, rounds of the butterfly and of the ring allreduce. Pure arithmetic. */
import { describe, expect, it } from "vitest";
import { butterflyRounds, collectiveSeconds, hostStaged, interconnectByName, INTERCONNECTS, NETWORK, NVLINK, PCIE4, ringAllreduceRounds, roundSeconds, uniformButterflyRounds } from "../../src/shard/interconnect.ts";
import { Rng } from "../../src/util/rng.ts";

describe("interconnect model", () => {
  it("prices a round as latency + the busiest device's bytes over the bandwidth; an empty round is free", () => {
    for (const [name, link] of [["nvlink", NVLINK], ["pcie4", PCIE4], ["network", NETWORK]] as const) {
      const ic = interconnectByName(name);
      const r = { sent: [1000, 5000, 0], received: [5000, 0, 1000] };
      expect(roundSeconds(ic, r)).toBeCloseTo(link.alpha + 5000 / link.bandwidth, 15);
      expect(roundSeconds(ic, { sent: [0, 0], received: [0, 0] })).toBe(0);
      expect(ic.source.length).toBeGreaterThan(10);
    }
    // TorchRec's planner constants, as stated.
    expect(NVLINK.bandwidth).toBe(600 * 1024 ** 3);
    expect(NETWORK.bandwidth).toBe(12.5 * 1024 ** 3);
    expect(() => interconnectByName("infiniband")).toThrow(/unknown interconnect 'infiniband'; presets: nvlink, pcie4, network, nvlink8\+network, host/);
    expect(() => interconnectByName("host")).toThrow(/calibration/);
    const host = interconnectByName("host", { transferLatencyMs: 0.2, transferGBs: 0.5 });
    expect(roundSeconds(host, { sent: [1e6], received: [0] })).toBeCloseTo(0.2e-3 + 1e6 / 0.5e9, 12);
    expect(hostStaged(1, 1).name).toBe("host");
  });

  it("prices rounds inside a node on the intra-node link and rounds across nodes on the network", () => {
    const ic = INTERCONNECTS["nvlink8+network"]!;
    const inside = { sent: [1e6, 1e6], received: [1e6, 1e6], pairs: [[0, 4] as const] };
    const across = { sent: [1e6, 1e6], received: [1e6, 1e6], pairs: [[0, 8] as const] };
    expect(roundSeconds(ic, inside)).toBeCloseTo(NVLINK.alpha + 1e6 / NVLINK.bandwidth, 15);
    expect(roundSeconds(ic, across)).toBeCloseTo(NETWORK.alpha + 1e6 / NETWORK.bandwidth, 15);
  });

  it("moves every message to its destination in log2 N butterfly rounds, each between XOR partners", () => {
    const rng = new Rng(5);
    for (const n of [1, 2, 4, 8]) {
      const bytes = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 0 : 4 * rng.int(100))));
      const rounds = butterflyRounds(bytes);
      expect(rounds.length).toBe(Math.log2(n));
      rounds.forEach((r, k) => {
        for (const [a, b] of r.pairs!) expect(a ^ b).toBe(1 << k);
        expect(r.sent.reduce((x, y) => x + y, 0)).toBe(r.received.reduce((x, y) => x + y, 0));
      });
      // Each message crosses as many rounds as its endpoints differ in bits.
      let hops = 0;
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) hops += bytes[i]![j]! * [...(i ^ j).toString(2)].filter((c) => c === "1").length;
      expect(rounds.reduce((a, r) => a + r.sent.reduce((x, y) => x + y, 0), 0)).toBe(hops);
    }
    expect(() => butterflyRounds([[0, 1, 1], [1, 0, 1], [1, 1, 0]])).toThrow(/power-of-two/);
  });

  it("has a closed form for the uniform butterfly that matches the general one", () => {
    for (const n of [2, 4, 16]) {
      const m = 256;
      const general = butterflyRounds(Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (i === j ? 0 : m))));
      const closed = uniformButterflyRounds(n, m);
      expect(closed.length).toBe(general.length);
      // Every device sends n/2 items in every round (what arrives for itself leaves the traffic, what passes through replaces it).
      closed.forEach((c, k) => {
        expect(general[k]!.sent).toEqual(new Array(n).fill(c.sent[0]));
        expect(c.sent[0]).toBe((n / 2) * m);
      });
      expect(collectiveSeconds(INTERCONNECTS.pcie4!, closed)).toBeCloseTo(collectiveSeconds(INTERCONNECTS.pcie4!, general), 15);
    }
  });

  it("ring allreduce: 2(N-1) rounds of bytes/N each", () => {
    for (const n of [2, 3, 5]) {
      const bytes = 6000;
      const rounds = ringAllreduceRounds(n, bytes);
      expect(rounds.length).toBe(2 * (n - 1));
      for (const r of rounds) expect(r.sent).toEqual(new Array(n).fill(Math.ceil(bytes / n)));
      expect(collectiveSeconds(INTERCONNECTS.network!, rounds)).toBeCloseTo(2 * (n - 1) * (NETWORK.alpha + Math.ceil(bytes / n) / NETWORK.bandwidth), 15);
    }
    expect(ringAllreduceRounds(1, 100)).toEqual([]);
  });
});

describe("scaling projection", () => {
  const sp = { lookupSecPerElem: 1e-10, backwardSecPerElem: 2e-10, gemmGflops: 1000, dispatchMs: 0.01, transferLatencyMs: 0, transferGBs: 1 };
  it("prices compute, the butterfly both ways and the ring allreduce, and adds them", async () => {
    const { PAPER_PROJECTION: P, projectStep, mlpParams } = await import("../../src/shard/cost_model.ts");
    const one = projectStep(P, 1, sp, INTERCONNECTS.pcie4!);
    expect(one.allToAllSec).toBe(0);
    expect(one.allreduceSec).toBe(0);
    for (const n of [8, 64]) {
      const r = projectStep(P, n, sp, INTERCONNECTS.network!);
      expect(r.globalBatch).toBe(P.perDeviceBatch * n);
      // Weak scaling: each device's lookups stay B_local x L x tables x d in total over the devices.
      expect(r.embeddingSec).toBeCloseTo(P.perDeviceBatch * P.poolingFactor * P.tables * P.dim * (sp.lookupSecPerElem + sp.backwardSecPerElem), 12);
      const perPeer = P.perDeviceBatch * (n <= P.tables ? (P.tables / n) * P.dim : P.tables * P.dim) * 4;
      expect(r.allToAllSec).toBeCloseTo(2 * Math.log2(n) * (NETWORK.alpha + ((n / 2) * perPeer) / NETWORK.bandwidth), 12);
      const shape = { tableRows: [1], dim: P.dim, bottomMlp: P.bottomMlp, topMlp: P.topMlp, interaction: "dot" as const, optimizer: "sgd" as const, batchSize: 1, poolingFactor: 1 };
      expect(r.allreduceSec).toBeCloseTo(2 * (n - 1) * (NETWORK.alpha + Math.ceil((mlpParams(shape) * 4) / n) / NETWORK.bandwidth), 12);
      expect(r.stepSec).toBeCloseTo(r.embeddingSec + r.mlpSec + r.allToAllSec + r.allreduceSec, 15);
      expect(r.samplesPerSec).toBeCloseTo(r.globalBatch / r.stepSec, 9);
    }
  });
});
