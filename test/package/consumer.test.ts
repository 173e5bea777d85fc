/**
 * The package as a user gets it: `npm pack` (prepack builds dist/), the
 * tarball installed into a fresh project outside the repository, then
 * examples/ run from there in (a) plain Node ESM, (b) Deno, (c) a Vite-built
 * page in headless Chromium, (d) `tsc --noEmit` with the default strict
 * tsconfig of `tsc --init` and skipLibCheck false; plus the `webgpu-dlrm` bin
 * (Node and the Deno form). Each example runs an embedding-bag forward, a GEMM
 * and the dot interaction on its own device and buffers and compares with a
 * float64 CPU computation (examples/check.js); the test asserts the result.
 *
 * Fast path: the tarball's dependencies come from the npm cache
 * (--prefer-offline), `webgpu` (Dawn, 130 MB) is linked from this repo's
 * node_modules instead of copied.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { chromium } from "playwright-core";
import { build } from "vite";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
const CHROMIUM = "/usr/bin/chromium";
const TMP = mkdtempSync(join(tmpdir(), "dlrm-consumer-"));
const APP = join(TMP, "app");
const PKG = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { name: string; version: string };
let tarball = "";

interface SelfTest {
  ok: boolean;
  ratio: { emb: number; x: number; out: number };
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string | undefined>; timeout?: number } = {}) {
  const r = spawnSync(cmd, args, { cwd: opts.cwd ?? APP, env: { ...process.env, ...opts.env }, encoding: "utf8", timeout: opts.timeout ?? 120_000 });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: r.stderr ?? "" };
}

/** The last stdout line that is a JSON object. */
function lastJson(out: string): Record<string, unknown> {
  const line = out.trim().split("\n").reverse().find((l) => l.startsWith("{"));
  if (!line) throw new Error(`no JSON in output:\n${out}`);
  return JSON.parse(line) as Record<string, unknown>;
}

function expectSelfTest(r: SelfTest, what: string): void {
  expect(r.ok, `${what}: ${JSON.stringify(r)}`).toBe(true);
  // Within the float32 rounding bound of every value; finite (a NaN or unwritten value gives Infinity).
  for (const v of Object.values(r.ratio)) expect(v).toBeLessThanOrEqual(1);
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const f of readdirSync(dir, { recursive: true, encoding: "utf8" })) {
    const s = statSync(join(dir, f), { throwIfNoEntry: false });
    if (s?.isFile()) n += s.size;
  }
  return n;
}

