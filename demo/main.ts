/**
 * The training demo page: detects WebGPU, keeps the settings in the form and
 * the URL, drives the training worker and draws what it reports (charts,
 * kernel times on the DLRM diagram, the sharding plan and all-to-all, the
 * learned embeddings, predictions, checkpoints).
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import "./style.css";
import type { FromWorker, KernelTime, Stage, ToWorker } from "./protocol.ts";
import { dash, fromQuery, INTERCONNECT_NAMES, parseDash, PRESETS, presetSettings, toQuery, topMlp, type Settings } from "./settings.ts";
import { formatBytes, formatSec, INTERCONNECT_CHOICES, shardBytes, shardView, type ShardView } from "./shard.ts";

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const SVG = "http://www.w3.org/2000/svg";
const svgEl = <K extends keyof SVGElementTagNameMap>(tag: K, attrs: Record<string, string | number> = {}, parent?: Element) => {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  parent?.appendChild(e);
  return e;
};

const STAGE_NAMES: Record<Stage, string> = { bottom: "bottom MLP", embedding: "embedding bags", interaction: "interaction", top: "top MLP", loss: "loss", optimizer: "optimizer", other: "other" };
const STAGE_COLOURS: Record<Stage, string> = { bottom: "#2e7d32", embedding: "#6a1b9a", interaction: "#c25e00", top: "#1565c0", loss: "#ad1457", optimizer: "#455a64", other: "#757575" };
const DEVICE_COLOURS = ["#1565c0", "#2e7d32", "#c25e00", "#6a1b9a", "#ad1457", "#00838f", "#5d4037", "#455a64", "#9e7700", "#283593", "#558b2f", "#d84315", "#4527a0", "#00695c", "#6d4c41", "#37474f"];

/** What the end-to-end test reads (and a console user can inspect). */
interface DemoState {
  state: string;
  step: number;
  losses: { step: number; loss: number }[];
  evals: { step: number; auc: number; logLoss: number }[];
  kernels: KernelTime[];
  maxGapMs: number;
  /** Timer lateness (ms past the 16 ms period) of every tick while training. */
  gaps: number[];
  /** Durations of main-thread tasks longer than 50 ms while training (PerformanceObserver "longtask"). */
  longTasks: number[];
  /** Longest time the page spent handling one worker message while training. */
  handlerMaxMs: number;
  trainSeconds: number;
  firstStepAt: number | null;
  stepTimes: { step: number; t: number }[];
  predictions: { prob: number }[];
  loaded: { step: number; name: string } | null;
  device: unknown;
  webgpu: "unknown" | "ok" | "missing" | "no-adapter";
  rounds: number;
  measuredRounds: number;
}
const demo: DemoState = { state: "idle", step: 0, losses: [], evals: [], kernels: [], maxGapMs: 0, gaps: [], longTasks: [], handlerMaxMs: 0, trainSeconds: 0, firstStepAt: null, stepTimes: [], predictions: [], loaded: null, device: null, webgpu: "unknown", rounds: 0, measuredRounds: 0 };
(window as unknown as { __demo: DemoState }).__demo = demo;

// ---------------------------------------------------------------- settings and the form
let settings: Settings;
let chosenFile: File | undefined;
{
  const { settings: s, problems } = fromQuery(location.search);
  settings = s;
  if (problems.length) queueMicrotask(() => ($("form-error").textContent = `Ignored in the link: ${problems.join("; ")}`));
}

