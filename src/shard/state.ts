/**
 * A sharded model's embedding state gathered from and cut into its shards
 * (model.ts holds them): stateDict / optimizerState read every table under the
 * reference's names from the shards that hold it, writeEmbeddings /
 * writeOptimizerState cut whole tables for this plan, and checkpointTensors
 * streams them in row ranges, so a checkpoint moves between any N and any
 * plan (re-planning on resume goes through the same path). QR/MD tables held
 * whole come from their owner's ModelEmbeddings under the whole model's names;
 * MD tables split row-wise are gathered and cut by rows of the narrow table.
 */
import { denseOptimizerStateSizes } from "../kernels/dense_optimizer.ts";
import { stateValuesPerRow } from "../kernels/embedding_optimizer_state.ts";
import { readTable, readTableRows, writeTable, writeTableRows } from "../kernels/embedding_tables.ts";
import type { EmbeddingTableSet } from "../kernels/embedding_types.ts";
import type { DlrmConfig } from "../model/config.ts";
import { DENSE_OPT } from "../model/dense.ts";
import { embeddingParameters, type EmbeddingLayout } from "../model/embedding_layout.ts";
import { flushWrites, type StateDict, type TensorRows } from "../model/params.ts";
import type { ShardingPlan } from "./plan.ts";
import type { EmbeddingKind, Replica, ReplicaSet } from "./replica.ts";
import { compositeLocal, isRowTensor, partOfName, renameTables, tableOfName } from "./state_names.ts";

/** A shard of a table, where it lives. */
interface ShardRef {
  rep: Replica;
  rs: ReplicaSet;
  /** Index of the shard in its set. */
  k: number;
  colStart: number;
  colEnd: number;
  rowStart: number;
  rowEnd: number;
  kind: string;
  device: number;
}

export class ShardedState {
  constructor(
    private readonly replicas: readonly Replica[],
    private readonly config: DlrmConfig,
    private readonly plan: ShardingPlan,
    /** The whole model's embedding layout (plain, QR and MD tables). */
    private readonly fullLayout: EmbeddingLayout,
    /** QR and MD tables held whole by one device. */
    private readonly composite: ReadonlySet<number>,
    private readonly embKind: EmbeddingKind,
    /** Runs a read under the model's lost-device check. */
    private readonly guard: <T>(fn: () => Promise<T>) => Promise<T>,
  ) {}


  /** Every shard of table t: (device, set, index in set, shard). */
  private shardsOf(t: number, part?: "q" | "r"): ShardRef[] {
    const out: ShardRef[] = [];
    for (const rep of this.replicas) {
      for (const rs of rep.sets) {
        rs.set.shards.forEach((sh, k) => {
          if (sh.table === t && sh.part === part) out.push({ rep, rs, k, colStart: sh.colStart, colEnd: sh.colEnd, rowStart: sh.rowStart, rowEnd: sh.rowEnd, kind: sh.kind, device: rep.layout.device });
        });
      }
    }
    return out;
  }

  /** Writes full tables (rows x perRow floats, row-major) into the shards; `state` selects the optimizer-state tables. */
  private scatterTable(t: number, data: Float32Array, perRow: number, state: boolean, part?: "q" | "r"): void {
    const d = this.config.embeddingDim;
    for (const s of this.shardsOf(t, part)) {
      const rows = s.rowEnd - s.rowStart;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      const part = new Float32Array(rows * w);
      for (let r = 0; r < rows; r++) {
        const src = (s.rowStart + r) * perRow + (perRow === d ? s.colStart : 0);
        part.set(data.subarray(src, src + w), r * w);
      }
      const set = state ? this.stateAsTables(s.rs) : s.rs.tables;
      writeTable(s.rep.device, set, s.k, part);
    }
  }

