/// <reference types="vitest/config" />
import { existsSync } from "node:fs";
import { defineConfig } from "vite";

// Node tests run on Dawn (the `webgpu` package). On a machine without a GPU
// they use Chromium's SwiftShader Vulkan driver unless VK_ICD_FILENAMES is
// already set (set DLRM_USE_SYSTEM_VULKAN=1 to use the system's drivers, e.g.
// a real GPU or Mesa's lavapipe).
const swiftshader = "/usr/lib/chromium/vk_swiftshader_icd.json";
if (!process.env.VK_ICD_FILENAMES && !process.env.DLRM_USE_SYSTEM_VULKAN && existsSync(swiftshader)) {
  process.env.VK_ICD_FILENAMES = swiftshader;
}

export default defineConfig({
  root: "demo",
  publicDir: false,
  build: { outDir: "../dist/demo", emptyOutDir: true },
  test: {
    root: ".",
    include: ["test/**/*.test.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    globalSetup: ["test/global-setup.ts"],
  },
});
