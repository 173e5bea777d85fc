// embedding_backward_segments: run-length encoding of the sorted keys.
// For each run head i (flags[i] == 1): segs[seg_id[i]] = (i, keys[i]) (start position, global row);
// the last position also writes run_ranges[0] = number of runs u and the end marker segs[u] = (n, ~0).
// seg_id is the exclusive scan of flags. Also gathers the per-position gradient info into sorted
// order, sorted_info[i] = pos_info[vals[i]], so the update reads it without an indirection.
// Bindings: params {n, num_chunks} (uniform), keys, flags, seg_id, vals, pos_info (read);
//           segs, run_ranges, sorted_info (read_write).
// Dispatch: ceil(n / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

override WG: u32 = 64;

struct Params { n: u32, num_chunks: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read> flags: array<u32>;
@group(0) @binding(3) var<storage, read> seg_id: array<u32>;
@group(0) @binding(4) var<storage, read_write> segs: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> run_ranges: array<u32>;
@group(0) @binding(6) var<storage, read> vals: array<u32>;
@group(0) @binding(7) var<storage, read> pos_info: array<vec2<u32>>;
@group(0) @binding(8) var<storage, read_write> sorted_info: array<vec2<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let n = params.n;
  if (i >= n) { return; }
  sorted_info[i] = pos_info[vals[i]];
  let head = flags[i];
  let s = seg_id[i];
  if (head != 0u) { segs[s] = vec2<u32>(i, keys[i]); }
  if (i == n - 1u) {
    let u = s + head;
    run_ranges[0] = u;
    segs[u] = vec2<u32>(n, 0xffffffffu);
  }
}
