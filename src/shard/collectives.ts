/**
 * Collectives between WebGPU devices that share no memory. Every hop is a
 * real copy through the host: copyBufferToBuffer into a MAP_READ staging
 * buffer on the sending device, mapAsync, then queue.writeBuffer into the
 * receiving device's buffer. All copies of a round are issued at once (one
 * submit per sending device, the maps awaited together).
 *
 * AllToAll: personalized all-to-all of arbitrary messages (from, to, bytes,
 * source location, destination location); empty messages are allowed and
 * cost nothing, a message to oneself is an on-device copy. Schedules:
 *
 *   butterfly (N a power of two; the DLRM paper's butterfly shuffle):
 *     log2 N rounds; in round r device i exchanges with i XOR 2^r and sends
 *     every item it holds (its own or passing through) whose destination
 *     differs from i in bit r. After round r an item sits on a device that
 *     agrees with its destination in bits 0..r.
 *   bruck (any N; Bruck et al. 1997): ceil(log2 N) rounds; in round r
 *     device i sends to (i + 2^r) mod N (and receives from (i - 2^r) mod N)
 *     every item whose remaining distance (dest - i) mod N has bit r set.
 *     For N a power of two it moves the same bytes as the butterfly, but
 *     sends and receives with different peers.
 *   direct (pairwise exchange): N - 1 rounds; in round r device i sends
 *     straight to (i + r + 1) mod N; no item passes through another device.
 *   auto: butterfly when N is a power of two, else bruck.
 *
 * Items passing through a device wait in a transit buffer there (one slot
 * per item and hop, sized when the plan is made); staging buffers are made
 * once per plan and reused every run, so a step allocates nothing.
 *
 * RingAllreduce: sum of one f32 vector per device, left identical (bit for
 * bit) on every device: ring reduce-scatter (N - 1 rounds; chunk c is summed
 * in the fixed order device c, c+1, ..., c-1 by an add kernel on the
 * receiving device) then ring allgather (N - 1 rounds, copies). The same
 * inputs give the same bits on every run.
 *
 * HalvingDoublingAllreduce: the same sum by recursive halving (reduce-
 * scatter) then recursive doubling (allgather), 2 log2 N rounds for N a power
 * of two; other N fold the extra devices in first and out last (see
 * halvingDoublingRounds). createAllreduce picks ring or halving/doubling
 * ("auto": by the α-β model of the link and the vector's size).
 *
 * All return per-round statistics (bytes sent / received per device,
 * measured wall time) for the interconnect model (src/shard/interconnect.ts).
 */
import { type Dispatch, encodeDispatches } from "../gpu/dispatch.ts";
import { ConfigError, KernelInputError } from "../gpu/errors.ts";
import { prepareAdd } from "../kernels/shard.ts";

const MAP_READ = 0x0001;
const COPY_DST = 0x0008;
const STAGING_USAGE = MAP_READ | COPY_DST;
const TRANSIT_USAGE = 0x0080 | 0x0008 | 0x0004; // STORAGE | COPY_DST | COPY_SRC

export type AllToAllSchedule = "butterfly" | "bruck" | "direct" | "auto";

/** A place in a device's buffer (byte offset). */
export interface Location {
  buffer: GPUBuffer;
  offset: number;
}

export interface Message {
  from: number;
  to: number;
  /** Bytes (a multiple of 4; 0 is allowed and sends nothing). */
  bytes: number;
  /** Where the bytes are on device `from`. */
  src: Location;
  /** Where they go on device `to`. */
  dst: Location;
}

/** Statistics of one round of a collective. */
export interface RoundStats {
  /** Name of the collective and round, e.g. "a2a:butterfly r1". */
  label: string;
  /** Bytes each device sent and received in this round (host-staged). */
  sent: number[];
  received: number[];
  /** (from, to) pairs that exchanged data in this round. */
  pairs: [number, number][];
  /** Wall time from issuing the round's copies until every write into the peers was enqueued. */
  ms: number;
}

/** Statistics of one collective call. */
export interface CollectiveStats {
  label: string;
  rounds: RoundStats[];
  /** Bytes copied on-device (messages to oneself). */
  localBytes: number;
  ms: number;
}

export function isPowerOfTwo(n: number): boolean {
  return n >= 1 && (n & (n - 1)) === 0;
}

