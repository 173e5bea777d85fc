// embedding_bag_forward_bf16_rows: embedding_bag_forward_bf16.wgsl (see its header: bf16 tables, f32
// sums in bag order, chunks, errors) with ONE invocation per bag holding the whole row, as
// embedding_bag_forward_rows.wgsl does for f32 tables: ROWU vec4<u32> units per row (8 bf16 each,
// d = 8 * ROWU <= 64), 2 * ROWU vec4<f32> accumulators, no column loop; one index load per lookup
// for the whole row. Lookups outside this chunk (or bad) are skipped by a branch.
// Needs d % 8 == 0 and the output stride and offset multiples of 4 (out is written as vec4s:
// unit k's elements 8k .. 8k+7 are (lo.x, hi.x, lo.y, hi.y), (lo.z, hi.z, lo.w, hi.w)).
// Why: on lavapipe every lane-varying access is a per-lane scalar loop; one invocation per bag
// makes each lookup one index load and ROWU row loads (half the f32 rows kernel's), where the
// lane-per-unit kernel repeats the index load and loop control per unit.
// Same bindings (out as vec4), params (dim, units) and finish_errors entry as embedding_bag_forward_bf16.wgsl.
// Wrapper: src/kernels/embedding_bag_forward_bf16.ts. Reference: src/kernels/reference/bf16.ts +
//   src/kernels/reference/embedding_bag.ts.

alias V = vec4<f32>;
alias W = vec4<u32>;
const SH = vec4<u32>(16u);
const HI = vec4<u32>(0xffff0000u);

override WG: u32 = 64;
override ROWU: u32 = 2u;   // vec4<u32> units per row, 1..8
override WEIGHTED: bool = false;

const NONE: u32 = 0xffffffffu;

struct Params {
  batch_size: u32, table_begin: u32, num_bags: u32, dim: u32, units: u32, row_start: u32, row_count: u32,
  out_stride: u32, out_offset: u32, mean: u32, total_bags: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table_info: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read> table: array<W>;
@group(0) @binding(6) var<storage, read_write> out: array<V>;   // stride and offset in floats, multiples of 4
@group(0) @binding(7) var<storage, read_write> errors: array<atomic<u32>>;

struct Acc { l0: V, h0: V, l1: V, h1: V, l2: V, h2: V, l3: V, h3: V, l4: V, h4: V, l5: V, h5: V, l6: V, h6: V, l7: V, h7: V }

fn add_row(acc: ptr<function, Acc>, o: u32, w: f32) {
  { let x = table[o + 0u]; (*acc).l0 += bitcast<V>(x << SH) * w; (*acc).h0 += bitcast<V>(x & HI) * w; }
  if (ROWU > 1u) { let x = table[o + 1u]; (*acc).l1 += bitcast<V>(x << SH) * w; (*acc).h1 += bitcast<V>(x & HI) * w; }
  if (ROWU > 2u) { let x = table[o + 2u]; (*acc).l2 += bitcast<V>(x << SH) * w; (*acc).h2 += bitcast<V>(x & HI) * w; }
  if (ROWU > 3u) { let x = table[o + 3u]; (*acc).l3 += bitcast<V>(x << SH) * w; (*acc).h3 += bitcast<V>(x & HI) * w; }
  if (ROWU > 4u) { let x = table[o + 4u]; (*acc).l4 += bitcast<V>(x << SH) * w; (*acc).h4 += bitcast<V>(x & HI) * w; }
  if (ROWU > 5u) { let x = table[o + 5u]; (*acc).l5 += bitcast<V>(x << SH) * w; (*acc).h5 += bitcast<V>(x & HI) * w; }
  if (ROWU > 6u) { let x = table[o + 6u]; (*acc).l6 += bitcast<V>(x << SH) * w; (*acc).h6 += bitcast<V>(x & HI) * w; }
  if (ROWU > 7u) { let x = table[o + 7u]; (*acc).l7 += bitcast<V>(x << SH) * w; (*acc).h7 += bitcast<V>(x & HI) * w; }
}

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
  for (var p = s; p < e; p++) {
    let idx = indices[p];
    let bad = idx >= info.y;
    if (bad) { atomicMin(&errors[0], p); }   // skipped; checkEmbeddingErrors() raises it
    let r = info.x + idx - params.row_start;  // wraps to a huge value when the row is below this chunk
    var w = 1.0;
    if (WEIGHTED) { w = weights[p]; }
    if (!bad && r < params.row_count) { add_row(&acc, r * ROWU, w); }
  }
  var scale = 1.0;
  if (params.mean == 1u && e > s) { scale = 1.0 / f32(e - s); }
  let o = (b * params.out_stride + params.out_offset) / 4u + t * 2u * ROWU;
  { put(o + 0u, vec4<f32>(acc.l0.x, acc.h0.x, acc.l0.y, acc.h0.y) * scale, accumulate); put(o + 1u, vec4<f32>(acc.l0.z, acc.h0.z, acc.l0.w, acc.h0.w) * scale, accumulate); }
  if (ROWU > 1u) { put(o + 2u, vec4<f32>(acc.l1.x, acc.h1.x, acc.l1.y, acc.h1.y) * scale, accumulate); put(o + 3u, vec4<f32>(acc.l1.z, acc.h1.z, acc.l1.w, acc.h1.w) * scale, accumulate); }
  if (ROWU > 2u) { put(o + 4u, vec4<f32>(acc.l2.x, acc.h2.x, acc.l2.y, acc.h2.y) * scale, accumulate); put(o + 5u, vec4<f32>(acc.l2.z, acc.h2.z, acc.l2.w, acc.h2.w) * scale, accumulate); }
  if (ROWU > 3u) { put(o + 6u, vec4<f32>(acc.l3.x, acc.h3.x, acc.l3.y, acc.h3.y) * scale, accumulate); put(o + 7u, vec4<f32>(acc.l3.z, acc.h3.z, acc.l3.w, acc.h3.w) * scale, accumulate); }
  if (ROWU > 4u) { put(o + 8u, vec4<f32>(acc.l4.x, acc.h4.x, acc.l4.y, acc.h4.y) * scale, accumulate); put(o + 9u, vec4<f32>(acc.l4.z, acc.h4.z, acc.l4.w, acc.h4.w) * scale, accumulate); }
  if (ROWU > 5u) { put(o + 10u, vec4<f32>(acc.l5.x, acc.h5.x, acc.l5.y, acc.h5.y) * scale, accumulate); put(o + 11u, vec4<f32>(acc.l5.z, acc.h5.z, acc.l5.w, acc.h5.w) * scale, accumulate); }
  if (ROWU > 6u) { put(o + 12u, vec4<f32>(acc.l6.x, acc.h6.x, acc.l6.y, acc.h6.y) * scale, accumulate); put(o + 13u, vec4<f32>(acc.l6.z, acc.h6.z, acc.l6.w, acc.h6.w) * scale, accumulate); }
  if (ROWU > 7u) { put(o + 14u, vec4<f32>(acc.l7.x, acc.h7.x, acc.l7.y, acc.h7.y) * scale, accumulate); put(o + 15u, vec4<f32>(acc.l7.z, acc.h7.z, acc.l7.w, acc.h7.w) * scale, accumulate); }
}

// #include "embedding_bag_finish_errors.wgsl"
