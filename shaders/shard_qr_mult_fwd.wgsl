// shard_qr_mult_fwd: the "mult" combine of QR tables split by sub-table rows, on the device that owns
// the batch slice (src/shard/model.ts): the routes have summed the q shards' partials into
// C[b, 2m*d + k] (= pool_q) and the r shards' into C[b, (2m+1)*d + k] (= pool_r) for the m-th such
// table t_m; then
//   E[b, t_m, k] = C[b, 2m*d + k] * C[b, (2m+1)*d + k]
// (the reference's QREmbeddingBag mult: pool_q * pool_r, after pooling each sub-table).
// Bindings: params {batch, d, count, e_stride, c_stride}, tables (t_m per m), c (read); e (read_write).
// Dispatch: ceil(batch * count * d / WG) workgroups, folded by grid(); i -> (b, m, k), k fastest.
// Reference: src/kernels/reference/embedding_combine.ts (mult). Driver: src/kernels/shard.ts (prepareQrMult).

override WG: u32 = 256;

struct Params { batch: u32, d: u32, count: u32, e_stride: u32, c_stride: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> tables: array<u32>;
@group(0) @binding(2) var<storage, read> c: array<f32>;
@group(0) @binding(3) var<storage, read_write> e: array<f32>;

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
  e[b * params.e_stride + tables[m] * d + k] = c[cq] * c[cq + d];
}
