/** Typed errors. Every message says what went wrong and what to do next. */

export class DlrmError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** No WebGPU adapter in this host. */
export class NoAdapterError extends DlrmError {}

/** The device asked for a limit or feature the adapter lacks. */
export class UnsupportedError extends DlrmError {}

/** WebGPU reported a validation, out-of-memory or internal error. */
export class GpuError extends DlrmError {
  constructor(
    readonly kind: "validation" | "out-of-memory" | "internal",
    readonly label: string,
    readonly gpuMessage: string,
  ) {
    super(`GPU ${kind} error in ${label}: ${gpuMessage}`);
  }
}

/** The GPUDevice was lost (driver reset, destroy(), out of memory...). */
export class DeviceLostError extends DlrmError {
  constructor(readonly reason: string, readonly detail: string) {
    super(`GPU device lost (${reason}): ${detail}. Create a new device and resume from the last checkpoint.`);
  }
}

/** Input to a kernel is malformed (bad index, bad offsets, wrong shape). */
export class KernelInputError extends DlrmError {}

/** A buffer was used with a GPUDevice other than the one that created it. */
export class DeviceMismatchError extends KernelInputError {}

/** A model or run configuration is impossible. */
export class ConfigError extends DlrmError {}
