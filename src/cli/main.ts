#!/usr/bin/env node
/**
 * webgpu-dlrm command line, for Deno (`deno run -A src/cli/main.ts`) and
 * Node (`tsx src/cli/main.ts`); built, it is the package's `webgpu-dlrm` bin
 * (dist/cli/main.js). User errors print one line and exit 2; a
 * non-finite loss exits 3; a lost device exits 4.
 */
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { DeviceLostError, DlrmError } from "../gpu/errors.ts";
import { NonFiniteLossError } from "../model/trainer.ts";
import { cliHost } from "./host.ts";
import { trainCommand } from "./commands/train.ts";
import { evalCommand, predictCommand } from "./commands/eval.ts";
import { preprocessCommand } from "./commands/preprocess.ts";
import { benchCommand } from "./commands/bench.ts";
import { adaptersCommand } from "./commands/adapters.ts";
import { VERSION } from "./version.ts";
import { planCommand } from "./commands/plan.ts";

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; summary: string }> = {
  train: { run: trainCommand, summary: "train a model (default: built-in synthetic data, about a minute)" },
  eval: { run: evalCommand, summary: "AUC, accuracy and log loss of a checkpoint on a data set" },
  predict: { run: predictCommand, summary: "click probabilities of a checkpoint to a CSV or Arrow file" },
  preprocess: { run: preprocessCommand, summary: "Criteo TSV/CSV (optionally gzip) to an Arrow cache" },
  bench: { run: benchCommand, summary: "training-step throughput and per-kernel time split" },
  plan: { run: planCommand, summary: "the sharding plan of a run over several devices/adapters (same flags as train)" },
  adapters: { run: adaptersCommand, summary: "list the WebGPU adapters with their limits and measured speed" },
};

const USAGE = `Usage: webgpu-dlrm <command> [options]

Commands:
${Object.entries(COMMANDS).map(([k, c]) => `  ${k.padEnd(11)}${c.summary}`).join("\n")}

Run 'webgpu-dlrm <command> --help' for a command's options; 'webgpu-dlrm --version' for the version.
Flags with no command (the reference's 'dlrm_s_pytorch.py --flags' lines) mean train.

Exit codes: 0 done; 1 internal error (a bug: please report it); 2 usage or input
error (one line on stderr says what to fix); 3 the loss or the weights became
NaN/Infinity; 4 the GPU device was lost; 130 interrupted by Ctrl-C (a checkpoint
was saved when --save-model was given).
`;

export async function main(argv: string[]): Promise<number> {
  // The reference's command lines name no command (`python dlrm_s_pytorch.py --flags ...`): they mean train.
  const bare = argv[0]?.startsWith("--") && !["--version", "--help"].includes(argv[0]);
  const [cmd, ...rest] = bare ? ["train", ...argv] : argv;
  if (cmd === "--version" || cmd === "-V" || cmd === "version") {
    cliHost.write(`webgpu-dlrm ${VERSION} (${cliHost.runtime()})\n`);
    return 0;
  }
  if (!cmd || cmd === "--help" || cmd === "-h" || cmd === "help") {
    cliHost.write(USAGE);
    return cmd ? 0 : 2;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    cliHost.error(`webgpu-dlrm: unknown command '${cmd}'. Commands: ${Object.keys(COMMANDS).join(", ")}.\n`);
    return 2;
  }
  try {
    return await c.run(rest);
  } catch (e) {
    if (e instanceof NonFiniteLossError) {
      cliHost.error(`webgpu-dlrm ${cmd}: ${e.message}\n`);
      return 3;
    }
    if (e instanceof DeviceLostError) {
      cliHost.error(`webgpu-dlrm ${cmd}: ${e.message}\n`);
      return 4;
    }
    if (e instanceof DlrmError || ["ENOENT", "EISDIR", "ENOTDIR", "EACCES"].includes((e as { code?: string }).code ?? "")) {
      cliHost.error(`webgpu-dlrm ${cmd}: ${(e as Error).message}\n`);
      return 2;
    }
    throw e;
  }
}

const isMain = (() => {
  const m = import.meta as ImportMeta & { main?: boolean };
  if (typeof m.main === "boolean") return m.main;
  // Node < 24: this file is the entry point when argv[1] (through bin symlinks) is this file.
  const arg = (globalThis as { process?: { argv: string[] } }).process?.argv[1];
  if (!arg) return false;
  try {
    return realpathSync(arg) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
})();

if (isMain) {
  main(cliHost.args()).then(
    (code) => cliHost.exit(code),
    (e) => {
      cliHost.error(`webgpu-dlrm: internal error: ${(e as Error).stack ?? e}\n`);
      cliHost.exit(1);
    },
  );
}