function buildPresetRadios(): void {
  const box = $("presets");
  for (const [key, p] of Object.entries(PRESETS)) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="preset" value="${key}" /> ${p.title}`;
    box.appendChild(label);
  }
  const link = $<HTMLSelectElement>("f-link");
  for (const key of INTERCONNECT_NAMES) link.add(new Option(`${key}: ${INTERCONNECT_CHOICES[key]!.describe}`, key));
}

function fillForm(s: Settings): void {
  document.querySelectorAll<HTMLInputElement>("input[name=preset]").forEach((r) => (r.checked = r.value === s.preset));
  document.querySelectorAll<HTMLInputElement>("input[name=data]").forEach((r) => (r.checked = r.value === s.data));
  $("preset-about").textContent = PRESETS[s.preset]?.about ?? "";
  $<HTMLInputElement>("f-tables").value = dash(s.tables);
  $<HTMLInputElement>("f-dim").value = String(s.dim);
  $<HTMLInputElement>("f-bottom").value = dash(s.bottom);
  $<HTMLInputElement>("f-top").value = dash(s.topHidden);
  $<HTMLSelectElement>("f-interaction").value = s.interaction;
  $<HTMLInputElement>("f-bag").value = String(s.bag);
  $<HTMLSelectElement>("f-opt").value = s.optimizer;
  $<HTMLInputElement>("f-lr").value = String(s.lr);
  $<HTMLInputElement>("f-batch").value = String(s.batch);
  $<HTMLInputElement>("f-steps").value = String(s.steps);
  $<HTMLInputElement>("f-eval").value = String(s.evalEvery);
  $<HTMLInputElement>("f-devices").value = String(s.devices);
  $<HTMLSelectElement>("f-link").value = s.interconnect;
  $<HTMLSelectElement>("f-plan").value = s.plan;
  $<HTMLInputElement>("f-sharded").checked = s.sharded;
  $("criteo").hidden = s.data !== "criteo";
}

/** Reads the form; throws with a message naming the field. */
function readForm(): Settings {
  const num = (id: string, name: string, int = true) => {
    const v = Number($<HTMLInputElement>(id).value);
    if (!Number.isFinite(v) || v <= 0 || (int && !Number.isInteger(v))) throw new Error(`${name}: expected a positive ${int ? "integer" : "number"}`);
    return v;
  };
  const list = (id: string, name: string, empty = false) => {
    try {
      return parseDash($<HTMLInputElement>(id).value, empty);
    } catch (e) {
      throw new Error(`${name}: ${(e as Error).message}`);
    }
  };
  const preset = document.querySelector<HTMLInputElement>("input[name=preset]:checked")?.value ?? "tiny";
  const data = (document.querySelector<HTMLInputElement>("input[name=data]:checked")?.value ?? "synthetic") as Settings["data"];
  const s: Settings = {
    preset,
    tables: list("f-tables", "Table rows"),
    dim: num("f-dim", "Embedding dim"),
    bottom: list("f-bottom", "Bottom MLP"),
    topHidden: list("f-top", "Top MLP hidden", true),
    interaction: $<HTMLSelectElement>("f-interaction").value as Settings["interaction"],
    optimizer: $<HTMLSelectElement>("f-opt").value as Settings["optimizer"],
    lr: num("f-lr", "Learning rate", false),
    batch: num("f-batch", "Batch size"),
    steps: num("f-steps", "Steps"),
    bag: num("f-bag", "Lookups per bag"),
    evalEvery: num("f-eval", "Evaluate every"),
    devices: Math.min(16, num("f-devices", "Devices")),
    interconnect: $<HTMLSelectElement>("f-link").value,
    plan: $<HTMLSelectElement>("f-plan").value as Settings["plan"],
    sharded: $<HTMLInputElement>("f-sharded").checked,
    data,
    seed: settings?.seed ?? 1,
  };
  if (s.bottom.length < 2) throw new Error("Bottom MLP: give the dense width and at least one layer, e.g. 13-64-16");
  if (s.bottom.at(-1) !== s.dim) throw new Error(`Bottom MLP must end in the embedding dim ${s.dim} (e.g. ${[...s.bottom.slice(0, -1), s.dim].join("-")})`);
  if (s.tables.length > 64) throw new Error("Table rows: at most 64 tables in the demo");
  const embBytes = s.tables.reduce((a, r) => a + r, 0) * s.dim * 4;
  if (embBytes > 512 * 2 ** 20) throw new Error(`Tables hold ${formatBytes(embBytes)}: keep them under 512 MiB in a browser`);
  return s;
}

function onFormChange(ev?: Event): void {
  const t = ev?.target as HTMLInputElement | undefined;
  if (t?.name === "preset") {
    const keep = { devices: settings.devices, interconnect: settings.interconnect, plan: settings.plan, sharded: settings.sharded, data: settings.data, seed: settings.seed };
    settings = { ...presetSettings(t.value), ...keep };
    fillForm(settings);
  }
  $("criteo").hidden = (document.querySelector<HTMLInputElement>("input[name=data]:checked")?.value ?? "") !== "criteo";
  try {
    settings = readForm();
    $("form-error").textContent = "";
  } catch (e) {
    $("form-error").textContent = (e as Error).message;
    return;
  }
  history.replaceState(null, "", `?${toQuery(settings)}`);
  drawDiagram(settings);
  drawSharding();
}

// ---------------------------------------------------------------- WebGPU detection
async function detectWebGpu(): Promise<boolean> {
  const status = $("gpu-status");
  const nav = navigator as Navigator & { gpu?: GPU };
  const noGpu = (why: string, kind: DemoState["webgpu"]) => {
    demo.webgpu = kind;
    document.body.dataset.webgpu = kind;
    $("nogpu").hidden = false;
    $("nogpu-why").textContent = why;
    status.textContent = "Not available: see below.";
  };
  if (!nav.gpu) {
    noGpu(window.isSecureContext ? "This browser does not expose navigator.gpu (WebGPU is off or not implemented)." : "This page is not in a secure context (https or localhost), where browsers hide WebGPU.", "missing");
    return false;
  }
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await nav.gpu.requestAdapter();
  } catch (e) {
    noGpu(`requestAdapter() failed: ${(e as Error).message}`, "no-adapter");
    return false;
  }
  if (!adapter) {
    noGpu("The browser has WebGPU but offered no GPU adapter (the GPU may be blocklisted, or WebGPU disabled by a flag or policy).", "no-adapter");
    return false;
  }
  const info = adapter.info as GPUAdapterInfo & { isFallbackAdapter?: boolean };
  const name = info.description || [info.vendor, info.architecture, info.device].filter(Boolean).join(" ") || "unnamed adapter";
  const software = Boolean(info.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|software|warp|basic render/i.test(`${name} ${info.vendor} ${info.architecture}`);
  demo.webgpu = "ok";
  document.body.dataset.webgpu = "ok";
  status.innerHTML = "";
  status.append(`WebGPU is on. `);
  const badge = document.createElement("span");
  badge.className = `badge ${software ? "soft" : "hw"}`;
  badge.textContent = software ? "software renderer: expect CPU speed" : "hardware GPU";
  status.append(badge);
  const L = adapter.limits;
  const facts: [string, string][] = [
    ["adapter", name],
    ["vendor / arch", `${info.vendor || "?"} / ${info.architecture || "?"}`],
    ["max storage binding", formatBytes(L.maxStorageBufferBindingSize)],
    ["max buffer", formatBytes(L.maxBufferSize)],
    ["workgroup memory", formatBytes(L.maxComputeWorkgroupStorageSize)],
    ["invocations / workgroup", String(L.maxComputeInvocationsPerWorkgroup)],
    ["features", ["timestamp-query", "shader-f16", "subgroups"].map((f) => `${f} ${adapter!.features.has(f as GPUFeatureName) ? "✓" : "✗"}`).join(", ")],
  ];
  const dl = $("gpu-facts");
  dl.innerHTML = "";
  for (const [k, v] of facts) {
    const dt = document.createElement("dt");
    dt.textContent = k;
    const dd = document.createElement("dd");
    dd.textContent = v;
    dl.append(dt, dd);
  }
  dl.hidden = false;
  demo.device = { name, software, timestamps: adapter.features.has("timestamp-query") };
  return true;
}

// ---------------------------------------------------------------- the DLRM diagram
const BOXES: { id: Stage | "dense" | "cat"; x: number; y: number; title: string }[] = [
  { id: "cat", x: 14, y: 20, title: "Categorical features" },
  { id: "embedding", x: 200, y: 20, title: "Embedding bags" },
  { id: "dense", x: 14, y: 200, title: "Dense features" },
  { id: "bottom", x: 200, y: 200, title: "Bottom MLP" },
  { id: "interaction", x: 392, y: 110, title: "Interaction" },
  { id: "top", x: 584, y: 110, title: "Top MLP" },
  { id: "loss", x: 584, y: 236, title: "Sigmoid + loss" },
  { id: "optimizer", x: 392, y: 236, title: "Optimizer" },
];
const BW = 164, BH = 78;
const boxEls = new Map<string, { g: SVGGElement; sub: SVGTextElement; time: SVGTextElement; run: SVGTextElement }>();

function drawDiagram(s: Settings): void {
  const svg = $("diagram") as unknown as SVGSVGElement;
  if (!boxEls.size) {
    const defs = svgEl("defs", {}, svg);
    const m = svgEl("marker", { id: "arr", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" }, defs);
    svgEl("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8894a4" }, m);
    const at = (id: string) => BOXES.find((b) => b.id === id)!;
    const arrow = (a: string, b: string, from: "r" | "b" | "t" | "l" = "r", to: "l" | "t" | "b" | "r" = "l") => {
      const A = at(a), B = at(b);
      const p = (X: typeof A, side: string) =>
        side === "r" ? [X.x + BW, X.y + BH / 2] : side === "l" ? [X.x, X.y + BH / 2] : side === "t" ? [X.x + BW / 2, X.y] : [X.x + BW / 2, X.y + BH];
      const [x1, y1] = p(A, from), [x2, y2] = p(B, to);
      const mx = (x1! + x2!) / 2;
      svgEl("path", { class: "arrow", d: from === "r" && to === "l" ? `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2! - 2},${y2}` : `M${x1},${y1} L${x2},${y2! - 2}` }, svg);
    };
    arrow("cat", "embedding");
    arrow("dense", "bottom");
    arrow("embedding", "interaction");
    arrow("bottom", "interaction");
    arrow("interaction", "top");
    arrow("top", "loss", "b", "t");
    svgEl("path", { class: "arrow", d: `M${584},${236 + BH / 2} L${392 + BW + 2},${236 + BH / 2}`, "stroke-dasharray": "4 3" }, svg);
    for (const b of BOXES) {
      const colour = b.id in STAGE_COLOURS ? STAGE_COLOURS[b.id as Stage] : "#607d8b";
      const g = svgEl("g", { class: "box", transform: `translate(${b.x},${b.y})`, style: `--c:${colour}` }, svg);
      svgEl("rect", { width: BW, height: BH, rx: 8 }, g);
      const t1 = svgEl("text", { x: 10, y: 20, class: "t1" }, g);
      t1.textContent = b.title;
      const sub = svgEl("text", { x: 10, y: 37 }, g);
      const time = svgEl("text", { x: 10, y: 54, class: "tm" }, g);
      const run = svgEl("text", { x: 10, y: 70, class: "run" }, g);
      boxEls.set(b.id, { g, sub, time, run });
    }
  }
  const n = s.tables.length;
  const sub: Record<string, string> = {
    cat: s.bag > 1 ? `${n} bags of ${s.bag} ids` : `${n} ids per sample`,
    embedding: `${n} tables × d ${s.dim}`,
    dense: `${s.bottom[0]} numbers per sample`,
    bottom: s.bottom.join("-"),
    interaction: s.interaction === "dot" ? `${(n * (n + 1)) / 2} pairwise dots` : `concat ${n + 1} × ${s.dim}`,
    top: topMlp(s).join("-"),
    loss: "BCE → click probability",
    optimizer: { sgd: "SGD", adagrad: "Adagrad", rwsadagrad: "row-wise Adagrad" }[s.optimizer] + ` lr ${s.lr}`,
  };
  for (const [id, e] of boxEls) e.sub.textContent = sub[id] ?? "";
}

const reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");
let kernelSequence: KernelTime[] = [];
let animStart = 0;
function showStageTimes(kernels: KernelTime[], stepMs: number, timestamps: boolean): void {
  const per = new Map<Stage, number>();
  for (const k of kernels) per.set(k.stage, (per.get(k.stage) ?? 0) + k.ms);
  for (const [id, e] of boxEls) {
    const ms = per.get(id as Stage);
    e.time.textContent = ms !== undefined ? `${ms.toFixed(2)} ms / step (${((100 * ms) / Math.max(1e-9, stepMs)).toFixed(0)}%)` : "";
  }
  $("diagram-caption").textContent = timestamps
    ? `GPU time per training step: ${stepMs.toFixed(2)} ms in ${kernels.length} kernels (timestamp queries, step ${demo.step}). Forward, backward and update of each part are summed.`
    : `This GPU offers no timestamp queries: only the whole step is timed (${stepMs.toFixed(1)} ms, wall clock).`;
}

/** Replays the last measured step: each box lights while its kernels run (slowed down so it can be seen). */
function animateDiagram(now: number): void {
  requestAnimationFrame(animateDiagram);
  const running = demo.state === "running" && !reducedMotion.matches;
  const seq = kernelSequence;
  let litId: string | undefined;
  let label = "";
  if (running && seq.length) {
    const total = seq.reduce((a, k) => a + k.ms, 0) || 1;
    const cycle = 2400;
    const minSlot = 40;
    const slots = seq.map((k) => Math.max(minSlot, (k.ms / total) * cycle));
    const sum = slots.reduce((a, b) => a + b, 0);
    let t = (now - animStart) % sum;
    for (let i = 0; i < seq.length; i++) {
      if (t < slots[i]!) {
        litId = seq[i]!.stage;
        label = `${seq[i]!.phase === "forward" ? "▶" : seq[i]!.phase === "backward" ? "◀" : "↻"} ${seq[i]!.label}`;
        break;
      }
      t -= slots[i]!;
    }
  }
  for (const [id, e] of boxEls) {
    const lit = id === litId;
    e.g.classList.toggle("lit", lit);
    const text = lit ? (label.length > 26 ? label.slice(0, 25) + "…" : label) : "";
    if (e.run.textContent !== text) e.run.textContent = text;
  }
}

// ---------------------------------------------------------------- charts (uPlot)
type Series = number[][];
const charts: Record<string, { plot: uPlot; data: Series }> = {};
function makeChart(id: string, series: uPlot.Series[], yRange?: uPlot.Scale["range"]): void {
  const el = $(id);
  const data: Series = series.map(() => []);
  const plot = new uPlot(
    {
      width: Math.max(240, el.clientWidth),
      height: 190,
      series: [{ label: "step" }, ...series.slice(1)],
      scales: { x: { time: false }, y: yRange ? { range: yRange } : {} },
      axes: [{ label: "step", size: 36, labelSize: 14 }, { size: 62 }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
    },
    data as uPlot.AlignedData,
    el,
  );
  charts[id] = { plot, data };
  new ResizeObserver(() => plot.setSize({ width: Math.max(240, el.clientWidth), height: 190 })).observe(el);
}
function pushPoint(id: string, values: (number | null)[]): void {
  const c = charts[id]!;
  values.forEach((v, i) => c.data[i]!.push(v as number));
}
let redrawPending = false;
function redrawCharts(): void {
  if (redrawPending) return;
  redrawPending = true;
  requestAnimationFrame(() => {
    redrawPending = false;
    for (const c of Object.values(charts)) c.plot.setData(c.data as uPlot.AlignedData);
  });
}
function resetCharts(): void {
  for (const c of Object.values(charts)) {
    for (const s of c.data) s.length = 0;
    c.plot.setData(c.data as uPlot.AlignedData);
  }
}

// ---------------------------------------------------------------- kernels table
function showKernels(kernels: KernelTime[], stepMs: number, timestamps: boolean): void {
  const body = $("kernels").querySelector("tbody")!;
  body.innerHTML = "";
  const rows = [...kernels].sort((a, b) => b.ms - a.ms);
  const frag = document.createDocumentFragment();
  for (const k of rows) {
    const tr = document.createElement("tr");
    tr.innerHTML = `<td></td><td><span class="dot" style="background:${STAGE_COLOURS[k.stage]}"></span>${STAGE_NAMES[k.stage]}</td><td>${k.phase}</td><td class="num">${k.ms.toFixed(3)}</td>`;
    tr.firstElementChild!.textContent = k.label;
    frag.appendChild(tr);
  }
  body.appendChild(frag);
  const bar = $("stagebar");
  bar.innerHTML = "";
  const per = new Map<Stage, number>();
  for (const k of kernels) per.set(k.stage, (per.get(k.stage) ?? 0) + k.ms);
  for (const [stage, ms] of per) {
    const s = document.createElement("span");
    s.style.width = `${(100 * ms) / Math.max(1e-9, stepMs)}%`;
    s.style.background = STAGE_COLOURS[stage];
    s.title = `${STAGE_NAMES[stage]}: ${ms.toFixed(2)} ms`;
    bar.appendChild(s);
  }
  $("kernels-note").textContent = timestamps
    ? `Step ${demo.step}: ${kernels.length} kernels, ${stepMs.toFixed(2)} ms of GPU time (timestamp queries; one step in 50 is timed). Each kernel runs in its own timed pass then, which adds a little per kernel: the shares matter more than the sum.`
    : "This GPU has no timestamp queries: the whole step is timed by wall clock instead.";
}

// ---------------------------------------------------------------- sharding plan and all-to-all
let view: ShardView | undefined;
let a2aStart = 0;
const KIND_TEXT = { table: "whole", row: "rows", column: "cols", data: "replica" } as const;
function drawSharding(): void {
  const s = settings;
  const N = s.devices;
  const shape = { tableRows: s.tables, dim: s.dim, bottomMlp: s.bottom, topMlp: topMlp(s), interaction: s.interaction, optimizer: s.optimizer, batchSize: s.batch, poolingFactor: s.bag };
  let v: ShardView;
  try {
    v = shardView(shape, N, s.plan, s.interconnect);
  } catch (e) {
    $("plan-note").textContent = `No plan: ${(e as Error).message}`;
    return;
  }
  view = v;
  const est = v.estimate;
  const maxMem = Math.max(...est.devices.map((d) => d.memoryBytes));
  const head = `<thead><tr><th scope="col">table (rows)</th>${est.devices.map((d) => `<th scope="col"><span class="dot" style="background:${DEVICE_COLOURS[d.device % 16]}"></span>GPU ${d.device}</th>`).join("")}</tr></thead>`;
  const body = v.plan.tables
    .map((p) => {
      const cells = est.devices.map((d) => {
        const sh = p.shards.find((x) => x.device === d.device);
        if (!sh) return `<td class="off">·</td>`;
        const bytes = shardBytes(s.optimizer, sh.rowEnd - sh.rowStart, sh.colEnd - sh.colStart);
        const range = p.kind === "row" ? ` ${sh.rowStart}–${sh.rowEnd - 1}` : p.kind === "column" ? ` ${sh.colStart}–${sh.colEnd - 1}` : "";
        return `<td class="on${p.kind === "data" ? " replica" : ""}" style="background:${DEVICE_COLOURS[d.device % 16]}" title="${p.kind}-wise: ${formatBytes(bytes)} with optimizer state">${KIND_TEXT[p.kind]}${range}<br>${formatBytes(bytes)}</td>`;
      });
      return `<tr><th scope="row">${p.table} (${s.tables[p.table]!.toLocaleString()})</th>${cells.join("")}</tr>`;
    })
    .join("");
  const foot =
    `<tr><th scope="row">batch slice</th>${v.batch.map((b) => `<td>${b} samples</td>`).join("")}</tr>` +
    `<tr><th scope="row">memory</th>${est.devices
      .map((d) => `<td title="${d.shards.join(", ")}">${formatBytes(d.memoryBytes)}<div class="membar"><span style="width:${(100 * d.memoryBytes) / maxMem}%"></span></div></td>`)
      .join("")}</tr>`;
  $("plan").innerHTML = `<caption class="sr">Which device holds each embedding table</caption>${head}<tbody>${body}${foot}</tbody>`;
  $("plan-note").textContent =
    (v.planner === "planner"
      ? `The planner (src/shard/planner.ts) placed each table on ${N} identical nominal devices (16 GiB each), choosing table-, row-, column-wise or replicated (small tables) to balance the modelled step; `
      : `Table-wise plan (src/shard/plan.ts): each table whole on one of ${N} devices, round robin; `) +
    `every device keeps an MLP replica and trains its slice of each batch. Memory: shards with optimizer state, lookups and pooled outputs, MLP replica and activations (src/shard/cost_model.ts). ` +
    `Modelled step ${formatSec(est.stepSec)}, balance ${est.balance.toFixed(2)}.` +
    (v.fallback ? ` (The planner could not plan this: ${v.fallback}; showing the table-wise plan.)` : "");

  const fwd = v.rounds.reduce((a, r) => a + r.seconds, 0);
  demo.rounds = v.rounds.length;
  const pow2 = (N & (N - 1)) === 0;
  $("rounds").innerHTML =
    `<caption class="sr">All-to-all rounds of one step</caption><thead><tr><th scope="col">round</th><th scope="col">exchanges</th><th scope="col" class="num">busiest device sends</th><th scope="col" class="num">modelled</th></tr></thead><tbody>` +
    v.rounds
      .map((r, i) => `<tr data-round="${i}"><td>${i + 1}</td><td>${(r.pairs ?? []).map(([a, b]) => `${a}→${b}`).join(" ")}</td><td class="num">${formatBytes(Math.max(0, ...r.sent))}</td><td class="num">${formatSec(r.seconds)}</td></tr>`)
      .join("") +
    `</tbody><tfoot><tr><th scope="row" colspan="3">forward all-to-all (the backward sends the gradients back the same way)</th><td class="num">${formatSec(fwd)}</td></tr>` +
    `<tr><th scope="row" colspan="3">allreduce of MLP gradients${v.plan.tables.some((p) => p.kind === "data") ? " and replicated tables" : ""} (${est.allreduce.kind === "rhd" ? "recursive halving/doubling" : "ring"}, ${formatBytes(est.allreduceBytes)})</th><td class="num">${formatSec(v.allreduceSec)}</td></tr></tfoot>`;
  $("a2a-note").textContent = N < 2
    ? "One device: nothing to exchange. Set Devices to 2 or more to see the all-to-all."
    : `Each step, the devices that own embedding shards send the pooled vectors of every other device's batch slice to it: ` +
      (pow2 ? `a butterfly of ${v.rounds.length} round${v.rounds.length > 1 ? "s" : ""} (round r: device i exchanges with i XOR 2^r, forwarding what is bound further).` : `${v.rounds.length} rounds of direct pairwise exchange (device i sends to i + r mod ${N}; the butterfly needs a power of two).`) +
      ` Rounds and bytes from src/shard/cost_model.ts, times modelled on ${v.interconnect.describe} (α + bytes/β per round). ` +
      (s.sharded ? "Training runs on these N devices (tick box above): the measured rounds of a profiled step appear below." : "Training runs on one device unless \"Train on all these devices\" is ticked; the plan and rounds are those the sharded trainer runs on N devices.");
  a2aStart = performance.now();
  drawA2aFrame(performance.now());
}

