// shard_rowwise_partial: per unique row of a column shard, the partial sum of squared gradients over
// the shard's own columns, written where the per-row allreduce (src/shard/model.ts) sums it with the
// table's other column shards. Row-wise Adagrad needs s_r += mean over ALL d columns of g_r,k^2; a
// column shard holds only its columns, so each one contributes sum_{k in its columns} g_r,k^2.
// Input: the sorted runs of embedding_backward_segments.wgsl (run s = global row segs[s].y, positions
// [segs[s].x, segs[s+1].x)), sorted_info (gradient address, factor) per sorted position.
// For run s of shard k (rows [row_base_k, row_base_k + rows_k) of the set):
//   first_k = first run with row >= row_base_k (binary search)
//   slot    = slot_offset_k + (s - first_k)          (the row's place in the table's segment)
//   partial[slot] = sum over local columns j (in order) of g_j^2, g summed in position order
//   run_slot[s]   = slot   (0xffffffff for the bad-index sentinel run)
// The column shards of one table see the same lookups, so their u-th unique rows are the same row:
// the segments line up across devices and a plain elementwise allreduce sums them.
// Bindings: params {n, dim, num_shards, threads} (uniform); segs, run_ranges, sorted_info, grad_out,
//           shard_info (vec4: row_base, rows, slot_offset, slot_capacity) (read);
//           partial, run_slot (read_write).
// Dispatch: fixed workgroup count, grid-stride over the runs.
// Reference: src/kernels/reference/embedding_backward.ts (rowwise-adagrad over the whole row; the split must match it). Driver: src/kernels/embedding_rowwise_split.ts.

override WG: u32 = 64;

struct Params { n: u32, dim: u32, num_shards: u32, threads: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> segs: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(3) var<storage, read> sorted_info: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read> shard_info: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;
@group(0) @binding(7) var<storage, read_write> run_slot: array<u32>;

// #include "shard_rowwise_grad.wgsl"

// First run in [0, u) whose row is >= row.
fn lower_bound(u: u32, row: u32) -> u32 {
  var lo = 0u;
  var hi = u;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (segs[mid].y < row) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + wid.y * nwg.x) * WG + lid;
  if (params.n == 0u) { return; }
  let u = run_ranges[0];
  for (var s = gid; s < u; s += params.threads) {
    let seg = segs[s];
    let row = seg.y;
    // The shard holding the row (shards are in increasing row_base order): last k with row_base_k <= row.
    var lo = 0u;
    var hi = params.num_shards;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      if (shard_info[mid].x <= row) { lo = mid + 1u; } else { hi = mid; }
    }
    var slot = 0xffffffffu;
    if (lo > 0u) {
      let info = shard_info[lo - 1u];
      if (row - info.x < info.y) {
        let at = s - lower_bound(u, info.x);
        if (at < info.w) { slot = info.z + at; }
      }
    }
    run_slot[s] = slot;
    if (slot == 0xffffffffu) { continue; }
    let start = seg.x;
    let end = segs[s + 1u].x;
    var ss = 0.0;
    for (var k0 = 0u; k0 < params.dim; k0 += CB) {
      let g = block_grad(start, end, k0);
      for (var j = 0u; j < CB; j++) {
        if (k0 + j < params.dim) { ss += g[j] * g[j]; }
      }
    }
    partial[slot] = ss;
  }
}
