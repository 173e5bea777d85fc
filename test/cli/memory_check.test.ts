/**
 * The uncapped Kaggle model (33,762,577 rows x d=16) from the CLI: its size is
 * computed before anything is allocated, and on a CPU adapter (host memory) a
 * model that cannot be created fails at once with the numbers and what to do.
 */
import { describe, expect, it } from "vitest";
import { checkModelFits, isCpuAdapter, ModelMemoryError, modelBytes } from "../../src/cli/memory_check.ts";
import type { AdapterFacts } from "../../src/gpu/context.ts";
import { KAGGLE_CARDINALITIES } from "../../src/data/criteo_gen.ts";
import { resolveConfig } from "../../src/model/config.ts";

const kaggle = (optimizer: "sgd" | "adagrad" | "rwsadagrad") =>
  resolveConfig({ embeddingDim: 16, tableRows: [...KAGGLE_CARDINALITIES], bottomMlp: [13, 512, 256, 64, 16], topMlp: [367, 512, 256, 1], optimizer });
const adapter = (name: string, fallback = false): AdapterFacts => ({ host: "deno", name, vendor: "", architecture: "", isFallbackAdapter: fallback, features: [], listedName: name, driver: "" });
const GiB = 2 ** 30;

describe("does the model fit", () => {
  it("counts the uncapped Kaggle model's bytes: tables, optimizer state, MLPs", () => {
    const rows = KAGGLE_CARDINALITIES.reduce((a, b) => a + b, 0);
    expect(rows).toBe(33_762_577);
    expect(modelBytes(kaggle("sgd")).embeddings).toBe(rows * 16 * 4);
    expect(modelBytes(kaggle("sgd")).state).toBe(0);
    expect(modelBytes(kaggle("adagrad")).state).toBe(rows * 16 * 4);
    expect(modelBytes(kaggle("rwsadagrad")).state).toBe(rows * 4);
    // bottom 13-512-256-64-16 and top 367-512-256-1, weights and biases, with gradients (and state).
    const mlp = (14 * 512 + 513 * 256 + 257 * 64 + 65 * 16) + (368 * 512 + 513 * 256 + 257 * 1);
    expect(modelBytes(kaggle("sgd")).dense).toBe(mlp * 4 * 2);
  });

  it("on a CPU adapter, refuses a model the host memory cannot hold, with the numbers and what to do", async () => {
    const lvp = adapter("llvmpipe (LLVM 15.0.6, 256 bits)");
    expect(isCpuAdapter(lvp)).toBe(true);
    const err = await checkModelFits(kaggle("adagrad"), lvp, 6 * GiB).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelMemoryError);
    expect((err as Error).message).toMatch(/33762577 embedding rows x d=16 take 2\.01 GiB \(\+ 2\.01 GiB of adagrad state\); .*needs about 8\.\d\d GiB, the host has 6\.00 GiB available\. .*--max-ind-range/);
    await expect(checkModelFits(kaggle("sgd"), lvp, 16 * GiB)).resolves.toBeUndefined();
    await expect(checkModelFits(kaggle("adagrad"), adapter("SwiftShader Device", true), 16 * GiB)).resolves.toBeUndefined();
    // A GPU's memory is not host memory: no host check (WebGPU's out-of-memory error is caught at creation instead).
    await expect(checkModelFits(kaggle("adagrad"), adapter("NVIDIA GeForce RTX 4090"), 1 * GiB)).resolves.toBeUndefined();
  });

  it("bf16 tables (--embedding-precision bf16): half the table bytes, f32 state; a model that fits only as bf16 is told so", async () => {
    const rows = KAGGLE_CARDINALITIES.reduce((a, b) => a + b, 0);
    expect(modelBytes(kaggle("adagrad"), "bf16").embeddings).toBe(rows * 8 * 4);
    expect(modelBytes(kaggle("adagrad"), "bf16").state).toBe(rows * 16 * 4);
    const lvp = adapter("llvmpipe (LLVM 15.0.6, 256 bits)");
    // fp32 needs 3 x 2.01 GiB of tables + 2.01 GiB of state; bf16 2.01 + 2 x 1.01 + 2.01.
    const err = await checkModelFits(kaggle("adagrad"), lvp, 7 * GiB).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/--embedding-precision bf16/);
    await expect(checkModelFits(kaggle("adagrad"), lvp, 7 * GiB, "bf16")).resolves.toBeUndefined();
  });
});
