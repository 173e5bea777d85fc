/**
 * The reference's own command lines (facebookresearch/dlrm bench/*.sh and its
 * README), unchanged, mean the same configuration here: every flag accepted
 * with the reference's syntax, every default the reference's. The Kaggle and
 * README commands also run end to end (Deno), on a shrunk input/train.txt in
 * a scratch working directory, so their relative paths stay as written.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveTrainFlags } from "../../src/cli/commands/train.ts";
import { makeConfig, makeSource } from "../../src/cli/setup.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Splits a shell command line the way bash does for these scripts (double quotes only). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/(?:[^\s"]+|"[^"]*")+/g)].map((m) => m[0].replace(/"/g, ""));
}

// bench/dlrm_s_criteo_kaggle.sh, the PyTorch line, with $dlrm_extra_option empty.
const KAGGLE = `--arch-sparse-feature-size=16 --arch-mlp-bot="13-512-256-64-16" --arch-mlp-top="512-256-1" --data-generation=dataset --data-set=kaggle --raw-data-file=./input/train.txt --processed-data-file=./input/kaggleAdDisplayChallenge_processed.npz --loss-function=bce --round-targets=True --learning-rate=0.1 --mini-batch-size=128 --print-freq=1024 --print-time --test-mini-batch-size=16384 --test-num-workers=16`;
// bench/dlrm_s_criteo_terabyte.sh
const TERABYTE = `--arch-sparse-feature-size=64 --arch-mlp-bot="13-512-256-64" --arch-mlp-top="512-512-256-1" --max-ind-range=10000000 --data-generation=dataset --data-set=terabyte --raw-data-file=./input/day --processed-data-file=./input/terabyte_processed.npz --loss-function=bce --round-targets=True --learning-rate=0.1 --mini-batch-size=2048 --print-freq=1024 --print-time --test-mini-batch-size=16384 --test-num-workers=16`;
// bench/dlrm_s_benchmark.sh, CPU PyTorch: cmd="$numa_cmd $dlrm_pt_bin --mini-batch-size=$mb_size --test-mini-batch-size=$tmb_size --test-num-workers=$tnworkers $_args"
const BENCHMARK =
  `--mini-batch-size=2048 --test-mini-batch-size=16384 --test-num-workers=0 ` +
  ` --num-batches=1000 --data-generation=random --arch-mlp-bot=512-512-64 --arch-mlp-top=1024-1024-1024-1 --arch-sparse-feature-size=64` +
  ` --arch-embedding-size=1000000-1000000-1000000-1000000-1000000-1000000-1000000-1000000 --num-indices-per-lookup=100 --arch-interaction-op=dot` +
  ` --numpy-rand-seed=727 --print-freq=100 --print-time --enable-profiling `;
// README: "A sample run of the code, with a tiny model" and its debug-mode twin.
const README_TINY = "--mini-batch-size=2 --data-size=6";
const README_DEBUG = "--mini-batch-size=2 --data-size=6 --debug-mode";

/** A small Criteo Kaggle file (TSV). */
function criteoLines(rows: number, seed = 7): string {
  const lines: string[] = [];
  let x = seed;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  for (let r = 0; r < rows; r++) {
    const ints = Array.from({ length: 13 }, () => (rnd() < 0.1 ? "" : String(Math.floor(rnd() * 50))));
    const cats = Array.from({ length: 26 }, () => Math.floor(rnd() * 30).toString(16).padStart(8, "0"));
    lines.push([Number(rnd() < 0.3), ...ints, ...cats].join("\t"));
  }
  return lines.join("\n") + "\n";
}

async function resolved(line: string, cwd?: string) {
  const prev = process.cwd();
  if (cwd) process.chdir(cwd);
  try {
    const { v, given, notes } = await resolveTrainFlags(shellWords(line));
    const { source, generated } = await makeSource(v, () => {});
    return { v, notes, config: makeConfig(v, source, given), source, generated };
  } finally {
    process.chdir(prev);
  }
}

