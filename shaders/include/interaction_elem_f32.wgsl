// Element type of the scalar dot interaction kernels (see interaction_elem_vec4.wgsl).
alias V = f32;
const W: u32 = 1u;   // floats per V

// Sum of the lanes of a dot-product accumulator.
fn hsum(a: V) -> f32 { return a; }
