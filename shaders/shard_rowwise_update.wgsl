// shard_rowwise_update: row-wise Adagrad update of a column shard, given the allreduced per-row sum
// of squared gradients over all d columns (row_sum, filled by shard_rowwise_partial.wgsl on every
// column shard of the table and summed by the per-row allreduce):
//   s_r += row_sum[run_slot[s]] / full_dim;  w_r,j -= lr * g_r,j / (sqrt(s_r) + eps)  (local columns j)
// which is embedding_backward_update.wgsl's rowwise branch (OPT 2) with the mean taken over the
// whole row instead of the shard's columns. g is recomputed in the same position order.
// Runs s in [run_ranges[1+2c], run_ranges[2+2c]) of chunk c, one thread per run, grid-stride.
// Bindings: params {chunk, row_start, dim, threads, full_dim}, optim (OptimParams) (uniform);
//           segs, run_ranges, sorted_info, grad_out, run_slot, row_sum (read); table, state (read_write).
// Dispatch: fixed workgroup count, one dispatch per weight chunk.
// Reference: src/kernels/reference/embedding_backward.ts (rowwise-adagrad over the whole row; the split must match it). Driver: src/kernels/embedding_rowwise_split.ts.

// #include "optim_params.wgsl"

override WG: u32 = 64;

struct Params { chunk: u32, row_start: u32, dim: u32, threads: u32, full_dim: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read> segs: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(4) var<storage, read> sorted_info: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> grad_out: array<f32>;
@group(0) @binding(6) var<storage, read> run_slot: array<u32>;
@group(0) @binding(7) var<storage, read> row_sum: array<f32>;
@group(0) @binding(8) var<storage, read_write> table: array<f32>;
@group(0) @binding(9) var<storage, read_write> state: array<f32>;

// #include "shard_rowwise_grad.wgsl"

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + wid.y * nwg.x) * WG + lid;
  let c = params.chunk;
  let first = run_ranges[1u + 2u * c];
  let last = run_ranges[2u + 2u * c];
  let dim = params.dim;
  for (var s = first + gid; s < last; s += params.threads) {
    let slot = run_slot[s];
    if (slot == 0xffffffffu) { continue; }
    let seg = segs[s];
    let start = seg.x;
    let end = segs[s + 1u].x;
    let local = seg.y - params.row_start;
    let wbase = local * dim;
    let m = state[local] + row_sum[slot] / f32(params.full_dim);
    state[local] = m;
    let den = sqrt(m) + optim.eps;
    for (var k0 = 0u; k0 < dim; k0 += CB) {
      let g = block_grad(start, end, k0);
      for (var j = 0u; j < CB; j++) {
        let k = k0 + j;
        if (k < dim) { table[wbase + k] = table[wbase + k] - optim.lr * (g[j] / den); }
      }
    }
  }
}
