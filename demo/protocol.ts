/** Messages between the page (main.ts) and the training worker (worker.ts). */
import type { Settings } from "./settings.ts";

export type Stage = "bottom" | "embedding" | "interaction" | "top" | "loss" | "optimizer" | "other";

export interface KernelTime {
  label: string;
  stage: Stage;
  /** forward, backward or update. */
  phase: "forward" | "backward" | "update";
  ms: number;
}

export type ToWorker =
  | { type: "start"; settings: Settings; file?: File; maxIndRange?: number }
  | { type: "pause" }
  | { type: "resume" }
  | { type: "stop" }
  | { type: "reset" }
  | { type: "predict"; text: string }
  | { type: "checkpoint" }
  | { type: "load"; bytes: Uint8Array; name: string };

export interface DeviceInfo {
  name: string;
  vendor: string;
  architecture: string;
  fallback: boolean;
  timestamps: boolean;
}

export type FromWorker =
  | { type: "state"; state: "idle" | "preparing" | "running" | "paused" | "stopped" | "done"; message: string }
  | { type: "device"; info: DeviceInfo }
  | { type: "data"; describe: string; numDense: number; tableRows: number[]; examples: string[]; teacher: boolean }
  | { type: "steps"; points: { step: number; loss: number }[]; samplesPerSec: number; lr: number; trainSeconds: number; totalSteps: number }
  | { type: "eval"; step: number; auc: number; logLoss: number; accuracy: number; teacherAuc: number | null; teacherLogLoss: number | null; samples: number }
  | { type: "kernels"; step: number; kernels: KernelTime[]; timestamps: boolean; stepMs: number }
  | { type: "collectives"; step: number; devices: number; totalMs: number; phases: Record<string, number>; rounds: { label: string; sent: number[]; pairs: [number, number][]; ms: number }[] }
  | { type: "learned"; step: number; table: number; points: { x: number; y: number; c: number }[]; r2: number | null; colour: "teacher" | "popularity" }
  | { type: "prediction"; rows: { prob: number; teacher: number | null; text: string }[]; error?: string }
  | { type: "checkpoint"; bytes: Uint8Array; name: string }
  | { type: "loaded"; step: number; settings: Settings; name: string }
  | { type: "error"; message: string };
