/**
 * A prefetching loader: runs a batch stream ahead of its consumer into a
 * bounded queue, so the next batches are read and assembled (disk reads,
 * decoding, shuffling) while the consumer waits on the GPU. Records how long
 * the consumer waited for batches: the loader's share of step time.
 */
export interface PrefetchStats {
  /** Batches handed out. */
  batches: number;
  /** Total time the consumer spent waiting for a batch (ms). */
  waitMs: number;
  /** Wait for the most recent batch (ms). */
  lastWaitMs: number;
}

export interface Prefetcher<T> extends AsyncIterable<T> {
  readonly stats: PrefetchStats;
}

/** Wraps `source` so that up to `depth` items are produced ahead of the consumer. */
export function prefetch<T>(source: AsyncIterable<T>, depth = 4): Prefetcher<T> {
  if (!(Number.isInteger(depth) && depth >= 1)) throw new Error(`prefetch depth must be a positive integer, got ${depth}`);
  const stats: PrefetchStats = { batches: 0, waitMs: 0, lastWaitMs: 0 };
  return {
    stats,
    [Symbol.asyncIterator](): AsyncIterator<T> {
      const it = source[Symbol.asyncIterator]();
      const queue: Promise<IteratorResult<T>>[] = [];
      let done = false;
      // Each pull starts only after the previous one settled (generators are not re-entrant).
      let tail: Promise<unknown> = Promise.resolve();
      const fill = () => {
        while (!done && queue.length < depth) {
          const p = tail.then(() => it.next());
          tail = p.catch(() => {});
          p.then((r) => { if (r.done) done = true; }, () => { done = true; });
          queue.push(p);
        }
      };
      return {
        async next(): Promise<IteratorResult<T>> {
          fill();
          const t = performance.now();
          const p = queue.shift();
          const r = p ? await p : ({ done: true, value: undefined } as IteratorResult<T>);
          const w = performance.now() - t;
          if (!r.done) {
            stats.batches++;
            stats.waitMs += w;
            stats.lastWaitMs = w;
            fill();
          }
          return r;
        },
        async return(): Promise<IteratorResult<T>> {
          done = true;
          queue.length = 0;
          await tail;
          await it.return?.();
          return { done: true, value: undefined };
        },
      };
    },
  };
}
