/**
 * GEMM tuning per adapter family: which kernel style the layer GEMMs (./linear.ts) use.
 *   "auto": the tuning table (lavapipe / llvmpipe: "lps" (./gemm_lps.ts) for outputs of >= 128 columns,
 *           else "ubo-wide", the uniform-buffer kernel of ./gemm_ubo.ts with 8 columns x 4 rows per
 *           invocation where 64 columns fill a chunk;
 *           other CPU emulators: "rb"; real GPUs: "tiled"), see gemmVariant(), prefersUboGemm()
 *   "lps": forced: the uniform-buffer GEMMs on ./gemm_lps.ts (workgroup-memory A at constant indices,
 *           generated straight-line K slices; the lavapipe default), the rest as "ubo-wide";
 *           "ubo-wide" etc. turn lps off
 *   "ubo" (the 4 x 8 tile), "ubo-wide", "ubo-wide-noa4" (scalar A loads), "ubo-prev" (4 x 8 tile, scalar A loads:
 *           the lavapipe default before 2026-11-30), "rb", "tiled": forced (tests, benchmarks: bench/gemm_layers.ts --ab).
 * A loop-free lavapipe kernel with constant-index broadcast loads ("lp") was tried and did not
 * pay (BENCHMARKS.md "GEMM on lavapipe: what the compiled code does"); it is not here.
 */
import { type GemmVariant, setGemmVariant } from "./gemm.ts";
import { setLps } from "./gemm_lps.ts";
import { setUboA4, setUboWide } from "./gemm_ubo.ts";

export type TuningName = "auto" | GemmVariant | "ubo-wide" | "ubo-wide-noa4" | "ubo-prev" | "lps";

/** Forces a tuning on `device` for later prepares ("auto" or undefined: the table). */
export function setGemmTuning(device: GPUDevice, t: TuningName | undefined): void {
  setLps(device, t === "lps" ? true : t === "auto" || t === undefined ? undefined : false);
  if (t === "lps") t = "ubo-wide";
  setUboWide(device, t === "ubo-wide" || t === "ubo-wide-noa4" ? true : t === "ubo" || t === "ubo-prev" ? false : undefined);
  setUboA4(device, t !== "ubo-wide-noa4" && t !== "ubo-prev");
  const ubo = t === "ubo-wide" || t === "ubo-wide-noa4" || t === "ubo-prev";
  setGemmVariant(device, t === "auto" || t === undefined ? undefined : ubo ? "ubo" : t as GemmVariant);
}
