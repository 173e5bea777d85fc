// relu_mask: dz[i] = y[i] > 0 ? dy[i] : 0 for i < n (the ReLU backward, materialized once so
// that the GEMMs of a layer's backward read dZ without a second, per-element mask load).
// Bindings: params {n}, dy, y (read), dz (read_write).
// Dispatch: ceil(n / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/gemm.ts (linearBackwardRef's relu mask).

override WG: u32 = 256;

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> dz: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < params.n) {
    dz[i] = select(0.0, dy[i], y[i] > 0.0);
  }
}
