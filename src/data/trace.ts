/**
 * Reuse-trace synthetic indices, after the reference's trace tools
 * (dlrm_data_pytorch.py trace_profile, read_dist_from_file,
 * generate_stack_distance, trace_generate_lru).
 *
 * A trace is a sequence of ids (text "1, 2, 3, ..." or binary little-endian
 * u64). Profiling it with an LRU stack gives, per access, its stack distance:
 * 0 for the first access to an id, else the id's depth in the LRU stack
 * (1 = the most recently used id). The reference stores the result as a
 * "dist file" of three lines, each ", "-separated:
 *   1. the unique ids in order of first access ("line accesses"),
 *   2. the distinct stack distances, ascending (0 = new id),
 *   3. their cumulative probabilities.
 * Generation (trace_generate_lru) replays an LRU stack: draw a stack distance
 * u ~ U[0,1) against the CDF, restricted to distances <= the number of ids
 * already brought in (only 0 possible at first); 0 brings the next unseen id
 * (the front of the list), d > 0 re-uses the d-th most recent id; the used id
 * moves to the top.
 *
 * Deviation (documented): the reference re-reads the dist file and restarts
 * the LRU state for every bag, so every bag starts with the same first id;
 * here each table keeps one LRU state across the whole stream of a split,
 * which is what the profiled trace describes.
 */
import type { Rng } from "../util/rng.ts";
import { DataError } from "./source.ts";

export interface StackDistanceDist {
  /** Unique ids in order of first access. */
  lineAccesses: number[];
  /** Distinct stack distances, ascending; 0 = first access to an id. */
  distances: number[];
  /** Cumulative probability of distances[i] (last = 1). */
  cdf: number[];
}

/** Parses the reference's text trace: ids separated by ", " (any commas / whitespace accepted). */
export function parseTraceText(text: string): number[] {
  const parts = text.split(/[\s,]+/).filter((s) => s.length > 0);
  return parts.map((s, i) => {
    if (!/^\d+$/.test(s)) throw new DataError(`trace: item ${i} is ${JSON.stringify(s)}, expected a non-negative integer id`);
    return Number(s);
  });
}

/** Parses the reference's binary trace (numpy uint64 tofile, little-endian). Ids must be < 2^53. */
export function parseTraceBinary(bytes: Uint8Array): number[] {
  if (bytes.length % 8 !== 0) throw new DataError(`binary trace: ${bytes.length} bytes is not a whole number of u64 ids`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let i = 0; i < bytes.length; i += 8) {
    const hi = dv.getUint32(i + 4, true);
    if (hi >= 2 ** 21) throw new DataError(`binary trace: id ${i / 8} exceeds 2^53`);
    out.push(hi * 2 ** 32 + dv.getUint32(i, true));
  }
  return out;
}

/** Parses the reference's dist file (three lines, see the module comment). */
export function parseStackDistanceDist(text: string): StackDistanceDist {
  const lines = text.split(/\r?\n/).filter((l) => l.trim().length > 0);
  if (lines.length < 3) throw new DataError(`dist file: expected 3 lines (unique ids, stack distances, cumulative probabilities), got ${lines.length}`);
  const nums = (l: string, what: string) =>
    l.split(",").map((s) => {
      const v = Number(s.trim());
      if (s.trim() === "" || !Number.isFinite(v)) throw new DataError(`dist file: ${what} has a non-number ${JSON.stringify(s)}`);
      return v;
    });
  const dist = { lineAccesses: nums(lines[0], "line 1 (unique ids)"), distances: nums(lines[1], "line 2 (stack distances)"), cdf: nums(lines[2], "line 3 (cumulative probabilities)") };
  checkDist(dist);
  return dist;
}

