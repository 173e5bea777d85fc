/**
 * BENCHMARKS.md is assembled from sections, each written by one benchmark
 * run and replaced whole when that benchmark runs again:
 *   <!-- section:NAME --> ... <!-- /section:NAME -->
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";

const HEADER = `# Benchmarks

Every figure below was measured by the command shown with it, on this project's
machines (2 cores, no GPU: Mesa lavapipe and SwiftShader software adapters).
Ratios are taken within one run: against the adapter's own roofline (an FMA-bound
microkernel and a copy kernel measured in the same run) and against peers on the
same adapter. Figures from different runs or adapters are not comparable.
`;

/**
 * The section a benchmark on this host and adapter writes: `<prefix>-<host>`
 * on the host's best adapter (lavapipe under Deno and Node), with
 * `-swiftshader` added for the second adapter's extra line, so neither
 * overwrites the other.
 */
export function sectionName(prefix: string, host: string, adapterName: string): string {
  return `${prefix}-${host}${/swiftshader/i.test(adapterName) ? "-swiftshader" : ""}`;
}

/** The command line a Node benchmark was run with: its VK_ICD_FILENAMES (the adapter it chose) and arguments. */
export function nodeCommand(script: string, args: readonly string[]): string {
  const icd = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.VK_ICD_FILENAMES;
  return `${icd ? `VK_ICD_FILENAMES=${icd} ` : ""}npx tsx ${script}${args.length ? " " + args.join(" ") : ""}`;
}

export function writeSection(file: string, name: string, markdown: string): void {
  let text = existsSync(file) ? readFileSync(file, "utf8") : HEADER;
  const start = `<!-- section:${name} -->`;
  const end = `<!-- /section:${name} -->`;
  const block = `${start}\n${markdown.trim()}\n${end}`;
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i >= 0 && j > i) text = text.slice(0, i) + block + text.slice(j + end.length);
  else text = `${text.trimEnd()}\n\n${block}\n`;
  writeFileSync(file, text);
}

/** A markdown table. */
export function table(head: string[], rows: (string | number)[][]): string {
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function argValue(name: string, fallback?: string): string | undefined {
  const argv = (globalThis as { process?: { argv: string[] } }).process?.argv ?? [];
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : fallback;
}
