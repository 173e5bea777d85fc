// embedding_backward_ranges: which runs (unique rows) each weight chunk owns.
// Thread c (one per chunk) binary-searches the run rows segs[0..u).y (sorted, u = run_ranges[0],
// 0 when n == 0) for the chunk's global rows [chunk_rows[c], chunk_rows[c+1]) and writes
// run_ranges[1 + 2c] = first run, run_ranges[2 + 2c] = one past the last run. Rows >= chunk_rows[C]
// (the sentinel of bad indices) belong to no chunk.
// Bindings: params {n, num_chunks} (uniform), segs, chunk_rows (read), run_ranges (read_write).
// Dispatch: ceil(num_chunks / WG) workgroups.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

override WG: u32 = 64;

struct Params { n: u32, num_chunks: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> segs: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> chunk_rows: array<u32>;
@group(0) @binding(3) var<storage, read_write> run_ranges: array<u32>;

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
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let c = gid.x;
  if (c >= params.num_chunks) { return; }
  var u = 0u;
  if (params.n > 0u) { u = run_ranges[0]; }
  run_ranges[1u + 2u * c] = lower_bound(u, chunk_rows[c]);
  run_ranges[2u + 2u * c] = lower_bound(u, chunk_rows[c + 1u]);
}
