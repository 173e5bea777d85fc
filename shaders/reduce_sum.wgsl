// reduce_sum: one pass of a deterministic tree sum. Workgroup w sums
// input[w*CHUNK .. (w+1)*CHUNK) (CHUNK = WG * PER): invocation l first adds
// input[w*CHUNK + k*WG + l] for k = 0..PER-1 in order, then the WG partial sums are
// added pairwise in a fixed tree (stride 128, 64, .., 1). Writes
// output[out_offset + w] = scale * sum. Passes repeat on the partial sums until one
// value remains; the order of every addition is fixed, so results are bit-reproducible.
// Bindings: params {count, out_offset, scale}, input (read), output (read_write).
// Dispatch: ceil(count / CHUNK) workgroups, folded by grid().
// Reference: src/kernels/reference/reduce.ts (reduceSumRef).

const WG: u32 = 256u;
override PER: u32 = 16;

struct Params { count: u32, out_offset: u32, scale: f32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<f32>;
@group(0) @binding(2) var<storage, read_write> output: array<f32>;

var<workgroup> part: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let w = wid.x + wid.y * nwg.x;
  let base = w * WG * PER;
  if (base >= params.count) { return; }
  var acc = 0.0;
  for (var k = 0u; k < PER; k = k + 1u) {
    let i = base + k * WG + lid;
    if (i < params.count) { acc = acc + input[i]; }
  }
  part[lid] = acc;
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    workgroupBarrier();
    if (lid < s) { part[lid] = part[lid] + part[lid + s]; }
  }
  if (lid == 0u) {
    output[params.out_offset + w] = part[0] * params.scale;
  }
}
