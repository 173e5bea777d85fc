// embedding_backward_heads: flags[i] = 1 where a run of equal sorted keys starts
// (i == 0 or keys[i] != keys[i-1]), else 0, for i < n. Scanned next to number the unique rows.
// Bindings: params {n, num_chunks} (uniform), keys (read, sorted), flags (read_write).
// Dispatch: ceil(n / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

override WG: u32 = 64;

struct Params { n: u32, num_chunks: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> flags: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.n) { return; }
  var head = 1u;
  if (i > 0u && keys[i - 1u] == keys[i]) { head = 0u; }
  flags[i] = head;
}
