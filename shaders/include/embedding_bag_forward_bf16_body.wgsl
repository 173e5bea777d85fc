// Body of embedding_bag_forward_bf16{,_vec4}.wgsl (see embedding_bag_forward_bf16.wgsl's header).
// The including kernel declares:
//   alias W = u32 | vec4<u32>;  alias F = f32 | vec4<f32>   (F has one lane per word of W)
//   const SHIFT: W (16 per lane); const HIGH: W (0xffff0000 per lane)
//   fn store(k: u32, lo: F, hi: F, o: u32, accumulate: bool)   writes the elements of word unit k.
// Word unit k of a row holds elements 2k (low half) and 2k+1 (high half) per u32 lane; the vec4
// form's unit k holds elements 8k .. 8k+7 as (lo.x, hi.x, lo.y, hi.y, lo.z, hi.z, lo.w, hi.w).

override WG: u32 = 256;       // invocations per workgroup = LANES * BAGS (<= 256)
override LANES: u32 = 8;      // lanes per bag; lane l covers word units l, l+LANES, ...
override BAGS: u32 = 32;      // bags per workgroup
override WEIGHTED: bool = false;

const NONE: u32 = 0xffffffffu;

struct Params {
  batch_size: u32,   // B
  table_begin: u32,  // first table this dispatch covers
  num_bags: u32,     // bags in this dispatch: (tables covered) * B
  dim: u32,          // d (floats)
  units: u32,        // word units (elements of W) per row
  row_start: u32,    // global row held at row 0 of `table`
  row_count: u32,    // rows held by `table`
  out_stride: u32,   // per-sample stride of `out`, in floats
  out_offset: u32,   // offset of table 0 in a sample's output, in floats
  mean: u32,         // 1: mean pooling, 0: sum
  total_bags: u32,   // T * B (size of offsets - 1), for finish_errors
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> table_info: array<vec2<u32>>; // per table: (global row base, rows)
@group(0) @binding(2) var<storage, read> offsets: array<u32>;          // T*B+1, table-major CSR
@group(0) @binding(3) var<storage, read> indices: array<u32>;          // table-local row ids
@group(0) @binding(4) var<storage, read> weights: array<f32>;          // per index (dummy when !WEIGHTED)
@group(0) @binding(5) var<storage, read> table: array<W>;              // one chunk: row_count * units, bf16 pairs
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// errors: as embedding_bag_forward.wgsl ([0] first bad lookup, [1] its bag, [2] its index,
// [3] first malformed bag, [4] position already described).
@group(0) @binding(7) var<storage, read_write> errors: array<atomic<u32>>;

fn put(o: u32, v: f32, accumulate: bool) {
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

  let units = params.units;
  let rs = params.row_start;
  let rc = params.row_count;
  let out_base = b * params.out_stride + params.out_offset + t * params.dim;
  for (var k = lane; k < units; k += LANES) {
    var lo = F(0.0);
    var hi = F(0.0);
    for (var p = s; p < e; p++) {
      let idx = indices[p];
      if (idx >= rows) {
        if (k == 0u) { atomicMin(&errors[0], p); }   // skip it; checkEmbeddingErrors() raises it
        continue;
      }
      let r = base + idx - rs;   // wraps to a huge value when the row is below this chunk
      if (r >= rc) { continue; } // row lives in another chunk
      let word = table[r * units + k];
      // bf16 -> f32 is exact: the bf16 bits are the upper half of the f32.
      var w = 1.0;
      if (WEIGHTED) { w = weights[p]; }
      lo += bitcast<F>(word << SHIFT) * w;
      hi += bitcast<F>(word & HIGH) * w;
    }
    store(k, lo * scale, hi * scale, out_base, accumulate);
  }
}

// #include "embedding_bag_finish_errors.wgsl"