function drawA2aFrame(now: number): void {
  const svg = $("a2a") as unknown as SVGSVGElement;
  const N = settings.devices;
  while (svg.lastChild && svg.lastChild.nodeName !== "title") svg.removeChild(svg.lastChild);
  const cx = 180, cy = 172, R = N > 1 ? 130 : 0;
  const pos = Array.from({ length: N }, (_, i) => [cx + R * Math.sin((2 * Math.PI * i) / N), cy - R * Math.cos((2 * Math.PI * i) / N)] as const);
  const rounds = view?.rounds ?? [];
  const ROUND_MS = 1600;
  const r = rounds.length ? Math.floor((now - a2aStart) / ROUND_MS) % rounds.length : -1;
  const f = rounds.length ? ((now - a2aStart) % ROUND_MS) / ROUND_MS : 0;
  if (r >= 0) {
    const round = rounds[r]!;
    for (const [from, to] of round.pairs ?? []) {
      if (from >= N || to >= N) continue;
      const [x1, y1] = pos[from]!, [x2, y2] = pos[to]!;
      // Bend each arrow to its right so the two directions of a pair do not overlap.
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
      const dx = x2 - x1, dy = y2 - y1;
      const len = Math.hypot(dx, dy) || 1;
      const qx = mx + (-dy / len) * 22, qy = my + (dx / len) * 22;
      const colour = DEVICE_COLOURS[from % 16]!;
      svgEl("path", { d: `M${x1},${y1} Q${qx},${qy} ${x2},${y2}`, stroke: colour, "stroke-width": 2, fill: "none", opacity: 0.55 }, svg);
      const e = Math.min(1, f * 1.25);
      const px = (1 - e) ** 2 * x1 + 2 * (1 - e) * e * qx + e ** 2 * x2;
      const py = (1 - e) ** 2 * y1 + 2 * (1 - e) * e * qy + e ** 2 * y2;
      svgEl("circle", { cx: px, cy: py, r: 6, fill: colour }, svg);
      if (N <= 8) {
        const lbl = svgEl("text", { x: qx, y: qy, "text-anchor": "middle" }, svg);
        lbl.textContent = formatBytes(round.sent[from] ?? 0);
      }
    }
    const cap = svgEl("text", { x: cx, y: 352, "text-anchor": "middle", style: "font-weight:600" }, svg);
    cap.textContent = `round ${r + 1} of ${rounds.length}: ${formatSec(round.seconds)}`;
    $("rounds").querySelectorAll("tbody tr").forEach((tr) => tr.classList.toggle("current", tr.getAttribute("data-round") === String(r)));
  }
  pos.forEach(([x, y], i) => {
    svgEl("circle", { cx: x, cy: y, r: 20, fill: "#fff", stroke: DEVICE_COLOURS[i % 16]!, "stroke-width": 3 }, svg);
    const t = svgEl("text", { x, y: y + 4, "text-anchor": "middle", style: "font-weight:700" }, svg);
    t.textContent = `GPU ${i}`;
  });
}
let a2aVisible = false;
let a2aLast = 0;
function animateA2a(now: number): void {
  requestAnimationFrame(animateA2a);
  // About 12 frames a second, only while on screen: the GPU may be a software renderer sharing these CPU cores.
  if (!a2aVisible || now - a2aLast < 80) return;
  if (reducedMotion.matches && now - a2aStart > 100) return;
  a2aLast = now;
  drawA2aFrame(now);
}

