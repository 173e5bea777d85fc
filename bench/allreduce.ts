/**
 * Ring vs recursive halving/doubling allreduce (src/shard/collectives.ts),
 * host-staged between N devices on one adapter, in ONE process with the
 * variants alternating (ring, rhd, ring, rhd, ...) so the machine's load hits
 * both alike; prints the median ms per variant and the ratio ring / rhd.
 *
 *   deno run -A bench/allreduce.ts [ROUNDS]
 *
 * The last column is what --allreduce auto would pick on the pcie4 preset
 * (chooseAllreduce), for comparison with what was measured here.
 */
import { readF32, uploadStorage } from "../src/gpu/buffers.ts";
import { createContexts } from "../src/gpu/context.ts";
import { chooseAllreduce, createAllreduce } from "../src/shard/collectives.ts";

const ROUNDS = Number((globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? 5);
const ctxs = await createContexts(5, { label: "bench-allreduce" });
console.log(`adapter: ${ctxs[0]!.adapter.name}; ${ROUNDS} alternating rounds per case; median ms`);
console.log("N  floats     ring ms   rhd ms   ring/rhd  auto(pcie4)");
for (const n of [2, 3, 4, 5]) {
  for (const count of [1024, 131072, 524288]) {
    const devices = ctxs.slice(0, n).map((c) => c.device);
    const bufs = devices.map((d, i) => uploadStorage(d, new Float32Array(count).fill(1 / (i + 1)), `v@${i}`));
    const ar = { ring: createAllreduce(devices, bufs, count, { schedule: "ring" }), rhd: createAllreduce(devices, bufs, count, { schedule: "rhd" }) };
    const ms: Record<"ring" | "rhd", number[]> = { ring: [], rhd: [] };
    for (const k of ["ring", "rhd"] as const) await ar[k].run(); // warm-up (pipelines, staging)
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of ["ring", "rhd"] as const) {
        await Promise.all(devices.map((d) => d.queue.onSubmittedWorkDone()));
        const t0 = performance.now();
        await ar[k].run();
        await Promise.all(devices.map((d) => d.queue.onSubmittedWorkDone()));
        ms[k].push(performance.now() - t0);
      }
    }
    await readF32(devices[0]!, bufs[0]!, 1);
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
    const ring = med(ms.ring);
    const rhd = med(ms.rhd);
    console.log(`${n}  ${String(count).padEnd(9)}  ${ring.toFixed(1).padStart(7)}  ${rhd.toFixed(1).padStart(7)}  ${(ring / rhd).toFixed(2).padStart(8)}  ${chooseAllreduce("auto", n, count, { alpha: 14.1e-6, bandwidth: 31.5e9 })}`);
    ar.ring.destroy();
    ar.rhd.destroy();
    bufs.forEach((b) => b.destroy());
  }
}
ctxs.forEach((c) => c.destroy());
