/** Typed errors of src/io (checkpoint files, safetensors, atomic writes). */
import { DlrmError } from "../gpu/errors.ts";

/** A checkpoint or tensor file cannot be read or written. */
export class CheckpointError extends DlrmError {}

/** A tensor holds NaN or Infinity: never written to a checkpoint, refused when loading unless allowed. */
export class NonFiniteTensorError extends CheckpointError {
  constructor(
    readonly tensor: string,
    readonly index: number,
    readonly value: number,
    message: string,
  ) {
    super(message);
  }
}

/** What is wrong with a safetensors file (tests and callers can branch on it). */
export type SafetensorsProblem =
  | "too-short" // fewer than 8 bytes
  | "header-length" // header length beyond the file or above the limit
  | "header-json" // not UTF-8, not JSON, not an object
  | "metadata" // __metadata__ not an object of strings
  | "entry" // a tensor entry lacks dtype / shape / data_offsets or has bad values
  | "dtype" // unknown dtype
  | "size-mismatch" // shape x dtype size != data_offsets span
  | "out-of-bounds" // a tensor ends past the end of the file (truncated file)
  | "overlap" // two tensors share bytes
  | "hole" // bytes between tensors that no tensor covers
  | "trailing" // bytes after the last tensor
  | "encode"; // the writer was given something it cannot write

/** A malformed safetensors file (reading) or tensor set (writing); `problem` names the kind. */
export class SafetensorsError extends CheckpointError {
  constructor(
    readonly problem: SafetensorsProblem,
    message: string,
  ) {
    super(`safetensors: ${message}`);
  }
}
