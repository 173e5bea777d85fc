// `npm run build` (also run by `npm pack` / `npm publish` through prepack):
// src/ -> dist/ with tsc (tsconfig.build.json): .js with source maps (sources
// inlined), .d.ts with declaration maps. Relative imports are written with .ts
// in src/; tsc rewrites them to .js in the JavaScript (rewriteRelativeImportExtensions),
// and this script does the same in the .d.ts files so every consumer's
// moduleResolution (node16, nodenext, bundler) resolves them.
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const require = createRequire(import.meta.url);

execFileSync(process.execPath, [join(root, "tools", "gen-shaders.mjs"), "--check"], { stdio: "inherit" });
// Start clean, but keep dist/demo (the demo page's Vite build, not part of the package).
for (const f of existsSync(dist) ? readdirSync(dist) : []) if (f !== "demo") rmSync(join(dist, f), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", join(root, "tsconfig.build.json")], { stdio: "inherit", cwd: root });

let rewritten = 0;
for (const f of readdirSync(dist, { recursive: true, encoding: "utf8" })) {
  if (!f.endsWith(".d.ts")) continue;
  const path = join(dist, f);
  const text = readFileSync(path, "utf8");
  const out = text.replace(/((?:from|import)\s*\(?\s*["'])(\.{1,2}\/[^"']+)\.ts(["'])/g, (_, a, p, b) => `${a}${p}.js${b}`);
  if (out !== text) {
    writeFileSync(path, out);
    rewritten++;
  }
}
chmodSync(join(dist, "cli", "main.js"), 0o755);
const js = readdirSync(dist, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".js")).length;
console.log(`dist/: ${js} modules (${rewritten} declaration files with rewritten imports)`);
