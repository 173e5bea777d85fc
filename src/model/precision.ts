/**
 * Optional lower precision (issue 14): how the embedding tables are stored.
 *  - "fp32" (default): f32 tables.
 *  - "bf16": tables stored as bf16 (the upper 16 bits of an f32, two per u32 word;
 *    src/kernels/embedding_tables_bf16.ts): half the table memory and half the bytes each lookup
 *    reads. Lookups are summed in f32; the fused backward updates in f32 and rounds the new weight
 *    to bf16, stochastically by default (`bf16Rounding`). Optimizer state (Adagrad) stays f32.
 *    Checkpoints hold f32 values (bf16 widens exactly), so the loader and the reference read them
 *    unchanged; an f32 checkpoint loaded into a bf16 run is rounded to nearest even once.
 * f16 for the MLPs is not offered: of the adapters here only lavapipe exposes `shader-f16`, and it
 * runs f16 arithmetic slower than f32 (bench/f16_probe.ts; README "Lower precision").
 */
import { ConfigError } from "../gpu/errors.ts";

export type EmbeddingPrecision = "fp32" | "bf16";
export type Bf16Rounding = "stochastic" | "nearest";

export const EMBEDDING_PRECISIONS: readonly EmbeddingPrecision[] = ["fp32", "bf16"];
export const BF16_ROUNDINGS: readonly Bf16Rounding[] = ["stochastic", "nearest"];

export interface PrecisionOptions {
  /** Storage of the embedding tables (default "fp32"). */
  embeddingPrecision?: EmbeddingPrecision;
  /** bf16 tables: rounding of updated weights (default "stochastic"). */
  bf16Rounding?: Bf16Rounding;
}

/** Checks the options; throws ConfigError naming the fix. */
export function checkPrecision(o: PrecisionOptions): { embeddingPrecision: EmbeddingPrecision; bf16Rounding: Bf16Rounding } {
  const embeddingPrecision = o.embeddingPrecision ?? "fp32";
  const bf16Rounding = o.bf16Rounding ?? "stochastic";
  if (!EMBEDDING_PRECISIONS.includes(embeddingPrecision)) {
    throw new ConfigError(`embedding precision must be ${EMBEDDING_PRECISIONS.join(" or ")}, got '${embeddingPrecision as string}' (--embedding-precision)`);
  }
  if (!BF16_ROUNDINGS.includes(bf16Rounding)) {
    throw new ConfigError(`bf16 rounding must be ${BF16_ROUNDINGS.join(" or ")}, got '${bf16Rounding as string}' (--bf16-rounding)`);
  }
  return { embeddingPrecision, bf16Rounding };
}

/** Bytes of one stored table row of width dim. */
export function embeddingRowBytes(dim: number, precision: EmbeddingPrecision = "fp32"): number {
  return precision === "bf16" ? Math.ceil(dim / 2) * 4 : dim * 4;
}

/** The error for a sharded run asking for bf16 tables (single-device for now). */
export function bf16ShardError(): ConfigError {
  return new ConfigError("--embedding-precision bf16 is single-device for now: drop --devices / --shard-plan, or train the sharded model with fp32 tables");
}
