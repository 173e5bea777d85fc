/**
 * The sharded step's profile: for N = 1, 2, 4 devices on the default adapter
 * (Kaggle-shaped model scaled down: 26 tables of the default sizes / 8, d = 16,
 * batch 512), the wall time of a normal (overlapped) step and of a serial step
 * whose phases are timed one by one (lookups, bottom MLP forward, all-to-all
 * forward, top MLP forward + backward, bottom MLP backward, all-to-all
 * backward, MLP allreduce, embedding backward + updates), and the bytes each
 * collective moved. Ratios within one run are what to read; the machine may
 * be shared.
 *
 *   deno run -A bench/shard_profile.ts        (or: tsx bench/shard_profile.ts)
 */
import { createContexts } from "../src/gpu/context.ts";
import { DEFAULT_TABLE_ROWS } from "../src/cli/flags.ts";
import { interactionWidth, resolveConfig } from "../src/model/config.ts";
import { initParameters } from "../src/model/params.ts";
import { randomSource } from "../src/data/random.ts";
import { ShardedDlrm } from "../src/shard/model.ts";
import { tableWisePlan } from "../src/shard/plan.ts";

const B = Number((globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.SHARD_BATCH ?? 512);
const tableRows = DEFAULT_TABLE_ROWS.split("-").map((r) => Math.max(4, Math.floor(Number(r) / 8)));
const d = 16;
const config = resolveConfig({ embeddingDim: d, tableRows, bottomMlp: [13, 512, 256, 64, d], topMlp: [interactionWidth(tableRows.length, d, "dot", false), 512, 256, 1], loss: "bce", optimizer: "adagrad", learningRate: 0.05 });
const init = initParameters(config);
const source = randomSource({ numDense: 13, tableRows, seed: 1, bagSize: 1 });
const batches = [];
for await (const b of source.batches({ batchSize: B, split: "train", limit: 8 })) batches.push(b);
const ctxs = await createContexts(4, { label: "bench-shard" });
const fmt = (ms: number) => ms.toFixed(1).padStart(8);
console.log(`adapter "${ctxs[0]!.adapter.name}", batch ${B}, ${tableRows.length} tables, table-wise plan`);
for (const n of [1, 2, 4]) {
  const m = new ShardedDlrm(ctxs.slice(0, n), config, init, tableWisePlan(tableRows, d, n));
  for (const b of batches.slice(0, 2)) await m.trainStep(b); // warm-up: pipelines, plans
  await m.readLosses();
  const serial = [];
  for (const b of batches.slice(2, 5)) serial.push(await m.profileStep(b));
  await m.readLosses();
  const over = [];
  for (const b of batches.slice(5, 8)) {
    const t0 = performance.now();
    await m.trainStep(b);
    await Promise.all(m.devices.map((dev) => dev.queue.onSubmittedWorkDone()));
    over.push({ ...m.lastProfile!, totalMs: performance.now() - t0 });
  }
  await m.readLosses();
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\nN = ${n}: overlapped step ${med(over.map((p) => p.totalMs)).toFixed(1)} ms (to all queues idle), serial step ${med(serial.map((p) => p.totalMs)).toFixed(1)} ms`);
  for (const k of Object.keys(serial[0]!.phases)) console.log(`  ${k.padEnd(32)}${fmt(med(serial.map((p) => p.phases[k]!)))} ms`);
  const p = over[0]!;
  for (const [name, s] of Object.entries(p.collectives)) {
    const bytes = s.rounds.reduce((a, r) => a + r.sent.reduce((x, y) => x + y, 0), 0);
    console.log(`  ${name.padEnd(10)} ${s.rounds.length} rounds, ${(bytes / 1024).toFixed(1)} KiB host-staged, ${s.ms.toFixed(1)} ms (rounds: ${s.rounds.map((r) => r.ms.toFixed(1)).join(", ")})`);
  }
  m.destroy();
}
ctxs.forEach((c) => c.destroy());
