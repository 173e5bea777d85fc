// Node: WebGPU comes from the `webgpu` package (Dawn): npm install webgpu-dlrm webgpu
import { create, globals } from "webgpu";
import { selfTest } from "./check.js";

Object.assign(globalThis, globals); // GPUBufferUsage, GPUMapMode, ... for your own code
// Keep this reference for as long as the device is used: if the GPU object is
// garbage-collected, the process crashes (SIGSEGV).
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) throw new Error("no WebGPU adapter (see the README: WebGPU without a GPU)");
const device = await adapter.requestDevice();
console.log(JSON.stringify({ host: "node", adapter: adapter.info.description || adapter.info.vendor, ...(await selfTest(device)) }));
device.destroy();