  private async gatherTable(t: number, perRow: number, state: boolean, part?: "q" | "r"): Promise<Float32Array> {
    const d = this.config.embeddingDim;
    const rowsT = this.tableRows(t, part);
    const out = new Float32Array(rowsT * perRow);
    for (const s of this.shardsOf(t, part)) {
      // A data-parallel table: every replica is the same; read the first.
      if (s.kind === "data" && s.device !== this.plan.tables[t]!.shards[0]!.device) continue;
      const set = state ? this.stateAsTables(s.rs) : s.rs.tables;
      const part = await readTable(s.rep.device, set, s.k);
      const rows = s.rowEnd - s.rowStart;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      for (let r = 0; r < rows; r++) out.set(part.subarray(r * w, (r + 1) * w), (s.rowStart + r) * perRow + (perRow === d ? s.colStart : 0));
    }
    return out;
  }

  /** Rows of table t, or of its q / r sub-table. */
  private tableRows(t: number, part?: "q" | "r"): number {
    return part ? this.fullLayout.tables[t]!.places[part === "q" ? 0 : 1]!.rows : this.config.tableRows[t]!;
  }

  private stateAsTables(rs: ReplicaSet): EmbeddingTableSet {
    return { ...rs.tables, dim: stateValuesPerRow(this.embKind, rs.tables.dim), chunks: rs.tables.chunks.map((c, i) => ({ ...c, buffer: rs.state.chunks[i]! })) };
  }

  /** Cuts the embedding tables of `sd` (already checked) into the shards and the QR/MD owners. */
  writeEmbeddings(sd: StateDict): void {
    for (const p of embeddingParameters(this.fullLayout)) {
      const t = tableOfName(p.name);
      if (!this.composite.has(t)) this.scatterTable(t, sd[p.name]!.data, p.shape[1]!, false, partOfName(p.name));
    }
    for (const r of this.replicas) if (r.composite) r.composite.emb.load(compositeLocal(sd, r.composite.set));
  }

  /** The QR/MD tables' parameters (or optimizer state) from their owners, under the whole model's names. */
  private async compositeState(optimizer: boolean): Promise<StateDict> {
    let out: StateDict = {};
    for (const r of this.replicas) {
      if (!r.composite) continue;
      const local = optimizer ? await r.composite.emb.optimizerState() : await r.composite.emb.stateDict();
      const named = renameTables(local, new Map(r.composite.tables.map((t, k) => [k, t] as const)));
      for (const [name, v] of Object.entries(named)) {
        const sh = r.composite.set.shards[r.composite.tables.indexOf(tableOfName(name))]!;
        if (sh.kind !== "row" || !isRowTensor(name)) {
          out[name] ??= v; // whole tables, and the projection copies of a split MD table (identical)
          continue;
        }
        // A row shard of an MD table: its rows of the narrow table (or of their optimizer state).
        const rows = this.config.tableRows[sh.table]!;
        const per = v.data.length / (sh.rowEnd - sh.rowStart);
        out[name] ??= { shape: [rows, ...v.shape.slice(1)], data: new Float32Array(rows * per) };
        out[name]!.data.set(v.data, sh.rowStart * per);
      }
    }
    return out;
  }

  /** Parameters gathered from the shards, under the reference's names. */
  async stateDict(): Promise<StateDict> {
    return this.guard(async () => {
      const sd = await this.replicas[0]!.dense.stateDict();
      const comp = await this.compositeState(false);
      // In the whole model's parameter order.
      for (const p of embeddingParameters(this.fullLayout)) {
        const t = Number(p.name.split(".")[1]);
        sd[p.name] = this.composite.has(t) ? comp[p.name]! : { shape: p.shape, data: await this.gatherTable(t, p.shape[1]!, false, partOfName(p.name)) };
      }
      return sd;
    });
  }

