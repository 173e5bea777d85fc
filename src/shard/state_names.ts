/**
 * Names of a sharded model's embedding state: the reference's emb_l.<t>.*
 * (and optim.emb_l.<t>.*) tensors, mapped to and from the local names of the
 * QR/MD tables a device holds whole (state.ts gathers and cuts them).
 */
import type { StateDict } from "../model/params.ts";
import type { ShardSet } from "./routing.ts";

/** Renames the emb_l.<t>.* (and optim.emb_l.<t>.*) entries of `sd` by `map` (from -> to); others are left out. */
export function renameTables(sd: StateDict, map: ReadonlyMap<number, number>): StateDict {
  const out: StateDict = {};
  for (const [name, v] of Object.entries(sd)) {
    const m = /^(optim\.)?emb_l\.(\d+)\.(.*)$/.exec(name);
    if (m && map.has(Number(m[2]))) out[`${m[1] ?? ""}emb_l.${map.get(Number(m[2]))}.${m[3]}`] = v;
  }
  return out;
}

/** True for a composite tensor whose first dimension is the table's rows (the narrow table and its optimizer state, not the projection). */
export function isRowTensor(name: string): boolean {
  return /emb_l\.\d+\.(embs\.weight|weight_[qr])(\.sum)?$/.test(name);
}

/**
 * The composite set's tables of `sd` under the set's local names (emb_l.<k>.*), row shards (MD tables split
 * row-wise) cut to their rows; the projection (and its optimizer state) whole.
 */
export function compositeLocal(sd: StateDict, set: ShardSet): StateDict {
  const out: StateDict = {};
  set.shards.forEach((sh, k) => {
    for (const [name, v] of Object.entries(renameTables(sd, new Map([[sh.table, k]])))) {
      if (sh.kind !== "row" || !isRowTensor(name)) {
        out[name] = v;
        continue;
      }
      const per = v.data.length / v.shape[0]!;
      out[name] = { shape: [sh.rowEnd - sh.rowStart, ...v.shape.slice(1)], data: v.data.slice(sh.rowStart * per, sh.rowEnd * per) };
    }
  });
  return out;
}

/** Table index of an emb_l.<t>.* (or optim.emb_l.<t>.*) name. */
export function tableOfName(name: string): number {
  return Number(/emb_l\.(\d+)\./.exec(name)![1]);
}

/** The QR sub-table a name addresses (emb_l.<t>.weight_q / weight_r), else undefined. */
export function partOfName(name: string): "q" | "r" | undefined {
  const m = /emb_l\.\d+\.weight_([qr])\b/.exec(name);
  return m ? (m[1] as "q" | "r") : undefined;
}
