// roofline_fma: FMA-bound microkernel measuring the adapter's arithmetic peak
// (bench only). Each invocation runs ITERS rounds of 8 independent vec4 FMA
// chains (64 flops per round) on registers only, then stores one value so the
// work cannot be eliminated. flops = 64 * ITERS * invocations.
// Bindings: params {iters, seed}, out (read_write, one f32 per invocation).
// Dispatch: (n / WG) workgroups, n invocations in total (<= 65535 workgroups).
// Reference: none (the stored value is not checked; bench/gemm.ts only times it).

override WG: u32 = 64;

struct Params { iters: u32, seed: f32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let x = vec4<f32>(params.seed) + vec4<f32>(f32(gid.x) * 1e-7);
  let m = vec4<f32>(0.999999);
  var a0 = x; var a1 = x + 1.0; var a2 = x + 2.0; var a3 = x + 3.0;
  var a4 = x + 4.0; var a5 = x + 5.0; var a6 = x + 6.0; var a7 = x + 7.0;
  for (var i = 0u; i < params.iters; i++) {
    a0 = fma(a0, m, x); a1 = fma(a1, m, x); a2 = fma(a2, m, x); a3 = fma(a3, m, x);
    a4 = fma(a4, m, x); a5 = fma(a5, m, x); a6 = fma(a6, m, x); a7 = fma(a7, m, x);
  }
  let s = (a0 + a1) + (a2 + a3) + (a4 + a5) + (a6 + a7);
  out[gid.x] = s.x + s.y + s.z + s.w;
}
