/** Names the adapter the GPU tests run on; fails the run when there is none. */
import { requestAdapter } from "../src/gpu/context.ts";
import { detectHost } from "../src/gpu/host.ts";

export default async function setup(): Promise<void> {
  const adapter = await requestAdapter();
  const info = adapter.info;
  const name = info.description || info.device || info.vendor || "unknown";
  const icd = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.VK_ICD_FILENAMES;
  console.log(`GPU tests on ${detectHost()}: adapter "${name}" (vendor ${info.vendor || "?"})${icd ? `, VK_ICD_FILENAMES=${icd}` : ""}`);
}
