// Body of embedding_backward_update_vec4{,_adagrad}.wgsl (see embedding_backward_update_vec4.wgsl's
// header). The including kernel declares the `state` binding (@group(0) @binding(8)) and its
// accessors: row_state / set_row_state (rowwise: one f32 per row) and elem_state / set_elem_state
// (adagrad: the vec4 of accumulators of table vec4 w).

// #include "optim_params.wgsl"

override WG: u32 = 64;
override OPT: u32 = 0;
// vals[i] holds the gradient address (in floats) of sorted position i instead of the position
// (embedding_backward_keys with DIRECT): no pos_info gather. Sum pooling without weights only.
override DIRECT: bool = false;
const CB: u32 = 4u;

struct Params { chunk: u32, row_start: u32, dim: u32, threads: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(4) var<storage, read> pos_info: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> vals: array<u32>;
@group(0) @binding(6) var<storage, read> grad_out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> table: array<vec4<f32>>;

// Gradient of vec4 columns k0 .. k0+CB of the run of sorted positions [start, end), summed in order.
// DIRECT: the sort carried the gradient address itself (sum pooling without weights: f = 1).
fn block_grad(start: u32, end: u32, k0: u32) -> array<vec4<f32>, CB> {
  var g: array<vec4<f32>, CB>;
  let n = min(CB, params.dim - k0);
  if (n == CB) {
    for (var i = start; i < end; i++) {
      var f = 1.0;
      var addr: u32;
      if (DIRECT) {
        addr = vals[i];
      } else {
        let info = pos_info[vals[i]];
        f = bitcast<f32>(info.y);
        addr = info.x;
      }
      let base = (addr >> 2u) + k0;
      for (var j = 0u; j < CB; j++) {
        if (DIRECT) { g[j] += grad_out[base + j]; } else { g[j] += f * grad_out[base + j]; }
      }
    }
  } else {
    for (var i = start; i < end; i++) {
      var f = 1.0;
      var addr: u32;
      if (DIRECT) {
        addr = vals[i];
      } else {
        let info = pos_info[vals[i]];
        f = bitcast<f32>(info.y);
        addr = info.x;
      }
      let base = (addr >> 2u) + k0;
      for (var j = 0u; j < CB; j++) {
        if (j < n) { g[j] += f * grad_out[base + j]; }
      }
    }
  }
  return g;
}

// Sum of squares of the block's columns, in column order, added to ss.
fn add_squares(ss: f32, g: array<vec4<f32>, CB>, n: u32) -> f32 {
  var acc = ss;
  for (var j = 0u; j < CB; j++) {
    if (j < n) {
      acc += g[j].x * g[j].x;
      acc += g[j].y * g[j].y;
      acc += g[j].z * g[j].z;
      acc += g[j].w * g[j].w;
    }
  }
  return acc;
}

// Updates row `key` (global) with the gradient of the run of sorted positions [start, end).
fn process_run(start: u32, end: u32, key: u32) {
  let dim = params.dim;
  let lr = optim.lr;
  let eps = optim.eps;
  let local = key - params.row_start;
  let wbase = local * dim;
  if (OPT == 2u) {
    var den = 0.0;
    if (dim <= CB) {
      // One block: g computed once.
      let g = block_grad(start, end, 0u);
      let m = row_state(local) + add_squares(0.0, g, dim) / f32(4u * dim);
      set_row_state(local, m);
      den = sqrt(m) + eps;
      for (var j = 0u; j < CB; j++) {
        if (j < dim) { table[wbase + j] = table[wbase + j] - lr * (g[j] / den); }
      }
      return;
    }
    var ss = 0.0;
    for (var k0 = 0u; k0 < dim; k0 += CB) {
      ss = add_squares(ss, block_grad(start, end, k0), dim - k0);
    }
    let m = row_state(local) + ss / f32(4u * dim);
    set_row_state(local, m);
    den = sqrt(m) + eps;
    for (var k0 = 0u; k0 < dim; k0 += CB) {
      let g = block_grad(start, end, k0);
      for (var j = 0u; j < CB; j++) {
        let w = wbase + k0 + j;
        if (k0 + j < dim) { table[w] = table[w] - lr * (g[j] / den); }
      }
    }
    return;
  }
  for (var k0 = 0u; k0 < dim; k0 += CB) {
    let g = block_grad(start, end, k0);
    for (var j = 0u; j < CB; j++) {
      let w = wbase + k0 + j;
      if (k0 + j < dim) {
        if (OPT == 1u) {
          let acc = elem_state(w) + g[j] * g[j];
          set_elem_state(w, acc);
          table[w] = table[w] - lr * (g[j] / (sqrt(acc) + eps));
        } else {
          table[w] = table[w] - lr * g[j];
        }
      }
    }
  }
}

// Thread per segment of ceil(n / threads) consecutive sorted positions of the chunk's n (the wrapper
// sizes the grid for about 8 per thread when one chunk holds every position); spreading each chunk
// over ALL threads matters on lavapipe, which splits a dispatch's workgroups into one contiguous
// block per worker thread (a chunk filling only the first workgroups would run on one core).
// The thread walks its positions in order, each key loaded once; a run whose head lies in its
// segment is its own (followed past the segment's end), a run continuing from an earlier segment is skipped.
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + wid.y * nwg.x) * WG + lid;
  let c = params.chunk;
  let first = run_ranges[1u + 2u * c];
  let last = run_ranges[2u + 2u * c];
  let per = max(1u, (last - first + params.threads - 1u) / params.threads);
  let s0 = first + gid * per;
  if (s0 < last) {
    let s1 = min(s0 + per, last);
    var i = s0;
    var key = keys[i];
    if (i > first) {
      // Skip the tail of a run whose head is in an earlier segment.
      let prev = keys[i - 1u];
      loop {
        if (key != prev) { break; }
        i++;
        if (i >= s1) { break; }
        key = keys[i];
      }
    }
    while (i < s1) {
      var end = i + 1u;
      var next = key;
      loop {
        if (end >= last) { break; }
        next = keys[end];
        if (next != key) { break; }
        end++;
      }
      process_run(i, end, key);
      i = end;
      key = next;
    }
  }
}