  /**
   * Checkpoint tensors in row ranges (src/io streams them in bounded pieces):
   * an MLP tensor is read from replica 0 and written to every replica; a
   * table's rows are gathered from / cut into the shards that hold them, so a
   * checkpoint streams between any N and any plan. Same names and order as
   * stateDict() then optimizerState().
   */
  checkpointTensors(): TensorRows[] {
    const replicated = (what: "params" | "optimizer"): TensorRows[] => {
      const per = this.replicas.map((r) => r.dense.tensorRows(what));
      return per[0]!.map((t0, i) => ({
        name: t0.name,
        shape: t0.shape,
        read: (start, count) => this.guard(() => t0.read(start, count)),
        write: (start, data) => per.forEach((p) => p[i]!.write(start, data)),
        flush: () => this.flushAll(),
      }));
    };
    const table = (name: string, shape: number[], state: boolean): TensorRows => {
      const t = tableOfName(name);
      const part = partOfName(name);
      const perRow = shape[1] ?? 1;
      return {
        name,
        shape,
        read: (start, count) => this.guard(() => this.gatherRows(t, perRow, state, start, count, part)),
        write: (start, data) => this.scatterRows(t, perRow, state, start, data, part),
        flush: () => this.flushAll(),
      };
    };
    // QR/MD tables: their owner's ModelEmbeddings, under the whole model's names.
    const composite = new Map<string, TensorRows>();
    for (const r of this.replicas) {
      if (!r.composite) continue;
      const tables = r.composite.tables;
      for (const t of [...r.composite.emb.tensorRows("params"), ...r.composite.emb.tensorRows("optimizer")]) {
        const m = /^(optim\.)?emb_l\.(\d+)\.(.*)$/.exec(t.name)!;
        const k = Number(m[2]);
        const name = `${m[1] ?? ""}emb_l.${tables[k]!}.${m[3]}`;
        const sh = r.composite.set.shards[k]!;
        if (sh.kind !== "row") {
          composite.set(name, { ...t, name, read: (start, count) => this.guard(() => t.read(start, count)) });
          continue;
        }
        // An MD table split row-wise: rows gathered from / cut into the shards; its projection copies read from the first, written to all.
        const pieces = (composite.get(name) as (TensorRows & { pieces?: { t: TensorRows; a: number; b: number; rows: boolean }[] }) | undefined)?.pieces ?? [];
        pieces.push({ t, a: sh.rowStart, b: sh.rowEnd, rows: isRowTensor(name) });
        const full = pieces[0]!.rows ? [this.config.tableRows[sh.table]!, ...t.shape.slice(1)] : t.shape;
        const per = t.shape.slice(1).reduce((x, y) => x * y, 1);
        composite.set(name, Object.assign({
          name,
          shape: full,
          read: (start: number, count: number) => this.guard(async () => {
            if (!pieces[0]!.rows) return pieces[0]!.t.read(start, count);
            const out = new Float32Array(count * per);
            for (const p of pieces) {
              const a = Math.max(start, p.a);
              const b = Math.min(start + count, p.b);
              if (a < b) out.set(await p.t.read(a - p.a, b - a), (a - start) * per);
            }
            return out;
          }),
          write: (start: number, data: Float32Array) => {
            if (!pieces[0]!.rows) return pieces.forEach((p) => p.t.write(start, data));
            const count = data.length / per;
            for (const p of pieces) {
              const a = Math.max(start, p.a);
              const b = Math.min(start + count, p.b);
              if (a < b) p.t.write(a - p.a, data.subarray((a - start) * per, (b - start) * per));
            }
          },
          flush: () => this.flushAll(),
        }, { pieces }));
      }
    }
    const out = replicated("params");
    for (const p of embeddingParameters(this.fullLayout)) {
      out.push(this.composite.has(tableOfName(p.name)) ? composite.get(p.name)! : table(p.name, p.shape, false));
    }
    out.push(...replicated("optimizer"));
    for (const [name, shape] of this.optimizerStateShapes()) {
      if (!name.startsWith("optim.emb_l.")) continue;
      out.push(this.composite.has(tableOfName(name)) ? composite.get(name)! : table(name, shape, true));
    }
    return out;
  }

  private async flushAll(): Promise<void> {
    await Promise.all(this.replicas.map((r) => flushWrites(r.device)));
  }

