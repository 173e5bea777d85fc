/**
 * A self-contained HTML report of a training run (inline SVG, no scripts, no
 * network): training loss (raw and smoothed, on a y axis clipped so an early
 * spike does not flatten the curve), test AUC on an axis fitted to the data
 * with the teacher's AUC as a reference line, evaluation losses, the
 * learning rate, the per-kernel GPU time split and the configuration as a
 * table. Every chart has real axes: nice ticks, gridlines, axis titles and a
 * legend.
 */
import type { TimingRow } from "../gpu/timing.ts";
import type { DlrmConfig } from "../model/config.ts";
import { learningRateAt } from "../model/schedule.ts";
import type { TrainResult } from "../model/trainer.ts";

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** About `count` round tick values (1, 2, 5 x 10^k steps) covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function fmtTick(v: number, ticks: number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : Math.abs(v) || 1;
  if (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3)) return v.toExponential(1);
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

interface Series {
  label: string;
  points: { x: number; y: number }[];
  color: string;
  width?: number;
  opacity?: number;
  markers?: boolean;
}

interface ChartOptions {
  title: string;
  yTitle: string;
  xDomain: [number, number];
  series: Series[];
  /** Horizontal reference lines (e.g. the teacher's AUC). */
  refs?: { y: number; label: string; color: string }[];
  /** y range; values outside are drawn at the edge (clipped). */
  yDomain?: [number, number];
  note?: string;
}

const W = 720;
const H = 250;
const M = { l: 64, r: 16, t: 14, b: 40 };

function chart(o: ChartOptions): string {
  const all = o.series.flatMap((s) => s.points.map((p) => p.y)).concat((o.refs ?? []).map((r) => r.y)).filter(Number.isFinite);
  if (all.length === 0) return `<section><h2>${esc(o.title)}</h2><p class="empty">No data.</p></section>`;
  let [y0, y1] = o.yDomain ?? [Math.min(...all), Math.max(...all)];
  if (!(y1 > y0)) [y0, y1] = [y0 - Math.abs(y0 || 1) * 0.05, y1 + Math.abs(y1 || 1) * 0.05];
  const yt = niceTicks(y0, y1, 5);
  // Extend the domain to the outer ticks so the gridlines frame the data.
  const step = yt.length > 1 ? yt[1]! - yt[0]! : 0;
  if (step > 0) {
    if (yt[0]! > y0 + 1e-12) yt.unshift(Number((yt[0]! - step).toPrecision(12)));
    if (yt.at(-1)! < y1 - 1e-12) yt.push(Number((yt.at(-1)! + step).toPrecision(12)));
    [y0, y1] = [yt[0]!, yt.at(-1)!];
  }
  let [x0, x1] = o.xDomain;
  if (!(x1 > x0)) [x0, x1] = [x0 - 1, x1 + 1];
  const xt = niceTicks(x0, x1, 8).filter((t) => t >= x0 && t <= x1);
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const sx = (x: number) => M.l + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => M.t + (1 - (Math.min(y1, Math.max(y0, y)) - y0) / (y1 - y0)) * ph;
  const grid = [
    ...yt.map((t) => `<line class="grid" x1="${M.l}" x2="${W - M.r}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}"/><text class="tick" x="${M.l - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${fmtTick(t, yt)}</text>`),
    ...xt.map((t) => `<line class="grid" y1="${M.t}" y2="${H - M.b}" x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}"/><text class="tick" y="${H - M.b + 16}" x="${sx(t).toFixed(1)}" text-anchor="middle">${fmtTick(t, xt)}</text>`),
  ].join("");
  const axes = `<line class="axis" x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}"/><line class="axis" x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}"/>` +
    `<text class="title" x="${M.l + pw / 2}" y="${H - 6}" text-anchor="middle">step</text>` +
    `<text class="title" transform="translate(14 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(o.yTitle)}</text>`;
  const refs = (o.refs ?? [])
    .map((r) => `<line class="ref" x1="${M.l}" x2="${W - M.r}" y1="${sy(r.y).toFixed(1)}" y2="${sy(r.y).toFixed(1)}" stroke="${r.color}"/>`)
    .join("");
  const lines = o.series
    .map((s) => {
      const pts = s.points.filter((p) => Number.isFinite(p.y));
      const d = pts.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join("");
      const path = pts.length > 1 ? `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="${s.width ?? 1.5}" stroke-opacity="${s.opacity ?? 1}" stroke-linejoin="round"/>` : "";
      const dots = s.markers || pts.length === 1 ? pts.map((p) => `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3.5" fill="${s.color}"><title>step ${p.x}: ${p.y.toPrecision(5)}</title></circle>`).join("") : "";
      // The last value of a marked series, written beside its point.
      const end = pts.at(-1);
      const label = s.markers && end ? `<text class="value" x="${(sx(end.x) - 8).toFixed(1)}" y="${(sy(end.y) - 8).toFixed(1)}" text-anchor="end" fill="${s.color}">${end.y.toFixed(4)}</text>` : "";
      return path + dots + label;
    })
    .join("");
  const legend = [...o.series.map((s) => ({ label: s.label, color: s.color, dash: false, opacity: s.opacity ?? 1 })), ...(o.refs ?? []).map((r) => ({ label: r.label, color: r.color, dash: true, opacity: 1 }))]
    .map((l) => `<span class="key"><svg width="22" height="10"><line x1="0" x2="22" y1="5" y2="5" stroke="${l.color}" stroke-width="2.5" stroke-opacity="${l.opacity}"${l.dash ? ' stroke-dasharray="5 3"' : ""}/></svg>${esc(l.label)}</span>`)
    .join("");
  return `<section><h2>${esc(o.title)}</h2><div class="legend">${legend}</div>
<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.title)}"><clipPath id="c${esc(o.title.replace(/\W/g, ""))}"><rect x="${M.l - 6}" y="${M.t - 6}" width="${pw + 12}" height="${ph + 12}"/></clipPath>${grid}${axes}<g clip-path="url(#c${esc(o.title.replace(/\W/g, ""))})">${refs}${lines}</g></svg>${o.note ? `<p class="note">${esc(o.note)}</p>` : ""}</section>`;
}