export function resolveSchedule(schedule: AllToAllSchedule, n: number): Exclude<AllToAllSchedule, "auto"> {
  if (schedule === "auto") return isPowerOfTwo(n) ? "butterfly" : "bruck";
  if (schedule === "butterfly" && !isPowerOfTwo(n)) throw new ConfigError(`the butterfly all-to-all needs a power-of-two device count, got ${n}; use "bruck" or "direct" (or "auto")`);
  return schedule;
}

/** Number of rounds of a schedule on n devices. */
export function scheduleRounds(schedule: Exclude<AllToAllSchedule, "auto">, n: number): number {
  if (n <= 1) return 0;
  if (schedule === "direct") return n - 1;
  return Math.ceil(Math.log2(n));
}

/** The device an item at `cur` (headed for `to`, sent by `from`) moves to in round r, or cur if it stays. */
export function nextHop(schedule: Exclude<AllToAllSchedule, "auto">, n: number, r: number, from: number, cur: number, to: number): number {
  switch (schedule) {
    case "butterfly":
      return ((cur ^ to) >> r) & 1 ? cur ^ (1 << r) : cur;
    case "bruck":
      return (((to - cur + n) % n) >> r) & 1 ? (cur + (1 << r)) % n : cur;
    case "direct":
      return cur === from && (to - from + n) % n === r + 1 ? to : cur;
  }
}

interface Hop {
  /** Where the item is before the hop, on the sending device. */
  src: Location;
  /** Where it lands on the receiving device. */
  dst: Location;
  bytes: number;
  /** Byte offset in the sender's staging buffer of this round. */
  stageOffset: number;
}

interface DeviceRound {
  from: number;
  to: number;
  hops: Hop[];
  bytes: number;
  staging: GPUBuffer;
}

function checkAligned(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v % 4 !== 0) throw new KernelInputError(`${what} must be a non-negative multiple of 4 bytes, got ${v}`);
}

/** A planned personalized all-to-all; run() it as often as needed while its buffers live. */
export class AllToAll {
  readonly schedule: Exclude<AllToAllSchedule, "auto">;
  private rounds: DeviceRound[][] = [];
  private local: { device: number; src: Location; dst: Location; bytes: number }[] = [];
  private owned: GPUBuffer[] = [];

  constructor(
    readonly devices: readonly GPUDevice[],
    messages: readonly Message[],
    opts: { schedule?: AllToAllSchedule; label?: string } = {},
  ) {
    const n = devices.length;
    this.label = opts.label ?? "all-to-all";
    this.schedule = resolveSchedule(opts.schedule ?? "auto", n);
    for (const m of messages) {
      const where = `${this.label}: message ${m.from} -> ${m.to}`;
      if (!(Number.isInteger(m.from) && m.from >= 0 && m.from < n && Number.isInteger(m.to) && m.to >= 0 && m.to < n)) throw new KernelInputError(`${where}: devices must be in 0..${n - 1}`);
      checkAligned(`${where}: size`, m.bytes);
      checkAligned(`${where}: source offset`, m.src.offset);
      checkAligned(`${where}: destination offset`, m.dst.offset);
      if (m.src.offset + m.bytes > m.src.buffer.size) throw new KernelInputError(`${where}: source range ${m.src.offset}+${m.bytes} exceeds buffer '${m.src.buffer.label}' (${m.src.buffer.size} bytes)`);
      if (m.dst.offset + m.bytes > m.dst.buffer.size) throw new KernelInputError(`${where}: destination range ${m.dst.offset}+${m.bytes} exceeds buffer '${m.dst.buffer.label}' (${m.dst.buffer.size} bytes)`);
    }
    const live = messages.filter((m) => m.bytes > 0);
    this.local = live.filter((m) => m.from === m.to).map((m) => ({ device: m.from, src: m.src, dst: m.dst, bytes: m.bytes }));
    const items = live.filter((m) => m.from !== m.to).map((m) => ({ m, cur: m.from, at: m.src }));
    const R = scheduleRounds(this.schedule, n);
    // First pass: the route of every item, to size each device's transit buffer.
    const transitBytes = new Array<number>(n).fill(0);
    const paths = items.map((it) => {
      const path: number[] = [it.cur];
      let cur = it.cur;
      for (let r = 0; r < R; r++) {
        cur = nextHop(this.schedule, n, r, it.m.from, cur, it.m.to);
        path.push(cur);
      }
      if (cur !== it.m.to) throw new Error(`${this.label}: schedule ${this.schedule} left an item of ${it.m.from} -> ${it.m.to} on device ${cur}`);
      for (let r = 1; r < R; r++) if (path[r] !== path[r - 1] && path[r] !== it.m.to) transitBytes[path[r]!]! += it.m.bytes;
      return path;
    });
    const transit = transitBytes.map((b, i) => {
      if (b === 0) return undefined;
      const buf = devices[i]!.createBuffer({ label: `${this.label}:transit@${i}`, size: b, usage: TRANSIT_USAGE });
      this.owned.push(buf);
      return buf;
    });
    const transitUsed = new Array<number>(n).fill(0);
    for (let r = 0; r < R; r++) {
      const byPair = new Map<string, DeviceRound>();
      items.forEach((it, k) => {
        const next = paths[k]![r + 1]!;
        if (next === it.cur) return;
        const key = `${it.cur}>${next}`;
        let dr = byPair.get(key);
        if (!dr) byPair.set(key, (dr = { from: it.cur, to: next, hops: [], bytes: 0, staging: undefined as unknown as GPUBuffer }));
        let dst: Location;
        if (next === it.m.to) dst = it.m.dst;
        else {
          dst = { buffer: transit[next]!, offset: transitUsed[next]! };
          transitUsed[next]! += it.m.bytes;
        }
        dr.hops.push({ src: it.at, dst, bytes: it.m.bytes, stageOffset: dr.bytes });
        dr.bytes += it.m.bytes;
        it.cur = next;
        it.at = dst;
      });
      const round = [...byPair.values()].sort((a, b) => a.from - b.from || a.to - b.to);
      for (const dr of round) {
        dr.staging = devices[dr.from]!.createBuffer({ label: `${this.label}:staging r${r} ${dr.from}->${dr.to}`, size: dr.bytes, usage: STAGING_USAGE });
        this.owned.push(dr.staging);
      }
      this.rounds.push(round);
    }
  }

