/**
 * The categorical dictionaries a model was trained with, so that it can score
 * any raw file later (eval/predict --raw-data-file) and refuse a cache whose
 * ids mean something else.
 *
 * Dictionary mode: per feature, the values (hex value, after % maxIndRange if
 * set) in id order; with a rare id (minFreq > 1) id 0 is the shared rare row
 * and values[k] has id k + 1. Hash mode: id = value % maxIndRange (nothing
 * to store).
 *
 * Stored beside a checkpoint as a safetensors file (`<model>.dict.safetensors`:
 * tensors C1..C26 as F64 holding the values in id order, metadata with the
 * mode), named in the checkpoint's metadata with its SHA-256, which is
 * verified on load. The digest is over the canonical encoding, so a cache's
 * dictionaries can be compared with a model's by recomputing it.
 *
 * Values never seen in training (policy; the reference has none, as it builds
 * its dictionaries over all days including the test day): with a rare id they
 * map to it (they were seen fewer than minFreq times: zero); otherwise the
 * value's bag is empty, so the feature contributes a zero embedding vector.
 * Both are counted per feature and reported.
 */
import { decodeSafetensors, encodeSafetensors } from "../io/safetensors.ts";
import { readManifest } from "./arrow_cache.ts";
import { joinPath, type DataFs, hostFs } from "./fs.ts";
import { DataError } from "./source.ts";

export const DICTIONARY_FORMAT = "webgpu-dlrm-dictionaries/1";

export interface CategoricalDictionaries {
  categorical: "dictionary" | "hash";
  maxIndRange: number;
  minFreq: number;
  /** Id shared by rare and unseen values (dictionary mode with minFreq > 1), else null. */
  rareId: number | null;
  tableRows: number[];
  /** Dictionary mode: per feature the values in id order (ids from 1 when rareId is 0). Hash mode: null. */
  values: Float64Array[] | null;
}

/** What a checkpoint records about its dictionaries (metadata key "dictionaries"). */
export interface DictionaryRef {
  categorical: "dictionary" | "hash";
  maxIndRange: number;
  /** Dictionary mode: the sidecar's file name (same directory as the checkpoint) and SHA-256 (hex). */
  file?: string;
  sha256?: string;
}

/** The dictionaries of an Arrow cache made by `preprocess`. */
export async function loadCacheDictionaries(dir: string, fs?: DataFs): Promise<CategoricalDictionaries> {
  const f = fs ?? (await hostFs());
  const m = await readManifest(dir, f);
  let values: Float64Array[] | null = null;
  if (m.categorical === "dictionary") {
    if (!m.dictionaries) throw new DataError(`${dir}: a dictionary-mode cache without dictionary files; preprocess it again`);
    values = [];
    for (const name of m.dictionaries) values.push(Float64Array.from(JSON.parse(await f.readText(joinPath(dir, name))) as number[]));
  }
  return { categorical: m.categorical, maxIndRange: m.maxIndRange, minFreq: m.minFreq, rareId: m.rareId, tableRows: [...m.tableRows], values };
}

/** The canonical bytes of dictionaries (a safetensors file). */
export function encodeDictionaries(d: CategoricalDictionaries): Uint8Array {
  const tensors: Parameters<typeof encodeSafetensors>[0] = {};
  (d.values ?? []).forEach((v, j) => (tensors[`C${j + 1}`] = { dtype: "F64", shape: [v.length], data: v }));
  return encodeSafetensors(tensors, {
    format: DICTIONARY_FORMAT,
    categorical: d.categorical,
    maxIndRange: String(d.maxIndRange),
    minFreq: String(d.minFreq),
    rareId: String(d.rareId),
    tableRows: d.tableRows.join("-"),
  });
}

export function decodeDictionaries(bytes: Uint8Array, source: string): CategoricalDictionaries {
  let dec: ReturnType<typeof decodeSafetensors>;
  try {
    dec = decodeSafetensors(bytes, { copy: true });
  } catch (e) {
    throw new DataError(`${source}: not a dictionary file: ${(e as Error).message}`);
  }
  const m = dec.metadata ?? {};
  if (m.format !== DICTIONARY_FORMAT) throw new DataError(`${source}: not a webgpu-dlrm dictionary file (format ${JSON.stringify(m.format)})`);
  const tableRows = (m.tableRows ?? "").split("-").map(Number);
  const categorical = m.categorical === "hash" ? "hash" : "dictionary";
  const values: Float64Array[] = [];
  for (let j = 0; ; j++) {
    const t = dec.tensors[`C${j + 1}`];
    if (!t) break;
    values.push(t.data as Float64Array);
  }
  return { categorical, maxIndRange: Number(m.maxIndRange), minFreq: Number(m.minFreq), rareId: m.rareId === "null" ? null : Number(m.rareId), tableRows, values: categorical === "hash" ? null : values };
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const h = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(h, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The digest identifying dictionaries: SHA-256 of the canonical encoding ("hash:N" for hash mode). */
export async function dictionaryDigest(d: CategoricalDictionaries): Promise<string> {
  if (d.categorical === "hash") return `hash:${d.maxIndRange}`;
  return sha256Hex(encodeDictionaries(d));
}

/** Maps raw categorical values to table ids through a model's dictionaries; counts unseen values. */
export class CategoricalMapper {
  private readonly maps: Map<number, number>[] | null;
  /** Per feature: values never seen in training. */
  readonly unseen: number[];

  constructor(readonly dicts: CategoricalDictionaries) {
    this.unseen = new Array(dicts.tableRows.length).fill(0);
    if (dicts.categorical === "hash") {
      this.maps = null;
      return;
    }
    const first = dicts.rareId === null ? 0 : dicts.rareId + 1;
    this.maps = dicts.values!.map((vals) => {
      const m = new Map<number, number>();
      for (let k = 0; k < vals.length; k++) m.set(vals[k]!, first + k);
      return m;
    });
  }

  /** Table id of raw value `v` of feature j, or -1 (empty bag) for an unseen value without a rare id. */
  id(j: number, v: number): number {
    const range = this.dicts.maxIndRange;
    const key = range > 0 ? v % range : v;
    if (!this.maps) return key;
    const id = this.maps[j]!.get(key);
    if (id !== undefined) return id;
    this.unseen[j]!++;
    return this.dicts.rareId ?? -1;
  }

  /** "C3: 12, C7: 1" (features with unseen values), or "none". */
  describeUnseen(): string {
    const parts = this.unseen.map((n, j) => (n ? `C${j + 1}: ${n}` : "")).filter(Boolean);
    return parts.length ? parts.join(", ") : "none";
  }

  get policy(): string {
    if (!this.maps) return `hashing (value % ${this.dicts.maxIndRange}): every value has an id`;
    return this.dicts.rareId !== null ? `values unseen in training take the shared rare id ${this.dicts.rareId}` : "values unseen in training contribute a zero embedding (an empty bag)";
  }
}
