/**
 * GPU timing. With the 'timestamp-query' feature every timed compute pass
 * writes begin/end timestamps; without it, work is timed by wall clock
 * around submit + onSubmittedWorkDone. Totals are kept per label.
 */

export interface TimingRow {
  label: string;
  ms: number;
  count: number;
}

export class Profiler {
  readonly timestamps: boolean;
  private readonly querySet: GPUQuerySet | undefined;
  private readonly resolveBuf: GPUBuffer | undefined;
  private readonly readBuf: GPUBuffer | undefined;
  private pending: string[] = [];
  private readonly totals = new Map<string, TimingRow>();

  constructor(
    private readonly device: GPUDevice,
    private readonly capacity = 256,
    useTimestamps = device.features.has("timestamp-query"),
  ) {
    // A query set holds at most 4096 queries (WebGPU's limit); past it Chromium hands back zeros silently.
    if (!Number.isInteger(capacity) || capacity < 1 || capacity * 2 > 4096) throw new RangeError(`Profiler capacity must be 1..2048 timed passes (two timestamps each, 4096 queries at most), got ${capacity}`);
    this.timestamps = useTimestamps;
    if (useTimestamps) {
      this.querySet = device.createQuerySet({ label: "profiler", type: "timestamp", count: capacity * 2 });
      this.resolveBuf = device.createBuffer({ label: "profiler:resolve", size: capacity * 16, usage: 0x0200 | 0x0004 });
      this.readBuf = device.createBuffer({ label: "profiler:read", size: capacity * 16, usage: 0x0001 | 0x0008 });
    }
  }

  /** Timestamp writes for the next timed pass (timestamps mode only). */
  timestampWrites(label: string): GPUComputePassTimestampWrites {
    if (!this.querySet) throw new Error("Profiler.timestampWrites needs the timestamp-query feature");
    const slot = this.pending.length;
    if (slot >= this.capacity) throw new Error(`Profiler: more than ${this.capacity} timed passes before collect()`);
    this.pending.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: slot * 2, endOfPassWriteIndex: slot * 2 + 1 };
  }

  /** Adds the query resolve to `encoder`; call once after the timed passes, before finish(). */
  resolve(encoder: GPUCommandEncoder): void {
    if (!this.querySet || this.pending.length === 0) return;
    const n = this.pending.length * 2;
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf!, 0);
    encoder.copyBufferToBuffer(this.resolveBuf!, 0, this.readBuf!, 0, n * 8);
  }

  /** Reads back the timestamps of the passes resolved so far and adds them to the totals. */
  async collect(): Promise<void> {
    if (!this.readBuf || this.pending.length === 0) return;
    await this.readBuf.mapAsync(0x0001);
    const t = new BigUint64Array(this.readBuf.getMappedRange().slice(0, this.pending.length * 16));
    this.readBuf.unmap();
    this.pending.forEach((label, i) => {
      const ns = Number(t[2 * i + 1]! - t[2 * i]!);
      this.add(label, Math.max(0, ns) / 1e6);
    });
    this.pending = [];
  }

  /** Wall-clock timing of GPU work: runs `submit`, waits for the queue, adds the time under `label`. */
  async wallClock(label: string, submit: () => void): Promise<number> {
    await this.device.queue.onSubmittedWorkDone();
    const t0 = performance.now();
    submit();
    await this.device.queue.onSubmittedWorkDone();
    const ms = performance.now() - t0;
    this.add(label, ms);
    return ms;
  }

  add(label: string, ms: number): void {
    const row = this.totals.get(label);
    if (row) {
      row.ms += ms;
      row.count++;
    } else this.totals.set(label, { label, ms, count: 1 });
  }

  rows(): TimingRow[] {
    return [...this.totals.values()].sort((a, b) => b.ms - a.ms);
  }

  reset(): void {
    this.totals.clear();
  }

  destroy(): void {
    this.querySet?.destroy();
    this.resolveBuf?.destroy();
    this.readBuf?.destroy();
  }
}