  /** Rows [start, start + count) of table t (perRow floats each) from the shards that hold them. */
  private async gatherRows(t: number, perRow: number, state: boolean, start: number, count: number, part?: "q" | "r"): Promise<Float32Array> {
    const d = this.config.embeddingDim;
    const out = new Float32Array(count * perRow);
    for (const s of this.shardsOf(t, part)) {
      if (s.kind === "data" && s.device !== this.plan.tables[t]!.shards[0]!.device) continue;
      const a = Math.max(start, s.rowStart);
      const b = Math.min(start + count, s.rowEnd);
      if (a >= b) continue;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      const col = perRow === d ? s.colStart : 0;
      const part = await readTableRows(s.rep.device, state ? this.stateAsTables(s.rs) : s.rs.tables, s.k, a - s.rowStart, b - a);
      for (let r = 0; r < b - a; r++) out.set(part.subarray(r * w, (r + 1) * w), (a - start + r) * perRow + col);
    }
    return out;
  }

  /** Writes rows from `start` on of table t (perRow floats each) into every shard that holds them. */
  private scatterRows(t: number, perRow: number, state: boolean, start: number, data: Float32Array, part?: "q" | "r"): void {
    const d = this.config.embeddingDim;
    const count = data.length / perRow;
    for (const s of this.shardsOf(t, part)) {
      const a = Math.max(start, s.rowStart);
      const b = Math.min(start + count, s.rowEnd);
      if (a >= b) continue;
      const w = perRow === d ? s.colEnd - s.colStart : perRow;
      const col = perRow === d ? s.colStart : 0;
      const part = new Float32Array((b - a) * w);
      for (let r = 0; r < b - a; r++) {
        const src = (a - start + r) * perRow + col;
        part.set(data.subarray(src, src + w), r * w);
      }
      writeTableRows(s.rep.device, state ? this.stateAsTables(s.rs) : s.rs.tables, s.k, a - s.rowStart, part);
    }
  }

  /**
   * The optimizer state of every shard of table t, as each shard holds it
   * (rows x state values per row): for a column-wise table under row-wise
   * Adagrad every shard keeps the whole row's accumulator, and the copies must
   * agree bit for bit (tests).
   */
  async shardOptimizerStates(t: number): Promise<Float32Array[]> {
    return Promise.all(this.shardsOf(t).map((s) => readTable(s.rep.device, this.stateAsTables(s.rs), s.k)));
  }

  /** As DlrmModel's: the MLPs', then every embedding parameter's in the model's order (tables: ".sum"; MD projections: the dense optimizer's). */
  optimizerStateShapes(): [string, number[]][] {
    const out = this.replicas[0]!.dense.optimizerStateShapes();
    for (const p of embeddingParameters(this.fullLayout)) {
      if (p.place.kind === "table") {
        const k = stateValuesPerRow(this.embKind, p.shape[1]!);
        if (k) out.push([`optim.${p.name}.sum`, k === 1 ? [p.shape[0]!] : p.shape]);
      } else {
        denseOptimizerStateSizes(DENSE_OPT[this.config.optimizer], p.shape[0]! * p.shape[1]!).forEach((_, i) => out.push([`optim.${p.name}.${i}`, p.shape]));
      }
    }
    return out;
  }

  async optimizerState(): Promise<StateDict> {
    return this.guard(async () => {
      const sd = await this.replicas[0]!.dense.optimizerState();
      const comp = await this.compositeState(true);
      for (const [name, shape] of this.optimizerStateShapes()) {
        if (!name.startsWith("optim.emb_l.")) continue;
        const t = tableOfName(name);
        sd[name] = this.composite.has(t) ? comp[name]! : { shape, data: await this.gatherTable(t, shape[1] ?? 1, true, partOfName(name)) };
      }
      return sd;
    });
  }

  /** Cuts the embedding tables' optimizer state of `sd` (already checked) into the shards and the QR/MD owners. */
  writeOptimizerState(sd: StateDict): void {
    for (const [name, shape] of this.optimizerStateShapes()) {
      if (!name.startsWith("optim.emb_l.")) continue;
      const t = tableOfName(name);
      if (!this.composite.has(t)) this.scatterTable(t, sd[name]!.data, shape[1] ?? 1, true, partOfName(name));
    }
    for (const r of this.replicas) if (r.composite) r.composite.emb.loadOptimizerState(compositeLocal(sd, r.composite.set));
  }
}