function checkDist(d: StackDistanceDist): void {
  if (d.distances.length !== d.cdf.length || d.distances.length === 0) {
    throw new DataError(`dist: ${d.distances.length} stack distances but ${d.cdf.length} cumulative probabilities`);
  }
  for (let i = 0; i < d.distances.length; i++) {
    if (!Number.isInteger(d.distances[i]) || d.distances[i] < 0 || (i > 0 && d.distances[i] <= d.distances[i - 1])) {
      throw new DataError(`dist: stack distances must be ascending non-negative integers (item ${i} = ${d.distances[i]})`);
    }
    if (i > 0 && d.cdf[i] < d.cdf[i - 1]) throw new DataError(`dist: cumulative probabilities decrease at item ${i}`);
  }
  if (d.distances[0] !== 0) throw new DataError("dist: the first stack distance must be 0 (new ids), or no id could ever be brought in");
  if (Math.abs(d.cdf[d.cdf.length - 1] - 1) > 1e-6) throw new DataError(`dist: the last cumulative probability must be 1, got ${d.cdf[d.cdf.length - 1]}`);
  if (d.lineAccesses.length === 0) throw new DataError("dist: no unique ids");
  const maxD = d.distances[d.distances.length - 1];
  if (maxD > d.lineAccesses.length) throw new DataError(`dist: stack distance ${maxD} exceeds the ${d.lineAccesses.length} unique ids`);
}

/** trace_profile + the reference's distribution step: the dist of an id trace. */
export function profileTrace(trace: readonly number[]): StackDistanceDist {
  if (trace.length === 0) throw new DataError("trace is empty");
  const stack: number[] = []; // LRU stack, most recent last
  const lineAccesses: number[] = [];
  const counts = new Map<number, number>();
  for (const r of trace) {
    const i = stack.lastIndexOf(r);
    let sd: number;
    if (i < 0) {
      sd = 0;
      lineAccesses.push(r);
    } else {
      sd = stack.length - i;
      stack.splice(i, 1);
    }
    stack.push(r);
    counts.set(sd, (counts.get(sd) ?? 0) + 1);
  }
  const distances = [...counts.keys()].sort((a, b) => a - b);
  const cdf: number[] = [];
  let acc = 0;
  for (const d of distances) cdf.push((acc += counts.get(d)! / trace.length));
  cdf[cdf.length - 1] = 1;
  return { lineAccesses, distances, cdf };
}

/** Stateful LRU generator (trace_generate_lru) for one table. */
export class TraceGenerator {
  private readonly lines: Float64Array; // LRU list: unseen ids at the front, most recent at the end
  private newSeen = 0;

  constructor(private readonly dist: StackDistanceDist, private readonly enablePadding = false) {
    checkDist(dist);
    this.lines = Float64Array.from(dist.lineAccesses);
  }

  /** Next id of the synthetic trace. */
  next(rng: Rng): number {
    const sd = this.stackDistance(rng);
    const l = this.lines.length;
    const pos = sd === 0 ? 0 : l - sd;
    const id = this.lines[pos];
    this.lines.copyWithin(pos, pos + 1); // move the id to the top (end)
    this.lines[l - 1] = id;
    if (sd === 0) this.newSeen++;
    return id;
  }

  /** generate_stack_distance: inverse CDF, support shrunk to distances <= ids seen so far. */
  private stackDistance(rng: Rng): number {
    const { distances, cdf } = this.dist;
    const maxD = distances[distances.length - 1];
    let u = rng.uniform();
    if (this.newSeen < maxD) {
      u *= cdf[upperBound(distances, this.newSeen) - 1]; // largest j with distances[j] <= newSeen
    } else if (this.enablePadding) {
      u = (1 - cdf[0]) * u + cdf[0]; // no new ids once the largest distance is reachable
    }
    const j = lowerBound(cdf, u); // first j with u <= cdf[j]
    return distances[Math.min(j, distances.length - 1)];
  }
}

/** First index with a[i] > x. */
function upperBound(a: readonly number[], x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index with a[i] >= x. */
function lowerBound(a: readonly number[], x: number): number {
  let lo = 0, hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
