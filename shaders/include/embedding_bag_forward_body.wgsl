// Body of embedding_bag_forward{,_vec4}.wgsl. The including kernel declares
// `alias V = f32;` or `alias V = vec4<f32>;`: every row, column, stride and
// offset below counts elements of V (dim = d or d/4).

override WG: u32 = 256;       // invocations per workgroup = LANES * BAGS (<= 256)
override LANES: u32 = 32;     // lanes per bag; lane l covers columns l*COLS .. l*COLS+COLS-1, then + LANES*COLS...
// Columns (elements of V) per lane, 1, 2, 4 or 8, each with its own accumulator. Several per
// lane rather than one: on CPU adapters that run invocations as SIMD lanes (lavapipe,
// SwiftShader), every data-dependent load is a per-lane scalar load, so the per-lookup
// cost (index load, bounds checks, loop control) is shared by COLS row loads
// (lavapipe, bench/embedding_bag_forward.ts: config A about 2x, config B (d=64: 8 vec4
// per lane) 1.5x faster than one column per lane; 8 beats 4 there).
override COLS: u32 = 4u;
override BAGS: u32 = 8;       // bags per workgroup
override WEIGHTED: bool = false;

const NONE: u32 = 0xffffffffu;

struct Params {
  batch_size: u32,   // B
  table_begin: u32,  // first table this dispatch covers
  num_bags: u32,     // bags in this dispatch: (tables covered) * B
  dim: u32,          // row length in V
  row_start: u32,    // global row held at row 0 of `table`
  row_count: u32,    // rows held by `table`
  out_stride: u32,   // per-sample stride of `out`, in V
  out_offset: u32,   // offset of table 0 in a sample's output, in V
  mean: u32,         // 1: mean pooling, 0: sum
  total_bags: u32,   // T * B (size of offsets - 1), for finish_errors
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table_info: array<vec2<u32>>; // per table: (global row base, rows)
@group(0) @binding(2) var<storage, read> offsets: array<u32>;          // T*B+1, table-major CSR
@group(0) @binding(3) var<storage, read> indices: array<u32>;          // table-local row ids
@group(0) @binding(4) var<storage, read> weights: array<f32>;          // per index (dummy when !WEIGHTED)
@group(0) @binding(5) var<storage, read> table: array<V>;              // one chunk: row_count * dim
@group(0) @binding(6) var<storage, read_write> out: array<V>;
// errors[0]: first bad lookup position (atomicMin), [1]: its bag (t*B+b), [2]: its index,
// [3]: first bag whose offsets are malformed, [4]: position already described in [1], [2].
@group(0) @binding(7) var<storage, read_write> errors: array<atomic<u32>>;

// Stores acc (already scaled) at out[o], adding to it when accumulating a later chunk.
fn put(o: u32, v: V, accumulate: bool) {
  if (accumulate) { out[o] = out[o] + v; } else { out[o] = v; }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let slot = lid / LANES;
  let lane = lid % LANES;
  let bag = (wid.x + wid.y * nwg.x) * BAGS + slot;
  if (slot >= BAGS || bag >= params.num_bags) { return; }

  let gbag = params.table_begin * params.batch_size + bag;
  let t = gbag / params.batch_size;
  let b = gbag % params.batch_size;
  let info = table_info[t];
  let base = info.x;
  let rows = info.y;
  let accumulate = base < params.row_start;

  var s = offsets[gbag];
  var e = offsets[gbag + 1u];
  var limit = arrayLength(&indices);
  if (WEIGHTED) { limit = min(limit, arrayLength(&weights)); }
  if (e < s || e > limit) {
    if (lane == 0u) { atomicMin(&errors[3], gbag); }
    s = 0u;
    e = 0u;
  }
  var scale = 1.0;
  if (params.mean == 1u && e > s) { scale = 1.0 / f32(e - s); }

  let dim = params.dim;
  let rs = params.row_start;
  let rc = params.row_count;
  let out_base = b * params.out_stride + params.out_offset + t * dim;
  // Rows of this table held by this chunk: local row = base + idx - rs in [0, rc).
  for (var k = lane * COLS; k < dim; k += LANES * COLS) {
    var a0 = V(0.0);
    var a1 = V(0.0);
    var a2 = V(0.0);
    var a3 = V(0.0);
    var a4 = V(0.0);
    var a5 = V(0.0);
    var a6 = V(0.0);
    var a7 = V(0.0);
    for (var p = s; p < e; p++) {
      let idx = indices[p];
      if (idx >= rows) {
        if (k == 0u) { atomicMin(&errors[0], p); }   // skip it; checkEmbeddingErrors() raises it
        continue;
      }
      let r = base + idx - rs;   // wraps to a huge value when the row is below this chunk
      if (r >= rc) { continue; } // row lives in another chunk
      let o = r * dim + k;
      var w = 1.0;
      if (WEIGHTED) { w = weights[p]; }
      if (WEIGHTED) {
        a0 += table[o] * w;
        if (COLS > 1u) { a1 += table[o + 1u] * w; }
        if (COLS > 2u) { a2 += table[o + 2u] * w; a3 += table[o + 3u] * w; }
        if (COLS > 4u) { a4 += table[o + 4u] * w; a5 += table[o + 5u] * w; a6 += table[o + 6u] * w; a7 += table[o + 7u] * w; }
      } else {
        a0 += table[o];
        if (COLS > 1u) { a1 += table[o + 1u]; }
        if (COLS > 2u) { a2 += table[o + 2u]; a3 += table[o + 3u]; }
        if (COLS > 4u) { a4 += table[o + 4u]; a5 += table[o + 5u]; a6 += table[o + 6u]; a7 += table[o + 7u]; }
      }
    }
    put(out_base + k, a0 * scale, accumulate);
    if (COLS > 1u) { put(out_base + k + 1u, a1 * scale, accumulate); }
    if (COLS > 2u) { put(out_base + k + 2u, a2 * scale, accumulate); put(out_base + k + 3u, a3 * scale, accumulate); }
    if (COLS > 4u) {
      put(out_base + k + 4u, a4 * scale, accumulate);
      put(out_base + k + 5u, a5 * scale, accumulate);
      put(out_base + k + 6u, a6 * scale, accumulate);
      put(out_base + k + 7u, a7 * scale, accumulate);
    }
  }
}

// #include "embedding_bag_finish_errors.wgsl"
