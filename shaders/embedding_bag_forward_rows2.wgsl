// embedding_bag_forward_rows2: embedding_bag_forward_rows.wgsl (see its header) with TWO chunks of
// the table set bound at once (table0 = global rows [row_start, row_start + split), table1 = the
// next row_count - split rows), so a table spanning both chunks is walked once per bag instead of
// once per chunk (offsets, indices, the loop and the output read-modify-write once). Config B of
// bench/kernels.ts: every 1M x 64 table spans two of lavapipe's 128 MiB bindings.
// A lookup picks its chunk by a branch on its row (no dummy-row read); lookups in neither chunk
// are skipped. Same params as the one-chunk kernel plus `split`; same finish_errors entry.
// 8 storage buffers: the WebGPU default maxStorageBuffersPerShaderStage.
// Summation order per output element: positions in order from 0.0 (as the other kernels).
// Wrapper: src/kernels/embedding_bag_forward.ts (chunk pairs). Reference:
//   src/kernels/reference/embedding_bag.ts (embeddingBagForwardRef).

alias V = vec4<f32>;

override WG: u32 = 64;
override ROWV: u32 = 4u;    // vec4s per row, 1..16
override WEIGHTED: bool = false;

const NONE: u32 = 0xffffffffu;

struct Params {
  batch_size: u32, table_begin: u32, num_bags: u32, dim: u32, row_start: u32, row_count: u32,
  out_stride: u32, out_offset: u32, mean: u32, total_bags: u32,
  split: u32,   // rows of the first chunk (table0); row_count covers both
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table_info: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read> table0: array<V>;
@group(0) @binding(8) var<storage, read> table1: array<V>;
@group(0) @binding(6) var<storage, read_write> out: array<V>;
@group(0) @binding(7) var<storage, read_write> errors: array<atomic<u32>>;

struct Acc { a0: V, a1: V, a2: V, a3: V, a4: V, a5: V, a6: V, a7: V, a8: V, a9: V, a10: V, a11: V, a12: V, a13: V, a14: V, a15: V }

// Adds w * (row at o of table0) to acc.
fn add_row0(acc: ptr<function, Acc>, o: u32, w: f32) {
  if (WEIGHTED) {
    (*acc).a0 += table0[o] * w;
    if (ROWV > 1u) { (*acc).a1 += table0[o + 1u] * w; }
    if (ROWV > 2u) { (*acc).a2 += table0[o + 2u] * w; }
    if (ROWV > 3u) { (*acc).a3 += table0[o + 3u] * w; }
    if (ROWV > 4u) { (*acc).a4 += table0[o + 4u] * w; }
    if (ROWV > 5u) { (*acc).a5 += table0[o + 5u] * w; }
    if (ROWV > 6u) { (*acc).a6 += table0[o + 6u] * w; }
    if (ROWV > 7u) { (*acc).a7 += table0[o + 7u] * w; }
    if (ROWV > 8u) { (*acc).a8 += table0[o + 8u] * w; }
    if (ROWV > 9u) { (*acc).a9 += table0[o + 9u] * w; }
    if (ROWV > 10u) { (*acc).a10 += table0[o + 10u] * w; }
    if (ROWV > 11u) { (*acc).a11 += table0[o + 11u] * w; }
    if (ROWV > 12u) { (*acc).a12 += table0[o + 12u] * w; }
    if (ROWV > 13u) { (*acc).a13 += table0[o + 13u] * w; }
    if (ROWV > 14u) { (*acc).a14 += table0[o + 14u] * w; }
    if (ROWV > 15u) { (*acc).a15 += table0[o + 15u] * w; }
  } else {
    (*acc).a0 += table0[o];
    if (ROWV > 1u) { (*acc).a1 += table0[o + 1u]; }
    if (ROWV > 2u) { (*acc).a2 += table0[o + 2u]; }
    if (ROWV > 3u) { (*acc).a3 += table0[o + 3u]; }
    if (ROWV > 4u) { (*acc).a4 += table0[o + 4u]; }
    if (ROWV > 5u) { (*acc).a5 += table0[o + 5u]; }
    if (ROWV > 6u) { (*acc).a6 += table0[o + 6u]; }
    if (ROWV > 7u) { (*acc).a7 += table0[o + 7u]; }
    if (ROWV > 8u) { (*acc).a8 += table0[o + 8u]; }
    if (ROWV > 9u) { (*acc).a9 += table0[o + 9u]; }
    if (ROWV > 10u) { (*acc).a10 += table0[o + 10u]; }
    if (ROWV > 11u) { (*acc).a11 += table0[o + 11u]; }
    if (ROWV > 12u) { (*acc).a12 += table0[o + 12u]; }
    if (ROWV > 13u) { (*acc).a13 += table0[o + 13u]; }
    if (ROWV > 14u) { (*acc).a14 += table0[o + 14u]; }
    if (ROWV > 15u) { (*acc).a15 += table0[o + 15u]; }
  }
}

// Adds w * (row at o of table1) to acc.
fn add_row1(acc: ptr<function, Acc>, o: u32, w: f32) {
  if (WEIGHTED) {
    (*acc).a0 += table1[o] * w;
    if (ROWV > 1u) { (*acc).a1 += table1[o + 1u] * w; }
    if (ROWV > 2u) { (*acc).a2 += table1[o + 2u] * w; }
    if (ROWV > 3u) { (*acc).a3 += table1[o + 3u] * w; }
    if (ROWV > 4u) { (*acc).a4 += table1[o + 4u] * w; }
    if (ROWV > 5u) { (*acc).a5 += table1[o + 5u] * w; }
    if (ROWV > 6u) { (*acc).a6 += table1[o + 6u] * w; }
    if (ROWV > 7u) { (*acc).a7 += table1[o + 7u] * w; }
    if (ROWV > 8u) { (*acc).a8 += table1[o + 8u] * w; }
    if (ROWV > 9u) { (*acc).a9 += table1[o + 9u] * w; }
    if (ROWV > 10u) { (*acc).a10 += table1[o + 10u] * w; }
    if (ROWV > 11u) { (*acc).a11 += table1[o + 11u] * w; }
    if (ROWV > 12u) { (*acc).a12 += table1[o + 12u] * w; }
    if (ROWV > 13u) { (*acc).a13 += table1[o + 13u] * w; }
    if (ROWV > 14u) { (*acc).a14 += table1[o + 14u] * w; }
    if (ROWV > 15u) { (*acc).a15 += table1[o + 15u] * w; }
  } else {
    (*acc).a0 += table1[o];
    if (ROWV > 1u) { (*acc).a1 += table1[o + 1u]; }
    if (ROWV > 2u) { (*acc).a2 += table1[o + 2u]; }
    if (ROWV > 3u) { (*acc).a3 += table1[o + 3u]; }
    if (ROWV > 4u) { (*acc).a4 += table1[o + 4u]; }
    if (ROWV > 5u) { (*acc).a5 += table1[o + 5u]; }
    if (ROWV > 6u) { (*acc).a6 += table1[o + 6u]; }
    if (ROWV > 7u) { (*acc).a7 += table1[o + 7u]; }
    if (ROWV > 8u) { (*acc).a8 += table1[o + 8u]; }
    if (ROWV > 9u) { (*acc).a9 += table1[o + 9u]; }
    if (ROWV > 10u) { (*acc).a10 += table1[o + 10u]; }
    if (ROWV > 11u) { (*acc).a11 += table1[o + 11u]; }
    if (ROWV > 12u) { (*acc).a12 += table1[o + 12u]; }
    if (ROWV > 13u) { (*acc).a13 += table1[o + 13u]; }
    if (ROWV > 14u) { (*acc).a14 += table1[o + 14u]; }
    if (ROWV > 15u) { (*acc).a15 += table1[o + 15u]; }
  }
}

// Position p of a bag of table t: adds its row from the chunk that holds it, if one of the two does;
// flags a bad index, which is never read (skipped, as in the other kernels).
fn lookup(acc: ptr<function, Acc>, p: u32, base: u32, rows: u32) {
  let idx = indices[p];
  let bad = idx >= rows;
  if (bad) { atomicMin(&errors[0], p); }   // checkEmbeddingErrors() raises it
  let r = base + idx - params.row_start;   // wraps to a huge value when the row is below these chunks
  var w = 1.0;
  if (WEIGHTED) { w = weights[p]; }
  if (!bad && r < params.row_count) {
    if (r < params.split) {
      add_row0(acc, r * ROWV, w);
    } else {
      add_row1(acc, (r - params.split) * ROWV, w);
    }
  }
}

// #include "embedding_bag_forward_rows_main.wgsl"