describe("the reference's command lines", () => {
  it("no flags: every default is dlrm_s_pytorch.py's", async () => {
    const { v, config } = await resolved("");
    expect({
      optimizer: v.optimizer, lr: v.learningRate, loss: v.lossFunction, mbs: v.miniBatchSize, d: v.archSparseFeatureSize,
      emb: v.archEmbeddingSize, bot: v.archMlpBot, top: v.archMlpTop, gen: v.dataGeneration, size: v.dataSize,
      k: v.numIndicesPerLookup, fixed: v.numIndicesPerLookupFixed, round: v.roundTargets, print: v.printFreq,
      testFreq: v.testFreq, testMbs: v.testMiniBatchSize, seed: v.numpyRandSeed ?? v.seed, threshold: v.lossThreshold,
      maxInd: v.maxIndRange, trace: v.dataTraceFile, qr: [v.qrFlag, v.qrThreshold, v.qrOperation, v.qrCollisions],
      md: [v.mdFlag, v.mdThreshold, v.mdTemperature, v.mdRoundDims], lrSched: [v.lrNumWarmupSteps, v.lrDecayStartStep, v.lrNumDecaySteps],
    }).toEqual({
      optimizer: "sgd", lr: 0.01, loss: "mse", mbs: 1, d: 2, emb: [4, 3, 2], bot: [4, 3, 2], top: [4, 2, 1], gen: "random", size: 1,
      k: 10, fixed: false, round: false, print: 1, testFreq: -1, testMbs: 1, seed: 123, threshold: 0, maxInd: -1,
      trace: "./input/dist_emb_j.log", qr: [false, 200, "mult", 4], md: [false, 200, 0.3, false], lrSched: [0, 0, 0],
    });
    // As the reference: the interaction's width (2 + 4*3/2 = 8) is prepended to --arch-mlp-top.
    expect(config.topMlp).toEqual([8, 4, 2, 1]);
  });

  it("bench/dlrm_s_criteo_kaggle.sh: the Kaggle configuration (shrunk input/train.txt)", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "dlrm-ref-kaggle-"));
    mkdirSync(join(cwd, "input"));
    writeFileSync(join(cwd, "input/train.txt"), criteoLines(700));
    const { v, notes, config } = await resolved(KAGGLE, cwd);
    expect(config).toMatchObject({
      embeddingDim: 16, bottomMlp: [13, 512, 256, 64, 16], topMlp: [367, 512, 256, 1], interaction: "dot",
      loss: "bce", optimizer: "sgd", learningRate: 0.1, miniBatchSize: 128, lossThreshold: 0,
    });
    expect(config.tableRows.length).toBe(26);
    expect({ round: v.roundTargets, print: v.printFreq, testMbs: v.testMiniBatchSize, testFreq: v.testFreq }).toEqual({ round: true, print: 1024, testMbs: 16384, testFreq: -1 });
    expect(notes.join("\n")).toMatch(/--print-time changes nothing/);
    expect(notes.join("\n")).toMatch(/--test-num-workers changes nothing/);
  });

  it("bench/dlrm_s_criteo_terabyte.sh and bench/dlrm_s_benchmark.sh", async () => {
    const tb = await resolveTrainFlags(shellWords(TERABYTE));
    expect({ d: tb.v.archSparseFeatureSize, bot: tb.v.archMlpBot, top: tb.v.archMlpTop, maxInd: tb.v.maxIndRange, set: tb.v.dataSet, loss: tb.v.lossFunction, opt: tb.v.optimizer, lr: tb.v.learningRate, mbs: tb.v.miniBatchSize }).toEqual({
      d: 64, bot: [13, 512, 256, 64], top: [512, 512, 256, 1], maxInd: 10000000, set: "terabyte", loss: "bce", opt: "sgd", lr: 0.1, mbs: 2048,
    });
    const { v, notes, config, generated } = await resolved(BENCHMARK);
    expect(generated).toBe(true);
    expect(config).toMatchObject({
      embeddingDim: 64, tableRows: new Array(8).fill(1000000), bottomMlp: [512, 512, 64], topMlp: [64 + 36, 1024, 1024, 1024, 1],
      loss: "mse", optimizer: "sgd", learningRate: 0.01, miniBatchSize: 2048, seed: 727,
    });
    expect({ k: v.numIndicesPerLookup, fixed: v.numIndicesPerLookupFixed, batches: v.numBatches, print: v.printFreq }).toEqual({ k: 100, fixed: false, batches: 1000, print: 100 });
    expect(notes.join("\n")).toMatch(/--enable-profiling changes nothing/);
  });

  it("bool flags in every spelling the reference's command lines use; unsupported values are refused", async () => {
    for (const [line, want] of [["--round-targets=True", true], ["--round-targets True", true], ["--round-targets=False", false], ["--round-targets", true], ["--num-indices-per-lookup-fixed=true", true]] as const) {
      const { v } = await resolveTrainFlags(shellWords(line));
      expect(v.roundTargets === want || v.numIndicesPerLookupFixed === want, line).toBe(true);
    }
    await expect(resolveTrainFlags(["--weighted-pooling", "learned"])).rejects.toThrow(/--weighted-pooling learned is not supported here/);
    await expect(resolveTrainFlags(["--quantize-emb-with-bit=8"])).rejects.toThrow(/not supported here .*only the reference's default 32/);
    const ok = await resolveTrainFlags(["--activation-function=relu", "--use-gpu", "--memory-map", "--mlperf-logging", "--local_rank=0", "--dist-backend=nccl"]);
    expect(ok.notes.length).toBe(6);
  });

  it("--preset main is the curated main job; flags given win", async () => {
    const { v, config } = await resolved("--preset main --learning-rate 0.02");
    expect(config).toMatchObject({ embeddingDim: 16, bottomMlp: [13, 512, 256, 64, 16], topMlp: [367, 512, 256, 1], loss: "bce-logits", optimizer: "adagrad", learningRate: 0.02, miniBatchSize: 128 });
    expect({ gen: v.dataGeneration, batches: v.numBatches, testBatches: v.testNumBatches }).toEqual({ gen: "teacher", batches: 600, testBatches: 8 });
  });

  it("runs unchanged: the Kaggle script on a shrunk train.txt and the README's tiny model (Deno)", () => {
    const cwd = mkdtempSync(join(tmpdir(), "dlrm-ref-run-"));
    mkdirSync(join(cwd, "input"));
    writeFileSync(join(cwd, "input/train.txt"), criteoLines(1200, 3));
    const env = { ...process.env };
    delete env.VK_ICD_FILENAMES;
    // As the reference's scripts write it: flags alone, no command (they mean train); `train` first works too.
    const run = (line: string, cmd: string[] = ["train"]) => spawnSync(join(ROOT, "node_modules/.bin/deno"), ["run", "-A", join(ROOT, "src/cli/main.ts"), ...cmd, ...shellWords(line)], { cwd, env, encoding: "utf8", timeout: 240_000 });
    const k = run(KAGGLE);
    expect(k.status, k.stderr).toBe(0);
    expect(k.stdout).toMatch(/model: 26 tables .* x d=16, bottom 13-512-256-64-16, top 367-512-256-1, dot, loss bce, sgd lr 0\.1\n/);
    // 1200 rows: days 1-6 of 7 train = 1026 rows = 9 batches of 128 (the last short); printed at the epoch's end.
    expect(k.stdout).toMatch(/step 9\/9 .* loss \d\.\d+/);
    expect(k.stdout).toMatch(/trained 9 steps/);
    const t = run(README_TINY, []);
    expect(t.status, t.stderr).toBe(0);
    expect(t.stdout).toMatch(/model: 3 tables \(9 rows\) x d=2, bottom 4-3-2, top 8-4-2-1, dot, loss mse, sgd lr 0\.01/);
    expect(t.stdout.match(/^step [123]\/3 /gm)?.length).toBe(3); // --print-freq 1: every step, as the reference
    const dbg = run(README_DEBUG);
    expect(dbg.status, dbg.stderr).toBe(0);
    expect(dbg.stdout).toMatch(/note: --debug-mode changes nothing here/);
  }, 600_000);

  it("scoring new data: dictionaries travel with the model; eval/predict on raw files; a foreign cache is refused (Deno)", () => {
    const cwd = mkdtempSync(join(tmpdir(), "dlrm-ref-score-"));
    writeFileSync(join(cwd, "train.txt"), criteoLines(900, 11));
    // Held-out rows with values never seen in training (hex 0xffff00..), and Kaggle's test.txt shape (no label).
    const held = criteoLines(130, 12).trimEnd().split("\n").map((l, i) => (i % 10 === 0 ? l.replace(/\t[0-9a-f]{8}$/, "\t00ffff00") : l));
    writeFileSync(join(cwd, "held.txt"), held.join("\n") + "\n");
    writeFileSync(join(cwd, "test.txt"), criteoLines(40, 13).trimEnd().split("\n").map((l) => l.slice(l.indexOf("\t") + 1)).join("\n") + "\n");
    const env = { ...process.env };
    delete env.VK_ICD_FILENAMES;
    const run = (...args: string[]) => spawnSync(join(ROOT, "node_modules/.bin/deno"), ["run", "-A", join(ROOT, "src/cli/main.ts"), ...args], { cwd, env, encoding: "utf8", timeout: 240_000 });
    const tiny = ["--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "64"];
    const t = run("train", "--data-generation", "dataset", "--raw-data-file", "train.txt", ...tiny, "--loss-function", "bce", "--save-model", "m.safetensors");
    expect(t.status, t.stderr).toBe(0);
    const e = run("eval", "--load-model", "m.safetensors", "--raw-data-file", "held.txt");
    expect(e.status, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/held\.txt \(tsv\): 130 rows/);
    expect(e.stdout).toMatch(/unseen categorical values \(values unseen in training contribute a zero embedding \(an empty bag\)\): C26: 13\n/);
    expect(e.stdout).toMatch(/eval on raw file at step \d+ \(130 samples\): AUC \d/); // the file given, not the training split
    const p = run("predict", "--load-model", "m.safetensors", "--raw-data-file", "test.txt", "--output", "p.csv");
    expect(p.status, p.stderr).toBe(0);
    expect(p.stdout).toMatch(/test\.txt \(tsv, no label column\): 40 rows/);
    const rows = readFileSync(join(cwd, "p.csv"), "utf8").trim().split("\n");
    expect(rows[0]).toBe("line,probability");
    expect(rows.slice(1).map((r) => Number(r.split(",")[0]))).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(rows.slice(1).every((r) => { const q = Number(r.split(",")[1]); return q > 0 && q < 1; })).toBe(true);
    // A cache built from another file has other ids: refused in one line.
    expect(run("preprocess", "--raw-data-file", "held.txt", "--out", "heldcache").status).toBe(0);
    const bad = run("eval", "--load-model", "m.safetensors", "--data-generation", "dataset", "--processed-data-file", "heldcache");
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toMatch(/^webgpu-dlrm eval: heldcache was preprocessed with other categorical dictionaries than m\.safetensors was trained with/);
    expect(bad.stderr.trim().split("\n").length).toBe(1);
    const dir = run("eval", "--load-model", "m.safetensors", "--raw-data-file", ".");
    expect(dir.status).toBe(2);
    expect(dir.stderr.trim()).toBe("webgpu-dlrm eval: . is a directory; give a Criteo data file (or, for Terabyte, the day-file prefix)");
  }, 600_000);
});
