/**
 * A compute shader as the engine ships it: the WGSL text and its bind-group
 * layout, both generated from shaders/<name>.wgsl by `npm run shaders`
 * (tools/gen-shaders.mjs reflects the bindings at build time, so nothing
 * parses WGSL at run time). Import one from src/shaders/<name>.ts.
 */
export type BindingKind = "uniform" | "storage" | "read-only-storage";

export interface BindingInfo {
  readonly group: number;
  readonly binding: number;
  /** The WGSL variable name; bindGroup() takes resources by it. */
  readonly name: string;
  readonly kind: BindingKind;
}

export interface ShaderSource {
  /** File name under shaders/ without .wgsl; labels and cache keys use it. */
  readonly name: string;
  /** Bindings by group, each sorted by binding number. */
  readonly bindings: readonly (readonly BindingInfo[])[];
  readonly code: string;
}