  readonly label: string;

  /** Host-staged bytes each device sends in each round (for the cost model, before running). */
  get roundBytes(): { sent: number[]; received: number[]; pairs: [number, number][] }[] {
    const n = this.devices.length;
    return this.rounds.map((round) => {
      const sent = new Array<number>(n).fill(0);
      const received = new Array<number>(n).fill(0);
      for (const dr of round) {
        sent[dr.from]! += dr.bytes;
        received[dr.to]! += dr.bytes;
      }
      return { sent, received, pairs: round.map((dr) => [dr.from, dr.to] as [number, number]) };
    });
  }

  /**
   * Runs the exchange. `before[i]` (optional) is encoded on device i ahead of
   * its first copies, in the same submit; `between` lets the caller submit
   * more work (it is called once round 0's copies are issued, before waiting
   * on them: GPU work submitted there overlaps the host-staged transfers).
   */
  async run(opts: { between?: () => void } = {}): Promise<CollectiveStats> {
    const t0 = performance.now();
    const n = this.devices.length;
    let localBytes = 0;
    if (this.local.length) {
      const encs = new Map<number, GPUCommandEncoder>();
      for (const l of this.local) {
        let enc = encs.get(l.device);
        if (!enc) encs.set(l.device, (enc = this.devices[l.device]!.createCommandEncoder({ label: `${this.label}:local@${l.device}` })));
        enc.copyBufferToBuffer(l.src.buffer, l.src.offset, l.dst.buffer, l.dst.offset, l.bytes);
        localBytes += l.bytes;
      }
      for (const [d, enc] of encs) this.devices[d]!.queue.submit([enc.finish()]);
    }
    const rounds: RoundStats[] = [];
    for (let r = 0; r < this.rounds.length; r++) {
      const round = this.rounds[r]!;
      const tr = performance.now();
      for (const dr of round) {
        const enc = this.devices[dr.from]!.createCommandEncoder({ label: `${this.label}:r${r} ${dr.from}->${dr.to}` });
        for (const h of dr.hops) enc.copyBufferToBuffer(h.src.buffer, h.src.offset, dr.staging, h.stageOffset, h.bytes);
        this.devices[dr.from]!.queue.submit([enc.finish()]);
      }
      if (r === 0) opts.between?.();
      await Promise.all(round.map((dr) => dr.staging.mapAsync(MAP_READ)));
      const sent = new Array<number>(n).fill(0);
      const received = new Array<number>(n).fill(0);
      for (const dr of round) {
        const data = dr.staging.getMappedRange();
        const q = this.devices[dr.to]!.queue;
        for (const h of dr.hops) q.writeBuffer(h.dst.buffer, h.dst.offset, data, h.stageOffset, h.bytes);
        dr.staging.unmap();
        sent[dr.from]! += dr.bytes;
        received[dr.to]! += dr.bytes;
      }
      rounds.push({ label: `${this.label}:${this.schedule} r${r}`, sent, received, pairs: round.map((dr) => [dr.from, dr.to]), ms: performance.now() - tr });
    }
    if (this.rounds.length === 0) opts.between?.();
    return { label: this.label, rounds, localBytes, ms: performance.now() - t0 };
  }

