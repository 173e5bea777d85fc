// The finish_errors entry shared by the embedding-bag forward kernels (not a kernel): run as one
// invocation after the chunk dispatches, it describes the first bad lookup recorded in errors[0]
// (its bag by binary search over offsets, and its index value) unless already done.
// Needs from the includer: NONE, params.total_bags, offsets, indices, errors.

@compute @workgroup_size(1)
fn finish_errors() {
  let p = atomicLoad(&errors[0]);
  if (p == NONE || p == atomicLoad(&errors[4]) || p >= arrayLength(&indices)) { return; }
  atomicStore(&errors[4], p);
  atomicStore(&errors[2], indices[p]);
  // Largest bag k with offsets[k] <= p (the bag holding position p).
  var lo = 0u;
  var hi = params.total_bags;   // offsets[hi] = numIndices > p when offsets are valid
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (offsets[mid] <= p) { lo = mid; } else { hi = mid; }
  }
  atomicStore(&errors[1], lo);
}
