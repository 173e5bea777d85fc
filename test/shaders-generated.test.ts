import { readdirSync, readFileSync } from "node:fs";
import { expect, it } from "vitest";
// @ts-expect-error plain .mjs tool without types
import { check } from "../tools/gen-shaders.mjs";

it("src/shaders/ is up to date with shaders/*.wgsl (run `npm run shaders`)", () => {
  expect(check()).toEqual([]);
});

it("no module under src/ parses WGSL at run time (layouts are generated at build time)", () => {
  const files = readdirSync(new URL("../src", import.meta.url), { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"));
  expect(files.length).toBeGreaterThan(20);
  const offenders = files.filter((f) => readFileSync(new URL(`../src/${f}`, import.meta.url), "utf8").includes("wgsl_reflect"));
  expect(offenders).toEqual([]);
});
