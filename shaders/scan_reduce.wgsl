// scan_reduce: first half of a barrier-free multi-level exclusive prefix sum of u32.
// Thread t sums its contiguous run input[t*PER .. min((t+1)*PER, n)) into sums[t].
// Bindings: params {n, per, threads}, input (read), sums (read_write, >= threads entries).
// Dispatch: ceil(threads / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/sort.ts (exclusiveScanRef). Driver: src/kernels/scan.ts.
// No barriers and no workgroup memory: software GPUs run lanes as SIMD and barriers are costly.

override WG: u32 = 64;

struct Params { n: u32, per: u32, threads: u32, use_offsets: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> sums: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.threads) { return; }
  let begin = t * params.per;
  let end = min(begin + params.per, params.n);
  var acc = 0u;
  for (var i = begin; i < end; i++) { acc += input[i]; }
  sums[t] = acc;
}