/** Centred moving average over `2 * half + 1` points (fewer at the ends): follows the trend without the lag of an EMA. */
export function smooth(points: { x: number; y: number }[], half: number): { x: number; y: number }[] {
  return points.map((p, i) => {
    const k = Math.min(half, i, points.length - 1 - i);
    let sum = 0;
    for (let j = i - k; j <= i + k; j++) sum += points[j]!.y;
    return { x: p.x, y: sum / (2 * k + 1) };
  });
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.round(q * (sorted.length - 1))))]!;
}

function configTable(config: unknown): string {
  const first = ["embeddingDim", "tableRows", "bottomMlp", "topMlp", "interaction", "interactionItself"];
  const entries = Object.entries((config ?? {}) as Record<string, unknown>).sort((a, b) => (first.indexOf(a[0]) + 1 || 99) - (first.indexOf(b[0]) + 1 || 99));
  const rows = entries.map(([k, v]) => {
    const text = Array.isArray(v) ? (v.length > 12 ? `${v.slice(0, 12).join("-")}-... (${v.length} values)` : v.join("-")) : v !== null && typeof v === "object" ? Object.entries(v).map(([a, b]) => `${a} ${b}`).join(", ") : String(v);
    return `<tr><th>${esc(k)}</th><td>${esc(text)}</td></tr>`;
  });
  return `<table class="config">${rows.join("")}</table>`;
}

export interface ReportOptions {
  title: string;
  config: DlrmConfig | Record<string, unknown>;
  result: TrainResult;
  timings: TimingRow[];
  adapter: string;
  host: string;
  samplesPerSec?: number;
  /** AUC of the synthetic data's teacher on the same test samples (a ceiling for the model). */
  teacherAuc?: number;
  version?: string;
}

