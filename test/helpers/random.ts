export { Rng } from "../../src/util/rng.ts";
