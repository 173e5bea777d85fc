/**
 * The training report rendered in headless Chromium with the network
 * blocked: real axes (ticks, gridlines, titles), a clipped loss axis that
 * survives a step-1 spike, an AUC axis fitted to the data with the teacher's
 * AUC drawn, eval loss and learning rate charts, the config as a table.
 * Saves a screenshot (path printed) for people to look at.
 */
import { existsSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { expect, it } from "vitest";
import { renderReport } from "../../src/cli/report.ts";
import { resolveConfig } from "../../src/model/config.ts";
import type { TrainResult } from "../../src/model/trainer.ts";

const CHROMIUM = "/usr/bin/chromium";

/** A run shaped like the default one: 600 steps, loss read back every 20, a test evaluation every 100. */
function fakeRun(): TrainResult {
  let x = 7;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const losses = [{ step: 1, loss: 3.1 }];
  for (let s = 20; s <= 600; s += 20) losses.push({ step: s, loss: 0.44 + 0.22 * Math.exp(-s / 140) + 0.03 * (rnd() - 0.5) });
  const evals = [100, 200, 300, 400, 500, 600].map((step, i) => {
    const auc = 0.7 + 0.12 * (1 - Math.exp(-i / 2)) + 0.005 * rnd();
    const logLoss = 0.62 - 0.15 * (1 - Math.exp(-i / 2));
    return { step, split: "test" as const, auc, accuracy: 0.7 + auc / 20, logLoss, loss: logLoss + 0.001, samples: 8192 };
  });
  return { steps: 600, startStep: 0, trainedSteps: 600, interrupted: false, losses, evals, seconds: 53.2 };
}

it("the HTML report has real axes and fitted ranges, works offline, and looks right", async () => {
  expect(existsSync(CHROMIUM), "Chromium is needed (apt-get install chromium; tools/setup.sh does it)").toBe(true);
  const config = resolveConfig({
    embeddingDim: 16,
    tableRows: Array.from({ length: 26 }, (_, i) => 100 + 37 * i),
    bottomMlp: [13, 512, 256, 64, 16],
    topMlp: [367, 512, 256, 1],
    loss: "bce",
    optimizer: "adagrad",
    learningRate: 0.05,
    lrWarmupSteps: 50,
    lrDecayStartStep: 300,
    lrDecaySteps: 300,
    miniBatchSize: 128,
  });
  const html = renderReport({
    title: "webgpu-dlrm training run",
    config,
    result: fakeRun(),
    timings: [{ label: "gemm forward", count: 30, ms: 12.5 }, { label: "embedding backward", count: 10, ms: 4.1 }],
    adapter: "llvmpipe",
    host: "Deno 2.9.5",
    samplesPerSec: 1443,
    teacherAuc: 0.861,
    version: "0.1.0",
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
  try {
    const page = await browser.newPage({ viewport: { width: 800, height: 900 } });
    const requests: string[] = [];
    await page.route("**/*", (route) => {
      requests.push(route.request().url());
      return route.abort();
    });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.setContent(html, { waitUntil: "load" });
    const charts = await page.evaluate(() =>
      Array.from(document.querySelectorAll("section")).map((s) => ({
        title: s.querySelector("h2")!.textContent!,
        ticks: Array.from(s.querySelectorAll("text.tick")).map((t) => ({ text: t.textContent!, anchor: t.getAttribute("text-anchor") })),
        grid: s.querySelectorAll("line.grid").length,
        refs: s.querySelectorAll("line.ref").length,
        paths: s.querySelectorAll("path").length,
        axisTitles: Array.from(s.querySelectorAll("text.title")).map((t) => t.textContent),
        note: s.querySelector(".note")?.textContent ?? "",
        legend: s.querySelector(".legend")?.textContent ?? "",
      })),
    );
    expect(charts.map((c) => c.title)).toEqual(["Training loss (bce)", "Test AUC", "Test loss", "Learning rate"]);
    for (const c of charts) {
      const y = c.ticks.filter((t) => t.anchor === "end").map((t) => Number(t.text));
      const x = c.ticks.filter((t) => t.anchor === "middle").map((t) => Number(t.text));
      expect(y.length, c.title).toBeGreaterThanOrEqual(4);
      expect(x.length, c.title).toBeGreaterThanOrEqual(4);
      expect(y.every(Number.isFinite) && x.every(Number.isFinite), c.title).toBe(true);
      expect(c.grid, c.title).toBe(y.length + x.length);
      expect(c.axisTitles[0], c.title).toBe("step");
      expect(c.legend.length, c.title).toBeGreaterThan(0);
    }
    const [loss, auc] = charts;
    const lossTicks = loss!.ticks.filter((t) => t.anchor === "end").map((t) => Number(t.text));
    expect(Math.max(...lossTicks)).toBeLessThan(1); // the 3.1 spike at step 1 is clipped
    expect(loss!.note).toMatch(/clipped .*highest 3\.100 at step 1/);
    expect(loss!.paths).toBe(2); // raw and smoothed
    const aucTicks = auc!.ticks.filter((t) => t.anchor === "end").map((t) => Number(t.text));
    expect(Math.min(...aucTicks)).toBeGreaterThan(0.6); // fitted to 0.70..0.86, not 0.5..1
    expect(Math.max(...aucTicks)).toBeLessThan(0.95);
    expect(auc!.refs).toBe(1);
    expect(auc!.legend).toContain("teacher on the same samples: 0.8610");
    expect(await page.locator("table.config tr").count()).toBeGreaterThanOrEqual(14);
    expect(await page.locator("table.config").textContent()).toContain("bottomMlp13-512-256-64-16");
    expect(requests).toEqual([]); // self-contained: nothing fetched
    expect(errors).toEqual([]);
    const shot = join(tmpdir(), "webgpu-dlrm-report.png");
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
    console.log(`report screenshot: ${shot}`);
  } finally {
    await browser.close();
  }
}, 120_000);
