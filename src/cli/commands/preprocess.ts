/** `preprocess`: Criteo TSV/CSV (optionally gzip) -> Arrow cache. */
import { preprocessCriteo } from "../../data/preprocess.ts";
import { type FlagSpec, helpText, parseFlags, UsageError } from "../args.ts";
import { describeReport, progressPrinter, rawInputs } from "../dataset.ts";
import { cliHost } from "../host.ts";

const FLAGS: FlagSpec[] = [
  { name: "raw-data-file", type: "string", help: "Criteo train.txt, a day_N file, or (terabyte) the day-file prefix; more files may follow as arguments", meta: "FILE" },
  { name: "out", type: "string", help: "cache directory to create (also --processed-data-file)", meta: "DIR" },
  { name: "processed-data-file", type: "string", help: "same as --out", meta: "DIR" },
  { name: "data-set", type: "choice", choices: ["kaggle", "terabyte"], default: "kaggle", help: "day layout: kaggle (7 days in one file) or terabyte (one file per day)" },
  { name: "format", type: "choice", choices: ["auto", "tsv", "csv"], default: "auto", help: "separator: auto (detected from the first line), tsv (Criteo's own) or csv; a header line, a UTF-8 BOM and gzip are always detected" },
  { name: "max-ind-range", type: "int", default: -1, help: "hash categoricals modulo N in one pass (-1: build dictionaries in two passes)", meta: "N" },
  { name: "min-freq", type: "int", default: 1, help: "dictionary mode: values seen fewer times share one 'rare' id", meta: "N" },
  { name: "data-sub-sample-rate", type: "float", default: 0, help: "drop each label-0 row with this probability, as the reference (e.g. 0.875 for Terabyte)", meta: "R" },
  { name: "seed", type: "int", default: 123, help: "seed of the sub-sampling draws (also --numpy-rand-seed)", meta: "N" },
  { name: "numpy-rand-seed", type: "int", help: "the reference's name for --seed", meta: "N" },
  { name: "strict", type: "bool", default: false, help: "stop at the first malformed row instead of skipping it" },
];

export async function preprocessCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    cliHost.write(
      helpText("preprocess", "Reads Criteo click logs once (streaming) into an Apache Arrow cache that train/eval/predict read.", FLAGS, [
        "webgpu-dlrm preprocess --raw-data-file data/train.txt --out cache/kaggle",
        "webgpu-dlrm preprocess --data-set terabyte --raw-data-file data/day --max-ind-range 40000000 --out cache/tb",
      ]),
    );
    return 0;
  }
  const { values: v, positional } = parseFlags(argv, FLAGS, "preprocess");
  const out = (v.out ?? v.processedDataFile) as string | undefined;
  const raw = v.rawDataFile as string | undefined;
  if (!raw && positional.length === 0) throw new UsageError("preprocess needs --raw-data-file FILE");
  if (!out) throw new UsageError("preprocess needs --out DIR (the cache directory to create)");
  if (await cliHost.exists(out)) throw new UsageError(`${out} already exists: remove it or choose another --out`);
  const inputs = [...(raw ? await rawInputs(raw, v.dataSet as string) : []), ...positional];
  const maxInd = v.maxIndRange as number;
  const log = (s: string) => cliHost.write(s + "\n");
  const report = await preprocessCriteo({
    input: inputs,
    outDir: out,
    dataset: v.dataSet as "kaggle" | "terabyte",
    format: v.format === "auto" ? undefined : (v.format as "tsv" | "csv"),
    categorical: maxInd > 0 ? "hash" : "dictionary",
    maxIndRange: maxInd > 0 ? maxInd : undefined,
    minFreq: v.minFreq as number,
    subSampleRate: v.dataSubSampleRate as number,
    seed: (v.numpyRandSeed ?? v.seed) as number,
    strict: v.strict as boolean,
    onProgress: progressPrinter(log),
    parseInWorker: true,
  });
  if (cliHost.isTTY()) cliHost.write("\n");
  log(describeReport(report));
  log(`table sizes: ${report.tableRows.join("-")}`);
  return 0;
}
