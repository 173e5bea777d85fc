// scan_downsweep: second half of the barrier-free multi-level exclusive prefix sum of u32.
// Thread t walks its contiguous run [t*PER, min((t+1)*PER, n)) writing
// output[i] = offsets[t] + sum(input[t*PER .. i)) (offsets[t] = 0 when use_offsets == 0,
// i.e. at the top level, where a single thread covers everything).
// offsets is the exclusive scan of the run sums written by scan_reduce.
// Bindings: params {n, per, threads, use_offsets}, input (read), offsets (read), output (read_write).
// Dispatch: ceil(threads / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/sort.ts (exclusiveScanRef). Driver: src/kernels/scan.ts.

override WG: u32 = 64;

struct Params { n: u32, per: u32, threads: u32, use_offsets: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read_write> output: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.threads) { return; }
  let begin = t * params.per;
  let end = min(begin + params.per, params.n);
  var acc = 0u;
  if (params.use_offsets != 0u) { acc = offsets[t]; }
  for (var i = begin; i < end; i++) {
    let v = input[i];
    output[i] = acc;
    acc += v;
  }
}
