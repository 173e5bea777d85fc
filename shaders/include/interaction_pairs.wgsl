// Flat pair layout of the DLRM dot interaction (facebookresearch/dlrm
// interact_features: li/lj built by `for i in range(ni): for j in range(i + offset)`).
// Pair (i, j) with j < i (j <= i when off == 1) has flat index base(i) + j,
// rows i ascending, j ascending inside a row.

// First flat index of row i: i*(i-1)/2 (+ i when the diagonal is kept).
fn pair_base(i: u32, off: u32) -> u32 {
  return (i * (i + 2u * off - 1u)) / 2u;
}

// (i, j) of flat pair index k: a float estimate of the row, then exact integer fix-ups.
fn pair_of(k: u32, off: u32) -> vec2<u32> {
  let r = sqrt(1.0 + 8.0 * f32(k));
  var i = u32(select((1.0 + r) * 0.5, (r - 1.0) * 0.5, off == 1u));
  loop {
    if (i > 0u && pair_base(i, off) > k) { i = i - 1u; } else { break; }
  }
  loop {
    if (pair_base(i + 1u, off) <= k) { i = i + 1u; } else { break; }
  }
  return vec2<u32>(i, k - pair_base(i, off));
}