  destroy(): void {
    for (const b of this.owned) b.destroy();
    this.owned = [];
  }
}

/** Element offset of device i's vector: one offset for all devices, or one per device. */
function offsetAt(offset: number | readonly number[] | undefined, i: number): number {
  if (offset === undefined) return 0;
  return typeof offset === "number" ? offset : offset[i]!;
}

/** An allreduce's arguments: one buffer per device, a whole count, and every buffer holding `count` floats from its offset. */
function checkAllreduceBuffers(label: string, n: number, buffers: readonly GPUBuffer[], count: number, offset: number | readonly number[] | undefined): void {
  if (buffers.length !== n) throw new KernelInputError(`${label}: ${buffers.length} buffers for ${n} devices`);
  if (!Number.isInteger(count) || count < 0) throw new KernelInputError(`${label}: count must be a non-negative integer, got ${count}`);
  buffers.forEach((b, i) => {
    const floats = offsetAt(offset, i) + count;
    if (floats * 4 > b.size) throw new KernelInputError(`${label}: buffer on device ${i} ('${b.label}', ${b.size} bytes) holds fewer than ${floats} floats`);
  });
}

/** Splits `count` elements into `parts` contiguous chunks (sizes differ by at most one, larger first). */
export function chunkRanges(count: number, parts: number): [number, number][] {
  const out: [number, number][] = [];
  const base = Math.floor(count / parts);
  const extra = count % parts;
  let at = 0;
  for (let c = 0; c < parts; c++) {
    const len = base + (c < extra ? 1 : 0);
    out.push([at, at + len]);
    at += len;
  }
  return out;
}

/**
 * Ring allreduce (sum) of `count` f32 values held in `buffers[i]` on
 * `devices[i]` (starting at element `offset`). Planned once (staging,
 * scratch, add dispatches), run every step.
 */
export class RingAllreduce implements Allreduce {
  readonly kind = "ring" as const;
  private scratch: GPUBuffer[] = [];
  private staging: GPUBuffer[] = [];
  private adds: Dispatch[][][] = []; // [round][device]
  readonly chunks: [number, number][];

  constructor(
    readonly devices: readonly GPUDevice[],
    readonly buffers: readonly GPUBuffer[],
    readonly count: number,
    readonly opts: { offset?: number | readonly number[]; label?: string } = {},
  ) {
    const n = devices.length;
    const label = opts.label ?? "allreduce";
    const offsetOf = (i: number) => offsetAt(opts.offset, i);
    checkAllreduceBuffers(label, n, buffers, count, opts.offset);
    this.chunks = chunkRanges(count, n);
    const maxChunk = Math.max(1, ...this.chunks.map(([a, b]) => b - a));
    if (n > 1 && count > 0) {
      this.scratch = devices.map((d, i) => d.createBuffer({ label: `${label}:scratch@${i}`, size: maxChunk * 4, usage: TRANSIT_USAGE }));
      this.staging = devices.map((d, i) => d.createBuffer({ label: `${label}:staging@${i}`, size: maxChunk * 4, usage: STAGING_USAGE }));
      for (let s = 0; s < n - 1; s++) {
        this.adds.push(
          devices.map((d, i) => {
            // Device i receives chunk (i - 1 - s) mod n from device i - 1 and adds it to its own.
            const c = (((i - 1 - s) % n) + n) % n;
            const [a, b] = this.chunks[c]!;
            return prepareAdd(d, { x: this.scratch[i]!, y: buffers[i]!, count: b - a, yOffset: offsetOf(i) + a, label: `${label}:add r${s}@${i}` });
          }),
        );
      }
    }
    this.label = label;
  }

