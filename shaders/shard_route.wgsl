// shard_route: moves pooled embedding columns between the layouts of the sharded step
// (src/shard/routing.ts). For every sample b < batch and output column o < outputs, with
// route o = outs[o] = (off, stride, first, count):
//   output[off + b * stride] = sum over e in first .. first+count-1 of input[entries[e].x + b * entries[e].y]
// summed in entry order (fixed: row-wise partial sums in device order). count = 0 writes 0.
// Forward: received blocks [B_j, W_i] per source device -> E [B_j, n, d] (row-wise partial
// sums added, column-wise pieces joined). Backward: dE -> one block per destination device.
// Bindings: params {batch, outputs}, outs, entries, input (read), output (read_write).
// Dispatch: ceil(batch * outputs / WG) workgroups, folded by grid(); invocation i handles
// o = i % outputs, b = i / outputs.
// Reference: src/kernels/reference/shard.ts (routeRef).

override WG: u32 = 256;

struct Params { batch: u32, outputs: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> outs: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read> entries: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> input: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i >= params.batch * params.outputs) { return; }
  let o = i % params.outputs;
  let b = i / params.outputs;
  let r = outs[o];
  var acc = 0.0;
  for (var e = r.z; e < r.z + r.w; e++) {
    let src = entries[e];
    acc = acc + input[src.x + b * src.y];
  }
  output[r.x + b * r.y] = acc;
}
