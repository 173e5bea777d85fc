/**
 * The browser host: the demo page, built by Vite and served on loopback,
 * trains a small DLRM in headless Chromium (WebGPU on SwiftShader) and
 * reports a test AUC well above chance.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { extname, join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
const DIST = join(ROOT, "dist/demo");
const CHROMIUM = "/usr/bin/chromium";
let server: Server;
let port = 0;

beforeAll(() => {
  execFileSync(join(ROOT, "node_modules/.bin/vite"), ["build", "--logLevel", "error"], { cwd: ROOT, stdio: "pipe" });
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  server = createServer((req, res) => {
    const path = join(DIST, decodeURIComponent((req.url ?? "/").split("?")[0]!).replace(/^\/$/, "/index.html"));
    if (!path.startsWith(DIST) || !existsSync(path)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" }).end(readFileSync(path));
  });
  return new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => {
    port = (server.address() as { port: number }).port;
    resolve();
  }));
});

afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

it("trains in headless Chromium and reaches a test AUC well above chance", async () => {
  expect(existsSync(CHROMIUM), "Chromium is needed (apt-get install chromium; tools/setup.sh does it)").toBe(true);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--enable-unsafe-webgpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  try {
    const page = await browser.newPage();
    const lines: string[] = [];
    page.on("console", (m) => lines.push(m.text()));
    await page.goto(`http://127.0.0.1:${port}/?autorun`);
    await page.waitForFunction(() => document.body.dataset.auc !== undefined || document.body.dataset.error !== undefined, undefined, { timeout: 240_000 });
    const log = await page.textContent("#log");
    const error = await page.evaluate(() => document.body.dataset.error);
    expect(error, `${log}\n${lines.join("\n")}`).toBeUndefined();
    const auc = Number(await page.evaluate(() => document.body.dataset.auc));
    console.log(`browser demo: ${log?.split("\n")[0]}; test AUC ${auc.toFixed(4)}`);
    expect(auc).toBeGreaterThan(0.7);
  } finally {
    await browser.close();
  }
}, 300_000);