  readonly label: string;

  async run(): Promise<CollectiveStats> {
    const t0 = performance.now();
    const n = this.devices.length;
    const rounds: RoundStats[] = [];
    if (n === 1 || this.count === 0) return { label: this.label, rounds, localBytes: 0, ms: performance.now() - t0 };
    const off = (i: number) => offsetAt(this.opts.offset, i);
    const step = async (name: string, chunkOf: (i: number) => number, land: (to: number, c: number, data: ArrayBuffer, bytes: number) => void) => {
      const tr = performance.now();
      const sent = new Array<number>(n).fill(0);
      const received = new Array<number>(n).fill(0);
      const pairs: [number, number][] = [];
      const live: number[] = [];
      for (let i = 0; i < n; i++) {
        const [a, b] = this.chunks[chunkOf(i)]!;
        if (b === a) continue;
        const enc = this.devices[i]!.createCommandEncoder({ label: `${name}@${i}` });
        enc.copyBufferToBuffer(this.buffers[i]!, (off(i) + a) * 4, this.staging[i]!, 0, (b - a) * 4);
        this.devices[i]!.queue.submit([enc.finish()]);
        live.push(i);
      }
      await Promise.all(live.map((i) => this.staging[i]!.mapAsync(MAP_READ)));
      for (const i of live) {
        const c = chunkOf(i);
        const bytes = (this.chunks[c]![1] - this.chunks[c]![0]) * 4;
        const to = (i + 1) % n;
        land(to, c, this.staging[i]!.getMappedRange(), bytes);
        this.staging[i]!.unmap();
        sent[i]! += bytes;
        received[to]! += bytes;
        pairs.push([i, to]);
      }
      rounds.push({ label: `${name}`, sent, received, pairs, ms: performance.now() - tr });
    };
    // Reduce-scatter: in round s device i sends chunk (i - s) mod n; the receiver adds it to its own.
    for (let s = 0; s < n - 1; s++) {
      await step(`${this.label}:reduce-scatter r${s}`, (i) => (((i - s) % n) + n) % n, (to, _c, data, bytes) => {
        this.devices[to]!.queue.writeBuffer(this.scratch[to]!, 0, data, 0, bytes);
      });
      for (let i = 0; i < n; i++) {
        const d = this.adds[s]![i]!;
        if (!d.length) continue;
        const enc = this.devices[i]!.createCommandEncoder({ label: `${this.label}:add r${s}@${i}` });
        encodeDispatches(enc, d);
        this.devices[i]!.queue.submit([enc.finish()]);
      }
    }
    // Allgather: device i now holds the full sum of chunk (i + 1) mod n; pass the sums around.
    for (let s = 0; s < n - 1; s++) {
      await step(`${this.label}:allgather r${s}`, (i) => (((i + 1 - s) % n) + n) % n, (to, c, data, bytes) => {
        this.devices[to]!.queue.writeBuffer(this.buffers[to]!, (off(to) + this.chunks[c]![0]) * 4, data, 0, bytes);
      });
    }
    return { label: this.label, rounds, localBytes: 0, ms: performance.now() - t0 };
  }

  destroy(): void {
    for (const b of [...this.scratch, ...this.staging]) b.destroy();
    this.scratch = [];
    this.staging = [];
  }
}

// ------------------------------------------------------------------ recursive halving / doubling

/** One transfer of an allreduce round: elements [start, end) of device `from`'s vector go to device `to`, added to its own or copied over them. */
export interface AllreduceTransfer {
  from: number;
  to: number;
  start: number;
  end: number;
  mode: "add" | "copy";
}

