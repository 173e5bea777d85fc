/**
 * The GPU device shared by the tests of one file. There is no skipping: a
 * missing adapter fails the test run (always under CI=true, and locally too,
 * so a green run means the kernels really ran).
 */
import { createContext, type GpuContext } from "../../src/gpu/context.ts";

let ctx: Promise<GpuContext> | undefined;

export function testContext(): Promise<GpuContext> {
  ctx ??= createContext({ label: "test" });
  return ctx;
}

export async function testDevice(): Promise<GPUDevice> {
  return (await testContext()).device;
}
