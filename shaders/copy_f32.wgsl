// copy_f32: dst[i] = src[i] for i < n, as vec4 (n counts vec4s).
// Used as the copy-bandwidth roofline and as the template kernel.
// Bindings: params {n}, src (read), dst (read_write).
// Dispatch: ceil(n / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/copy.ts (copyRef).

override WG: u32 = 256;

struct Params { n: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < params.n) {
    dst[i] = src[i];
  }
}
