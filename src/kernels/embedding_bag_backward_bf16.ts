/**
 * Embedding-bag backward fused with the optimizer for a bf16 EmbeddingTableSet
 * (src/kernels/embedding_tables_bf16.ts): the same keys, radix sort and chunk key ranges as the
 * f32 path (embedding_segments.ts, key form), then shaders/embedding_backward_update_bf16.wgsl per
 * chunk (or its _vec4 form: vec4<u32> table units and vec4 gradients when d % 8 == 0 and the gradient
 * stride and offset are multiples of 4): the row's gradient summed in f32 in position order, the update (sgd / adagrad /
 * rowwise-adagrad, state f32) in f32 on the decoded weight, the result rounded back to bf16.
 * Rounding: "stochastic" (default; FBGEMM's choice for low-precision tables: unbiased, so updates
 * smaller than half a bf16 step still move the weight on average; random bits from a hash of
 * (seed, optimizer step, row, column): deterministic, a rerun of a step gives the same bits) or
 * "nearest" (round to nearest even). prepareEmbeddingBagBackward() routes bf16 sets here.
 */
import { createStorage, uploadUniform } from "../gpu/buffers.ts";
import type { Dispatch } from "../gpu/dispatch.ts";
import { KernelInputError } from "../gpu/errors.ts";
import { bindGroup, getKernel } from "../gpu/pipelines.ts";
import { embedding_backward_update_bf16 } from "../shaders/embedding_backward_update_bf16.ts";
import { embedding_backward_update_bf16_vec4 } from "../shaders/embedding_backward_update_bf16_vec4.ts";
import { embedding_backward_update_bf16_vec4_adagrad } from "../shaders/embedding_backward_update_bf16_vec4_adagrad.ts";
import type { EmbeddingBagBackwardArgs, PreparedEmbeddingBackward } from "./embedding_bag_backward.ts";
import { preparedBackward, prepareEmbeddingSegments } from "./embedding_segments.ts";
import { bf16Words } from "./embedding_tables_bf16.ts";

const WG = 64;
const MAX_UPDATE_WORKGROUPS = 512;
const OPT_CODE = { sgd: 0, adagrad: 1, "rowwise-adagrad": 2 } as const;

export type Bf16Rounding = "stochastic" | "nearest";

/** Backward + update of a bf16 set; `args` already validated by prepareEmbeddingBagBackward. */
export function prepareEmbeddingBagBackwardBf16(device: GPUDevice, args: EmbeddingBagBackwardArgs): PreparedEmbeddingBackward {
  const { tables, state, bags, gradOut, gradStride, gradOffset, maxIndices, optim } = args;
  const label = args.label ?? "embedding-backward-bf16";
  const fail = (msg: string): never => {
    throw new KernelInputError(`${label}: ${msg}`);
  };
  if (tables.precision !== "bf16") fail("prepareEmbeddingBagBackwardBf16 needs a bf16 table set");
  const rounding = args.rounding ?? "stochastic";
  if (rounding !== "stochastic" && rounding !== "nearest") fail(`rounding must be "stochastic" or "nearest", got "${rounding as string}"`);
  const seed = args.roundingSeed ?? 0;
  if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) fail(`roundingSeed must be an integer in [0, 2^32), got ${seed}`);
  const opt = OPT_CODE[state.kind];
  const dim = tables.dim;
  // Adagrad's f32 state is twice a bf16 chunk's bytes: it must still fit one binding.
  const bind = device.limits.maxStorageBufferBindingSize;
  for (const [i, b] of state.chunks.entries()) {
    if (b.size > bind) {
      fail(`the ${state.kind} state of chunk ${i} takes ${b.size} bytes, more than one storage binding (${bind}): f32 state is twice a bf16 chunk, ` +
        `so create the bf16 table set with maxChunkBytes <= ${Math.floor(bind / 2)} for adagrad (DlrmModel does)`);
    }
  }
  const owned: GPUBuffer[] = [];
  const own = <X extends GPUBuffer>(b: X): X => (owned.push(b), b);
  const cap = Math.max(1, maxIndices);
  const seg = prepareEmbeddingSegments(device, {
    tables, bags, gradStride, gradOffset, mean: (args.pooling ?? "sum") === "mean", maxIndices, runs: false, label,
  });
  const dummy = own(createStorage(device, 16, `${label}:unused`));
  // Update kernel: vec4 (vec4<u32> table units, vec4 gradients: d % 8 == 0, gradStride and gradOffset
  // multiples of 4) or scalar (u32 words, any d); "auto" picks vec4 when it applies.
  const vec4Ok = dim % 8 === 0 && gradStride % 4 === 0 && gradOffset % 4 === 0;
  const variant = args.updateVariant ?? "auto";
  if (variant === "vec4" && !vec4Ok) fail(`updateVariant "vec4" on bf16 tables needs dim a multiple of 8 and gradStride, gradOffset multiples of 4 (got ${dim}, ${gradStride}, ${gradOffset})`);
  const vec4 = variant === "vec4" || (variant === "auto" && vec4Ok);
  const shader = !vec4 ? embedding_backward_update_bf16 : state.kind === "adagrad" ? embedding_backward_update_bf16_vec4_adagrad : embedding_backward_update_bf16_vec4;
  const k = getKernel(device, { shader, constants: { WG, OPT: opt } });
  const workgroups = Math.min(MAX_UPDATE_WORKGROUPS, Math.ceil(cap / WG));
  const updD: Dispatch[] = tables.chunks.map((c, i) => {
    const params = own(uploadUniform(device, new Uint32Array([
      i, c.rowStart, dim, bf16Words(dim), workgroups * WG, seed, rounding === "stochastic" ? 1 : 0, 0,
    ]), `${label}:update${i}:params`));
    return {
      label: `${label}:update-bf16:${state.kind}:chunk${i}`,
      kernel: k,
      bindGroups: [bindGroup(device, k, {
        params, optim, keys: seg.keys, vals: seg.vals, run_ranges: seg.runRanges, pos_info: seg.posInfo,
        grad_out: gradOut, table: c.buffer, state: state.kind === "sgd" ? dummy : state.chunks[i]!,
      }, `${label}:update${i}`)],
      workgroups: [workgroups],
    };
  });
  return preparedBackward(device, { seg, updates: updD, owned, bags, tables, maxIndices, fail });
}
