/**
 * Physical layout of the embeddings of a DLRM with the reference's compression
 * tricks (facebookresearch/dlrm: tricks/qr_embedding_bag.py, tricks/md_embedding_bag.py;
 * semantics in docs/fixtures.md):
 *
 *   plain  table t: one sub-table rows x d                      -> E[:, t] = pooled
 *   QR     table t: q: ceil(rows/c) x dq, r: c x dr              -> E[:, t] = pool_q (op) pool_r
 *          (op = concat [dq = dr = d/2], add or mult [dq = dr = d]; q = floor(i/c), r = i mod c)
 *   MD     table t: one sub-table rows x dim_t                   -> E[:, t] = proj_t · pooled
 *          (proj_t [d, dim_t] row-major, only when dim_t < d; identity when dim_t == d)
 *
 * QR applies to tables with rows > qr.threshold and takes precedence over MD,
 * which applies to tables with rows > md.threshold; every other table is plain.
 *
 * Sub-tables are grouped by width into EmbeddingTableSets (`sets`, widest
 * first). The forward pools every set into ONE buffer P [B, W]: table j of
 * set s lands at P[b*W + sets[s].offset + j*dim + k] (the embedding-bag
 * forward's outStride = W, outOffset = sets[s].offset). Set offsets of sets
 * whose dim is a multiple of 4, and W, are multiples of 4 so the vec4 paths
 * apply; the few padding columns belong to no table (their gradient is 0).
 * The combine kernels (src/kernels/embedding_combine.ts) then build
 * E [B, n, d] from P using `combine` (one descriptor per logical table).
 */
import { ConfigError, KernelInputError } from "../gpu/errors.ts";
import { Rng } from "../util/rng.ts";
import type { StateDict } from "./params.ts";

export type QrOperation = "concat" | "add" | "mult";

export interface QrOptions {
  operation: QrOperation;
  /** Collisions c (--qr-collisions): the remainder table has c rows. */
  collisions: number;
  /** Tables with more rows than this become QR (--qr-threshold; the reference's default is 200). */
  threshold: number;
}

export interface MdOptions {
  /** Temperature alpha of md_solver's power rule (--md-temperature). */
  temperature: number;
  /** Round every dim to the nearest power of two (--md-round-dims). */
  roundDims: boolean;
  /** Tables with more rows than this get their mixed dimension (--md-threshold). */
  threshold: number;
  /** Explicit per-table dims (every table, 1..d); default md_solver(tableRows, temperature, d, roundDims). */
  dims?: number[] | null;
}

export interface EmbeddingLayoutOptions {
  embeddingDim: number;
  tableRows: readonly number[];
  qr?: QrOptions | null;
  md?: MdOptions | null;
}

export type SubTablePart = "plain" | "q" | "r" | "md";

export interface SubTableRef {
  logical: number;
  part: SubTablePart;
}

export interface LayoutSet {
  /** Width of every sub-table of the set. */
  dim: number;
  /** Rows of each sub-table, in set order (the EmbeddingTableSet's rows). */
  rows: number[];
  subTables: SubTableRef[];
  /** First column of the set in P. */
  offset: number;
}

export type LogicalKind = "plain" | "qr" | "md";

export interface LogicalTable {
  kind: LogicalKind;
  rows: number;
  /** QR: collisions c. */
  collisions?: number;
  /** MD: dim_t. */
  mdDim?: number;
  /** Where each sub-table of this table lives: plain/md one entry, QR [q, r]. */
  places: { part: SubTablePart; set: number; table: number; rows: number; dim: number; column: number }[];
}

/** Combine op of a logical table; numeric codes are those of the WGSL (embedding_combine_*.wgsl). */
export type CombineOp = "copy" | "add" | "mult" | "concat" | "project";
export const COMBINE_OP_CODE: Record<CombineOp, number> = { copy: 0, add: 1, mult: 2, concat: 3, project: 4 };

