/** Criteo data for the CLI: an Arrow cache, made from raw files on first use. */
import { arrowCacheSource } from "../data/arrow_cache.ts";
import { describeDetected } from "../data/criteo_parse.ts";
import { preprocessCriteo, type PreprocessProgress, type PreprocessReport } from "../data/preprocess.ts";
import type { DataSource } from "../data/source.ts";
import { type CategoricalDictionaries, decodeDictionaries, dictionaryDigest, type DictionaryRef, encodeDictionaries, loadCacheDictionaries, sha256Hex } from "../data/dictionaries.ts";
import { readFileBytes, writeFileAtomic } from "../io/atomic_write.ts";
import type { Randomize } from "../data/shuffle.ts";
import type { FlagValues } from "./args.ts";
import { UsageError } from "./args.ts";
import { cliHost } from "./host.ts";

/** Raw input files: the file itself, or for Terabyte a prefix with _0 .. _23 day files. */
export async function rawInputs(raw: string, dataset: string): Promise<string[]> {
  if (await cliHost.exists(raw)) return [raw];
  if (dataset === "terabyte") {
    const days: string[] = [];
    for (let d = 0; d < 24; d++) {
      for (const name of [`${raw}_${d}`, `${raw}_${d}.gz`]) if (await cliHost.exists(name)) days.push(name);
    }
    if (days.length) return days;
  }
  throw new UsageError(`raw data file ${raw} not found${dataset === "terabyte" ? ` (nor day files ${raw}_0 .. ${raw}_23)` : ""}`);
}

export function progressPrinter(log: (s: string) => void): (p: PreprocessProgress) => void {
  const tty = cliHost.isTTY();
  let last = 0;
  return (p) => {
    const now = performance.now();
    if (!tty && now - last < 2000) return;
    last = now;
    const pct = p.percent !== undefined ? `${p.percent.toFixed(1)}%  ` : "";
    const line = `preprocess pass ${p.passes === 1 ? 1 : p.pass}/${p.passes}: ${pct}${p.rows} rows  ${Math.round(p.rowsPerSec)} rows/s  ${p.file}`;
    if (tty) cliHost.write(`\r\x1b[2K${line}`);
    else log(line);
  };
}

export function describeReport(r: PreprocessReport): string {
  return `${r.files.map((f) => `${f.file}: ${describeDetected(f)}; `).join("")}` +
    `preprocessed ${r.rows} rows in ${r.seconds.toFixed(1)} s (${Math.round(r.rowsPerSec)} rows/s) into ${r.outDir}; ` +
    `${r.malformed} malformed rows skipped${r.malformedSamples.length ? ` (first: ${r.malformedSamples[0]!.file ?? ""} line ${r.malformedSamples[0]!.line}: ${r.malformedSamples[0]!.reason})` : ""}`;
}

/** File name of the dictionary sidecar of checkpoint `model`. */
export function dictionarySidecar(model: string): string {
  return model.replace(/(\.safetensors)?$/, ".dict.safetensors");
}

function baseName(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}
function dirName(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "." : p.slice(0, i) || "/";
}

/** Writes the dictionaries of `cacheDir` beside checkpoint `model`; returns the reference the checkpoint records. */
export async function writeDictionarySidecar(model: string, cacheDir: string): Promise<DictionaryRef> {
  const d = await loadCacheDictionaries(cacheDir);
  if (d.categorical === "hash") return { categorical: "hash", maxIndRange: d.maxIndRange };
  const bytes = encodeDictionaries(d);
  const file = dictionarySidecar(model);
  await writeFileAtomic(file, bytes);
  return { categorical: "dictionary", maxIndRange: d.maxIndRange, file: baseName(file), sha256: await sha256Hex(bytes) };
}

