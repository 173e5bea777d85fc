// embedding_backward_key_ranges: which sorted positions each weight chunk owns (the vec4 path of the
// embedding backward, which walks the sorted keys directly instead of run-length encoding them).
// Thread c (one per chunk) binary-searches the sorted keys[0..n) (global rows; the bad-index
// sentinel total_rows sorts last) for the chunk's global rows [chunk_rows[c], chunk_rows[c+1]) and
// writes run_ranges[1 + 2c] = first position, run_ranges[2 + 2c] = one past the last position;
// run_ranges[0] = n. Keys >= chunk_rows[C] (bad indices) belong to no chunk.
// Bindings: params {n, num_chunks} (uniform), keys, chunk_rows (read), run_ranges (read_write).
// Dispatch: ceil(num_chunks / WG) workgroups.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

override WG: u32 = 64;

struct Params { n: u32, num_chunks: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read> chunk_rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> run_ranges: array<u32>;

// First position in [0, n) whose key is >= row.
fn lower_bound(row: u32) -> u32 {
  var lo = 0u;
  var hi = params.n;
  while (lo < hi) {
    let mid = (lo + hi) / 2u;
    if (keys[mid] < row) { lo = mid + 1u; } else { hi = mid; }
  }
  return lo;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.num_chunks) { return; }
  if (c == 0u) { run_ranges[0] = params.n; }
  run_ranges[1u + 2u * c] = lower_bound(chunk_rows[c]);
  run_ranges[2u + 2u * c] = lower_bound(chunk_rows[c + 1u]);
}
