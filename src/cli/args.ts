/**
 * Command-line flags: a table of specs (the reference's names where it has
 * them), parsing of `--flag value` and `--flag=value`, and one-line errors
 * that say how to fix the problem.
 */
import { DlrmError } from "../gpu/errors.ts";

export class UsageError extends DlrmError {}

export type FlagType = "int" | "float" | "string" | "bool" | "list" | "choice";

export interface FlagSpec {
  name: string;
  type: FlagType;
  help: string;
  default?: string | number | boolean;
  choices?: readonly string[];
  /** The reference's flag, when it differs or to note it is the same. */
  reference?: string;
  /** Placeholder in help, e.g. "N". */
  meta?: string;
}

export type FlagValues = Record<string, string | number | boolean | number[] | undefined>;

function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

function parseValue(spec: FlagSpec, raw: string): string | number | boolean | number[] {
  const bad = (what: string) => new UsageError(`--${spec.name} expects ${what}, got '${raw}'`);
  switch (spec.type) {
    case "int": {
      const v = Number(raw);
      if (!Number.isInteger(v)) throw bad("an integer");
      return v;
    }
    case "float": {
      const v = Number(raw);
      if (raw.trim() === "" || !Number.isFinite(v)) throw bad("a number");
      return v;
    }
    case "bool": {
      // The reference's bool flags take Python spellings too (--round-targets=True).
      const low = raw.toLowerCase();
      if (["true", "1", "yes", ""].includes(low)) return true;
      if (["false", "0", "no"].includes(low)) return false;
      throw bad("true or false");
    }
    case "list": {
      const parts = raw.split("-");
      const nums = parts.map(Number);
      if (parts.some((p) => p.trim() === "") || nums.some((n) => !Number.isInteger(n) || n < 1)) throw bad("positive integers separated by '-' (e.g. 13-512-256-64-16)");
      return nums;
    }
    case "choice":
      if (!spec.choices!.includes(raw)) throw bad(`one of ${spec.choices!.join(", ")}`);
      return raw;
    default:
      return raw;
  }
}

const BOOL_LITERAL = /^(true|false|yes|no|1|0)$/i;

/** Parses `argv` against `specs`; returns values keyed by camelCase name, plus positional arguments. */
export function parseFlags(argv: string[], specs: readonly FlagSpec[], command: string): { values: FlagValues; positional: string[]; given: Set<string> } {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const values: FlagValues = {};
  const given = new Set<string>();
  const positional: string[] = [];
  for (const s of specs) {
    if (s.default !== undefined) values[camel(s.name)] = s.type === "list" && typeof s.default === "string" ? (parseValue(s, s.default) as number[]) : s.default;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    let name = arg.slice(2, eq < 0 ? undefined : eq);
    let raw: string | undefined = eq < 0 ? undefined : arg.slice(eq + 1);
    let spec = byName.get(name);
    if (!spec && name.startsWith("no-") && byName.get(name.slice(3))?.type === "bool") {
      spec = byName.get(name.slice(3));
      name = name.slice(3);
      raw = "false";
    }
    if (!spec) {
      const near = specs.map((s) => [s.name, distance(s.name, name)] as const).sort((a, b) => a[1] - b[1])[0];
      const hint = near && near[1] <= Math.max(2, name.length / 4) ? ` Did you mean --${near[0]}?` : "";
      throw new UsageError(`unknown option --${name} for '${command}'.${hint} See \`${command} --help\`.`);
    }
    if (raw === undefined) {
      if (spec.type === "bool") {
        // `--round-targets True` (argparse type=bool takes a separate value): consume a bool literal.
        const next = argv[i + 1];
        raw = next !== undefined && BOOL_LITERAL.test(next) ? argv[++i]! : "true";
      } else {
        raw = argv[++i];
        if (raw === undefined) throw new UsageError(`--${name} needs a value${spec.meta ? ` (${spec.meta})` : ""}`);
      }
    }
    values[camel(name)] = parseValue(spec, raw);
    given.add(camel(name));
  }
  return { values, positional, given };
}

/** Help text: usage line, description, options table, examples. */
export function helpText(command: string, summary: string, specs: readonly FlagSpec[], examples: string[]): string {
  const rows = specs.map((s) => {
    const left = `  --${s.name}${s.type === "bool" ? "" : ` ${s.meta ?? (s.type === "choice" ? s.choices!.join("|") : s.type.toUpperCase())}`}`;
    const def = s.default !== undefined && s.default !== "" ? ` (default: ${s.default})` : "";
    return [left, `${s.help}${def}`] as const;
  });
  const width = Math.min(44, Math.max(...rows.map((r) => r[0].length)) + 2);
  const lines = rows.map(([l, r]) => (l.length + 1 > width ? `${l}\n${" ".repeat(width)}${r}` : `${l.padEnd(width)}${r}`));
  return [`Usage: webgpu-dlrm ${command} [options]`, "", summary, "", "Options:", ...lines, "", "Examples:", ...examples.map((e) => `  ${e}`), ""].join("\n");
}