/** The sharded trainer's own per-round statistics of one profiled step, beside the model's rounds. */
function showMeasuredRounds(m: Extract<FromWorker, { type: "collectives" }>): void {
  demo.measuredRounds = m.rounds.length;
  const t = $("measured");
  t.hidden = false;
  t.innerHTML =
    `<caption>Measured in this page at step ${m.step}: ${m.devices} WebGPU devices, host-staged copies (one step, ${m.totalMs.toFixed(1)} ms in serial mode)</caption>` +
    `<thead><tr><th scope="col">collective round</th><th scope="col">exchanges</th><th scope="col" class="num">busiest device sends</th><th scope="col" class="num">ms</th></tr></thead><tbody>` +
    m.rounds.map((r) => `<tr><td>${r.label}</td><td>${r.pairs.map(([a, b]) => `${a}→${b}`).join(" ")}</td><td class="num">${formatBytes(Math.max(0, ...r.sent))}</td><td class="num">${r.ms.toFixed(2)}</td></tr>`).join("") +
    `</tbody>`;
  const phases = Object.entries(m.phases).map(([k, v]) => `${k} ${v.toFixed(1)} ms`).join(", ");
  $("measured-note").textContent = phases ? `Phases of that step: ${phases}.` : "";
}

// ---------------------------------------------------------------- learned embeddings
function drawScatter(m: Extract<FromWorker, { type: "learned" }>): void {
  const svg = $("scatter") as unknown as SVGSVGElement;
  while (svg.lastChild && svg.lastChild.nodeName !== "title") svg.removeChild(svg.lastChild);
  const xs = m.points.map((p) => p.x), ys = m.points.map((p) => p.y);
  const sx = Math.max(1e-12, ...xs.map(Math.abs)), sy = Math.max(1e-12, ...ys.map(Math.abs));
  const cmax = Math.max(1e-12, ...m.points.map((p) => Math.abs(p.c)));
  const cmin = Math.min(...m.points.map((p) => p.c));
  svgEl("rect", { x: 0, y: 0, width: 340, height: 340, fill: "#fbfcfd", stroke: "#d5dbe3" }, svg);
  svgEl("line", { x1: 170, y1: 10, x2: 170, y2: 330, stroke: "#e1e6ec" }, svg);
  svgEl("line", { x1: 10, y1: 170, x2: 330, y2: 170, stroke: "#e1e6ec" }, svg);
  // One string, parsed once: hundreds of createElementNS calls cost the page more.
  const dots: string[] = [];
  for (const p of m.points) {
    let fill: string;
    if (m.colour === "teacher") {
      const v = p.c / cmax; // -1 .. 1
      fill = v >= 0 ? `rgb(${Math.round(200 + 40 * v)},${Math.round(200 - 170 * v)},${Math.round(200 - 170 * v)})` : `rgb(${Math.round(200 + 170 * v)},${Math.round(200 + 120 * v)},240)`;
    } else {
      const v = (p.c - cmin) / Math.max(1e-12, -cmin);
      fill = `hsl(${Math.round(220 - 180 * v)},60%,45%)`;
    }
    dots.push(`<circle cx="${(170 + (150 * p.x) / sx).toFixed(1)}" cy="${(170 - (150 * p.y) / sy).toFixed(1)}" r="3.2" fill="${fill}" fill-opacity="0.85"/>`);
  }
  svgEl("g", {}, svg).innerHTML = dots.join("");
  $("scatter-caption").textContent = `Table ${m.table}: its ${m.points.length} most popular rows at step ${m.step}, first two principal components. ` +
    (m.colour === "teacher" ? "Colour: the teacher's score of the category (blue lowers, red raises the click probability)." : "Colour: popularity rank (no teacher for this data).");
  $("r2").textContent = m.r2 !== null ? `A linear read-out of these embeddings explains ${(100 * Math.max(0, m.r2)).toFixed(0)}% of the teacher's scores (adjusted R² ${m.r2.toFixed(2)}).` : "";
  document.body.dataset.learnedStep = String(m.step);
}

