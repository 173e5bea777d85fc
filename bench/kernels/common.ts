/** What every case module of bench/kernels.ts gets, and number formatting. */
import type { Roofline } from "../roofline.ts";
import type { TfjsPeer } from "../tfjs_peer.ts";
import { peerRatio } from "../tfjs_peer.ts";
import type { KernelTimer, Timing } from "./timing.ts";

export interface BenchEnv {
  device: GPUDevice;
  timer: KernelTimer;
  /** Undefined when tfjs could not start (the reason is in peerError) or --no-tfjs. */
  peer: TfjsPeer | undefined;
  /** Updated in place at the end of the run (best of the opening and closing measurement). */
  roof: Roofline;
  quick: boolean;
  log: (line: string) => void;
}

/**
 * A table cell; a function is evaluated when the table is rendered, after
 * the closing roofline measurement (fractions of the roofline use the final
 * figures, see bench/kernels.ts).
 */
export type Cell = string | (() => string);

export const renderCells = (cells: readonly Cell[]): string[] => cells.map((c) => (typeof c === "function" ? c() : c));

/** Fixed-point with `d` decimals, or 3 significant digits for small values. */
export function fmt(x: number, d = 2): string {
  if (!Number.isFinite(x)) return "n/a";
  if (x !== 0 && Math.abs(x) < 10 ** -d * 10) return x.toPrecision(2);
  return x.toFixed(d);
}

export const pct = (x: number): string => (Number.isFinite(x) ? `${(100 * x).toFixed(1)}%` : "n/a");

/** Columns describing the peer measurement of a row: tfjs ms and tfjs / ours. */
export function peerCols(ours: Timing, peer: Timing | undefined): [string, string] {
  if (!peer) return ["n/a", "n/a"];
  const r = peerRatio(ours, peer);
  return [fmt(r.method === "timestamp" ? peer.ms : peer.wallMs, 3), `${r.ratio.toFixed(2)}x${r.method === "wall" ? " (wall)" : ""}`];
}
