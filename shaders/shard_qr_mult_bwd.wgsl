// shard_qr_mult_bwd: backward of shard_qr_mult_fwd.wgsl: from dE and the pooled sub-table sums C,
//   dC[b, 2m*d + k]     = dE[b, t_m, k] * C[b, (2m+1)*d + k]   (d pool_q = dE * pool_r)
//   dC[b, (2m+1)*d + k] = dE[b, t_m, k] * C[b, 2m*d + k]       (d pool_r = dE * pool_q)
// The backward route then hands each q / r shard its columns of dC.
// Bindings: params {batch, d, count, e_stride, c_stride}, tables, c, grad_e (read); grad_c (read_write).
// Dispatch: ceil(batch * count * d / WG) workgroups, folded by grid(); i -> (b, m, k), k fastest.
// Reference: src/kernels/reference/embedding_combine.ts (mult backward). Driver: src/kernels/shard.ts (prepareQrMult).

override WG: u32 = 256;

struct Params { batch: u32, d: u32, count: u32, e_stride: u32, c_stride: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read> grad_e: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad_c: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  let d = params.d;
  if (i >= params.batch * params.count * d) { return; }
  let k = i % d;
  let m = (i / d) % params.count;
  let b = i / (d * params.count);
  let cq = b * params.c_stride + 2u * m * d + k;
  let g = grad_e[b * params.e_stride + tables[m] * d + k];
  grad_c[cq] = g * c[cq + d];
  grad_c[cq + d] = g * c[cq];
}
