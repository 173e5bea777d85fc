/**
 * The sharded model's tests in one file, so the four devices compile their
 * pipelines once (each GPUDevice compiles its own; on a CPU adapter that is
 * most of the time): equivalence with one device (equivalence.ts), the
 * PyTorch fixtures sharded (pytorch.ts), checkpoints across N and plans and
 * a device lost mid-step (checkpoint.ts; it destroys the 4th device, so it
 * runs last).
 */
import { afterAll, beforeAll } from "vitest";
import { createContexts, type GpuContext } from "../../src/gpu/context.ts";
import { checkpointSuite } from "./checkpoint.ts";
import { equivalenceSuite } from "./equivalence.ts";
import { pytorchSuite } from "./pytorch.ts";

let ctxs: GpuContext[] = [];
beforeAll(async () => {
  ctxs = await createContexts(4, { label: "sharded" });
}, 600_000);
afterAll(() => ctxs.forEach((c) => c.destroy()));

equivalenceSuite(() => ctxs);
pytorchSuite(() => ctxs);
checkpointSuite(() => ctxs);
