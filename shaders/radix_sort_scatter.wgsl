// radix_sort_scatter: stable scatter of one LSD radix pass.
// Thread t rewalks its run keys_in[t*per .. min((t+1)*per, n)) in order; an element
// with digit d goes to slot offsets[d * threads + t] + (number of earlier elements of
// the run with digit d). offsets is the exclusive scan of radix_sort_histogram's hist.
// Bindings: params {n, per, threads, shift, radix}, keys_in, vals_in, offsets (read),
//           keys_out, vals_out (read_write).
// Dispatch: ceil(threads / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/sort.ts (stableSortRef). Driver: src/kernels/radix_sort.ts.

override WG: u32 = 64;

struct Params { n: u32, per: u32, threads: u32, shift: u32, radix: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys_in: array<u32>;
@group(0) @binding(2) var<storage, read> vals_in: array<u32>;
@group(0) @binding(3) var<storage, read> offsets: array<u32>;
@group(0) @binding(4) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> vals_out: array<u32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let t = (wid.x + wid.y * nwg.x) * WG + lid;
  if (t >= params.threads) { return; }
  let radix = params.radix;
  let threads = params.threads;
  var next: array<u32, 256>;
  for (var d = 0u; d < radix; d++) { next[d] = offsets[d * threads + t]; }
  let mask = radix - 1u;
  let shift = params.shift;
  let begin = t * params.per;
  let end = min(begin + params.per, params.n);
  for (var i = begin; i < end; i++) {
    let k = keys_in[i];
    let d = (k >> shift) & mask;
    let dst = next[d];
    next[d] = dst + 1u;
    keys_out[dst] = k;
    vals_out[dst] = vals_in[i];
  }
}
