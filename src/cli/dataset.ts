/** Criteo data for the CLI: an Arrow cache, made from raw files on first use. */
import { arrowCacheSource } from "../data/arrow_cache.ts";
import { preprocessCriteo, type PreprocessProgress, type PreprocessReport } from "../data/preprocess.ts";
import type { DataSource } from "../data/source.ts";
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
    const line = `preprocess pass ${p.pass}/${p.passes}: ${pct}${p.rows} rows  ${Math.round(p.rowsPerSec)} rows/s  ${p.file}`;
    if (tty) cliHost.write(`\r\x1b[2K${line}`);
    else log(line);
  };
}

export function describeReport(r: PreprocessReport): string {
  return `preprocessed ${r.rows} rows in ${r.seconds.toFixed(1)} s (${Math.round(r.rowsPerSec)} rows/s) into ${r.outDir}; ` +
    `${r.malformed} malformed rows skipped${r.malformedSamples.length ? ` (first: ${r.malformedSamples[0]!.file ?? ""} line ${r.malformedSamples[0]!.line}: ${r.malformedSamples[0]!.reason})` : ""}`;
}

export async function openDatasetSource(v: FlagValues, log: (s: string) => void): Promise<{ source: DataSource; describe: string }> {
  const dataset = v.dataSet as "kaggle" | "terabyte";
  let dir = v.processedDataFile as string | undefined;
  if (!dir) {
    const raw = v.rawDataFile as string | undefined;
    if (!raw) throw new UsageError("--data-generation dataset needs --processed-data-file DIR (from `preprocess`) or --raw-data-file FILE");
    const maxInd = v.maxIndRange as number;
    dir = `${raw}.${maxInd > 0 ? `hash${maxInd}` : "dict"}.arrow-cache`;
    if (!(await cliHost.exists(dir))) {
      log(`no Arrow cache at ${dir}: preprocessing ${raw} once (later runs read the cache)`);
      const report = await preprocessCriteo({
        input: await rawInputs(raw, dataset),
        outDir: dir,
        dataset,
        categorical: maxInd > 0 ? "hash" : "dictionary",
        maxIndRange: maxInd > 0 ? maxInd : undefined,
        onProgress: progressPrinter(log),
      });
      if (cliHost.isTTY()) cliHost.write("\n");
      log(describeReport(report));
    }
  } else if (!(await cliHost.exists(dir))) {
    throw new UsageError(`processed data ${dir} not found: make it with \`webgpu-dlrm preprocess --raw-data-file FILE --out ${dir}\``);
  }
  const source = await arrowCacheSource(dir);
  return { source, describe: `Criteo ${dataset} from the Arrow cache ${dir} (${source.tableRows.length} tables, ${source.splitRows("train")} training rows)` };
}