// ---------------------------------------------------------------- the worker
const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
const send = (m: ToWorker) => worker.postMessage(m);
let smoothed: number | null = null;
let examples: string[] = [];

function setState(state: string, message: string): void {
  demo.state = state;
  document.body.dataset.state = state;
  $("status").textContent = message.charAt(0).toUpperCase() + message.slice(1);
  const busy = state === "running" || state === "paused" || state === "preparing";
  $<HTMLButtonElement>("start").disabled = busy || demo.webgpu !== "ok";
  $<HTMLButtonElement>("pause").disabled = state !== "running";
  $<HTMLButtonElement>("resume").disabled = state !== "paused";
  $<HTMLButtonElement>("stop").disabled = !busy;
  $<HTMLButtonElement>("reset").disabled = state === "idle" && !hasModel;
  const ready = hasModel && (state === "done" || state === "stopped" || state === "paused" || state === "loaded");
  $<HTMLButtonElement>("predict").disabled = !hasModel || state === "preparing";
  $<HTMLButtonElement>("examples").disabled = !examples.length;
  $<HTMLButtonElement>("download").disabled = !ready;
  document.querySelectorAll<HTMLInputElement | HTMLSelectElement>("#form fieldset input, #form fieldset select").forEach((el) => (el.disabled = busy));
}
let hasModel = false;

