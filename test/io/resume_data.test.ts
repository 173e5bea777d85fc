/**
 * A checkpoint records the run's data order (--data-randomize, --data-shard-rows
 * and the seed that shuffles, in its "data" metadata), so --resume continues
 * the same order: the recorded values apply when the flags are not given, and
 * a different value given on resume is refused with the difference named.
 */
import { describe, expect, it } from "vitest";
import { dataFlags, resolveTrainFlags } from "../../src/cli/commands/train.ts";
import { mergeCheckpointFlags } from "../../src/cli/resume.ts";
import type { Checkpoint } from "../../src/io/checkpoint.ts";
import { resolveConfig } from "../../src/model/config.ts";

const DATA = ["--data-generation", "dataset", "--processed-data-file", "/tmp/cache"];
const config = resolveConfig({ embeddingDim: 4, tableRows: [5, 6], bottomMlp: [13, 4], topMlp: [7, 1], seed: 31 });

async function checkpointOf(argv: string[]): Promise<Checkpoint> {
  const { v } = await resolveTrainFlags([...DATA, ...argv]);
  return { config, step: 10, params: {}, optimizer: {}, extra: { data: JSON.stringify(dataFlags(v)) }, native: true };
}

describe("--data-randomize in checkpoints", () => {
  it("is recorded with the shard size and the seed", async () => {
    const ck = await checkpointOf(["--data-randomize", "day", "--data-shard-rows", "4096", "--seed", "31"]);
    expect(JSON.parse(ck.extra.data!)).toMatchObject({ dataRandomize: "day", dataShardRows: 4096, seed: 31 });
  });

  it("--resume without the flags continues the recorded order (not the defaults)", async () => {
    const ck = await checkpointOf(["--data-randomize", "none", "--data-shard-rows", "4096", "--seed", "31"]);
    const { v, given } = await resolveTrainFlags(["--save-model", "/tmp/m.safetensors", "--resume"]);
    expect(v.dataRandomize).toBe("total"); // the default, before merging
    mergeCheckpointFlags(v, given, ck, "m.safetensors", "resume");
    expect(v.dataRandomize).toBe("none");
    expect(v.dataShardRows).toBe(4096);
    expect(v.seed).toBe(31);
  });

  it("--resume with another order is refused, naming the difference; the same value is accepted", async () => {
    const ck = await checkpointOf(["--data-randomize", "day"]);
    const other = await resolveTrainFlags(["--save-model", "/tmp/m.safetensors", "--resume", "--data-randomize", "total"]);
    expect(() => mergeCheckpointFlags(other.v, other.given, ck, "m.safetensors", "resume")).toThrow(/--data-randomize total \(the run used day\)/);
    const same = await resolveTrainFlags(["--save-model", "/tmp/m.safetensors", "--resume", "--data-randomize", "day"]);
    expect(() => mergeCheckpointFlags(same.v, same.given, ck, "m.safetensors", "resume")).not.toThrow();
  });

  it("a checkpoint written before it was recorded resumes with the flags' values", async () => {
    const { v: old } = await resolveTrainFlags(DATA);
    const data = dataFlags(old);
    delete data.dataRandomize;
    delete data.dataShardRows;
    const ck: Checkpoint = { config, step: 1, params: {}, optimizer: {}, extra: { data: JSON.stringify(data) }, native: true };
    const { v, given } = await resolveTrainFlags(["--save-model", "/tmp/m.safetensors", "--resume", "--data-randomize", "day"]);
    mergeCheckpointFlags(v, given, ck, "m.safetensors", "resume");
    expect(v.dataRandomize).toBe("day");
  });
});
