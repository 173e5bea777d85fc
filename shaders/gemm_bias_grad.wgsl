// gemm_bias_grad: bias gradient of a linear layer, the column sums of dZ.
//   db[n] = sum_{m < M} dZ[m, n],  dZ = MASK ? dy * (y > 0) : dy   (ReLU mask from the forward output y)
// One invocation per column, summing rows in order (deterministic); adjacent
// invocations read adjacent addresses. db is overwritten.
// Bindings: params {M, N}, dy, y (read; bound to dy when MASK is off), db (read_write).
// Dispatch: ceil(N / WG) workgroups, folded by grid(); linear workgroup = wid.x + wid.y * nwg.x.
// Reference: src/kernels/reference/gemm.ts (linearBackwardRef: db).

override WG: u32 = 64;
override MASK: bool = false;

struct Params { M: u32, N: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let n = (wid.x + wid.y * nwg.x) * WG + lid;
  let N = params.N;
  if (n >= N) { return; }
  var s = 0.0;
  for (var m = 0u; m < params.M; m++) {
    let idx = m * N + n;
    var v = dy[idx];
    if (MASK) { v = select(0.0, v, y[idx] > 0.0); }
    s += v;
  }
  db[n] = s;
}
