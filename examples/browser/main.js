// Browser: navigator.gpu; bundle with any bundler (the test uses Vite).
import { selfTest } from "../check.js";

const log = document.getElementById("log");
try {
  const adapter = await navigator.gpu?.requestAdapter();
  if (!adapter) throw new Error("this browser has no WebGPU adapter");
  const device = await adapter.requestDevice();
  const result = await selfTest(device);
  log.textContent = JSON.stringify(result);
  document.body.dataset.result = JSON.stringify({ host: "browser", ...result });
} catch (e) {
  log.textContent = String(e?.stack ?? e);
  document.body.dataset.error = String(e?.message ?? e);
}
