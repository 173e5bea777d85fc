// radix_sort_histogram: per-thread digit counts for one LSD radix pass.
// Thread t owns the contiguous run keys[t*per .. min((t+1)*per, n)) and counts
// digit = (key >> shift) & (radix - 1) over it; writes hist[digit * threads + t]
// (digit-major, so an exclusive scan of hist gives every (digit, thread) its
// first output slot, in stable order).
// Bindings: params {n, per, threads, shift, radix}, keys (read), hist (read_write, radix*threads).
// Dispatch: ceil(threads / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/sort.ts (stableSortRef). Driver: src/kernels/radix_sort.ts.
// Barrier-free; radix <= 256.

override WG: u32 = 64;

struct Params { n: u32, per: u32, threads: u32, shift: u32, radix: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys: array<u32>;
@group(0) @binding(2) var<storage, read_write> hist: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.threads) { return; }
  var counts: array<u32, 256>;
  let radix = params.radix;
  for (var d = 0u; d < radix; d++) { counts[d] = 0u; }
  let mask = radix - 1u;
  let shift = params.shift;
  let begin = t * params.per;
  let end = min(begin + params.per, params.n);
  for (var i = begin; i < end; i++) {
    let d = (keys[i] >> shift) & mask;
    counts[d] += 1u;
  }
  let threads = params.threads;
  for (var d = 0u; d < radix; d++) { hist[d * threads + t] = counts[d]; }
}
