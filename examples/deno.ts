// Deno: WebGPU is built in (navigator.gpu). deno run -A examples/deno.ts
import { selfTest } from "./check.js";
import { typedForward } from "./consumer.ts";

const adapter = await navigator.gpu.requestAdapter();
if (!adapter) throw new Error("no WebGPU adapter (see the README: WebGPU without a GPU)");
const device = await adapter.requestDevice();
console.log(JSON.stringify({ host: "deno", ...(await selfTest(device)), typed: await typedForward(device) }));
device.destroy();