beforeAll(() => {
  // npm pack runs prepack (npm run build); --json reports size and file count.
  const packed = execFileSync("npm", ["pack", "--json", "--pack-destination", TMP], { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const info = JSON.parse(packed.slice(packed.search(/^\[/m))) as { filename: string; size: number; unpackedSize: number; entryCount: number; files: { path: string }[] }[];
  const p = info[0]!;
  tarball = join(TMP, p.filename);
  const paths = p.files.map((f) => f.path);
  console.log(`tarball ${p.filename}: ${(p.size / 1024).toFixed(0)} kB packed, ${(p.unpackedSize / 1024).toFixed(0)} kB unpacked, ${p.entryCount} files`);
  // Only what users need: built JS, types, maps, the manifest and README.
  expect(paths.filter((f) => !/^(dist\/.*\.(js|d\.ts|js\.map|d\.ts\.map)|package\.json|README\.md|LICENSE(\.md)?)$/.test(f))).toEqual([]);
  expect(paths).toContain("dist/kernels/index.js");
  expect(paths).toContain("dist/kernels/index.d.ts");

  cpSync(join(ROOT, "examples"), join(APP, "examples"), { recursive: true });
  writeFileSync(join(APP, "package.json"), JSON.stringify({ name: "dlrm-consumer", private: true, type: "module" }, null, 2));
  const npm = run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball, join(ROOT, "node_modules/webgpu")], { timeout: 240_000 });
  expect(npm.code, npm.err).toBe(0);
  // Everything npm installed for the tarball except the optional peer (webgpu, linked) and the package itself.
  const deps = readdirSync(join(APP, "node_modules")).filter((d) => !d.startsWith(".") && d !== "webgpu" && d !== PKG.name);
  console.log(
    `installed: webgpu-dlrm ${(dirBytes(join(APP, "node_modules", PKG.name)) / 1024).toFixed(0)} kB; ` +
      `its runtime dependencies ${(deps.reduce((s, d) => s + dirBytes(join(APP, "node_modules", d)), 0) / 2 ** 20).toFixed(1)} MB (${deps.join(", ")})`,
  );
}, 300_000);

afterAll(() => rmSync(TMP, { recursive: true, force: true }));

describe("installed tarball", () => {
  it("(a) plain node ESM, no TypeScript loader: embedding bags + GEMM + interaction match the CPU", () => {
    const r = run(process.execPath, ["examples/node.mjs"]);
    expect(r.code, r.err).toBe(0);
    const res = lastJson(r.out);
    expect(res.host).toBe("node");
    expectSelfTest(res as unknown as SelfTest, "node");
  });

  it("(b) Deno: the same, plus the strict TypeScript consumer run directly", () => {
    // Deno on the system's Vulkan driver (lavapipe), as in the CLI tests.
    const r = run(join(ROOT, "node_modules/.bin/deno"), ["run", "-A", "examples/deno.ts"], { env: { VK_ICD_FILENAMES: undefined } });
    expect(r.code, r.err).toBe(0);
    const res = lastJson(r.out);
    expect(res.host).toBe("deno");
    expectSelfTest(res as unknown as SelfTest, "deno");
    const typed = res.typed as { embMaxErr: number; gemmMaxErr: number };
    // Small exact-in-float32 sums: at most one rounding of each.
    expect(typed.embMaxErr).toBeLessThanOrEqual(2 ** -20);
    expect(typed.gemmMaxErr).toBe(0);
  });

  it("(c) a Vite-built page in headless Chromium", async () => {
    const out = join(TMP, "page");
    await build({ root: join(APP, "examples/browser"), configFile: false, logLevel: "error", build: { outDir: out, emptyOutDir: true } });
    const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript" };
    const server: Server = createServer((req, res) => {
      const path = join(out, (req.url ?? "/").split("?")[0]!.replace(/^\/$/, "/index.html"));
      if (!path.startsWith(out) || !existsSync(path)) return void res.writeHead(404).end();
      res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(readFileSync(path));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
    });
    try {
      const page = await browser.newPage();
      const lines: string[] = [];
      page.on("console", (m) => lines.push(m.text()));
      await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
      await page.waitForFunction(() => document.body.dataset.result !== undefined || document.body.dataset.error !== undefined, undefined, { timeout: 60_000 });
      const error = await page.evaluate(() => document.body.dataset.error);
      expect(error, lines.join("\n")).toBeUndefined();
      const res = JSON.parse((await page.evaluate(() => document.body.dataset.result))!) as SelfTest & { host: string };
      expect(res.host).toBe("browser");
      expectSelfTest(res, "browser");
    } finally {
      await browser.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 120_000);

  it("the engine entry loads with no other package installed, and without webgpu says how to install it", () => {
    // Only webgpu-dlrm itself (no apache-arrow, no webgpu): the main entry must still load.
    const bare = join(TMP, "bare");
    cpSync(join(APP, "node_modules", PKG.name), join(bare, "node_modules", PKG.name), { recursive: true });
    writeFileSync(join(bare, "package.json"), JSON.stringify({ private: true, type: "module" }));
    const code = 'const m = await import("webgpu-dlrm"); await import("webgpu-dlrm/kernels"); await m.createContext().then(() => console.log("no error"), (e) => console.log(`${e.name}: ${e.message}`));';
    const r = run(process.execPath, ["--input-type=module", "-e", code], { cwd: bare });
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/NoAdapterError: .*Install it beside webgpu-dlrm: `npm install webgpu`/);
  });

  it("(d) tsc --noEmit of a strict consumer (tsc --init defaults, skipLibCheck false)", () => {
    const tsc = join(ROOT, "node_modules/typescript/bin/tsc");
    const init = run(process.execPath, [tsc, "--init"]);
    expect(init.code, init.out).toBe(0);
    // Keep `tsc --init`'s options; check the library's declarations too, and only the TS consumer.
    const cfg = readFileSync(join(APP, "tsconfig.json"), "utf8").replace(/"skipLibCheck":\s*true/, '"skipLibCheck": false');
    expect(cfg).toMatch(/"strict": true/);
    writeFileSync(join(APP, "tsconfig.json"), cfg.replace(/\n\}\s*$/, ',\n  "files": ["examples/consumer.ts"]\n}\n'));
    const r = run(process.execPath, [tsc, "--noEmit", "-p", "tsconfig.json"]);
    expect(r.code, r.out + r.err).toBe(0);
  });

  it("bundles only the kernels a page imports", async () => {
    const dir = join(APP, "sizes");
    const page = (name: string, code: string) => {
      cpSync(join(APP, "examples/browser/index.html"), join(dir, name, "index.html"));
      writeFileSync(join(dir, name, "main.js"), code);
    };
    page("one-kernel", 'import { gemm } from "webgpu-dlrm/kernels";\nglobalThis.use = gemm;\n');
    page("engine", 'import * as dlrm from "webgpu-dlrm";\nimport * as kernels from "webgpu-dlrm/kernels";\nglobalThis.use = [dlrm, kernels];\n');
    const sizes: Record<string, { bytes: number; gzip: number; text: string }> = {};
    for (const name of ["one-kernel", "engine"]) {
      const out = join(dir, name, "dist");
      await build({ root: join(dir, name), configFile: false, logLevel: "error", build: { outDir: out, emptyOutDir: true } });
      const js = readdirSync(join(out, "assets")).filter((f) => f.endsWith(".js"));
      const text = js.map((f) => readFileSync(join(out, "assets", f), "utf8")).join("\n");
      sizes[name] = { bytes: Buffer.byteLength(text), gzip: gzipSync(text).length, text };
    }
    const kb = (n: number) => `${(n / 1024).toFixed(1)} kB`;
    console.log(
      `bundle (Vite, minified JS): one kernel (gemm) ${kb(sizes["one-kernel"]!.bytes)} (gzip ${kb(sizes["one-kernel"]!.gzip)}); ` +
        `whole engine ${kb(sizes.engine!.bytes)} (gzip ${kb(sizes.engine!.gzip)})`,
    );
    const one = sizes["one-kernel"]!.text;
    expect(one).toMatch(/gemm_nt4/);
    for (const other of ["embedding_bag_forward", "interaction_dot_fwd", "radix_sort_scatter", "optim_adam"]) expect(one).not.toMatch(new RegExp(other));
    expect(sizes.engine!.text).toMatch(/embedding_bag_forward/);
    expect(sizes["one-kernel"]!.bytes * 3).toBeLessThan(sizes.engine!.bytes);
  }, 120_000);

  // Training under Deno from source is covered by test/cli; here the Deno form resolving and starting the installed CLI.
  it("the webgpu-dlrm bin: --version and a short train under Node, the Deno form", () => {
    const v = run("npx", ["--no-install", "webgpu-dlrm", "--version"]);
    expect(v.code, v.err).toBe(0);
    expect(v.out).toContain(`webgpu-dlrm ${PKG.version}`);
    const tiny = ["--preset", "main", "--arch-embedding-size", "50-60-70", "--arch-sparse-feature-size", "4", "--arch-mlp-bot", "13-8-4", "--arch-mlp-top", "8-1", "--mini-batch-size", "32", "--num-batches", "12", "--test-num-batches", "2", "--test-mini-batch-size", "32", "--print-freq", "6"];
    const t = run("npx", ["--no-install", "webgpu-dlrm", "train", ...tiny]);
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/AUC/i);
    const dv = run(join(ROOT, "node_modules/.bin/deno"), ["run", "-A", "npm:webgpu-dlrm/cli", "--version"], { env: { VK_ICD_FILENAMES: undefined } });
    expect(dv.code, dv.err).toBe(0);
    expect(dv.out).toMatch(new RegExp(`webgpu-dlrm ${PKG.version.replace(/\./g, "\\.")} \\(Deno`));
  }, 180_000);
});
