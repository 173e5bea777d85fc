// Element type of the *_vec4 dot interaction kernels (d % 4 == 0): x, emb and T rows are
// read as vec4<f32>, each dot product accumulates 4 lanes of c and adds them at the end
// in a fixed order.
alias V = vec4<f32>;
const W: u32 = 4u;   // floats per V

// Sum of the lanes of a dot-product accumulator: (x + y) + (z + w).
fn hsum(a: V) -> f32 { return (a.x + a.y) + (a.z + a.w); }