/** The dictionaries a checkpoint names (verified by hash), or undefined when it records none. */
export async function checkpointDictionaries(model: string, extra: Record<string, string>, tableRows: readonly number[]): Promise<CategoricalDictionaries | undefined> {
  if (!extra.dictionaries) return undefined;
  const ref = JSON.parse(extra.dictionaries) as DictionaryRef;
  if (ref.categorical === "hash") return { categorical: "hash", maxIndRange: ref.maxIndRange, minFreq: 1, rareId: null, tableRows: [...tableRows], values: null };
  const file = `${dirName(model)}/${ref.file}`;
  let bytes: Uint8Array;
  try {
    bytes = await readFileBytes(file);
  } catch {
    throw new UsageError(`${model} names its categorical dictionaries ${file}, which cannot be read: keep the .dict.safetensors file beside the checkpoint`);
  }
  if ((await sha256Hex(bytes)) !== ref.sha256) throw new UsageError(`${file} is not the dictionary file ${model} was trained with (SHA-256 differs)`);
  return decodeDictionaries(bytes, file);
}

/** Refuses a cache whose categorical ids do not mean what they meant when the model was trained. */
export async function checkCacheDictionaries(model: string, extra: Record<string, string>, cacheDir: string): Promise<void> {
  if (!extra.dictionaries) return;
  const ref = JSON.parse(extra.dictionaries) as DictionaryRef;
  const got = await dictionaryDigest(await loadCacheDictionaries(cacheDir));
  const want = ref.categorical === "hash" ? `hash:${ref.maxIndRange}` : ref.sha256;
  if (got !== want) {
    throw new UsageError(`${cacheDir} was preprocessed with other categorical dictionaries than ${model} was trained with; score raw files with --raw-data-file (they are mapped through the model's dictionaries)`);
  }
}

export async function openDatasetSource(v: FlagValues, log: (s: string) => void): Promise<{ source: DataSource; describe: string; cacheDir: string }> {
  const dataset = v.dataSet as "kaggle" | "terabyte";
  let dir = (v.processedDataFile as string | undefined) || undefined;
  const raw = (v.rawDataFile as string | undefined) || undefined;
  if (!dir || (raw && !(await cliHost.exists(dir)))) {
    // As the reference: with both files given and no processed data yet, the raw file is processed into it.
    if (!raw) throw new UsageError("--data-generation dataset needs --processed-data-file DIR (from `preprocess`) or --raw-data-file FILE");
    const maxInd = v.maxIndRange as number;
    const sub = (v.dataSubSampleRate as number | undefined) ?? 0;
    dir ??= `${raw}.${maxInd > 0 ? `hash${maxInd}` : "dict"}${sub > 0 ? `.sub${sub}` : ""}.arrow-cache`;
    if (!(await cliHost.exists(dir))) {
      log(`no Arrow cache at ${dir}: preprocessing ${raw} once (later runs read the cache)`);
      const report = await preprocessCriteo({
        input: await rawInputs(raw, dataset),
        outDir: dir,
        dataset,
        categorical: maxInd > 0 ? "hash" : "dictionary",
        maxIndRange: maxInd > 0 ? maxInd : undefined,
        subSampleRate: sub,
        seed: (v.numpyRandSeed ?? v.seed) as number,
        onProgress: progressPrinter(log),
        parseInWorker: true,
      });
      if (cliHost.isTTY()) cliHost.write("\n");
      log(describeReport(report));
    }
  } else if (!(await cliHost.exists(dir))) {
    throw new UsageError(`processed data ${dir} not found: make it with \`webgpu-dlrm preprocess --raw-data-file FILE --out ${dir}\``);
  }
  const randomize = ((v.dataRandomize as string | undefined) ?? "total") as Randomize;
  const source = await arrowCacheSource(dir, { randomize, shuffleSeed: (v.numpyRandSeed ?? v.seed) as number, shardRows: v.dataShardRows as number | undefined });
  return { source, cacheDir: dir, describe: `Criteo ${dataset} from the Arrow cache ${dir} (${source.tableRows.length} tables, ${source.splitRows("train")} training rows, order: ${randomize === "none" ? "as in the files" : `shuffled (${randomize})`})` };
}