/**
 * Rounds of the recursive halving / doubling allreduce (Rabenseifner; Thakur,
 * Rabenseifner & Gropp 2005, "Optimization of collective communication
 * operations in MPICH") of `count` floats on n devices. Pure arithmetic.
 *
 * p = the largest power of two <= n, rem = n - p.
 *  - fold (only if rem > 0): odd devices i < 2·rem send their whole vector
 *    to i - 1, which adds it; devices 0, 2, .., 2·rem - 2 and 2·rem .. n - 1
 *    are the p participants, virtual ranks v = i / 2 resp. i - rem;
 *  - reduce-scatter by recursive halving: the vector is cut into p chunks
 *    (chunkRanges); for mask = p/2, p/4, .., 1 participant v exchanges with
 *    v XOR mask: of the chunk range it still reduces it keeps the lower half
 *    if bit `mask` of v is 0 (else the upper), sends the other half to the
 *    partner and adds the partner's copy of its own half. Afterwards v holds
 *    the full sum of chunk v, summed in one fixed tree order;
 *  - allgather by recursive doubling: for mask = 1, 2, .., p/2, v sends the
 *    chunks it holds to v XOR mask (copies), doubling what each holds;
 *  - unfold (rem > 0): device i - 1 copies the result to odd device i < 2·rem.
 * Rounds: 2·log2 p, plus 2 if n is not a power of two. Bytes per device: the
 * ring's 2(p-1)/p of the vector, plus the whole vector twice on the folded
 * pairs. Every device ends with copies of the same sums: identical bits on
 * every device and on every run.
 */
export function halvingDoublingRounds(n: number, count: number): AllreduceTransfer[][] {
  if (n <= 1 || count <= 0) return [];
  let p = 1;
  while (p * 2 <= n) p *= 2;
  const rem = n - p;
  const real = (v: number) => (v < rem ? 2 * v : v + rem);
  const chunks = chunkRanges(count, p);
  const span = (c0: number, c1: number): [number, number] => [chunks[c0]![0], chunks[c1 - 1]![1]];
  const rounds: AllreduceTransfer[][] = [];
  if (rem > 0) rounds.push(Array.from({ length: rem }, (_, k) => ({ from: 2 * k + 1, to: 2 * k, start: 0, end: count, mode: "add" as const })));
  const range = Array.from({ length: p }, () => [0, p] as [number, number]);
  for (let mask = p >> 1; mask >= 1; mask >>= 1) {
    const round: AllreduceTransfer[] = [];
    const next = range.map((r) => [...r] as [number, number]);
    for (let v = 0; v < p; v++) {
      const [lo, hi] = range[v]!;
      const mid = (lo + hi) >> 1;
      const keep: [number, number] = v & mask ? [mid, hi] : [lo, mid];
      const give: [number, number] = v & mask ? [lo, mid] : [mid, hi];
      const [start, end] = span(give[0], give[1]);
      if (end > start) round.push({ from: real(v), to: real(v ^ mask), start, end, mode: "add" });
      next[v] = keep;
    }
    range.splice(0, p, ...next);
    rounds.push(round);
  }
  for (let mask = 1; mask < p; mask <<= 1) {
    const round: AllreduceTransfer[] = [];
    const next = range.map((r) => [...r] as [number, number]);
    for (let v = 0; v < p; v++) {
      const [lo, hi] = range[v]!;
      const [start, end] = span(lo, hi);
      if (end > start) round.push({ from: real(v), to: real(v ^ mask), start, end, mode: "copy" });
      const [plo, phi] = range[v ^ mask]!;
      next[v] = [Math.min(lo, plo), Math.max(hi, phi)];
    }
    range.splice(0, p, ...next);
    rounds.push(round);
  }
  if (rem > 0) rounds.push(Array.from({ length: rem }, (_, k) => ({ from: 2 * k, to: 2 * k + 1, start: 0, end: count, mode: "copy" as const })));
  return rounds.filter((r) => r.length > 0);
}

/** Bytes each device sends / receives per round of a schedule of transfers (for the interconnect model). */
export function transferTraffic(n: number, rounds: readonly AllreduceTransfer[][]): { sent: number[]; received: number[]; pairs: [number, number][] }[] {
  return rounds.map((round) => {
    const sent = new Array<number>(n).fill(0);
    const received = new Array<number>(n).fill(0);
    for (const t of round) {
      sent[t.from]! += (t.end - t.start) * 4;
      received[t.to]! += (t.end - t.start) * 4;
    }
    return { sent, received, pairs: round.map((t) => [t.from, t.to] as [number, number]) };
  });
}

/** What ShardedDlrm needs of an allreduce. */
export interface Allreduce {
  readonly label: string;
  readonly kind: "ring" | "rhd";
  run(): Promise<CollectiveStats>;
  destroy(): void;
}

