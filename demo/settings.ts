/**
 * Demo settings: presets, the form <-> settings mapping and the URL query
 * string (so a configuration can be shared as a link).
 */

export type DataKind = "synthetic" | "random" | "criteo";

export interface Settings {
  preset: string;
  /** Rows of each embedding table. */
  tables: number[];
  dim: number;
  /** Bottom MLP including the dense input width; must end in dim. */
  bottom: number[];
  /** Hidden sizes of the top MLP (its input width follows from the interaction, its output is 1). */
  topHidden: number[];
  interaction: "dot" | "cat";
  optimizer: "sgd" | "adagrad" | "rwsadagrad";
  lr: number;
  batch: number;
  steps: number;
  /** Lookups per bag (1 = one-hot). */
  bag: number;
  evalEvery: number;
  devices: number;
  interconnect: string;
  /** "planner": src/shard/planner.ts; "table": every table whole, round robin. */
  plan: "planner" | "table";
  /** Train on `devices` WebGPU devices of this adapter with the sharded trainer (src/shard/model.ts). */
  sharded: boolean;
  data: DataKind;
  seed: number;
  /** Embedding table storage (src/model/precision.ts): "bf16" halves the tables' memory; single device only. Default "fp32". */
  embeddingPrecision?: "fp32" | "bf16";
}

const KAGGLE_ROWS = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572];

export const PRESETS: Record<string, { title: string; about: string; settings: Omit<Settings, "preset" | "devices" | "interconnect" | "plan" | "sharded" | "data" | "seed"> }> = {
  tiny: {
    title: "Tiny",
    about: "8 small tables, d = 16, one hidden layer per MLP: trains in seconds even on a software renderer.",
    settings: { tables: [1000, 500, 2000, 100, 50, 3000, 800, 20], dim: 16, bottom: [13, 64, 16], topHidden: [64], interaction: "dot", optimizer: "adagrad", lr: 0.05, batch: 128, steps: 600, bag: 1, evalEvery: 50 },
  },
  kaggle: {
    title: "Kaggle-shaped (scaled)",
    about: "The reference's Criteo Kaggle model (26 tables, d = 16, bottom 13-512-256-64-16, top 367-512-256-1, SGD 0.1, batch 128) with every table's rows divided by 256 to fit a browser.",
    settings: { tables: KAGGLE_ROWS.map((r) => Math.max(2, Math.ceil(r / 256))), dim: 16, bottom: [13, 512, 256, 64, 16], topHidden: [512, 256], interaction: "dot", optimizer: "sgd", lr: 0.1, batch: 128, steps: 400, bag: 1, evalEvery: 50 },
  },
  paper: {
    title: "Paper benchmark (scaled)",
    about: "The DLRM paper's benchmark (8 tables x 1M rows x 64, 100 lookups per bag, batch 2048, bottom 512-512-64, top 1024-1024-1024-1) scaled down: 8 x 20k rows x 64, 20 lookups, batch 256, MLPs at half width.",
    settings: { tables: Array.from({ length: 8 }, () => 20000), dim: 64, bottom: [512, 256, 64], topHidden: [512, 512, 512], interaction: "dot", optimizer: "adagrad", lr: 0.02, batch: 256, steps: 200, bag: 20, evalEvery: 50 },
  },
};

/** Interconnect preset names (demo/shard.ts maps them to src/shard/interconnect.ts). */
export const INTERCONNECT_NAMES = ["pcie4", "nvlink", "network", "nvlink8+network", "browser"];

export function presetSettings(name: string): Settings {
  const p = PRESETS[name] ?? PRESETS.tiny!;
  return { preset: PRESETS[name] ? name : "tiny", ...structuredClone(p.settings), devices: 4, interconnect: "pcie4", plan: "planner", sharded: false, data: "synthetic", seed: 1 };
}

export function topInputWidth(s: Pick<Settings, "tables" | "dim" | "interaction">): number {
  const n = s.tables.length + 1;
  return s.interaction === "cat" ? n * s.dim : s.dim + (n * (n - 1)) / 2;
}

export function topMlp(s: Settings): number[] {
  return [topInputWidth(s), ...s.topHidden, 1];
}

