/**
 * `train --embedding-precision bf16` through the real CLI (Node): a bf16 run's checkpoint holds
 * f32 values that `eval` (f32 tables) scores to the same AUC; --resume keeps bf16 (recorded in
 * the checkpoint's metadata) and continues bit for bit; sharded runs refuse bf16 with one line.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors } from "../../src/io/safetensors.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TINY = ["--preset", "main", "--arch-embedding-size", "50-60-70", "--arch-sparse-feature-size", "5", "--arch-mlp-bot", "13-8-5", "--arch-mlp-top", "8-1", "--mini-batch-size", "32", "--test-num-batches", "2", "--test-mini-batch-size", "32", "--print-freq", "5"];

function run(args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync("node_modules/.bin/tsx", ["src/cli/main.ts", ...args], { cwd: ROOT, env: process.env, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

describe("train --embedding-precision bf16 (CLI, Node)", { timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "dlrm-cli-bf16-"));

  it("checkpoint of f32 values, eval scores it to the same AUC; --resume stays bf16 and continues bit for bit", () => {
    const full = join(dir, "full.safetensors");
    const part = join(dir, "part.safetensors");
    const bf16 = [...TINY, "--embedding-precision", "bf16"];
    const t = run(["train", ...bf16, "--num-batches", "12", "--save-model", full]);
    expect(t.code, t.err).toBe(0);
    const auc = /test AUC (\d\.\d+)/.exec(t.out)?.[1];
    expect(auc).toBeDefined();
    const file = decodeSafetensors(new Uint8Array(readFileSync(full)));
    expect(file.metadata?.embedding_precision).toBe("bf16");
    for (const [name, x] of Object.entries(file.tensors)) {
      expect(x.dtype, name).toBe("F32");
      // Tables hold bf16 values: the low 16 bits of every f32 are zero.
      if (name.startsWith("emb_l.")) expect(new Uint32Array((x.data as Float32Array).slice().buffer).every((b) => (b & 0xffff) === 0), name).toBe(true);
    }
    const e = run(["eval", "--load-model", full, "--test-num-batches", "2", "--test-mini-batch-size", "32"]);
    expect(e.code, e.err).toBe(0);
    expect(e.out).toContain(`AUC ${auc}`);
    // Resume without the flag: the checkpoint's metadata keeps bf16.
    expect(run(["train", ...bf16, "--num-batches", "5", "--save-model", part]).code).toBe(0);
    const r = run(["train", ...TINY, "--num-batches", "12", "--save-model", part, "--resume"]);
    expect(r.code, r.err).toBe(0);
    const a = decodeSafetensors(new Uint8Array(readFileSync(full)), { copy: true }).tensors;
    const b = decodeSafetensors(new Uint8Array(readFileSync(part)), { copy: true }).tensors;
    for (const name of Object.keys(a)) {
      expect(Buffer.from((b[name]!.data as Float32Array).buffer).equals(Buffer.from((a[name]!.data as Float32Array).buffer)), name).toBe(true);
    }
  });

  it("sharded runs refuse bf16 tables in one line (exit 2)", () => {
    const r = run(["train", ...TINY, "--num-batches", "2", "--devices", "2", "--embedding-precision", "bf16"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--embedding-precision bf16 is single-device for now/);
    expect(r.err.trim().split("\n").filter((l) => !l.startsWith("npm warn")).length, r.err).toBe(1);
  });
});
