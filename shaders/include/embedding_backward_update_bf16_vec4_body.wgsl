// Body of embedding_backward_update_bf16_vec4{,_adagrad}.wgsl (see embedding_backward_update_bf16_vec4.wgsl's
// header). The including kernel declares the `state` binding (@group(0) @binding(8)) and its accessors:
// row_state / set_row_state (rowwise: one f32 per row) and adagrad_den(g, q): adds g*g to the
// accumulators of elements 4q .. 4q+3 of the chunk (adagrad: one f32 per element) and returns
// sqrt(acc) + eps.

// #include "optim_params.wgsl"
// #include "bf16_round.wgsl"

override WG: u32 = 64;
override OPT: u32 = 0;
const CB: u32 = 2u;        // units per block
const CG: u32 = 4u;        // gradient vec4s per block (2 * CB)
const HI = vec4<u32>(0xffff0000u);

struct Params { chunk: u32, row_start: u32, dim: u32, words: u32, threads: u32, seed: u32, rounding: u32, pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> optim: OptimParams;
@group(0) @binding(2) var<storage, read> keys: array<u32>;
@group(0) @binding(3) var<storage, read> run_ranges: array<u32>;
@group(0) @binding(4) var<storage, read> pos_info: array<vec2<u32>>;
@group(0) @binding(5) var<storage, read> vals: array<u32>;
@group(0) @binding(6) var<storage, read> grad_out: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> table: array<vec4<u32>>;

// Gradient vec4s of units u0 .. u0+CB (elements 8*u0 ..) of the run [start, end), summed in order.
fn block_grad(start: u32, end: u32, u0: u32, units: u32) -> array<vec4<f32>, CG> {
  var g: array<vec4<f32>, CG>;
  let n = 2u * min(CB, units - u0);
  if (n == CG) {
    for (var i = start; i < end; i++) {
      let info = pos_info[vals[i]];
      let f = bitcast<f32>(info.y);
      let base = (info.x >> 2u) + 2u * u0;
      for (var j = 0u; j < CG; j++) { g[j] += f * grad_out[base + j]; }
    }
  } else {
    for (var i = start; i < end; i++) {
      let info = pos_info[vals[i]];
      let f = bitcast<f32>(info.y);
      let base = (info.x >> 2u) + 2u * u0;
      for (var j = 0u; j < CG; j++) {
        if (j < n) { g[j] += f * grad_out[base + j]; }
      }
    }
  }
  return g;
}

fn sq(v: vec4<f32>) -> f32 { return v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w; }

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.x + wid.y * nwg.x) * WG + lid;
  let c = params.chunk;
  let first = run_ranges[1u + 2u * c];
  let last = run_ranges[2u + 2u * c];
  let dim = params.dim;
  let units = dim / 8u;
  let sr = params.rounding;
  for (var start = first + gid; start < last; start += params.threads) {
    let key = keys[start];
    if (start > first && keys[start - 1u] == key) { continue; }   // inside a run: its head owns it
    var end = start + 1u;
    while (end < last && keys[end] == key) { end++; }
    let local = key - params.row_start;
    var den = 1.0;
    if (OPT == 2u) {
      var ss = 0.0;
      for (var u0 = 0u; u0 < units; u0 += CB) {
        let g = block_grad(start, end, u0, units);
        for (var j = 0u; j < CG; j++) {
          if (j < 2u * (units - u0)) { ss += sq(g[j]); }
        }
      }
      let m = row_state(local) + ss / f32(dim);
      set_row_state(local, m);
      den = sqrt(m) + optim.eps;
    }
    var rh = vec4<u32>(0u);
    if (sr == 1u) { rh = vec4<u32>(bf16_row_hash(params.seed, optim.step, key)); }
    for (var u0 = 0u; u0 < units; u0 += CB) {
      let g = block_grad(start, end, u0, units);
      for (var j = 0u; j < CB; j++) {
        let u = u0 + j;
        if (u < units) {
          let ga = g[2u * j];
          let gb = g[2u * j + 1u];
          let x = table[local * units + u];
          let k = 8u * u;                       // first element of the unit
          let e = local * dim + k;              // its state index (adagrad)
          let wl = bitcast<vec4<f32>>(x << vec4<u32>(16u));
          let wh = bitcast<vec4<f32>>(x & HI);
          let wa = vec4<f32>(wl.x, wh.x, wl.y, wh.y);   // elements k .. k+3
          let wb = vec4<f32>(wl.z, wh.z, wl.w, wh.w);   // elements k+4 .. k+7
          var na: vec4<f32>;
          var nb: vec4<f32>;
          if (OPT == 1u) {
            na = wa - optim.lr * (ga / adagrad_den(ga, e / 4u));
            nb = wb - optim.lr * (gb / adagrad_den(gb, e / 4u + 1u));
          } else if (OPT == 2u) {
            na = wa - optim.lr * (ga / den);
            nb = wb - optim.lr * (gb / den);
          } else {
            na = wa - optim.lr * ga;
            nb = wb - optim.lr * gb;
          }
          let lo = vec4<f32>(na.x, na.z, nb.x, nb.z);
          let hi = vec4<f32>(na.y, na.w, nb.y, nb.w);
          var rlo = vec4<u32>(0u);
          var rhi = vec4<u32>(0u);
          if (sr == 1u) {
            let ks = vec4<u32>(k, k + 2u, k + 4u, k + 6u);
            rlo = pcg_hash4(rh ^ ks);
            rhi = pcg_hash4(rh ^ (ks + vec4<u32>(1u)));
          }
          table[local * units + u] = (round_bf16_4(hi, sr, rhi) << vec4<u32>(16u)) | round_bf16_4(lo, sr, rlo);
        }
      }
    }
  }
}
