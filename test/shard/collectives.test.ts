/**
 * The collectives alone, on N = 1..5 devices (independent GPUDevices on the
 * test adapter): the personalized all-to-all under every schedule that
 * applies (butterfly for powers of two, Bruck, direct), with ragged and empty
 * messages, against a CPU reference (a copy: exact); the ring and the
 * recursive halving/doubling allreduce against a float64 sum, with the
 * float32 bound of an N-term sum (sumTolerance), bit-identical on every
 * device and between runs (the halving/doubling schedule also checked
 * symbolically for N = 1..9, and the auto choice); and the two
 * small kernels (add, route) against their float64 references.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createContexts, type GpuContext } from "../../src/gpu/context.ts";
import { readF32, uploadStorage } from "../../src/gpu/buffers.ts";
import { submitDispatches } from "../../src/gpu/dispatch.ts";
import { prepareAdd, prepareQrMult, prepareRoute, type RouteColumn } from "../../src/kernels/shard.ts";
import { addRef, routeRef } from "../../src/kernels/reference/shard.ts";
import { allreduceRounds, AllToAll, type AllToAllSchedule, chooseAllreduce, createAllreduce, halvingDoublingRounds, HalvingDoublingAllreduce, type Message, nextHop, RingAllreduce, ringRounds, scheduleRounds } from "../../src/shard/collectives.ts";
import { expectAllClose, expectBitIdentical, sumTolerance } from "../helpers/assert.ts";
import { Rng } from "../helpers/random.ts";

let ctxs: GpuContext[] = [];
beforeAll(async () => {
  ctxs = await createContexts(5, { label: "collectives" });
});
afterAll(() => ctxs.forEach((c) => c.destroy()));

const devicesOf = (n: number) => ctxs.slice(0, n).map((c) => c.device);

function randomF32(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.range(-2, 2);
  return a;
}

describe("all-to-all schedules (routing only)", () => {
  for (const [schedule, ns] of [["butterfly", [1, 2, 4, 8, 16]], ["bruck", [1, 2, 3, 4, 5, 6, 7, 9, 12]], ["direct", [1, 2, 3, 5]]] as const) {
    it(`${schedule}: every item reaches its destination in ${schedule === "direct" ? "N-1" : "ceil(log2 N)"} rounds`, () => {
      for (const n of ns) {
        const R = scheduleRounds(schedule, n);
        expect(R).toBe(n === 1 ? 0 : schedule === "direct" ? n - 1 : Math.ceil(Math.log2(n)));
        for (let from = 0; from < n; from++) {
          for (let to = 0; to < n; to++) {
            let cur = from;
            for (let r = 0; r < R; r++) {
              const next = nextHop(schedule, n, r, from, cur, to);
              if (schedule === "butterfly" && next !== cur) expect(next).toBe(cur ^ (1 << r));
              if (schedule === "bruck" && next !== cur) expect(next).toBe((cur + (1 << r)) % n);
              cur = next;
            }
            expect(cur, `${schedule} n=${n}: ${from} -> ${to}`).toBe(to);
          }
        }
      }
    });
  }
});

describe("all-to-all on GPU devices", () => {
  for (let n = 1; n <= 5; n++) {
    const schedules: AllToAllSchedule[] = ["auto", "bruck", "direct", ...(n & (n - 1) ? [] : (["butterfly"] as const))];
    for (const schedule of schedules) {
      it(`N=${n}, ${schedule}: ragged and empty messages land exactly`, async () => {
        const devices = devicesOf(n);
        const rng = new Rng(100 * n + schedule.length);
        // Message i -> j holds floats[i][j] floats; some are empty (0), sizes are ragged.
        const floats = Array.from({ length: n }, () => Array.from({ length: n }, () => (rng.uniform() < 0.25 ? 0 : 1 + rng.int(37))));
        const srcData: Float32Array[] = [];
        const srcBufs: GPUBuffer[] = [];
        const dstBufs: GPUBuffer[] = [];
        const messages: Message[] = [];
        const expected: Float32Array[] = [];
        for (let i = 0; i < n; i++) {
          const total = floats[i]!.reduce((a, b) => a + b, 0) + 3; // 3 floats of padding in front
          srcData.push(randomF32(rng, total));
          srcBufs.push(uploadStorage(devices[i]!, srcData[i]!, `src@${i}`));
        }
        for (let j = 0; j < n; j++) {
          const total = floats.reduce((a, row) => a + row[j]!, 0) + 5;
          expected.push(new Float32Array(total).fill(NaN));
          dstBufs.push(uploadStorage(devices[j]!, new Float32Array(total).fill(NaN), `dst@${j}`));
        }
        // Sources packed by destination (after 3 padding floats); destinations packed by source (after 5).
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            const so = 3 + floats[i]!.slice(0, j).reduce((a, b) => a + b, 0);
            const dO = 5 + floats.slice(0, i).reduce((a, row) => a + row[j]!, 0);
            const len = floats[i]![j]!;
            messages.push({ from: i, to: j, bytes: len * 4, src: { buffer: srcBufs[i]!, offset: so * 4 }, dst: { buffer: dstBufs[j]!, offset: dO * 4 } });
            expected[j]!.set(srcData[i]!.subarray(so, so + len), dO);
          }
        }
        const a2a = new AllToAll(devices, messages, { schedule });
        const stats = await a2a.run();
        for (let j = 0; j < n; j++) expectBitIdentical(await readF32(devices[j]!, dstBufs[j]!), expected[j]!, `device ${j} received`);
        // Stats: rounds as the schedule says; every byte of an off-device message is sent at least once.
        expect(stats.rounds.length).toBe(scheduleRounds(a2a.schedule, n));
        const offDevice = floats.flatMap((row, i) => row.filter((_, j) => j !== i)).reduce((a, b) => a + b, 0) * 4;
        const sent = stats.rounds.reduce((a, r) => a + r.sent.reduce((x, y) => x + y, 0), 0);
        expect(sent).toBeGreaterThanOrEqual(offDevice);
        if (a2a.schedule === "direct") expect(sent).toBe(offDevice);
        expect(stats.localBytes).toBe(floats.reduce((a, row, i) => a + row[i]!, 0) * 4);
        for (const r of stats.rounds) {
          expect(r.sent.reduce((a, b) => a + b, 0)).toBe(r.received.reduce((a, b) => a + b, 0));
          if (a2a.schedule === "butterfly") {
            const round = Number(r.label.split(" r")[1]);
            for (const [f, t] of r.pairs) expect(t).toBe(f ^ (1 << round));
          }
        }
        // Run again: the plan is reusable and gives the same bytes.
        for (const b of dstBufs) devices[dstBufs.indexOf(b)]!.queue.writeBuffer(b, 0, new Float32Array(b.size / 4).fill(NaN));
        await a2a.run();
        for (let j = 0; j < n; j++) expectBitIdentical(await readF32(devices[j]!, dstBufs[j]!), expected[j]!, `device ${j} received (second run)`);
        a2a.destroy();
        [...srcBufs, ...dstBufs].forEach((b) => b.destroy());
      });
    }
  }

  it("rejects misaligned sizes and out-of-range devices", () => {
    const devices = devicesOf(2);
    const b0 = uploadStorage(devices[0]!, new Float32Array(4), "b0");
    const b1 = uploadStorage(devices[1]!, new Float32Array(4), "b1");
    expect(() => new AllToAll(devices, [{ from: 0, to: 1, bytes: 6, src: { buffer: b0, offset: 0 }, dst: { buffer: b1, offset: 0 } }])).toThrow(/multiple of 4/);
    expect(() => new AllToAll(devices, [{ from: 0, to: 2, bytes: 4, src: { buffer: b0, offset: 0 }, dst: { buffer: b1, offset: 0 } }])).toThrow(/devices must be in 0..1/);
    expect(() => new AllToAll(devicesOf(3), [], { schedule: "butterfly" })).toThrow(/power-of-two/);
  });
});

describe("recursive halving/doubling schedule (symbolic)", () => {
  it("N = 1..9, ragged counts: every device ends with every device's contribution exactly once; 2 log2 p (+2) rounds; one receive per device per round", () => {
    for (let n = 1; n <= 9; n++) {
      const p = 2 ** Math.floor(Math.log2(n));
      for (const count of [0, 1, 2, 3, 5, 8, 17, 100]) {
        // Each element of each device: the set of devices summed into it (as a bit mask).
        const held = Array.from({ length: n }, (_, i) => new Array<number>(count).fill(1 << i));
        const rounds = halvingDoublingRounds(n, count);
        if (n > 1 && count >= p) expect(rounds.length, `N=${n} count=${count}`).toBe(2 * Math.log2(p) + (n > p ? 2 : 0));
        for (const round of rounds) {
          expect(new Set(round.map((t) => t.to)).size, `N=${n} count=${count}: one receive per device`).toBe(round.length);
          const before = held.map((h) => [...h]);
          for (const t of round) {
            for (let k = t.start; k < t.end; k++) {
              if (t.mode === "add") {
                expect(held[t.to]![k]! & before[t.from]![k]!, `N=${n}: element ${k} added twice`).toBe(0);
                held[t.to]![k] = held[t.to]![k]! | before[t.from]![k]!;
              } else held[t.to]![k] = before[t.from]![k]!;
            }
          }
        }
        for (let i = 0; i < n; i++) expect(held[i], `N=${n} count=${count} device ${i}`).toEqual(new Array(count).fill((1 << n) - 1));
      }
    }
  });
  it("auto: halving/doubling for a power of two (fewer rounds, same bytes); on N = 5 for a small vector only (the fold moves the whole vector twice); never on N = 3 (4 rounds either way)", () => {
    const pcie = { alpha: 14.1e-6, bandwidth: 31.5e9 };
    expect(chooseAllreduce("auto", 4, 1e6, pcie)).toBe("rhd");
    expect(chooseAllreduce("auto", 8, 10, pcie)).toBe("rhd");
    expect(chooseAllreduce("auto", 3, 10, pcie)).toBe("ring");
    expect(chooseAllreduce("auto", 5, 64, pcie)).toBe("rhd");
    expect(chooseAllreduce("auto", 3, 1e7, pcie)).toBe("ring");
    expect(chooseAllreduce("auto", 5, 1e7, pcie)).toBe("ring");
    expect(chooseAllreduce("ring", 4, 10, pcie)).toBe("ring");
    expect(ringRounds(4, 100)).toHaveLength(6);
    expect(halvingDoublingRounds(4, 100)).toHaveLength(4);
  });
  it("auto on a shared host (software adapters: a round costs every device's bytes): halving/doubling at every N, where separate links price the ring lower at N = 3", () => {
    const host = { alpha: 0.15e-3, bandwidth: 0.25e9 };
    expect(chooseAllreduce("auto", 3, 286_000, host)).toBe("ring");
    for (let n = 2; n <= 9; n++) {
      for (const count of [1, 1000, 286_000, 1e7]) {
        expect(chooseAllreduce("auto", n, count, { ...host, shared: true }), `N=${n} count=${count}`).toBe("rhd");
        // Never more bytes in all, nor more rounds.
        const total = (r: ReturnType<typeof ringRounds>) => r.flat().reduce((a, t) => a + t.end - t.start, 0);
        expect(total(allreduceRounds("rhd", n, count))).toBeLessThanOrEqual(total(allreduceRounds("ring", n, count)));
        expect(allreduceRounds("rhd", n, count).length).toBeLessThanOrEqual(allreduceRounds("ring", n, count).length);
      }
    }
    expect(chooseAllreduce("ring", 4, 10, { ...host, shared: true })).toBe("ring");
  });
});

describe("allreduce on GPU devices", () => {
  it("ring and rhd refuse a buffer per device missing, a fractional count and a buffer too small for its offset, naming it", () => {
    const devices = devicesOf(3);
    const bufs = devices.map((d, i) => uploadStorage(d, new Float32Array(i === 2 ? 9 : 12), `grad@${i}`));
    for (const schedule of ["ring", "rhd"] as const) {
      const label = `ar-${schedule}`;
      expect(() => createAllreduce(devices, bufs.slice(0, 2), 8, { schedule, label })).toThrow(`${label}: 2 buffers for 3 devices`);
      expect(() => createAllreduce(devices, bufs, 2.5, { schedule, label })).toThrow(`${label}: count must be a non-negative integer, got 2.5`);
      expect(() => createAllreduce(devices, bufs, 8, { schedule, label, offset: [0, 4, 2] })).toThrow(`${label}: buffer on device 2 ('grad@2', 36 bytes) holds fewer than 10 floats`);
      createAllreduce(devices, bufs, 8, { schedule, label, offset: [0, 4, 1] }).destroy();
    }
    bufs.forEach((b) => b.destroy());
  });

  for (const kind of ["ring", "rhd"] as const)
  for (let n = 1; n <= 5; n++) {
    for (const count of [0, 1, 3, 17, 1031]) {
      it(`${kind}, N=${n}, ${count} floats: the sum, identical on every device and between runs`, async () => {
        const devices = devicesOf(n);
        const rng = new Rng(7 * n + count);
        const offset = 2;
        const inputs = devices.map(() => randomF32(rng, count + offset + 1));
        const run = async () => {
          const bufs = devices.map((d, i) => uploadStorage(d, inputs[i]!, `grad@${i}`));
          const ar = createAllreduce(devices, bufs, count, { offset, schedule: kind });
          expect(ar).toBeInstanceOf(kind === "ring" ? RingAllreduce : HalvingDoublingAllreduce);
          const stats = await ar.run();
          const out = await Promise.all(devices.map((d, i) => readF32(d, bufs[i]!)));
          ar.destroy();
          bufs.forEach((b) => b.destroy());
          return { out, stats };
        };
        const { out, stats } = await run();
        expect(stats.rounds.length).toBe(kind === "ring" ? (n > 1 && count > 0 ? 2 * (n - 1) : 0) : halvingDoublingRounds(n, count).length);
        const exact = new Float64Array(count);
        const sumAbs = new Float64Array(count);
        for (const x of inputs) for (let k = 0; k < count; k++) {
          exact[k]! += x[offset + k]!;
          sumAbs[k]! += Math.abs(x[offset + k]!);
        }
        for (let i = 0; i < n; i++) {
          expectAllClose(out[i]!.subarray(offset, offset + count), exact, (k) => sumTolerance(n, sumAbs[k]!), `device ${i} sum`);
          // Elements outside [offset, offset + count) untouched.
          expectBitIdentical(out[i]!.subarray(0, offset), inputs[i]!.subarray(0, offset), `device ${i} prefix`);
          expectBitIdentical(out[i]!.subarray(offset + count), inputs[i]!.subarray(offset + count), `device ${i} suffix`);
          expectBitIdentical(out[i]!, out[0]!.map((v, k) => (k >= offset && k < offset + count ? v : out[i]![k]!)), `device ${i} vs device 0`);
        }
        const again = await run();
        for (let i = 0; i < n; i++) expectBitIdentical(again.out[i]!, out[i]!, `device ${i}, second run`);
      });
    }
  }
});

describe("shard kernels", () => {
  it("qr mult: E[b, t_m] = pool_q * pool_r, dC = (dE * pool_r, dE * pool_q); other E columns and NaN-marked dC untouched / written", async () => {
    const device = devicesOf(1)[0]!;
    const rng = new Rng(13);
    const [B, d, n] = [5, 3, 4];
    const tables = [3, 1];
    const M = tables.length;
    const c = randomF32(rng, B * 2 * M * d);
    const e0 = randomF32(rng, B * n * d);
    const ge = randomF32(rng, B * n * d);
    const eb = uploadStorage(device, e0, "e");
    const gcb = uploadStorage(device, new Float32Array(B * 2 * M * d).fill(NaN), "dC");
    const qm = prepareQrMult(device, { c: uploadStorage(device, c, "c"), e: eb, gradE: uploadStorage(device, ge, "dE"), gradC: gcb, batch: B, d, tables, numTables: n });
    submitDispatches(device, [...qm.forward, ...qm.backward]);
    const e = await readF32(device, eb);
    const gc = await readF32(device, gcb);
    const eRef = Float32Array.from(e0);
    const gcRef = new Float32Array(B * 2 * M * d);
    for (let b = 0; b < B; b++) {
      tables.forEach((t, m) => {
        for (let k = 0; k < d; k++) {
          const q = c[b * 2 * M * d + 2 * m * d + k]!;
          const r = c[b * 2 * M * d + (2 * m + 1) * d + k]!;
          const g = ge[b * n * d + t * d + k]!;
          eRef[b * n * d + t * d + k] = Math.fround(q * r); // one f32 product: correctly rounded, exact comparison
          gcRef[b * 2 * M * d + 2 * m * d + k] = Math.fround(g * r);
          gcRef[b * 2 * M * d + (2 * m + 1) * d + k] = Math.fround(g * q);
        }
      });
    }
    expectBitIdentical(e, eRef, "E");
    expectBitIdentical(gc, gcRef, "dC");
  });

  it("add: y[yo + i] += x[xo + i]", async () => {
    const device = devicesOf(1)[0]!;
    const rng = new Rng(5);
    for (const [count, xo, yo] of [[1, 0, 0], [257, 3, 11], [1000, 0, 5]] as const) {
      const x = randomF32(rng, count + xo);
      const y = randomF32(rng, count + yo + 2);
      const yb = uploadStorage(device, y, "y");
      submitDispatches(device, prepareAdd(device, { x: uploadStorage(device, x, "x"), y: yb, count, xOffset: xo, yOffset: yo }));
      const ref = addRef(x, y, count, xo, yo);
      expectAllClose(await readF32(device, yb), ref, (i) => sumTolerance(2, Math.abs(y[i]!) + Math.abs(x[i - yo + xo] ?? 0)), "add");
    }
  });

  it("route: sums of strided sources, empty columns write 0, untouched elements stay", async () => {
    const device = devicesOf(1)[0]!;
    const rng = new Rng(9);
    for (const batch of [1, 3, 70]) {
      const inW = 13;
      const input = randomF32(rng, batch * inW + 7);
      const outW = 9;
      const columns: RouteColumn[] = [];
      for (let o = 0; o < outW - 1; o++) {
        const k = o === 2 ? 0 : 1 + rng.int(3);
        const sources = Array.from({ length: k }, () => (rng.uniform() < 0.5 ? { offset: rng.int(inW), stride: inW } : { offset: 7 + rng.int(inW), stride: inW }));
        columns.push({ offset: o + 1, stride: outW, sources });
      }
      const out0 = new Float32Array(batch * outW).fill(NaN);
      const outBuf = uploadStorage(device, out0, "out");
      const p = prepareRoute(device, { input: uploadStorage(device, input, "in"), output: outBuf, batch, columns });
      submitDispatches(device, p.dispatches);
      const got = await readF32(device, outBuf);
      const ref = routeRef(input, out0, batch, columns);
      for (let i = 0; i < got.length; i++) {
        if (Number.isNaN(ref[i]!)) expect(Number.isNaN(got[i]!), `out[${i}] untouched`).toBe(true);
        else {
          const c = columns[(i % outW) - 1]!;
          const b = Math.floor(i / outW);
          const sumAbs = c.sources.reduce((a, s) => a + Math.abs(input[s.offset + b * s.stride]!), 0);
          expect(Math.abs(got[i]! - ref[i]!), `out[${i}]`).toBeLessThanOrEqual(sumTolerance(c.sources.length, sumAbs));
        }
      }
    }
  });
});
