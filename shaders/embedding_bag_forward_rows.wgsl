// embedding_bag_forward_rows: embedding_bag_forward.wgsl (see its header for what it computes, the
// chunks and the error handling) for short rows: ONE invocation per bag holds the whole row,
// ROWV vec4s (d = 4 * ROWV <= 64), as unrolled accumulators; no column loop, and the bag's first
// lookup is peeled out of the position loop, so a one-index bag (Criteo-style one-hot features)
// runs straight-line code; a lookup outside this chunk adds 0.0 from a dummy row instead of branching
// (sum unchanged up to the sign of a zero) unless BRANCH. Used when d, the output stride and the output offset are multiples of 4
// and d <= 64. Same bindings, params and finish_errors entry as the other forward kernels.
// Why: on lavapipe every lane-varying storage access is a per-lane scalar loop and a loop with a
// lane-varying bound runs under exec masks; the general kernel's column loop and per-lane
// bookkeeping cost more than the row loads (bench/embedding_profile.ts, config A).
// Summation order per output element: positions in order from 0.0 (as the other kernels).
// Wrapper: src/kernels/embedding_bag_forward.ts. Reference: src/kernels/reference/embedding_bag.ts
//   (embeddingBagForwardRef).

alias V = vec4<f32>;

override WG: u32 = 64;
override ROWV: u32 = 4u;    // vec4s per row, 1..16
override WEIGHTED: bool = false;
// Out-of-chunk lookups: false = add 0.0 from a dummy row (branch-free; best when few bags reach
// rows of another chunk), true = skip them with a branch (best when tables span several chunks, so
// every bag comes back in several dispatches: config B). The wrapper picks it from the chunk plan.
override BRANCH: bool = false;

const NONE: u32 = 0xffffffffu;

struct Params {
  batch_size: u32, table_begin: u32, num_bags: u32, dim: u32, row_start: u32, row_count: u32,
  out_stride: u32, out_offset: u32, mean: u32, total_bags: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table_info: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> indices: array<u32>;
@group(0) @binding(4) var<storage, read> weights: array<f32>;
@group(0) @binding(5) var<storage, read> table: array<V>;
@group(0) @binding(6) var<storage, read_write> out: array<V>;
@group(0) @binding(7) var<storage, read_write> errors: array<atomic<u32>>;

struct Acc { a0: V, a1: V, a2: V, a3: V, a4: V, a5: V, a6: V, a7: V, a8: V, a9: V, a10: V, a11: V, a12: V, a13: V, a14: V, a15: V }

// Adds w * (row at o) to acc when `take`, else 0.0 (the row at o is then a valid dummy: branch-free).
fn add_row(acc: ptr<function, Acc>, o: u32, w: f32, take: bool) {
  let z = V(0.0);
  if (WEIGHTED) {
    (*acc).a0 += select(z, table[o] * w, take);
    if (ROWV > 1u) { (*acc).a1 += select(z, table[o + 1u] * w, take); }
    if (ROWV > 2u) { (*acc).a2 += select(z, table[o + 2u] * w, take); }
    if (ROWV > 3u) { (*acc).a3 += select(z, table[o + 3u] * w, take); }
    if (ROWV > 4u) { (*acc).a4 += select(z, table[o + 4u] * w, take); }
    if (ROWV > 5u) { (*acc).a5 += select(z, table[o + 5u] * w, take); }
    if (ROWV > 6u) { (*acc).a6 += select(z, table[o + 6u] * w, take); }
    if (ROWV > 7u) { (*acc).a7 += select(z, table[o + 7u] * w, take); }
    if (ROWV > 8u) { (*acc).a8 += select(z, table[o + 8u] * w, take); }
    if (ROWV > 9u) { (*acc).a9 += select(z, table[o + 9u] * w, take); }
    if (ROWV > 10u) { (*acc).a10 += select(z, table[o + 10u] * w, take); }
    if (ROWV > 11u) { (*acc).a11 += select(z, table[o + 11u] * w, take); }
    if (ROWV > 12u) { (*acc).a12 += select(z, table[o + 12u] * w, take); }
    if (ROWV > 13u) { (*acc).a13 += select(z, table[o + 13u] * w, take); }
    if (ROWV > 14u) { (*acc).a14 += select(z, table[o + 14u] * w, take); }
    if (ROWV > 15u) { (*acc).a15 += select(z, table[o + 15u] * w, take); }
  } else {
    (*acc).a0 += select(z, table[o], take);
    if (ROWV > 1u) { (*acc).a1 += select(z, table[o + 1u], take); }
    if (ROWV > 2u) { (*acc).a2 += select(z, table[o + 2u], take); }
    if (ROWV > 3u) { (*acc).a3 += select(z, table[o + 3u], take); }
    if (ROWV > 4u) { (*acc).a4 += select(z, table[o + 4u], take); }
    if (ROWV > 5u) { (*acc).a5 += select(z, table[o + 5u], take); }
    if (ROWV > 6u) { (*acc).a6 += select(z, table[o + 6u], take); }
    if (ROWV > 7u) { (*acc).a7 += select(z, table[o + 7u], take); }
    if (ROWV > 8u) { (*acc).a8 += select(z, table[o + 8u], take); }
    if (ROWV > 9u) { (*acc).a9 += select(z, table[o + 9u], take); }
    if (ROWV > 10u) { (*acc).a10 += select(z, table[o + 10u], take); }
    if (ROWV > 11u) { (*acc).a11 += select(z, table[o + 11u], take); }
    if (ROWV > 12u) { (*acc).a12 += select(z, table[o + 12u], take); }
    if (ROWV > 13u) { (*acc).a13 += select(z, table[o + 13u], take); }
    if (ROWV > 14u) { (*acc).a14 += select(z, table[o + 14u], take); }
    if (ROWV > 15u) { (*acc).a15 += select(z, table[o + 15u], take); }
  }
}

// Position p of a bag of table t: adds its row if this chunk holds it (else adds 0.0, reading row 0
// of the chunk instead: no early return, which lavapipe runs under exec masks); flags a bad index,
// which is never read (skipped, as in the other kernels).
fn lookup(acc: ptr<function, Acc>, p: u32, base: u32, rows: u32) {
  let idx = indices[p];
  let bad = idx >= rows;
  if (bad) { atomicMin(&errors[0], p); }   // checkEmbeddingErrors() raises it
  let r = base + idx - params.row_start;   // wraps to a huge value when the row is below this chunk
  let take = !bad && r < params.row_count;  // else: bad, or the row lives in another chunk
  var w = 1.0;
  if (WEIGHTED) { w = weights[p]; }
  if (BRANCH) {
    if (take) { add_row(acc, r * ROWV, w, true); }
  } else {
    add_row(acc, select(0u, r, take) * ROWV, w, take);
  }
}

// #include "embedding_bag_forward_rows_main.wgsl"