/**
 * How E[b, t, :] is formed from P[b, :] (columns):
 *   copy:    E[k] = P[a+k]                       (wa = d)
 *   add:     E[k] = P[a+k] + P[b+k]              (wa = wb = d)
 *   mult:    E[k] = P[a+k] * P[b+k]              (wa = wb = d)
 *   concat:  E[k] = k < wa ? P[a+k] : P[b+k-wa]  (wa = wb = d/2)
 *   project: E[k] = sum_j P[a+j] proj[projOffset + k*wa + j]   (wa = dim_t < d)
 * Unused fields are 0.
 */
export interface CombineDescriptor {
  op: CombineOp;
  a: number;
  b: number;
  wa: number;
  wb: number;
  projOffset: number;
}

export interface EmbeddingLayout {
  dim: number;
  numTables: number;
  tableRows: number[];
  tables: LogicalTable[];
  sets: LayoutSet[];
  /** Columns of P (a multiple of 4; may include padding). */
  width: number;
  combine: CombineDescriptor[];
  /** Floats of the packed projection buffer (sum of d * dim_t over projected MD tables). */
  projSize: number;
  /** True when P is already E (all tables plain, one set of dim d at offset 0, W = n d): no combine needed. */
  identity: boolean;
}

// ---------------------------------------------------------------------------
// md_solver (reference: dlrm_s_pytorch.py md_solver / alpha_power_rule / pow_2_round, d0 given)

/** numpy-style round half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const diff = x - f;
  if (diff < 0.5) return f;
  if (diff > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Mixed dimensions from the power rule with d0 given, in float32 as the
 * reference: tables sorted by rows, the smallest gets d0, the others
 * round(d0 (n_min / n)^alpha), at least 1; optionally 2^round(log2 dim).
 */
export function mdSolver(rows: readonly number[], alpha: number, d0: number, roundDims: boolean): number[] {
  const f = Math.fround;
  const order = rows.map((_, i) => i).sort((x, y) => rows[x]! - rows[y]! || x - y);
  const ns = order.map((i) => f(rows[i]!));
  const a = f(alpha);
  const lamb = f(f(d0) * f(Math.pow(ns[0]!, a)));
  const out = new Array<number>(rows.length);
  order.forEach((t, i) => {
    let v = i === 0 ? d0 : f(lamb * f(Math.pow(ns[i]!, f(-a))));
    v = Math.max(v, 1);
    v = roundHalfEven(v);
    if (roundDims) v = 2 ** roundHalfEven(Math.log2(v));
    out[t] = v;
  });
  return out;
}

// ---------------------------------------------------------------------------

