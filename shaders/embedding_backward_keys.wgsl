// embedding_backward_keys: sort keys and per-position gradient info for the embedding-bag backward.
// One thread per bag (t, b) = bag t*B + b, walking its positions p in offsets[bag] .. offsets[bag+1]:
//   keys[p] = rowBase[t] + indices[p]          (global row id; the sort key)
//   vals[p] = p                                 (the sort value: position, keeps the order)
//   pos_info[p] = (b*grad_stride + grad_offset + t*dim,  bitcast(w_p * scale))
//     scale = 1 / bag length for mean pooling, else 1; w_p = weights[p] or 1.
// An index >= rows[t] is never clamped: its key becomes the sentinel total_rows (skipped
// by the update) and status[0] counts it, status[1] keeps the smallest bad position.
// Bindings: params, offsets, indices, weights, table_info (rowBase, rows per table) (read);
//           keys, vals, pos_info (read_write); status (atomic).
// Dispatch: ceil(T*B / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/embedding_backward.ts. Driver: src/kernels/embedding_bag_backward.ts.

override WG: u32 = 64;
// vals[p] = the gradient address (base) instead of p, and no pos_info: for the vec4 update without
// weights or mean (factor 1), which then reads its gradient rows without the pos_info gather.
// The stable sort keeps the positions' order within a run either way.
override DIRECT: bool = false;

struct Params {
  num_bags: u32, batch_size: u32, total_rows: u32, dim: u32,
  grad_stride: u32, grad_offset: u32, mean: u32, has_weights: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> offsets: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;
@group(0) @binding(4) var<storage, read> table_info: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read_write> keys: array<u32>;
@group(0) @binding(6) var<storage, read_write> vals: array<u32>;
@group(0) @binding(7) var<storage, read_write> pos_info: array<vec2<u32>>;
@group(0) @binding(8) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let bag = (wid.x + wid.y * nwg.x) * WG + lid;
  if (bag >= params.num_bags) { return; }
  let t = bag / params.batch_size;
  let b = bag - t * params.batch_size;
  let info = table_info[t];
  let start = offsets[bag];
  let end = offsets[bag + 1u];
  var scale = 1.0;
  if (params.mean != 0u && end > start) { scale = 1.0 / f32(end - start); }
  let base = b * params.grad_stride + params.grad_offset + t * params.dim;
  for (var p = start; p < end; p++) {
    let idx = indices[p];
    var key = info.x + idx;
    if (idx >= info.y) {
      atomicAdd(&status[0], 1u);
      atomicMin(&status[1], p);
      key = params.total_rows;
    }
    var f = scale;
    if (params.has_weights != 0u) { f = weights[p] * scale; }
    keys[p] = key;
    if (DIRECT) {
      vals[p] = base;
    } else {
      vals[p] = p;
      pos_info[p] = vec2<u32>(base, bitcast<u32>(f));
    }
  }
}
