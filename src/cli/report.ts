/**
 * A small self-contained HTML report of a training run: loss and AUC
 * curves as inline SVG, the per-kernel GPU time split, and the config.
 */
import type { TimingRow } from "../gpu/timing.ts";
import type { TrainResult } from "../model/trainer.ts";

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

function lineChart(title: string, points: { x: number; y: number }[], yLabel: string, yRange?: [number, number]): string {
  const w = 560;
  const h = 220;
  const pad = 40;
  if (points.length === 0) return `<h2>${esc(title)}</h2><p>No data.</p>`;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = yRange ? [Math.min(yRange[0], ...ys), Math.max(yRange[1], ...ys)] : [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  // A single point sits in the middle.
  const sx = (x: number) => (x1 === x0 ? w / 2 : pad + ((x - x0) / (x1 - x0)) * (w - 2 * pad));
  const sy = (y: number) => h - pad - ((y - y0) / (y1 - y0)) * (h - 2 * pad);
  const path = points.map((p, i) => `${i ? "L" : "M"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
  const dots = points.length <= 50 ? points.map((p) => `<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3"/>`).join("") : "";
  return `<h2>${esc(title)}</h2>
<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${esc(title)}">
<rect x="0" y="0" width="${w}" height="${h}" fill="#fafafa"/>
<line x1="${pad}" y1="${h - pad}" x2="${w - pad}" y2="${h - pad}" stroke="#888"/><line x1="${pad}" y1="${pad}" x2="${pad}" y2="${h - pad}" stroke="#888"/>
<text x="${pad}" y="${pad - 8}" font-size="11">${esc(yLabel)} ${y1.toPrecision(4)}</text>
<text x="${pad}" y="${h - pad + 14}" font-size="11">step ${x0}</text><text x="${w - pad}" y="${h - pad + 14}" font-size="11" text-anchor="end">${x1}</text>
<text x="${pad + 4}" y="${h - pad - 4}" font-size="11">${y0.toPrecision(4)}</text>
<path d="${path}" fill="none" stroke="#1f6feb" stroke-width="1.5"/><g fill="#1f6feb">${dots}</g></svg>`;
}

export function renderReport(opts: { title: string; config: unknown; result: TrainResult; timings: TimingRow[]; adapter: string; host: string; samplesPerSec?: number }): string {
  const total = opts.timings.reduce((a, r) => a + r.ms, 0);
  const shown = opts.timings.slice(0, 20);
  const rest = opts.timings.slice(20);
  if (rest.length) shown.push({ label: `${rest.length} other kernels`, count: rest.reduce((a, r) => a + r.count, 0), ms: rest.reduce((a, r) => a + r.ms, 0) });
  const rows = shown
    .map((r) => `<tr><td>${esc(r.label)}</td><td>${r.count}</td><td>${r.ms.toFixed(2)}</td><td>${total ? ((100 * r.ms) / total).toFixed(1) : "0"}%</td></tr>`)
    .join("");
  const last = opts.result.evals.at(-1);
  return `<!doctype html><html><head><meta charset="utf-8"><title>${esc(opts.title)}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:760px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child{text-align:left}pre{background:#f4f4f4;padding:1em;overflow:auto}</style></head><body>
<h1>${esc(opts.title)}</h1>
<p>${esc(opts.host)} on ${esc(opts.adapter)}: ${opts.result.steps} steps in ${opts.result.seconds.toFixed(1)} s${opts.samplesPerSec ? `, ${Math.round(opts.samplesPerSec)} samples/s` : ""}${
    last ? `; final ${esc(last.split)} AUC ${last.auc.toFixed(4)}, accuracy ${(100 * last.accuracy).toFixed(2)}%, log loss ${last.logLoss.toFixed(4)}` : ""
  }${opts.result.interrupted ? " (interrupted)" : ""}.</p>
${lineChart("Training loss", opts.result.losses.map((l) => ({ x: l.step, y: l.loss })), "loss")}
${lineChart("Test AUC", opts.result.evals.map((e) => ({ x: e.step, y: e.auc })), "AUC", [0.5, 1])}
<h2>GPU time per kernel</h2>
${rows ? `<table><tr><th>kernel</th><th>calls</th><th>ms</th><th>share</th></tr>${rows}</table>` : "<p>Not profiled.</p>"}
<h2>Configuration</h2><pre>${esc(JSON.stringify(opts.config, null, 2))}</pre>
</body></html>
`;
}
