/**
 * Nothing lost, numbers to trust (issue 11): the real entry point, mostly
 * under Deno (fast start), the outputs-before-work and JSON checks under
 * Node too.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { decodeSafetensors, encodeSafetensors } from "../../src/io/safetensors.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const TINY = ["--preset", "main", "--arch-embedding-size", "50-60-70", "--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "32", "--test-num-batches", "2", "--test-mini-batch-size", "32", "--print-freq", "5"];
type Host = "deno" | "node";

function run(host: Host, args: string[], opts: { umask?: string } = {}): { code: number; out: string; err: string } {
  const env = { ...process.env };
  if (host === "deno") delete env.VK_ICD_FILENAMES;
  const cmd = host === "deno" ? ["node_modules/.bin/deno", "run", "-A", "src/cli/main.ts", ...args] : ["node_modules/.bin/tsx", "src/cli/main.ts", ...args];
  const quoted = cmd.map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const r = spawnSync("sh", ["-c", `umask ${opts.umask ?? "022"}; exec ${quoted}`], { cwd: ROOT, env, encoding: "utf8", timeout: 180_000 });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

function errLines(err: string): string[] {
  return err.trim().split("\n").filter((l) => l && !l.startsWith("npm warn") && !l.includes("XDG_RUNTIME_DIR"));
}

function meta(path: string): Record<string, string> {
  return decodeSafetensors(new Uint8Array(readFileSync(path))).metadata ?? {};
}

const dir = mkdtempSync(join(tmpdir(), "dlrm-robust-"));

describe("flags that contradict each other are refused before any work", () => {
  it("one line each, exit 2", () => {
    const cases: [string[], RegExp][] = [
      [["train", "--qr-flag", "--md-flag"], /--qr-flag and --md-flag cannot be combined/],
      [["train", "--seed", "1", "--numpy-rand-seed", "2"], /--seed and --numpy-rand-seed are the same option/],
      [["train", "--processed-data-file", join(dir, "cache")], /--processed-data-file is a data file but --data-generation is 'random'/],
      [["train", "--data-generation", "random", "--raw-data-file", join(dir, "train.txt")], /--raw-data-file is a data file but --data-generation is 'random'/],
      [["train", "--checkpoint-every", "10"], /--checkpoint-every 10 needs --save-model FILE/],
      [["train", "--nepochs", "0"], /--nepochs must be at least 1, got 0/],
      [["train", "--test-mini-batch-size", "0"], /--test-mini-batch-size must be at least 1, got 0/],
      [["eval", "--load-model", join(dir, "none.safetensors"), "--test-mini-batch-size", "0"], /--test-mini-batch-size must be at least 1, got 0/],
    ];
    for (const [args, msg] of cases) {
      const r = run("deno", args);
      expect(r.code, `${args.join(" ")}: ${r.err}`).toBe(2);
      expect(errLines(r.err), args.join(" ")).toHaveLength(1);
      expect(r.err).toMatch(msg);
      expect(r.out).not.toMatch(/adapter|step/); // refused before the GPU or the data were touched
    }
  });
});

describe("outputs", () => {
  const host: Host = "deno";
  it("every output path is checked (or its directory created) before the first step", () => {
    const blocker = join(dir, `${host}-file`);
    writeFileSync(blocker, "a file, not a directory");
    for (const [flag, extra] of [["--save-model", []], ["--log-jsonl", []], ["--report", []]] as const) {
      const r = run(host, ["train", ...TINY, "--num-batches", "3", flag, join(blocker, "sub", "out"), ...extra]);
      expect(r.code, r.err).toBe(2);
      expect(r.err).toMatch(new RegExp(`${flag} .*cannot create the directory`));
      expect(r.out).not.toMatch(/step \d/);
    }
    // A directory that does not exist yet is created; the model is not lost.
    const ckpt = join(dir, `${host}-new`, "deeper", "m.safetensors");
    const ok = run(host, ["train", ...TINY, "--num-batches", "3", "--save-model", ckpt]);
    expect(ok.code, ok.err).toBe(0);
    expect(existsSync(ckpt)).toBe(true);
    // predict: the output is checked before the checkpoint is even read.
    const p = run(host, ["predict", "--load-model", join(dir, "missing.safetensors"), "--output", join(blocker, "p.csv")]);
    expect(p.code).toBe(2);
    expect(p.err).toMatch(/--output .*p\.csv: cannot create the directory/);
  });

  it("--json prints one JSON document and nothing else on stdout (eval, predict, bench)", () => {
    const ckpt = join(dir, `${host}-json.safetensors`);
    expect(run(host, ["train", ...TINY, "--num-batches", "4", "--save-model", ckpt]).code).toBe(0);
    const e = run(host, ["eval", "--load-model", ckpt, "--json"]);
    expect(e.code, e.err).toBe(0);
    const ej = JSON.parse(e.out);
    expect(ej.samples).toBe(64);
    expect(ej.auc).toBeGreaterThan(0);
    expect(ej.loss.name).toBe("bce-logits");
    expect(ej.teacherAuc).toBeGreaterThan(0.5);
    const out = join(dir, `${host}-deep`, "p.csv");
    const p = run(host, ["predict", "--load-model", ckpt, "--output", out, "--json"]);
    expect(p.code, p.err).toBe(0);
    expect(JSON.parse(p.out)).toMatchObject({ output: out, predictions: 64 });
    const b = run(host, ["bench", "--preset", "kaggle-b128", "--max-rows", "1000", "--num-batches", "1", "--warmup", "0", "--profile-steps", "0", "--json"]);
    expect(b.code, b.err).toBe(0);
    const bj = JSON.parse(b.out);
    expect(bj.results[0].samplesPerSec).toBeGreaterThan(0);
    expect(b.err).toMatch(/kaggle-b128: /); // the human lines went to stderr
  });

});

describe.each<Host>(["deno", "node"])("under %s", (host) => {
  it("--version; an unusable --save-model fails at once", () => {
    const r = run(host, ["--version"]);
    expect(r.code).toBe(0);
    const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version;
    expect(r.out).toMatch(new RegExp(`^webgpu-dlrm ${version.replace(/\./g, "\\.")} \\(${host === "deno" ? "Deno" : "Node"} `));
    const blocker = join(dir, `${host}-plain-file`);
    writeFileSync(blocker, "x");
    const s = run(host, ["train", "--save-model", join(blocker, "m.safetensors")]);
    expect(s.code).toBe(2);
    expect(errLines(s.err)).toHaveLength(1);
    expect(s.err).toMatch(/--save-model .*cannot create the directory .*plain-file \(a file, not a directory, has that name\)/);
  });
});

describe("checkpoints never hold NaN/Inf", () => {
  it("a run whose weights blow up writes no checkpoint and says there is none", () => {
    const ckpt = join(dir, "blow.safetensors");
    // lr 1e39 is Infinity in float32: the loss of step 1 is still finite, the weights after it are not.
    const r = run("deno", ["train", ...TINY, "--num-batches", "10", "--learning-rate", "1e39", "--checkpoint-every", "1", "--save-model", ckpt]);
    expect(r.code, r.err).toBe(3);
    expect(r.err).toMatch(/holds (NaN|Infinity|-Infinity) in \S+ \(element \d+\): checkpoint not written/);
    expect(r.err).toMatch(/No checkpoint of this run was written/);
    expect(existsSync(ckpt)).toBe(false);
  });

  it("names the last checkpoint with finite values; that file is unchanged", () => {
    const ckpt = join(dir, "last-good.safetensors");
    expect(run("deno", ["train", ...TINY, "--num-batches", "4", "--save-model", ckpt]).code).toBe(0);
    const before = readFileSync(ckpt);
    const r = run("deno", ["train", ...TINY, "--num-batches", "20", "--learning-rate", "1e39", "--checkpoint-every", "1", "--save-model", ckpt, "--resume"]);
    expect(r.code, r.err).toBe(3);
    expect(r.err).toContain(`the last checkpoint with finite values, ${ckpt} (step 4)`);
    expect(readFileSync(ckpt).equals(before)).toBe(true);
  });

  it("loading a checkpoint with NaN fails naming the tensor; --allow-non-finite loads it", () => {
    const ckpt = join(dir, "to-poison.safetensors");
    expect(run("deno", ["train", ...TINY, "--num-batches", "3", "--save-model", ckpt]).code).toBe(0);
    const decoded = decodeSafetensors(new Uint8Array(readFileSync(ckpt)), { copy: true });
    const tensors: Parameters<typeof encodeSafetensors>[0] = {};
    for (const [name, t] of Object.entries(decoded.tensors)) tensors[name] = { dtype: "F32", shape: t.shape, data: t.data as Float32Array };
    (tensors["emb_l.1.weight"]!.data as Float32Array)[7] = NaN;
    const bad = join(dir, "poisoned.safetensors");
    writeFileSync(bad, encodeSafetensors(tensors, decoded.metadata));
    for (const cmd of [["eval", "--load-model", bad], ["train", ...TINY, "--num-batches", "3", "--load-model", bad]]) {
      const r = run("deno", cmd);
      expect(r.code, r.err).toBe(2);
      expect(errLines(r.err)).toHaveLength(1);
      expect(r.err).toMatch(/poisoned\.safetensors: tensor emb_l\.1\.weight holds NaN at element 7/);
    }
    const ok = run("deno", ["eval", "--load-model", bad, "--allow-non-finite"]);
    expect(ok.code, ok.err).toBe(0);
  });

  it("a stale temporary file beside the checkpoint is removed on the next start", () => {
    const ckpt = join(dir, "stale.safetensors");
    const tmp = `${ckpt}.tmp-0123456789ab`;
    writeFileSync(tmp, new Uint8Array(3 << 20));
    const sidecar = `${join(dir, "stale")}.optim.safetensors.tmp-00112233aabb`; // written beside it: ours
    writeFileSync(sidecar, "x");
    const other = join(dir, "other.safetensors.tmp-0123456789ab"); // not ours: kept
    writeFileSync(other, "x");
    const similar = join(dir, "stale2.safetensors.tmp-0123456789ab"); // another checkpoint's: kept
    writeFileSync(similar, "x");
    const r = run("deno", ["train", ...TINY, "--num-batches", "2", "--save-model", ckpt]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/removed .*stale\.safetensors\.tmp-0123456789ab \(3\.0 MiB\)/);
    expect(existsSync(tmp)).toBe(false);
    expect(existsSync(sidecar)).toBe(false);
    expect(existsSync(other)).toBe(true);
    expect(existsSync(similar)).toBe(true);
  });
});

describe("--resume / --load-model and the flags given", () => {
  it("takes the checkpoint's values for flags not given, fails listing every difference otherwise, counts only steps trained", () => {
    const ckpt = join(dir, "merge.safetensors");
    const first = run("deno", ["train", ...TINY, "--num-batches", "4", "--optimizer", "sgd", "--learning-rate", "0.02", "--loss-function", "mse", "--save-model", ckpt]);
    expect(first.code, first.err).toBe(0);
    // Not given: the checkpoint's optimizer, loss and learning rate apply (not the defaults adagrad, bce, 0.05).
    const r = run("deno", ["train", "--num-batches", "10", "--save-model", ckpt, "--resume", "--print-freq", "5"]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/model: 3 tables \(180 rows\) x d=4, bottom 13-8-4, top 10-8-1, dot, loss mse, sgd lr 0\.02/);
    expect(r.out).toMatch(/trained 6 steps in [\d.]+ s \(resumed at step 4, now at step 10\)/);
    // Given and different: refused, every difference listed.
    const bad = run("deno", ["train", ...TINY, "--num-batches", "12", "--save-model", ckpt, "--resume", "--optimizer", "adagrad", "--arch-sparse-feature-size", "8", "--arch-mlp-bot", "13-8-8"]);
    expect(bad.code, bad.err).toBe(2);
    expect(errLines(bad.err)).toHaveLength(1);
    expect(bad.err).toMatch(/--optimizer adagrad \(the checkpoint has sgd\)/);
    expect(bad.err).toMatch(/--arch-sparse-feature-size 8 \(the checkpoint has 4\)/);
    expect(bad.err).toMatch(/--arch-mlp-bot 13-8-8 \(the checkpoint has 13-8-4\)/);
    const load = run("deno", ["eval", "--load-model", ckpt]); // still step 10, intact
    expect(load.out).toMatch(/at step 10/);
    const lm = run("deno", ["train", "--num-batches", "2", "--load-model", ckpt, "--loss-function", "bce"]);
    expect(lm.code).toBe(2);
    expect(lm.err).toMatch(/--load-model starts from .*--loss-function bce \(the checkpoint has mse\)/);
  });
});

describe("numbers", () => {
  it("train-time evaluation and eval of its checkpoint use the same samples and give the same numbers; the teacher scores those samples", () => {
    const ckpt = join(dir, "same.safetensors");
    const t = run("deno", ["train", ...TINY, "--num-batches", "6", "--test-mini-batch-size", "48", "--test-num-batches", "3", "--save-model", ckpt]);
    expect(t.code, t.err).toBe(0);
    const trainEval = /eval on test at step 6 \((\d+) samples\): (AUC [\d.]+ +accuracy [\d.]+% +log loss [\d.]+ +bce-logits loss [\d.]+)/.exec(t.out);
    expect(trainEval?.[1]).toBe("144");
    const teacher = /teacher .* scores AUC ([\d.]+) on the same 144 samples/.exec(t.out)?.[1];
    expect(teacher).toBeDefined();
    const e = run("deno", ["eval", "--load-model", ckpt]); // no options: the run's own
    expect(e.code, e.err).toBe(0);
    expect(e.out).toContain(`eval on test at step 6 (144 samples): ${trainEval![2]}`);
    expect(e.out).toContain(`scores AUC ${teacher} on the same 144 samples`);
  });

  it("JSON lines: a first record with config and versions, a timestamp on every record, the user's umask", () => {
    const log = join(dir, "run.jsonl");
    const r = run("deno", ["train", ...TINY, "--num-batches", "10", "--log-jsonl", log], { umask: "027" });
    expect(r.code, r.err).toBe(0);
    expect(statSync(log).mode & 0o777).toBe(0o640);
    const records = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(records[0].type).toBe("start");
    expect(records[0].version).toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
    expect(records[0].host).toMatch(/^Deno /);
    expect(records[0].config.embeddingDim).toBe(4);
    expect(records[0].options.numBatches).toBe(10);
    for (const rec of records) expect(Number.isNaN(Date.parse(rec.time)), JSON.stringify(rec)).toBe(false);
    expect(records.filter((x) => x.type === "step").map((x) => x.step)).toEqual([5, 10]);
    expect(records.some((x) => x.type === "eval")).toBe(true);
    expect(records.at(-1).type).toBe("end");
  });
});