/**
 * Allreduce (sum) by recursive halving / doubling (halvingDoublingRounds) of
 * `count` f32 values in `buffers[i]` on `devices[i]` from element `offset`.
 * Host-staged like the ring: each round's copies are issued together, the
 * maps awaited together; a device receives at most one transfer per round,
 * into its scratch buffer, and an add kernel (prepared once) sums it in.
 */
export class HalvingDoublingAllreduce implements Allreduce {
  readonly kind = "rhd" as const;
  readonly label: string;
  readonly rounds: AllreduceTransfer[][];
  private scratch: (GPUBuffer | undefined)[] = [];
  private staging: GPUBuffer[][] = []; // [round][transfer]
  private adds: Dispatch[][][] = []; // [round][transfer]

  constructor(
    readonly devices: readonly GPUDevice[],
    readonly buffers: readonly GPUBuffer[],
    readonly count: number,
    readonly opts: { offset?: number | readonly number[]; label?: string } = {},
  ) {
    const n = devices.length;
    this.label = opts.label ?? "allreduce-rhd";
    const offsetOf = (i: number) => offsetAt(opts.offset, i);
    checkAllreduceBuffers(this.label, n, buffers, count, opts.offset);
    this.rounds = halvingDoublingRounds(n, count);
    const scratchFloats = new Array<number>(n).fill(0);
    for (const round of this.rounds) {
      const seen = new Set<number>();
      for (const t of round) {
        if (seen.has(t.to)) throw new Error(`${this.label}: device ${t.to} receives twice in one round`);
        seen.add(t.to);
        if (t.mode === "add") scratchFloats[t.to] = Math.max(scratchFloats[t.to]!, t.end - t.start);
      }
    }
    this.scratch = devices.map((d, i) => (scratchFloats[i]! > 0 ? d.createBuffer({ label: `${this.label}:scratch@${i}`, size: scratchFloats[i]! * 4, usage: TRANSIT_USAGE }) : undefined));
    this.rounds.forEach((round, r) => {
      this.staging.push(round.map((t) => devices[t.from]!.createBuffer({ label: `${this.label}:staging r${r} ${t.from}->${t.to}`, size: (t.end - t.start) * 4, usage: STAGING_USAGE })));
      this.adds.push(round.map((t) => (t.mode === "add" ? prepareAdd(devices[t.to]!, { x: this.scratch[t.to]!, y: buffers[t.to]!, count: t.end - t.start, yOffset: offsetOf(t.to) + t.start, label: `${this.label}:add r${r}@${t.to}` }) : [])));
    });
  }

  async run(): Promise<CollectiveStats> {
    const t0 = performance.now();
    const n = this.devices.length;
    const off = (i: number) => offsetAt(this.opts.offset, i);
    const rounds: RoundStats[] = [];
    for (let r = 0; r < this.rounds.length; r++) {
      const round = this.rounds[r]!;
      const tr = performance.now();
      round.forEach((t, k) => {
        const enc = this.devices[t.from]!.createCommandEncoder({ label: `${this.label}:r${r} ${t.from}->${t.to}` });
        enc.copyBufferToBuffer(this.buffers[t.from]!, (off(t.from) + t.start) * 4, this.staging[r]![k]!, 0, (t.end - t.start) * 4);
        this.devices[t.from]!.queue.submit([enc.finish()]);
      });
      await Promise.all(this.staging[r]!.map((s) => s.mapAsync(MAP_READ)));
      const sent = new Array<number>(n).fill(0);
      const received = new Array<number>(n).fill(0);
      round.forEach((t, k) => {
        const s = this.staging[r]![k]!;
        const bytes = (t.end - t.start) * 4;
        const q = this.devices[t.to]!.queue;
        if (t.mode === "add") q.writeBuffer(this.scratch[t.to]!, 0, s.getMappedRange(), 0, bytes);
        else q.writeBuffer(this.buffers[t.to]!, (off(t.to) + t.start) * 4, s.getMappedRange(), 0, bytes);
        s.unmap();
        sent[t.from]! += bytes;
        received[t.to]! += bytes;
      });
      round.forEach((t, k) => {
        const d = this.adds[r]![k]!;
        if (!d.length) return;
        const enc = this.devices[t.to]!.createCommandEncoder({ label: `${this.label}:add r${r}@${t.to}` });
        encodeDispatches(enc, d);
        this.devices[t.to]!.queue.submit([enc.finish()]);
      });
      rounds.push({ label: `${this.label}:rhd r${r}`, sent, received, pairs: round.map((t) => [t.from, t.to]), ms: performance.now() - tr });
    }
    return { label: this.label, rounds, localBytes: 0, ms: performance.now() - t0 };
  }

