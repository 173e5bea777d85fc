// Shared tail of embedding_bag_forward_rows.wgsl and embedding_bag_forward_rows2.wgsl (not a kernel):
// the entry point (one invocation per bag: bag bounds check, the lookups through the including
// file's `lookup`, mean scaling, the row written or accumulated) and the finish_errors entry.
// Needs from the includer: V, WG, ROWV, WEIGHTED, NONE, Acc, params, table_info, offsets,
// indices, weights, out, errors and fn lookup(acc, p, table_first_row, table_rows).

fn put(o: u32, v: V, accumulate: bool) {
  if (accumulate) { out[o] = out[o] + v; } else { out[o] = v; }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let bag = (wid.x + wid.y * nwg.x) * WG + lid;
  if (bag >= params.num_bags) { return; }
  let gbag = params.table_begin * params.batch_size + bag;
  let t = gbag / params.batch_size;
  let b = gbag - t * params.batch_size;
  let info = table_info[t];
  let accumulate = info.x < params.row_start;

  var s = offsets[gbag];
  var e = offsets[gbag + 1u];
  var limit = arrayLength(&indices);
  if (WEIGHTED) { limit = min(limit, arrayLength(&weights)); }
  if (e < s || e > limit) {
    atomicMin(&errors[3], gbag);
    s = 0u;
    e = 0u;
  }
  var acc: Acc;
  if (ROWV <= 8u) {
    // Short rows: the first lookup peeled (one-index bags run straight-line code).
    if (e > s) {
      lookup(&acc, s, info.x, info.y);
      for (var p = s + 1u; p < e; p++) { lookup(&acc, p, info.x, info.y); }
    }
  } else {
    // Long rows: one copy of the (large) lookup body; halves the compile time.
    for (var p = s; p < e; p++) { lookup(&acc, p, info.x, info.y); }
  }
  var scale = 1.0;
  if (params.mean == 1u && e > s) { scale = 1.0 / f32(e - s); }
  let o = b * params.out_stride + params.out_offset + t * ROWV;
  put(o, acc.a0 * scale, accumulate);
  if (ROWV > 1u) { put(o + 1u, acc.a1 * scale, accumulate); }
  if (ROWV > 2u) { put(o + 2u, acc.a2 * scale, accumulate); }
  if (ROWV > 3u) { put(o + 3u, acc.a3 * scale, accumulate); }
  if (ROWV > 4u) { put(o + 4u, acc.a4 * scale, accumulate); }
  if (ROWV > 5u) { put(o + 5u, acc.a5 * scale, accumulate); }
  if (ROWV > 6u) { put(o + 6u, acc.a6 * scale, accumulate); }
  if (ROWV > 7u) { put(o + 7u, acc.a7 * scale, accumulate); }
  if (ROWV > 8u) { put(o + 8u, acc.a8 * scale, accumulate); }
  if (ROWV > 9u) { put(o + 9u, acc.a9 * scale, accumulate); }
  if (ROWV > 10u) { put(o + 10u, acc.a10 * scale, accumulate); }
  if (ROWV > 11u) { put(o + 11u, acc.a11 * scale, accumulate); }
  if (ROWV > 12u) { put(o + 12u, acc.a12 * scale, accumulate); }
  if (ROWV > 13u) { put(o + 13u, acc.a13 * scale, accumulate); }
  if (ROWV > 14u) { put(o + 14u, acc.a14 * scale, accumulate); }
  if (ROWV > 15u) { put(o + 15u, acc.a15 * scale, accumulate); }
}

// #include "embedding_bag_finish_errors.wgsl"