export function renderReport(opts: ReportOptions): string {
  const r = opts.result;
  const cfg = opts.config as Partial<DlrmConfig>;
  const total = opts.timings.reduce((a, t) => a + t.ms, 0);
  const shown = opts.timings.slice(0, 20);
  const rest = opts.timings.slice(20);
  if (rest.length) shown.push({ label: `${rest.length} other kernels`, count: rest.reduce((a, t) => a + t.count, 0), ms: rest.reduce((a, t) => a + t.ms, 0) });
  const rows = shown
    .map((t) => `<tr><td>${esc(t.label)}</td><td>${t.count}</td><td>${t.ms.toFixed(2)}</td><td>${total ? ((100 * t.ms) / total).toFixed(1) : "0"}%</td><td><div class="share" style="width:${total ? ((100 * t.ms) / total).toFixed(1) : 0}%"></div></td></tr>`)
    .join("");
  const last = r.evals.at(-1);
  const xDomain: [number, number] = [r.startStep ?? 0, Math.max(r.steps, ...r.losses.map((l) => l.step))];

  // Loss: raw read-backs faint, smoothed bold. The y axis stops a little above the 98th
  // percentile of the read-backs after the first 5%, so a step-1 spike does not flatten the
  // curve; the moving average runs on values clipped there too, so the spike does not drag it.
  const raw = r.losses.map((l) => ({ x: l.step, y: l.loss }));
  let lossDomain: [number, number] | undefined;
  let note: string | undefined;
  let hi = Infinity;
  if (raw.length > 5) {
    const rawSorted = raw.map((p) => p.y).sort((a, b) => a - b);
    const tail = raw.slice(Math.max(1, Math.floor(raw.length * 0.05))).map((p) => p.y).sort((a, b) => a - b);
    const lo = rawSorted[0]!;
    hi = quantile(tail, 0.98) + 0.25 * (quantile(tail, 0.98) - lo);
    const maxRaw = rawSorted.at(-1)!;
    if (maxRaw > hi) {
      lossDomain = [lo, hi];
      const clipped = raw.filter((p) => p.y > hi);
      note = `y axis clipped at ${hi.toPrecision(3)}: ${clipped.length} read-back${clipped.length === 1 ? "" : "s"} above it (highest ${maxRaw.toPrecision(4)} at step ${raw.find((p) => p.y === maxRaw)!.x}).`;
    } else {
      hi = Infinity;
    }
  }
  const sm = smooth(raw.map((p) => ({ x: p.x, y: Math.min(p.y, hi) })), Math.max(1, Math.round(raw.length / 20)));
  const lossName = cfg.loss ?? "model";
  const lossChart = chart({
    title: `Training loss (${lossName})`,
    yTitle: `${lossName} loss`,
    xDomain,
    series: [
      { label: "loss at each read-back", points: raw, color: "#1f6feb", width: 1, opacity: 0.3 },
      { label: "smoothed (centred moving average)", points: sm, color: "#1f6feb", width: 2.2 },
    ],
    yDomain: lossDomain,
    note,
  });

  // AUC: axis fitted to the evaluations and the teacher, never wider than [0, 1].
  const aucPts = r.evals.map((e) => ({ x: e.step, y: e.auc }));
  const aucVals = [...aucPts.map((p) => p.y), ...(opts.teacherAuc !== undefined ? [opts.teacherAuc] : [])];
  const aucLo = Math.min(...aucVals);
  const aucHi = Math.max(...aucVals);
  const pad = Math.max(0.01, (aucHi - aucLo) * 0.15);
  const aucChart = chart({
    title: "Test AUC",
    yTitle: "AUC",
    xDomain,
    series: [{ label: `model (${last ? `${last.samples} test samples` : "test"})`, points: aucPts, color: "#d1242f", width: 2, markers: true }],
    refs: opts.teacherAuc !== undefined ? [{ y: opts.teacherAuc, label: `teacher on the same samples: ${opts.teacherAuc.toFixed(4)}`, color: "#57606a" }] : [],
    yDomain: aucVals.length ? [Math.max(0, aucLo - pad), Math.min(1, aucHi + pad)] : undefined,
    note: r.evals.length === 1 ? "One evaluation, at the end of the run: --test-freq N evaluates every N steps and draws a curve." : undefined,
  });
  const evalLossChart = chart({
    title: "Test loss",
    yTitle: "loss",
    xDomain,
    series: [
      { label: "log loss (cross-entropy of the probabilities)", points: r.evals.map((e) => ({ x: e.step, y: e.logLoss })), color: "#8250df", width: 2, markers: true },
      ...(lossName !== "bce" ? [{ label: `${lossName} loss (the training objective)`, points: r.evals.map((e) => ({ x: e.step, y: e.loss })), color: "#bf8700", width: 2, markers: true }] : []),
    ],
  });
  let lrChart = "";
  if (cfg.learningRate !== undefined) {
    const schedule = { baseLr: cfg.learningRate, warmupSteps: cfg.lrWarmupSteps ?? 0, decayStartStep: cfg.lrDecayStartStep ?? 0, decaySteps: cfg.lrDecaySteps ?? 0 };
    const n = Math.max(1, xDomain[1] - xDomain[0]);
    const every = Math.max(1, Math.floor(n / 400));
    const pts: { x: number; y: number }[] = [];
    for (let s = xDomain[0] + 1; s <= xDomain[1]; s += every) pts.push({ x: s, y: learningRateAt(schedule, s - 1) });
    if (pts.at(-1)?.x !== xDomain[1]) pts.push({ x: xDomain[1], y: learningRateAt(schedule, xDomain[1] - 1) });
    const lrs = pts.map((p) => p.y);
    lrChart = chart({ title: "Learning rate", yTitle: "learning rate", xDomain, series: [{ label: `${cfg.optimizer ?? ""} schedule`, points: pts, color: "#1a7f37", width: 2 }], yDomain: [0, Math.max(...lrs) * 1.05] });
  }
  const facts: [string, string][] = [
    ["host", `${opts.host} on ${opts.adapter}`],
    ["steps", r.startStep ? `${r.trainedSteps} trained in this run (resumed at ${r.startStep}, now at ${r.steps})` : `${r.steps}`],
    ["time", `${r.seconds.toFixed(1)} s${opts.samplesPerSec ? `, ${Math.round(opts.samplesPerSec)} samples/s` : ""}`],
    ...(last ? ([[`final test (${last.samples} samples)`, `AUC ${last.auc.toFixed(4)}, accuracy ${(100 * last.accuracy).toFixed(2)}%, log loss ${last.logLoss.toFixed(4)}, ${lossName} loss ${last.loss.toFixed(4)}`]] as [string, string][]) : []),
    ...(opts.teacherAuc !== undefined ? ([["teacher AUC (same samples)", opts.teacherAuc.toFixed(4)]] as [string, string][]) : []),
    ...(r.interrupted ? ([["status", "interrupted (Ctrl-C)"]] as [string, string][]) : []),
    ...(opts.version ? ([["webgpu-dlrm", opts.version]] as [string, string][]) : []),
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${esc(opts.title)}</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:760px;color:#1f2328;padding:0 12px}
h1{font-size:22px;margin:0 0 12px}h2{font-size:16px;margin:22px 0 4px}
table{border-collapse:collapse}td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:right;font-variant-numeric:tabular-nums}
td:first-child,th:first-child{text-align:left}table.facts th,table.config th{background:#f6f8fa;font-weight:600}table.config td,table.facts td{text-align:left}
.chart{display:block}.grid{stroke:#d8dee4;stroke-width:1}.axis{stroke:#57606a;stroke-width:1}.ref{stroke-width:1.5;stroke-dasharray:5 3}
.value{font-size:12px;font-weight:600;font-variant-numeric:tabular-nums}.tick{font-size:11px;fill:#57606a;font-variant-numeric:tabular-nums}.title{font-size:12px;fill:#1f2328}
.legend{font-size:12px;color:#57606a;margin:2px 0 2px ${M.l}px}.key{margin-right:16px;white-space:nowrap}.key svg{vertical-align:middle;margin-right:4px}
.note{font-size:12px;color:#57606a;margin:2px 0 0 ${M.l}px}.share{background:#54aeff;height:10px;min-width:1px}.empty{color:#57606a}
</style></head><body>
<h1>${esc(opts.title)}</h1>
<table class="facts">${facts.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>
${lossChart}
${aucChart}
${evalLossChart}
${lrChart}
<h2>GPU time per kernel</h2>
${rows ? `<table><tr><th>kernel</th><th>calls</th><th>ms</th><th>share</th><th style="width:160px"></th></tr>${rows}</table>` : "<p class=\"empty\">Not profiled (the adapter has no timestamp queries).</p>"}
<h2>Configuration</h2>${configTable(opts.config)}
</body></html>
`;
}