  destroy(): void {
    for (const b of [...this.scratch, ...this.staging.flat()]) b?.destroy();
    this.scratch = [];
    this.staging = [];
  }
}

export type AllreduceSchedule = "ring" | "rhd" | "auto";

/** The ring's rounds as transfers (for the model comparison in chooseAllreduce). */
export function ringRounds(n: number, count: number): AllreduceTransfer[][] {
  if (n <= 1 || count <= 0) return [];
  const chunks = chunkRanges(count, n);
  const rounds: AllreduceTransfer[][] = [];
  for (let s = 0; s < 2 * (n - 1); s++) {
    rounds.push(Array.from({ length: n }, (_, i) => {
      const c = s < n - 1 ? (((i - s) % n) + n) % n : (((i + 1 - (s - n + 1)) % n) + n) % n;
      return { from: i, to: (i + 1) % n, start: chunks[c]![0], end: chunks[c]![1], mode: s < n - 1 ? "add" as const : "copy" as const };
    }).filter((t) => t.end > t.start));
  }
  return rounds;
}

/**
 * The link "auto" models: latency `alpha` seconds and `bandwidth` bytes/s per
 * direction. `shared`: the devices share one host (software adapters, copies
 * staged through the host's memory by its cores), so a round costs α + the
 * bytes ALL devices move / β rather than the busiest device's (what
 * bench/allreduce.ts measured: the round count and the total bytes set the
 * time, and halving/doubling was never slower than the ring, N = 2..5).
 */
export interface AllreduceLink {
  alpha: number;
  bandwidth: number;
  shared?: boolean;
}

/** The rounds of an allreduce of `count` floats on n devices by `kind`, as transfers. */
export function allreduceRounds(kind: "ring" | "rhd", n: number, count: number): AllreduceTransfer[][] {
  return kind === "rhd" ? halvingDoublingRounds(n, count) : ringRounds(n, count);
}

/**
 * "auto": the schedule whose rounds take less time on `link` (α-β model, a
 * round costs α + the busiest device's bytes / β, as src/shard/interconnect.ts
 * prices rounds; on a shared host α + all devices' bytes / β). For N a power
 * of two both move the same bytes per device and the halving/doubling needs
 * 2 log2 N rounds instead of 2(N - 1), so it wins (ties at N = 2); otherwise
 * its fold and unfold move the whole vector twice more, so on separate links
 * small vectors (latency-bound) pick it and large ones the ring. On a shared
 * host both move 2(N - 1) vectors in all, halving/doubling in fewer or as many
 * rounds, and it takes the ties.
 */
export function chooseAllreduce(schedule: AllreduceSchedule, n: number, count: number, link: AllreduceLink): "ring" | "rhd" {
  if (schedule !== "auto") return schedule;
  const busy = (r: { sent: number[]; received: number[] }) =>
    link.shared ? r.sent.reduce((a, b) => a + b, 0) : Math.max(0, ...r.sent.map((s, i) => Math.max(s, r.received[i]!)));
  const cost = (kind: "ring" | "rhd") => transferTraffic(n, allreduceRounds(kind, n, count)).reduce((t, r) => t + link.alpha + busy(r) / link.bandwidth, 0);
  const rhd = cost("rhd"), ring = cost("ring");
  return rhd < ring || (link.shared && rhd <= ring) ? "rhd" : "ring";
}

/** A ring or halving/doubling allreduce (see chooseAllreduce for "auto"; the default link is PCIe 4.0 x16, the CLI's default --interconnect). */
export function createAllreduce(
  devices: readonly GPUDevice[],
  buffers: readonly GPUBuffer[],
  count: number,
  opts: { offset?: number | readonly number[]; label?: string; schedule?: AllreduceSchedule; link?: AllreduceLink } = {},
): Allreduce {
  const kind = chooseAllreduce(opts.schedule ?? "auto", devices.length, count, opts.link ?? { alpha: 14.1e-6, bandwidth: 31.5e9 });
  return kind === "rhd" ? new HalvingDoublingAllreduce(devices, buffers, count, opts) : new RingAllreduce(devices, buffers, count, opts);
}
