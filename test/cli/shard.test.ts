/**
 * `train --devices N` / `--adapters` through the real CLI: a run on 2
 * devices resumed on 3 (the checkpoint is resharded), a device lost in a
 * 3-device run (exit 4, the device named, the checkpoint kept) resumed on
 * the 2 left, and the error for an adapter that does not exist.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors } from "../../src/io/safetensors.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TINY = ["--preset", "main", "--arch-embedding-size", "50-60-70", "--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "32", "--test-num-batches", "2", "--test-mini-batch-size", "32", "--print-freq", "4"];

function run(host: "deno" | "node", args: string[], extraEnv: Record<string, string> = {}): { code: number; out: string; err: string } {
  const env = { ...process.env, ...extraEnv };
  if (host === "deno") delete env.VK_ICD_FILENAMES;
  const cmd = host === "deno" ? ["node_modules/.bin/deno", ["run", "-A", "src/cli/main.ts", ...args]] : ["node_modules/.bin/tsx", ["src/cli/main.ts", ...args]];
  const r = spawnSync(cmd[0] as string, cmd[1] as string[], { cwd: ROOT, env, encoding: "utf8", timeout: 600_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const stepOf = (path: string) => Number(decodeSafetensors(new Uint8Array(readFileSync(path))).metadata!.step);

describe("train on several devices (CLI)", () => {
  const dir = mkdtempSync(join(tmpdir(), "dlrm-cli-shard-"));

  it("node: --devices 2, then --resume on --devices 3 with a row-wise plan", { timeout: 900_000 }, () => {
    const ckpt = join(dir, "n2.safetensors");
    const a = run("node", ["train", ...TINY, "--devices", "2", "--num-batches", "8", "--save-model", ckpt]);
    expect(a.code, a.err).toBe(0);
    expect(a.out).toMatch(/2 devices/);
    expect(a.out).toMatch(/device 1 .*% of each batch, tables/);
    expect(a.out).toContain("trained 8 steps");
    expect(stepOf(ckpt)).toBe(8);
    const b = run("node", ["train", ...TINY, "--devices", "3", "--shard-plan", "row", "--num-batches", "12", "--save-model", ckpt, "--resume"]);
    expect(b.code, b.err).toBe(0);
    expect(b.out).toContain("at step 8");
    expect(b.out).toContain("now at step 12");
    expect(b.out).toMatch(/test AUC/);
  });

  it("deno: a device lost in a 3-device run exits 4 naming it; --resume on 2 devices finishes the run", { timeout: 900_000 }, () => {
    const ckpt = join(dir, "lost.safetensors");
    const args = ["train", ...TINY, "--num-batches", "16", "--checkpoint-every", "4", "--save-model", ckpt];
    const r = run("deno", [...args, "--devices", "3"], { DLRM_FAULT_LOSE_DEVICE_AT_STEP: "8", DLRM_FAULT_LOSE_DEVICE: "1" });
    expect(r.code, r.err + r.out).toBe(4);
    expect(r.err).toMatch(/device 1 \(".*"\) was lost/);
    expect(r.err).toMatch(/--resume --save-model .*lost\.safetensors/);
    const kept = stepOf(ckpt);
    expect([4, 8]).toContain(kept);
    const c = run("deno", [...args, "--devices", "2", "--resume"]);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toContain(`at step ${kept}`);
    expect(c.out).toContain("now at step 16");
  });

  it("--adapters with a name no adapter has: a one-line error listing what exists", () => {
    const r = run("node", ["train", ...TINY, "--adapters", "no-such-gpu", "--num-batches", "1"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no adapter matches 'no-such-gpu'; available: '/);
  });
});
