/**
 * The CLI as users run it: the real entry point under Deno (its own WebGPU)
 * and under Node (Dawn), on tiny configurations.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors } from "../../src/io/safetensors.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TINY = ["--preset", "main", "--arch-embedding-size", "50-60-70", "--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "32", "--test-num-batches", "2", "--test-mini-batch-size", "32", "--print-freq", "5"];

type Host = "deno" | "node";

function run(host: Host, args: string[], extraEnv: Record<string, string> = {}): { code: number; out: string; err: string } {
  const env = { ...process.env, ...extraEnv };
  // Deno runs on the system's Vulkan driver (lavapipe here); Node on whatever the test run chose.
  if (host === "deno") delete env.VK_ICD_FILENAMES;
  const cmd = host === "deno" ? ["node_modules/.bin/deno", ["run", "-A", "src/cli/main.ts", ...args]] : ["node_modules/.bin/tsx", ["src/cli/main.ts", ...args]];
  const r = spawnSync(cmd[0] as string, cmd[1] as string[], { cwd: ROOT, env, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Starts the CLI, waits until stdout matches `ready`, sends SIGINT, resolves with the exit code and output. */
function interruptAfter(host: Host, args: string[], ready: RegExp): Promise<{ code: number | null; out: string; err: string }> {
  const env = { ...process.env };
  if (host === "deno") delete env.VK_ICD_FILENAMES;
  // Node: tsx as a loader in one process. The tsx CLI runs the script in a child and relays a
  // SIGINT to it; when the child's event loop is busy for 2 x 30 ms it SIGKILLs the child and
  // exits 130 itself, so on a loaded machine the test saw 130 without the CLI's own handling.
  const [cmd, pre] = host === "deno" ? ["node_modules/.bin/deno", ["run", "-A"]] : [process.execPath, ["--import", "tsx"]];
  const child = spawn(cmd, [...pre, "src/cli/main.ts", ...args], { cwd: ROOT, env });
  let out = "";
  let err = "";
  let sent = false;
  return new Promise((resolve) => {
    child.stdout.on("data", (d) => {
      out += d;
      if (!sent && ready.test(out)) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (d) => (err += d));
    child.on("close", (code) => resolve({ code, out, err }));
  });
}

/** A small Criteo Kaggle-format file: label, 13 integers, 26 hex categoricals (some missing). */
function criteoFile(path: string, rows: number): void {
  const lines: string[] = [];
  let x = 12345;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let r = 0; r < rows; r++) {
    const ints = Array.from({ length: 13 }, (_, j) => (rnd() < 0.1 ? "" : String(Math.floor(rnd() * 50) - (j === 2 ? 5 : 0))));
    const cats = Array.from({ length: 26 }, () => (rnd() < 0.05 ? "" : Math.floor(rnd() * 40).toString(16).padStart(8, "0")));
    const label = Number(cats[0]!.endsWith("1") || cats[0]!.endsWith("3") || rnd() < 0.2);
    lines.push([label, ...ints, ...cats].join("\t"));
  }
  writeFileSync(path, lines.join("\n") + "\n");
}

function tensors(path: string) {
  return decodeSafetensors(new Uint8Array(readFileSync(path)), { copy: true }).tensors;
}

