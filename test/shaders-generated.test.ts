import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
// @ts-expect-error plain .mjs tool without types
import { generate } from "../tools/gen-shaders.mjs";

it("src/shaders/generated.ts is up to date with shaders/*.wgsl (run `npm run shaders`)", () => {
  const current = readFileSync(new URL("../src/shaders/generated.ts", import.meta.url), "utf8");
  expect(current === generate()).toBe(true);
});