const dash = (v: number[]) => v.join("-");
const parseDash = (s: string, allowEmpty = false): number[] => {
  const t = s.trim();
  if (allowEmpty && t === "") return [];
  const v = t.split(/[-,\s]+/).map(Number);
  if (v.length === 0 || v.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`expected positive integers separated by '-', got '${s}'`);
  return v;
};

/** Settings as query parameters (only what differs from the preset, plus the preset). */
export function toQuery(s: Settings): string {
  const base = presetSettings(s.preset);
  const q = new URLSearchParams();
  q.set("preset", s.preset);
  const put = (k: string, v: string, b: string) => {
    if (v !== b) q.set(k, v);
  };
  put("tables", dash(s.tables), dash(base.tables));
  put("d", String(s.dim), String(base.dim));
  put("bottom", dash(s.bottom), dash(base.bottom));
  put("top", dash(s.topHidden), dash(base.topHidden));
  put("interaction", s.interaction, base.interaction);
  put("opt", s.optimizer, base.optimizer);
  put("lr", String(s.lr), String(base.lr));
  put("batch", String(s.batch), String(base.batch));
  put("steps", String(s.steps), String(base.steps));
  put("bag", String(s.bag), String(base.bag));
  put("eval", String(s.evalEvery), String(base.evalEvery));
  put("devices", String(s.devices), String(base.devices));
  put("link", s.interconnect, base.interconnect);
  put("plan", s.plan, base.plan);
  put("sharded", s.sharded ? "1" : "0", base.sharded ? "1" : "0");
  put("data", s.data, base.data);
  put("seed", String(s.seed), String(base.seed));
  return q.toString();
}

/** Settings from a query string; unknown or malformed values fall back to the preset's (listed in `problems`). */
export function fromQuery(query: string): { settings: Settings; problems: string[] } {
  const q = new URLSearchParams(query);
  const s = presetSettings(q.get("preset") ?? "tiny");
  const problems: string[] = [];
  const take = (k: string, f: (v: string) => void) => {
    const v = q.get(k);
    if (v === null) return;
    try {
      f(v);
    } catch (e) {
      problems.push(`${k}: ${(e as Error).message}`);
    }
  };
  const int = (v: string, lo: number, hi: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new Error(`expected an integer in [${lo}, ${hi}], got '${v}'`);
    return n;
  };
  take("tables", (v) => (s.tables = parseDash(v)));
  take("d", (v) => (s.dim = int(v, 1, 1024)));
  take("bottom", (v) => (s.bottom = parseDash(v)));
  take("top", (v) => (s.topHidden = parseDash(v, true)));
  take("interaction", (v) => {
    if (v !== "dot" && v !== "cat") throw new Error("dot or cat");
    s.interaction = v;
  });
  take("opt", (v) => {
    if (!["sgd", "adagrad", "rwsadagrad"].includes(v)) throw new Error("sgd, adagrad or rwsadagrad");
    s.optimizer = v as Settings["optimizer"];
  });
  take("lr", (v) => {
    const n = Number(v);
    if (!(n > 0 && n < 100)) throw new Error(`expected a positive number, got '${v}'`);
    s.lr = n;
  });
  take("batch", (v) => (s.batch = int(v, 1, 65536)));
  take("steps", (v) => (s.steps = int(v, 1, 1_000_000)));
  take("bag", (v) => (s.bag = int(v, 1, 1000)));
  take("eval", (v) => (s.evalEvery = int(v, 1, 1_000_000)));
  take("devices", (v) => (s.devices = int(v, 1, 16)));
  take("link", (v) => {
    if (!INTERCONNECT_NAMES.includes(v)) throw new Error(`one of ${INTERCONNECT_NAMES.join(", ")}`);
    s.interconnect = v;
  });
  take("sharded", (v) => (s.sharded = v === "1" || v === "true"));
  take("plan", (v) => {
    if (v !== "planner" && v !== "table") throw new Error("planner or table");
    s.plan = v;
  });
  take("data", (v) => {
    if (!["synthetic", "random", "criteo"].includes(v)) throw new Error("synthetic, random or criteo");
    s.data = v as DataKind;
  });
  take("seed", (v) => (s.seed = int(v, 0, 2 ** 31)));
  return { settings: s, problems };
}

export { dash, parseDash };