describe.each<Host>(["deno", "node"])("CLI under %s", (host) => {
  const dir = mkdtempSync(join(tmpdir(), `dlrm-cli-${host}-`));

  it("train -> checkpoint -> eval -> predict", () => {
    const ckpt = join(dir, "model.safetensors");
    const t = run(host, ["train", ...TINY, "--num-batches", "20", "--save-model", ckpt]);
    expect(t.err).not.toMatch(/internal error/);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/adapter "/);
    const auc = /test AUC (\d\.\d+)/.exec(t.out)?.[1];
    expect(auc).toBeDefined();
    expect(existsSync(ckpt) && existsSync(join(dir, "model.report.html"))).toBe(true);
    const e = run(host, ["eval", "--load-model", ckpt, "--test-num-batches", "2", "--test-mini-batch-size", "32"]);
    expect(e.code, e.err).toBe(0);
    expect(e.out).toContain(`AUC ${auc}`); // same data, same model, same AUC
    const csv = join(dir, "p.csv");
    const p = run(host, ["predict", "--load-model", ckpt, "--test-num-batches", "2", "--test-mini-batch-size", "32", "--output", csv]);
    expect(p.code, p.err).toBe(0);
    const lines = readFileSync(csv, "utf8").trim().split("\n");
    expect(lines[0]).toBe("sample,probability,label");
    expect(lines.length).toBe(65);
    for (const l of lines.slice(1)) {
      const prob = Number(l.split(",")[1]);
      expect(prob > 0 && prob < 1).toBe(true);
    }
  });

  it("resume continues to the same weights as an uninterrupted run", () => {
    const full = join(dir, "full.safetensors");
    const part = join(dir, "part.safetensors");
    const common = [...TINY, "--optimizer", "adagrad", "--learning-rate", "0.05"];
    expect(run(host, ["train", ...common, "--num-batches", "16", "--save-model", full]).code).toBe(0);
    expect(run(host, ["train", ...common, "--num-batches", "7", "--save-model", part]).code).toBe(0);
    const r = run(host, ["train", ...common, "--num-batches", "16", "--save-model", part, "--resume"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/at step 7/);
    const a = tensors(full);
    const b = tensors(part);
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    for (const name of Object.keys(a)) {
      expect(Buffer.from((b[name]!.data as Float32Array).buffer).equals(Buffer.from((a[name]!.data as Float32Array).buffer)), name).toBe(true);
    }
  });

  it("user errors: one line, no stack, exit code 2", () => {
    const cases: [string[], RegExp][] = [
      [["train", "--learning-rat", "3"], /unknown option --learning-rat .*Did you mean --learning-rate\?/],
      [["train", "--mini-batch-size", "abc"], /--mini-batch-size expects an integer, got 'abc'/],
      [["train", "--arch-mlp-bot", "13-8-5", "--arch-sparse-feature-size", "4"], /bottom MLP's output \(5\) must equal the embedding dimension \(4\)/],
      [["eval", "--load-model", join(dir, "missing.safetensors")], /cannot read checkpoint .*missing\.safetensors/],
      [["train", "--data-generation", "dataset", "--processed-data-file", join(dir, "nope")], /processed data .*nope not found/],
      [["frobnicate"], /unknown command 'frobnicate'/],
    ];
    for (const [args, msg] of cases) {
      const r = run(host, args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(r.err).toMatch(msg);
      expect(r.err.trim().split("\n").filter((l) => !l.startsWith("npm warn")).length, r.err).toBe(1);
    }
  });

  it("a JSON config file gives options; flags given win; bad files are named", () => {
    const cfg = join(dir, "cfg.json");
    writeFileSync(cfg, JSON.stringify({ "arch-embedding-size": "50-60-70", "arch-sparse-feature-size": 4, "arch-mlp-bot": "13-8-4", "arch-mlp-top": "8-1", "mini-batch-size": 32, "num-batches": 30, "test-num-batches": 1 }));
    const r = run(host, ["train", "--config", cfg, "--num-batches", "6"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/model: 3 tables \(180 rows\) x d=4/);
    expect(r.out).toMatch(/trained 6 steps/);
    writeFileSync(cfg, "{ not json");
    const bad = run(host, ["train", "--config", cfg]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(/cfg\.json is not valid JSON/);
    writeFileSync(cfg, JSON.stringify({ "learning-rat": 1 }));
    expect(run(host, ["train", "--config", cfg]).err).toMatch(/cfg\.json: unknown option 'learning-rat'/);
  });

  it("a corrupted checkpoint is refused with the reason", () => {
    const bad = join(dir, "bad.safetensors");
    writeFileSync(bad, new Uint8Array([1, 2, 3]));
    const r = run(host, ["eval", "--load-model", bad]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/bad\.safetensors: not a readable safetensors checkpoint/);
  });

  it("a non-finite loss stops training cleanly and keeps the last good checkpoint", () => {
    const ckpt = join(dir, "nan.safetensors");
    const ok = run(host, ["train", ...TINY, "--num-batches", "5", "--save-model", ckpt]);
    expect(ok.code, ok.err).toBe(0);
    const before = readFileSync(ckpt);
    const r = run(host, ["train", ...TINY, "--num-batches", "40", "--learning-rate", "1e30", "--save-model", ckpt, "--checkpoint-every", "5"]);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/loss became (NaN|Infinity|-Infinity) at step \d+: training stopped/);
    expect(readFileSync(ckpt).equals(before)).toBe(true);
  });

  it("preprocess a Criteo file into the Arrow cache, then train from it", () => {
    const raw = join(dir, "train.txt");
    criteoFile(raw, 3000);
    const cache = join(dir, "cache");
    const p = run(host, ["preprocess", "--raw-data-file", raw, "--out", cache]);
    expect(p.code, p.err).toBe(0);
    expect(p.out).toMatch(/preprocessed 3000 rows/);
    const t = run(host, ["train", "--data-generation", "dataset", "--processed-data-file", cache, "--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "64", "--test-mini-batch-size", "64", "--test-freq", "41"]);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/Criteo kaggle from the Arrow cache/);
    expect(t.out).toMatch(/model: 26 tables/);
    // Days 1-6 of 7 are training data: 2572 of 3000 rows, in 41 batches of at most 64.
    expect(t.out).toMatch(/2572 training rows/);
    expect(t.out).toMatch(/trained 41 steps/);
    expect(t.out).toMatch(/test AUC \d\.\d+/);
    const again = run(host, ["preprocess", "--raw-data-file", raw, "--out", cache]);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already exists/);
  });

  it("Ctrl-C saves a checkpoint and exits 130; --resume continues from it", async () => {
    const ckpt = join(dir, "int.safetensors");
    const r = await interruptAfter(host, ["train", ...TINY, "--num-batches", "100000", "--print-freq", "1", "--save-model", ckpt], /step \d+/);
    expect(r.code, r.err).toBe(130);
    expect(r.out).toMatch(/interrupted: saving a checkpoint/);
    const step = Number(JSON.parse(decodeSafetensors(new Uint8Array(readFileSync(ckpt))).metadata!.step!));
    expect(step).toBeGreaterThan(0);
    const c = run(host, ["train", ...TINY, "--num-batches", String(step + 3), "--save-model", ckpt, "--resume"]);
    expect(c.code, c.err).toBe(0);
    expect(c.out).toContain(`at step ${step}`);
    expect(c.out).toContain(`trained 3 steps`); // only the steps this run trained
    expect(c.out).toContain(`(resumed at step ${step}, now at step ${step + 3})`);
  });

  it("a lost device is reported (exit 4) and --resume continues from the last checkpoint", () => {
    const ckpt = join(dir, "lost.safetensors");
    const args = ["train", ...TINY, "--num-batches", "30", "--checkpoint-every", "5", "--save-model", ckpt];
    const r = run(host, args, { DLRM_FAULT_LOSE_DEVICE_AT_STEP: "10" });
    expect(r.code, r.err).toBe(4);
    expect(r.err).toMatch(/GPU device lost .*continue with --resume --save-model .*lost\.safetensors/);
    const c = run(host, [...args, "--resume"]);
    expect(c.code, c.err).toBe(0);
    const from = Number(/at step (5|10)\b/.exec(c.out)?.[1]);
    expect(from === 5 || from === 10, c.out).toBe(true);
    expect(c.out).toContain(`trained ${30 - from} steps`);
    expect(c.out).toContain("now at step 30");
  });

  it("--help of every command", () => {
    for (const c of ["train", "eval", "predict", "preprocess", "bench"]) {
      const r = run(host, [c, "--help"]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(new RegExp(`Usage: webgpu-dlrm ${c}`));
      expect(r.out).toMatch(/Examples:/);
    }
  });
});