worker.onmessage = (ev: MessageEvent<FromWorker>) => {
  const t0 = performance.now();
  try {
    onWorkerMessage(ev.data);
  } finally {
    if (demo.state === "running") demo.handlerMaxMs = Math.max(demo.handlerMaxMs, performance.now() - t0);
  }
};
function onWorkerMessage(m: FromWorker): void {
  switch (m.type) {
    case "state":
      if (m.state === "running" && demo.firstStepAt === null) demo.firstStepAt = performance.now();
      if (m.state === "running") hasModel = true;
      setState(m.state, m.message);
      break;
    case "device":
      $("diagram-caption").textContent = `Training on ${m.info.name}${m.info.timestamps ? ", with timestamp queries" : " (no timestamp queries: whole-step wall clock only)"}.`;
      break;
    case "data":
      $("data-describe").textContent = `Data: ${m.describe}.`;
      examples = m.examples;
      if (!$<HTMLTextAreaElement>("rows").value.trim() && examples.length) $<HTMLTextAreaElement>("rows").value = examples.join("\n");
      if (m.tableRows.join("-") !== settings.tables.join("-") || m.numDense !== settings.bottom[0]) {
        settings = { ...settings, tables: m.tableRows, bottom: [m.numDense, ...settings.bottom.slice(1)] };
        fillForm(settings);
        drawDiagram(settings);
        drawSharding();
      }
      break;
    case "steps": {
      const now = performance.now();
      for (const p of m.points) {
        smoothed = smoothed === null ? p.loss : 0.95 * smoothed + 0.05 * p.loss;
        demo.losses.push(p);
        pushPoint("c-loss", [p.step, p.loss, smoothed]);
      }
      const last = m.points.at(-1)!;
      demo.step = last.step;
      demo.stepTimes.push({ step: last.step, t: now });
      demo.trainSeconds = m.trainSeconds;
      document.body.dataset.step = String(last.step);
      pushPoint("c-sps", [last.step, m.samplesPerSec]);
      $("s-step").textContent = `${last.step} / ${m.totalSteps}`;
      $("s-loss").textContent = smoothed!.toFixed(4);
      $("s-sps").textContent = Math.round(m.samplesPerSec).toLocaleString();
      $<HTMLProgressElement>("progress").value = last.step / m.totalSteps;
      if (demo.state === "running") $("status").textContent = `Training: step ${last.step} of ${m.totalSteps}, lr ${m.lr.toPrecision(3)}, ${m.trainSeconds.toFixed(1)} s`;
      redrawCharts();
      break;
    }
    case "eval":
      demo.evals.push({ step: m.step, auc: m.auc, logLoss: m.logLoss });
      pushPoint("c-auc", [m.step, m.auc, m.teacherAuc]);
      pushPoint("c-logloss", [m.step, m.logLoss, m.teacherLogLoss]);
      $("s-auc").textContent = m.auc.toFixed(4);
      $("s-teacher").textContent = m.teacherAuc !== null ? m.teacherAuc.toFixed(4) : "n/a";
      redrawCharts();
      break;
    case "kernels":
      demo.kernels = m.kernels;
      kernelSequence = m.kernels;
      animStart = performance.now();
      showKernels(m.kernels, m.stepMs, m.timestamps);
      $("s-gpu").textContent = `${m.stepMs.toFixed(1)} ms`;
      showStageTimes(m.kernels, m.stepMs, m.timestamps);
      break;
    case "learned":
      drawScatter(m);
      break;
    case "collectives":
      $("kernels-note").textContent = `A sharded run has no single-device kernel timing: its phases and measured collective rounds (step ${m.step}) are under the all-to-all below.`;
      showMeasuredRounds(m);
      break;
    case "prediction": {
      $("predict-error").textContent = m.error ?? "";
      const body = $("predictions").querySelector("tbody")!;
      body.innerHTML = "";
      m.rows.forEach((r, i) => {
        const tr = document.createElement("tr");
        tr.innerHTML = `<td>${i + 1}</td><td class="num">${r.prob.toFixed(4)}</td><td class="num">${r.teacher !== null ? r.teacher.toFixed(4) : "–"}</td>`;
        body.appendChild(tr);
      });
      demo.predictions = m.rows;
      document.body.dataset.predictions = String(m.rows.length);
      break;
    }
    case "checkpoint": {
      const url = URL.createObjectURL(new Blob([m.bytes as BlobPart], { type: "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = m.name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
      $("ckpt-status").textContent = `Saved ${m.name} (${formatBytes(m.bytes.byteLength)}).`;
      break;
    }
    case "loaded":
      hasModel = true;
      demo.loaded = { step: m.step, name: m.name };
      settings = { ...m.settings };
      fillForm(settings);
      history.replaceState(null, "", `?${toQuery(settings)}`);
      drawDiagram(settings);
      drawSharding();
      $("ckpt-status").textContent = `Loaded ${m.name}: step ${m.step}, ${m.settings.tables.length} tables, d ${m.settings.dim}. Predict with it, or download it again.`;
      setState("loaded", `loaded a checkpoint at step ${m.step}`);
      document.body.dataset.loaded = String(m.step);
      break;
    case "error":
      $("form-error").textContent = m.message;
      document.body.dataset.error = m.message;
      setState(demo.state === "running" || demo.state === "preparing" ? "stopped" : demo.state, `error: ${m.message}`);
      break;
  }
}
worker.onerror = (e) => {
  $("form-error").textContent = `the training worker failed: ${e.message}`;
  document.body.dataset.error = e.message;
};

// ---------------------------------------------------------------- responsiveness monitor
try {
  new PerformanceObserver((list) => {
    if (demo.state === "running") for (const e of list.getEntries()) demo.longTasks.push(e.duration);
  }).observe({ type: "longtask", buffered: false });
} catch {
  /* no long-task timing in this browser */
}
{
  let last = performance.now();
  setInterval(() => {
    const now = performance.now();
    if (demo.state === "running") {
      demo.gaps.push(Math.max(0, now - last - 16));
      demo.maxGapMs = Math.max(demo.maxGapMs, now - last - 16);
    }
    last = now;
  }, 16);
}

// ---------------------------------------------------------------- wiring
function start(): void {
  let s: Settings;
  try {
    s = readForm();
  } catch (e) {
    $("form-error").textContent = (e as Error).message;
    return;
  }
  if (s.data === "criteo" && !chosenFile) {
    $("form-error").textContent = "Choose or drop a Criteo file first.";
    return;
  }
  settings = s;
  $("form-error").textContent = "";
  delete document.body.dataset.error;
  demo.losses = [];
  demo.evals = [];
  demo.stepTimes = [];
  demo.maxGapMs = 0;
  demo.gaps = [];
  demo.longTasks = [];
  demo.handlerMaxMs = 0;
  demo.firstStepAt = null;
  smoothed = null;
  resetCharts();
  const maxIndRange = Number($<HTMLInputElement>("maxind").value) || 100_000;
  send({ type: "start", settings: s, file: s.data === "criteo" ? chosenFile : undefined, maxIndRange });
  setState("preparing", "starting…");
}

function init(): void {
  buildPresetRadios();
  fillForm(settings);
  drawDiagram(settings);
  makeChart("c-loss", [{}, { label: "loss", stroke: "#9fb3c8", width: 1 }, { label: "smoothed", stroke: "#1557c0", width: 2 }]);
  makeChart("c-auc", [{}, { label: "AUC", stroke: "#2e7d32", width: 2, points: { show: true } }, { label: "teacher", stroke: "#c25e00", width: 1.5, dash: [6, 4] }]);
  makeChart("c-logloss", [{}, { label: "log loss", stroke: "#ad1457", width: 2, points: { show: true } }, { label: "teacher", stroke: "#c25e00", width: 1.5, dash: [6, 4] }]);
  makeChart("c-sps", [{}, { label: "samples/s", stroke: "#455a64", width: 2, fill: "rgba(69,90,100,0.08)" }]);
  drawSharding();
  requestAnimationFrame(animateDiagram);
  new IntersectionObserver((es) => (a2aVisible = es.some((e) => e.isIntersecting))).observe($("a2a"));
  requestAnimationFrame(animateA2a);

  const form = $<HTMLFormElement>("form");
  form.addEventListener("change", onFormChange);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    start();
  });
  $("pause").onclick = () => send({ type: "pause" });
  $("resume").onclick = () => send({ type: "resume" });
  $("stop").onclick = () => send({ type: "stop" });
  $("reset").onclick = () => {
    send({ type: "reset" });
    hasModel = false;
    demo.losses = [];
    demo.evals = [];
    resetCharts();
    kernelSequence = [];
    $("kernels").querySelector("tbody")!.innerHTML = "";
    for (const id of ["s-step", "s-loss", "s-auc", "s-teacher", "s-sps", "s-gpu"]) $(id).textContent = "–";
    $<HTMLProgressElement>("progress").value = 0;
  };
  $("copylink").onclick = async () => {
    try {
      await navigator.clipboard.writeText(location.href);
      $("status").textContent = "Link copied.";
    } catch {
      $("status").textContent = `Copy this link: ${location.href}`;
    }
  };
  $("predict").onclick = () => send({ type: "predict", text: $<HTMLTextAreaElement>("rows").value });
  $("examples").onclick = () => ($<HTMLTextAreaElement>("rows").value = examples.join("\n"));
  $("download").onclick = () => send({ type: "checkpoint" });
  $<HTMLInputElement>("load").onchange = async (e) => {
    const f = (e.target as HTMLInputElement).files?.[0];
    if (!f) return;
    send({ type: "load", bytes: new Uint8Array(await f.arrayBuffer()), name: f.name });
    (e.target as HTMLInputElement).value = "";
  };
  const pick = (f: File | undefined) => {
    if (!f) return;
    chosenFile = f;
    $("file-name").textContent = `${f.name} (${formatBytes(f.size)}) will be read in this page when you press Start.`;
  };
  $<HTMLInputElement>("file").onchange = (e) => pick((e.target as HTMLInputElement).files?.[0]);
  const drop = $("criteo");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    pick(e.dataTransfer?.files?.[0]);
  });
  // Dropping a file anywhere on the page selects the Criteo source.
  document.addEventListener("dragover", (e) => e.preventDefault());
  document.addEventListener("drop", (e) => {
    if (drop.contains(e.target as Node)) return;
    e.preventDefault();
    const f = e.dataTransfer?.files?.[0];
    if (!f) return;
    (document.querySelector("input[name=data][value=criteo]") as HTMLInputElement).checked = true;
    onFormChange();
    pick(f);
  });
  setState("idle", "idle");
  void detectWebGpu().then((ok) => {
    setState("idle", ok ? "ready: pick a preset and press Start" : "WebGPU is not available: see the note at the top");
    if (ok && new URLSearchParams(location.search).has("autorun")) start();
  });
}

init();