function intAtLeast(name: string, v: unknown, min: number): void {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min) throw new ConfigError(`${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
}

const round4 = (x: number) => Math.ceil(x / 4) * 4;

/** The physical layout for `opts`; throws ConfigError naming the problem. */
export function embeddingLayout(opts: EmbeddingLayoutOptions): EmbeddingLayout {
  const d = opts.embeddingDim;
  intAtLeast("embedding dimension", d, 1);
  const rows = [...opts.tableRows];
  if (rows.length === 0) throw new ConfigError("at least one embedding table is needed");
  rows.forEach((r, t) => intAtLeast(`rows of table ${t}`, r, 1));
  const qr = opts.qr ?? null;
  const md = opts.md ?? null;
  if (qr) {
    if (!["concat", "add", "mult"].includes(qr.operation)) throw new ConfigError(`QR operation must be concat, add or mult, got '${qr.operation}' (--qr-operation)`);
    intAtLeast("QR collisions (--qr-collisions)", qr.collisions, 1);
    if (!(qr.threshold >= 0)) throw new ConfigError(`QR threshold must be a non-negative number, got ${qr.threshold} (--qr-threshold)`);
    if (qr.operation === "concat") {
      if (d % 2 !== 0) throw new ConfigError(`QR concat splits each embedding in two halves of d/2: the embedding dimension ${d} must be even`);
      const plain = rows.findIndex((r) => !(r > qr.threshold));
      if (plain >= 0) {
        throw new ConfigError(
          `QR concat needs every table to be QR (a plain table would be d/2 = ${d / 2} wide), but table ${plain} has ${rows[plain]} rows <= threshold ${qr.threshold}; ` +
            `lower --qr-threshold below ${Math.min(...rows)} or use --qr-operation add/mult`,
        );
      }
    }
  }
  let mdDims: number[] | null = null;
  if (md) {
    if (!(md.threshold >= 0)) throw new ConfigError(`MD threshold must be a non-negative number, got ${md.threshold} (--md-threshold)`);
    if (md.dims) {
      mdDims = [...md.dims];
      if (mdDims.length !== rows.length) throw new ConfigError(`MD dims give ${mdDims.length} values for ${rows.length} tables`);
    } else {
      if (!Number.isFinite(md.temperature) || md.temperature < 0) throw new ConfigError(`MD temperature must be a non-negative number, got ${md.temperature} (--md-temperature)`);
      mdDims = mdSolver(rows, md.temperature, d, md.roundDims);
    }
    mdDims.forEach((m, t) => {
      if (!Number.isInteger(m) || m < 1 || m > d) {
        throw new ConfigError(
          `MD dim of table ${t} is ${m}; every dim must be an integer in 1..${d} (the projection goes up to the embedding dimension)` +
            (md.roundDims && !md.dims ? `; power-of-two rounding of d = ${d} overshoots: use a power-of-two embedding dimension or no --md-round-dims` : ""),
        );
      }
    });
  }

  // Logical tables and their sub-tables (width, rows), in logical order.
  const subs: { logical: number; part: SubTablePart; rows: number; dim: number }[] = [];
  const tables: LogicalTable[] = rows.map((r, t) => {
    if (qr && r > qr.threshold) {
      const w = qr.operation === "concat" ? d / 2 : d;
      subs.push({ logical: t, part: "q", rows: Math.ceil(r / qr.collisions), dim: w });
      subs.push({ logical: t, part: "r", rows: qr.collisions, dim: w });
      return { kind: "qr", rows: r, collisions: qr.collisions, places: [] };
    }
    if (md && r > md.threshold) {
      subs.push({ logical: t, part: "md", rows: r, dim: mdDims![t]! });
      return { kind: "md", rows: r, mdDim: mdDims![t]!, places: [] };
    }
    subs.push({ logical: t, part: "plain", rows: r, dim: d });
    return { kind: "plain", rows: r, places: [] };
  });

  // Sets by width, widest first (vec4-friendly offsets); sub-tables in logical order within a set.
  const dims = [...new Set(subs.map((s) => s.dim))].sort((x, y) => y - x);
  const sets: LayoutSet[] = [];
  let col = 0;
  for (const dim of dims) {
    if (dim % 4 === 0) col = round4(col);
    const set: LayoutSet = { dim, rows: [], subTables: [], offset: col };
    for (const s of subs) {
      if (s.dim !== dim) continue;
      tables[s.logical]!.places.push({ part: s.part, set: sets.length, table: set.rows.length, rows: s.rows, dim, column: col + set.rows.length * dim });
      set.rows.push(s.rows);
      set.subTables.push({ logical: s.logical, part: s.part });
    }
    col += set.rows.length * dim;
    sets.push(set);
  }
  const width = round4(col);
  // QR places in [q, r] order regardless of set order.
  for (const t of tables) t.places.sort((x, y) => (x.part === "r" ? 1 : 0) - (y.part === "r" ? 1 : 0));

  let projSize = 0;
  const combine = tables.map((t): CombineDescriptor => {
    const p0 = t.places[0]!;
    if (t.kind === "qr") {
      const p1 = t.places[1]!;
      const op: CombineOp = qr!.operation;
      return { op, a: p0.column, b: p1.column, wa: p0.dim, wb: p1.dim, projOffset: 0 };
    }
    if (t.kind === "md" && t.mdDim! < d) {
      const desc: CombineDescriptor = { op: "project", a: p0.column, b: 0, wa: t.mdDim!, wb: 0, projOffset: projSize };
      projSize += d * t.mdDim!;
      return desc;
    }
    return { op: "copy", a: p0.column, b: 0, wa: d, wb: 0, projOffset: 0 };
  });
  const identity = sets.length === 1 && sets[0]!.dim === d && width === rows.length * d && combine.every((c, t) => c.op === "copy" && c.a === t * d);
  return { dim: d, numTables: rows.length, tableRows: rows, tables, sets, width, combine, projSize, identity };
}

// ---------------------------------------------------------------------------
// Parameters (state-dict names of the reference)

export type ParamPlace = { kind: "table"; set: number; table: number } | { kind: "proj"; logical: number; offset: number };

export interface EmbeddingParam {
  name: string;
  shape: number[];
  place: ParamPlace;
}

/**
 * Every embedding parameter in logical order: plain emb_l.{t}.weight [rows, d];
 * QR emb_l.{t}.weight_q [ceil(rows/c), dq], emb_l.{t}.weight_r [c, dr];
 * MD emb_l.{t}.embs.weight [rows, dim_t], emb_l.{t}.proj.weight [d, dim_t] (only when dim_t < d).
 * `place` says where it lives: table `table` of set `set`, or floats
 * [offset, offset + d*dim_t) of the packed projection buffer.
 */
export function embeddingParameters(layout: EmbeddingLayout): EmbeddingParam[] {
  const out: EmbeddingParam[] = [];
  layout.tables.forEach((t, i) => {
    const at = (p: LogicalTable["places"][number]): ParamPlace => ({ kind: "table", set: p.set, table: p.table });
    if (t.kind === "plain") {
      const p = t.places[0]!;
      out.push({ name: `emb_l.${i}.weight`, shape: [p.rows, p.dim], place: at(p) });
    } else if (t.kind === "qr") {
      const [q, r] = t.places as [LogicalTable["places"][number], LogicalTable["places"][number]];
      out.push({ name: `emb_l.${i}.weight_q`, shape: [q.rows, q.dim], place: at(q) });
      out.push({ name: `emb_l.${i}.weight_r`, shape: [r.rows, r.dim], place: at(r) });
    } else {
      const p = t.places[0]!;
      out.push({ name: `emb_l.${i}.embs.weight`, shape: [p.rows, p.dim], place: at(p) });
      const c = layout.combine[i]!;
      if (c.op === "project") out.push({ name: `emb_l.${i}.proj.weight`, shape: [layout.dim, p.dim], place: { kind: "proj", logical: i, offset: c.projOffset } });
    }
  });
  return out;
}

/** [name, shape] of every embedding parameter (for parameterShapes()). */
export function embeddingParameterShapes(layout: EmbeddingLayout): [string, number[]][] {
  return embeddingParameters(layout).map((p) => [p.name, p.shape]);
}

/**
 * Initial values as the reference draws them (not its RNG streams), from `rng`
 * in parameter order: plain and MD embs U(-sqrt(1/rows), sqrt(1/rows)),
 * QR weight_q / weight_r U(sqrt(1/rows), 1) (rows = the logical table's rows)
 * times `qrInitScale` (1 in the reference; the fixtures use 0.3), MD proj
 * xavier-uniform U(±sqrt(6/(dim_t + d))). Plain tables draw exactly as
 * params.ts's initParameters does (rng.range(-a, a) per element, row-major).
 */
export function initEmbeddingParameters(layout: EmbeddingLayout, rng: Rng, opts: { qrInitScale?: number } = {}): StateDict {
  const sd: StateDict = {};
  const qrScale = opts.qrInitScale ?? 1;
  for (const p of embeddingParameters(layout)) {
    const n = p.shape[0]! * p.shape[1]!;
    const data = new Float32Array(n);
    const logical = Number(p.name.split(".")[1]);
    const rows = layout.tableRows[logical]!;
    if (p.name.endsWith(".weight_q") || p.name.endsWith(".weight_r")) {
      const lo = Math.sqrt(1 / rows);
      for (let i = 0; i < n; i++) data[i] = rng.range(lo, 1) * qrScale;
    } else if (p.name.endsWith(".proj.weight")) {
      const a = Math.sqrt(6 / (p.shape[0]! + p.shape[1]!));
      for (let i = 0; i < n; i++) data[i] = rng.range(-a, a);
    } else {
      const a = Math.sqrt(1 / rows);
      for (let i = 0; i < n; i++) data[i] = rng.range(-a, a);
    }
    sd[p.name] = { shape: p.shape, data };
  }
  return sd;
}

/** Convenience: initEmbeddingParameters with a fresh Rng(seed). */
export function initEmbeddingParametersSeeded(layout: EmbeddingLayout, seed: number, opts: { qrInitScale?: number } = {}): StateDict {
  return initEmbeddingParameters(layout, new Rng(seed), opts);
}

/** The packed projection buffer's contents (projSize floats) from a state dict. */
export function packProjections(layout: EmbeddingLayout, sd: StateDict): Float32Array {
  const out = new Float32Array(layout.projSize);
  for (const p of embeddingParameters(layout)) {
    if (p.place.kind !== "proj") continue;
    const t = sd[p.name];
    if (!t) throw new ConfigError(`state dict lacks '${p.name}' (shape [${p.shape}])`);
    if (t.data.length !== p.shape[0]! * p.shape[1]!) throw new ConfigError(`'${p.name}' holds ${t.data.length} values, shape [${p.shape}] needs ${p.shape[0]! * p.shape[1]!}`);
    out.set(t.data, p.place.offset);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Bags

export interface LogicalBags {
  batchSize: number;
  /** [n*B + 1], table-major CSR over the logical tables. */
  offsets: Uint32Array;
  indices: Uint32Array;
  weights?: Float32Array;
}

export interface SetBags {
  batchSize: number;
  /** [T_s*B + 1], table-major CSR over the set's sub-tables. */
  offsets: Uint32Array;
  indices: Uint32Array;
  weights?: Float32Array;
}

/**
 * Splits a logical batch into one batch per set (same bag boundaries; QR
 * tables get q = floor(i/c) in their q sub-table and r = i mod c in their r
 * sub-table). Validates the logical offsets and that every index is below its
 * logical table's rows (a QR index past the table could otherwise map to a
 * valid q row). One pass over the indices per sub-table.
 */
export function splitBags(layout: EmbeddingLayout, batch: LogicalBags): SetBags[] {
  const B = batch.batchSize;
  const n = layout.numTables;
  const o = batch.offsets;
  if (!Number.isInteger(B) || B < 1) throw new KernelInputError(`batchSize must be a positive integer, got ${B}`);
  if (o.length !== n * B + 1) throw new KernelInputError(`offsets has ${o.length} entries; ${n} tables x batch ${B} need ${n * B + 1}`);
  if (o[0] !== 0) throw new KernelInputError(`offsets[0] is ${o[0]}; it must be 0`);
  for (let k = 0; k < n * B; k++) {
    if (o[k + 1]! < o[k]!) {
      throw new KernelInputError(`offsets decrease at table ${Math.floor(k / B)}, sample ${k % B}: offsets[${k + 1}] = ${o[k + 1]} < offsets[${k}] = ${o[k]}`);
    }
  }
  const total = o[n * B]!;
  if (total > batch.indices.length) throw new KernelInputError(`offsets end at ${total} but there are only ${batch.indices.length} indices`);
  if (batch.weights && batch.weights.length < total) throw new KernelInputError(`${total} indices but only ${batch.weights.length} weights`);

  const bad = (t: number, p: number): never => {
    let b = 0;
    while (o[t * B + b + 1]! <= p) b++;
    throw new KernelInputError(`index ${batch.indices[p]} out of range for table ${t} (${layout.tableRows[t]} rows) at sample ${b}`);
  };
  return layout.sets.map((set) => {
    let count = 0;
    for (const s of set.subTables) count += o[(s.logical + 1) * B]! - o[s.logical * B]!;
    const offsets = new Uint32Array(set.subTables.length * B + 1);
    const indices = new Uint32Array(count);
    const weights = batch.weights ? new Float32Array(count) : undefined;
    let pos = 0;
    set.subTables.forEach((s, j) => {
      const t = s.logical;
      const begin = o[t * B]!;
      const end = o[(t + 1) * B]!;
      for (let b = 0; b < B; b++) offsets[j * B + b] = pos + o[t * B + b]! - begin;
      const rows = layout.tableRows[t]!;
      const src = batch.indices;
      if (s.part === "q" || s.part === "r") {
        const c = layout.tables[t]!.collisions!;
        const q = s.part === "q";
        for (let p = begin; p < end; p++) {
          const i = src[p]!;
          if (i >= rows) bad(t, p);
          indices[pos + p - begin] = q ? Math.floor(i / c) : i % c;
        }
      } else {
        for (let p = begin; p < end; p++) if (src[p]! >= rows) bad(t, p);
        indices.set(src.subarray(begin, end), pos);
      }
      if (weights) weights.set(batch.weights!.subarray(begin, end), pos);
      pos += end - begin;
    });
    offsets[set.subTables.length * B] = pos;
    return weights ? { batchSize: B, offsets, indices, weights } : { batchSize: B, offsets, indices };
  });
}

// ---------------------------------------------------------------------------
// Descriptors for the GPU

/** u32 words per logical-table descriptor in the packed descriptor buffer. */
export const DESC_WORDS = 8;
/** Column-map entry of a padding column of P. */
export const NO_TABLE = 0xffffffff;

export interface PackedCombine {
  /**
   * u32 words: [0, 8n) per table {op, a, b, wa, wb, projOffset, 0, 0};
   * [colMapOffset, +2W) per P column {logical table (NO_TABLE for padding), side (0: a, 1: b) << 16 | column within the side};
   * [projListOffset, +4 numProj) per projected table {logical table, a, wa, projOffset}.
   */
  data: Uint32Array;
  numTables: number;
  dim: number;
  width: number;
  projSize: number;
  numProj: number;
  colMapOffset: number;
  projListOffset: number;
}

/** Packs the combine descriptors, the P column owners and the projection list for the combine kernels. */
export function packCombine(layout: EmbeddingLayout): PackedCombine {
  const n = layout.numTables;
  const W = layout.width;
  const projected = layout.combine.map((c, t) => ({ c, t })).filter(({ c }) => c.op === "project");
  const colMapOffset = n * DESC_WORDS;
  const projListOffset = colMapOffset + 2 * W;
  const data = new Uint32Array(projListOffset + 4 * projected.length);
  layout.combine.forEach((c, t) => {
    data.set([COMBINE_OP_CODE[c.op], c.a, c.b, c.wa, c.wb, c.projOffset, 0, 0], t * DESC_WORDS);
  });
  for (let col = 0; col < W; col++) data[colMapOffset + 2 * col] = NO_TABLE;
  const own = (t: number, side: number, start: number, len: number) => {
    for (let j = 0; j < len; j++) {
      const e = colMapOffset + 2 * (start + j);
      if (data[e] !== NO_TABLE) throw new Error(`internal: column ${start + j} of P owned twice`);
      data[e] = t;
      data[e + 1] = (side << 16) | j;
    }
  };
  layout.combine.forEach((c, t) => {
    own(t, 0, c.a, c.wa);
    if (c.op === "add" || c.op === "mult" || c.op === "concat") own(t, 1, c.b, c.wb);
  });
  projected.forEach(({ c, t }, i) => data.set([t, c.a, c.wa, c.projOffset], projListOffset + 4 * i));
  return { data, numTables: n, dim: layout.dim, width: W, projSize: layout.projSize, numProj: projected.length, colMapOffset, projListOffset };
}
