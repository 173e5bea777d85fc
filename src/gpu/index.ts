export * from "./errors.ts";
export * from "./host.ts";
export * from "./context.ts";
export * from "./buffers.ts";
export * from "./pipelines.ts";
export * from "./dispatch.ts";
export * from "./timing.ts";
