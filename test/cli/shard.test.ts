/**
 * `train --devices N` / `--adapters` through the real CLI (Node; the sharded
 * model itself is tested under both hosts in test/shard/): a 2-device run
 * that loses a device (exit 4, the device named, the last checkpoint kept),
 * resumed on 3 devices with another plan (the checkpoint is resharded), and
 * the error for an adapter that does not exist.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors } from "../../src/io/safetensors.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TINY = ["--preset", "main", "--arch-embedding-size", "50-60-70", "--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "32", "--test-num-batches", "2", "--test-mini-batch-size", "32", "--print-freq", "4"];

function run(host: "node", args: string[], extraEnv: Record<string, string> = {}): { code: number; out: string; err: string } {
  const env = { ...process.env, ...extraEnv };
  const r = spawnSync("node_modules/.bin/tsx", ["src/cli/main.ts", ...args], { cwd: ROOT, env, encoding: "utf8", timeout: 600_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

const stepOf = (path: string) => Number(decodeSafetensors(new Uint8Array(readFileSync(path))).metadata!.step);

describe("train on several devices (CLI)", () => {
  const dir = mkdtempSync(join(tmpdir(), "dlrm-cli-shard-"));

  it("a device lost in a 2-device run exits 4 naming it, the checkpoint kept; --resume on 3 devices (row-wise) finishes the run", { timeout: 900_000 }, () => {
    const ckpt = join(dir, "lost.safetensors");
    const args = ["train", ...TINY, "--num-batches", "12", "--checkpoint-every", "4", "--save-model", ckpt];
    const r = run("node", [...args, "--devices", "2", "--shard-plan", "table"], { DLRM_FAULT_LOSE_DEVICE_AT_STEP: "6", DLRM_FAULT_LOSE_DEVICE: "1" });
    expect(r.code, r.err + r.out).toBe(4);
    expect(r.out).toMatch(/2 devices/);
    expect(r.out).toMatch(/device 1 .*% of each batch, tables/);
    expect(r.err).toMatch(/device 1 \(".*"\) was lost/);
    expect(r.err).toMatch(/--resume --save-model .*lost\.safetensors/);
    const kept = stepOf(ckpt);
    expect(kept).toBe(4);
    // With the per-device phase profile (--shard-profile): this run's 3rd-5th steps (7-9) serial, the next overlapped.
    const c = run("node", [...args, "--devices", "3", "--shard-plan", "row", "--resume", "--shard-profile", "3"]);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/shard profile: steps 7-9, serial schedule .* the fastest of 3 per phase:/);
    for (const phase of ["lookups", "bottom MLP forward", "top MLP forward \\+ backward", "bottom MLP backward", "embedding backward \\+ updates"]) {
      expect(c.out).toMatch(new RegExp(`\\n  ${phase}\\s+(\\d+\\.\\d+\\s+\\d+\\s+){3}\\d+\\.\\d+\\n`));
    }
    expect(c.out).toMatch(/device work balance \(slowest \/ mean\): \d\.\d{3}/);
    expect(c.out).toMatch(/  allreduce: \d+ rounds, [\d.]+ KiB host-staged/);
    expect(c.out).toMatch(/overlapped step 10 \(the normal schedule\): [\d.]+ ms to all queues idle; overlapped: bottom MLP forward \|\| forward all-to-all/);
    expect(c.out).toMatch(/3 devices/);
    expect(c.out).toContain(`at step ${kept}`);
    expect(c.out).toContain("now at step 12");
    expect(c.out).toMatch(/test AUC/);
  });

  it("--adapters with a name no adapter has: a one-line error listing what exists", () => {
    const r = run("node", ["train", ...TINY, "--adapters", "no-such-gpu", "--num-batches", "1"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no adapter matches 'no-such-gpu'; available: '/);
  });
});
