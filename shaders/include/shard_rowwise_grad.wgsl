// Shared by shard_rowwise_partial.wgsl and shard_rowwise_update.wgsl (column shards under
// row-wise Adagrad). The including shader declares `sorted_info`, `grad_out` and `params.dim`.
const CB: u32 = 8u;

// Gradient of local columns k0 .. k0+CB of the run [start, end), summed in sorted position order
// (the same order as embedding_backward_update.wgsl, so a run's g is bit-identical to the fused path's).
fn block_grad(start: u32, end: u32, k0: u32) -> array<f32, CB> {
  var g: array<f32, CB>;
  let dim = params.dim;
  for (var i = start; i < end; i++) {
    let info = sorted_info[i];
    let f = bitcast<f32>(info.y);
    let base = info.x + k0;
    for (var j = 0u; j < CB; j++) {
      if (k0 + j < dim) { g[j] += f * grad_out[base + j]; }
    }
  }
  return g;
}
