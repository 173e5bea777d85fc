// radix_sort_offsets: the exclusive scan of one LSD radix pass's digit counts in ONE dispatch (instead
// of scan.ts's reduce / downsweep levels: 3 dispatches per pass), for small histograms.
// hist[d * threads + t] = count of digit d in thread t's run (radix_sort_histogram); writes
// offsets[d * threads + t] = sum of all counts before (d, t) in digit-major order, i.e. the first
// output slot of thread t's elements of digit d (radix_sort_scatter reads it).
// One workgroup of WG (>= radix) lanes; lane d < radix owns digit d: it sums its digit's counts
// (a contiguous run of `threads` words), lane 0 scans the radix totals in workgroup memory, then
// lane d rewalks its run writing the offsets. Two barriers; no other synchronisation.
// Why: on lavapipe a dispatch has a fixed cost that dominates scans of a few 10k words (config A's
// backward sorts 53k keys in 3 passes: its digit-count scans were 9 of 19 dispatches).
// Bindings: params {n, per, threads, shift, radix} (uniform, the pass's), hist (read), offsets (read_write).
// Dispatch: 1 workgroup. Reference: src/kernels/reference/sort.ts (exclusiveScanRef).
// Driver: src/kernels/radix_sort.ts.

override WG: u32 = 256;

struct Params { n: u32, per: u32, threads: u32, shift: u32, radix: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> hist: array<u32>;
@group(0) @binding(2) var<storage, read_write> offsets: array<u32>;

var<workgroup> totals: array<u32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) d: u32) {
  let threads = params.threads;
  let radix = params.radix;
  let base = d * threads;
  var sum = 0u;
  if (d < radix) {
    for (var t = 0u; t < threads; t++) { sum += hist[base + t]; }
  }
  totals[d] = sum;
  workgroupBarrier();
  if (d == 0u) {
    var acc = 0u;
    for (var e = 0u; e < radix; e++) {
      let v = totals[e];
      totals[e] = acc;
      acc += v;
    }
  }
  workgroupBarrier();
  if (d < radix) {
    var acc = totals[d];
    for (var t = 0u; t < threads; t++) {
      let v = hist[base + t];
      offsets[base + t] = acc;
      acc += v;
    }
  }
}
