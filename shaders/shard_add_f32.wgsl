// shard_add_f32: y[y_offset + i] += x[x_offset + i] for i < n (f32). One step of the ring
// allreduce of src/shard/collectives.ts: a chunk received from the previous device (x) is
// added into this device's own chunk (y). Float addition is commutative, so each chunk's
// sum has one fixed order (device c, c+1, ...) and the result is bit-reproducible.
// Bindings: params {n, x_offset, y_offset}, x (read), y (read_write).
// Dispatch: ceil(n / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/shard.ts (addRef).

override WG: u32 = 256;

struct Params { n: u32, x_offset: u32, y_offset: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < params.n) {
    y[params.y_offset + i] = y[params.y_offset + i] + x[params.x_offset + i];
  }
}
