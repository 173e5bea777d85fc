/**
 * Host detection and access to the WebGPU entry point (navigator.gpu) in the
 * three hosts: browser, Deno (built-in wgpu) and Node (the `webgpu` npm
 * package, Dawn).
 */
import { NoAdapterError } from "./errors.ts";

export type HostName = "browser" | "deno" | "node";

export function detectHost(): HostName {
  const g = globalThis as { Deno?: unknown; process?: { versions?: { node?: string } }; window?: unknown };
  if (g.Deno) return "deno";
  if (g.window !== undefined || typeof (globalThis as { importScripts?: unknown }).importScripts === "function") {
    return "browser";
  }
  if (g.process?.versions?.node) return "node";
  return "browser";
}

export const NO_ADAPTER_HELP =
  "no WebGPU adapter. Without a GPU: install Mesa's lavapipe (`apt-get install mesa-vulkan-drivers`) " +
  "or Chromium's SwiftShader (`apt-get install chromium`, then VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json); " +
  "in a browser, use one with WebGPU enabled. See README, 'WebGPU without a GPU'.";

let nodeGpu: Promise<GPU> | undefined;

/**
 * The host's GPU object. In Node this loads the `webgpu` package and installs
 * its globals; the GPU object is kept referenced here for the life of the
 * process (Dawn crashes the process if it is garbage-collected).
 */
export async function getGPU(): Promise<GPU> {
  const host = detectHost();
  if (host !== "node") {
    const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
    if (!gpu) throw new NoAdapterError(`${host}: navigator.gpu is missing: ${NO_ADAPTER_HELP}`);
    return gpu;
  }
  nodeGpu ??= (async () => {
    const pkg = "webgpu";
    let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
    try {
      mod = await import(/* @vite-ignore */ pkg);
    } catch (e) {
      throw new NoAdapterError(
        `node: WebGPU in Node comes from the 'webgpu' package (Dawn), an optional peer dependency that could not be loaded ` +
          `(${(e as Error).message}). Install it beside webgpu-dlrm: \`npm install webgpu\` (or run under Deno, which has WebGPU built in).`,
      );
    }
    for (const [k, v] of Object.entries(mod.globals)) {
      if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
    }
    return mod.create([]);
  })();
  return nodeGpu;
}
