/** The package's version, read from its package.json (two levels up in src/ and in a built dist/). */
import { readFileSync } from "node:fs";

function readVersion(): string {
  try {
    return String(JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version ?? "unknown");
  } catch {
    return "unknown";
  }
}

export const VERSION = readVersion();
