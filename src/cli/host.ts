/**
 * What the CLI needs from its host (Deno or Node): arguments, output,
 * interrupt signal, files. Both hosts provide the node: modules.
 */
import process from "node:process";
import { mkdir, readFile, writeFile, stat } from "node:fs/promises";
import { dirname } from "node:path";

export const cliHost = {
  args(): string[] {
    return process.argv.slice(2);
  },
  write(s: string): void {
    process.stdout.write(s);
  },
  error(s: string): void {
    process.stderr.write(s);
  },
  isTTY(): boolean {
    return Boolean(process.stdout.isTTY);
  },
  /** Calls `fn` on Ctrl-C (SIGINT); returns a function that removes the handler. */
  onInterrupt(fn: () => void): () => void {
    const d = (globalThis as { Deno?: { addSignalListener(s: string, f: () => void): void; removeSignalListener(s: string, f: () => void): void } }).Deno;
    if (d) {
      d.addSignalListener("SIGINT", fn);
      return () => d.removeSignalListener("SIGINT", fn);
    }
    process.on("SIGINT", fn);
    return () => process.off("SIGINT", fn);
  },
  async readText(path: string): Promise<string> {
    return readFile(path, "utf8");
  },
  async writeText(path: string, text: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, text);
  },
  async appendLineWriter(path: string): Promise<(line: string) => void> {
    await mkdir(dirname(path), { recursive: true });
    // One descriptor opened with open(2): the new file gets the user's umask
    // (Deno's appendFileSync created it world-writable).
    const { openSync, writeSync } = await import("node:fs");
    const fd = openSync(path, "a");
    return (line: string) => void writeSync(fd, line + "\n");
  },
  async exists(path: string): Promise<boolean> {
    try {
      await stat(path);
      return true;
    } catch {
      return false;
    }
  },
  exit(code: number): never {
    process.exit(code);
  },
  runtime(): string {
    const d = (globalThis as { Deno?: { version: { deno: string } } }).Deno;
    return d ? `Deno ${d.version.deno}` : `Node ${process.versions.node}`;
  },
};
