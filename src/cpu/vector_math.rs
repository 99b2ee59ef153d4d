//! The exponential and the error function eight f32 lanes at a time (AVX2 and FMA), for
//! the packed CPU path's softmax and GELU, and its LayerNorm's sums.
//!
//! One scalar `expf` or `erff` call per value costs as much as a few hundred
//! multiply-adds of the matrix products around them: at 512 tokens the softmax's
//! exponentials and the GELU's error functions took close to a tenth of a pass. Here
//! each is a short polynomial on whole registers.
//!
//! Accuracy: the exponential's relative error is within two f32 epsilons (Cody-Waite
//! range reduction to `[-ln 2 / 2, ln 2 / 2]`, then a degree-6 polynomial); GELU within
//! 2e-7 · (1 + |x|) of the exact x·Φ(x). The logits stay within the library's 1e-4 of
//! transformers'.

use std::arch::x86_64::*;

use super::CpuFeatures;

/// A packed matrix's bias: `bias` (which must hold `n` values) or `n` zeros.
pub(crate) fn bias_or_zeros(bias: Option<&[f32]>, n: usize) -> Vec<f32> {
    match bias {
        Some(b) => {
            assert_eq!(b.len(), n, "bias is not [{n}]");
            b.to_vec()
        }
        None => vec![0.0; n],
    }
}

/// Each row replaced by the numerators of softmax(row · `scale`), e^((x - max) ·
/// scale), and the inverse of their sum written to `inverse_sums`: times that, they are
/// transformers' softmax of the scaled scores (the scale is positive). Attention
/// applies the division to its output, head_dim values per row instead of the row's
/// width.
///
/// # Panics
/// Where [`CpuFeatures::avx2_fma`] does not hold, or `inverse_sums` is not one per row.
pub(crate) fn softmax_rows_unnormalized(
    values: &mut [f32],
    width: usize,
    scale: f32,
    inverse_sums: &mut [f32],
) {
    assert!(CpuFeatures::get().avx2_fma, "the CPU has no AVX2 and FMA");
    assert!(scale > 0.0, "softmax scale {scale} is not positive");
    assert_eq!(
        values.len(),
        inverse_sums.len() * width,
        "not one sum per row"
    );
    for (row, inverse) in values.chunks_exact_mut(width).zip(inverse_sums) {
        // SAFETY: AVX2 and FMA were checked above.
        *inverse = unsafe { softmax_row(row, scale) };
    }
}

/// `row` replaced by LayerNorm(row + residual) with `gamma` and `beta`: the mean, the
/// mean square deviation from it, then (x - mean) / √(variance + epsilon) · gamma +
/// beta, as transformers computes it in f32. The sums run in eight lanes, where one
/// scalar chain of additions waits on each add's latency (the order of the additions,
/// not their precision, changes).
///
/// # Panics
/// Where [`CpuFeatures::avx2_fma`] does not hold or the slices differ in length.
pub(crate) fn add_and_layer_norm(
    row: &mut [f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
) {
    assert!(CpuFeatures::get().avx2_fma, "the CPU has no AVX2 and FMA");
    assert!(
        residual.len() == row.len() && gamma.len() == row.len() && beta.len() == row.len(),
        "LayerNorm operands differ in length"
    );
    // SAFETY: AVX2 and FMA were checked above.
    unsafe { layer_norm_row(row, residual, gamma, beta, epsilon) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn layer_norm_row(
    row: &mut [f32],
    residual: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
) {
    let n = row.len();
    let whole = n / 8 * 8;
    let mut sum8 = _mm256_setzero_ps();
    for (x, r) in row[..whole]
        .chunks_exact_mut(8)
        .zip(residual.chunks_exact(8))
    {
        // SAFETY: both chunks hold 8 floats.
        unsafe {
            let v = _mm256_add_ps(_mm256_loadu_ps(x.as_ptr()), _mm256_loadu_ps(r.as_ptr()));
            _mm256_storeu_ps(x.as_mut_ptr(), v);
            sum8 = _mm256_add_ps(sum8, v);
        }
    }
    let mut sum = horizontal(sum8, |a, b| a + b);
    for (x, r) in row[whole..].iter_mut().zip(&residual[whole..]) {
        *x += r;
        sum += *x;
    }
    let mean = sum / n as f32;
    let mean8 = _mm256_set1_ps(mean);
    let mut squares8 = _mm256_setzero_ps();
    for x in row[..whole].chunks_exact(8) {
        // SAFETY: the chunk holds 8 floats.
        let d = _mm256_sub_ps(unsafe { _mm256_loadu_ps(x.as_ptr()) }, mean8);
        squares8 = _mm256_fmadd_ps(d, d, squares8);
    }
    let mut squares = horizontal(squares8, |a, b| a + b);
    for &v in &row[whole..] {
        squares += (v - mean) * (v - mean);
    }
    let inverse = 1.0 / (squares / n as f32 + epsilon).sqrt();
    let inverse8 = _mm256_set1_ps(inverse);
    let affine = gamma.chunks_exact(8).zip(beta.chunks_exact(8));
    for (x, (g, b)) in row[..whole].chunks_exact_mut(8).zip(affine) {
        // SAFETY: the three chunks hold 8 floats each.
        unsafe {
            let normalized =
                _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x.as_ptr()), mean8), inverse8);
            let y = _mm256_fmadd_ps(
                normalized,
                _mm256_loadu_ps(g.as_ptr()),
                _mm256_loadu_ps(b.as_ptr()),
            );
            _mm256_storeu_ps(x.as_mut_ptr(), y);
        }
    }
    let affine = gamma[whole..].iter().zip(&beta[whole..]);
    for (x, (g, b)) in row[whole..].iter_mut().zip(affine) {
        *x = (*x - mean) * inverse * g + b;
    }
}

/// Exact GELU, x·Φ(x) = x/2 · (1 + erf(x/√2)), in place.
///
/// # Panics
/// Where [`CpuFeatures::avx2_fma`] does not hold.
pub(crate) fn gelu_in_place(values: &mut [f32]) {
    assert!(CpuFeatures::get().avx2_fma, "the CPU has no AVX2 and FMA");
    // SAFETY: AVX2 and FMA were checked above.
    unsafe { gelu(values) }
}

#[target_feature(enable = "avx2,fma")]
unsafe fn softmax_row(row: &mut [f32], scale: f32) -> f32 {
    let (lanes, tail) = row.split_at_mut(row.len() / 8 * 8);
    let mut max8 = _mm256_set1_ps(f32::NEG_INFINITY);
    for chunk in lanes.chunks_exact(8) {
        // SAFETY: `chunk` holds 8 floats.
        max8 = _mm256_max_ps(max8, unsafe { _mm256_loadu_ps(chunk.as_ptr()) });
    }
    let mut max = horizontal(max8, f32::max);
    max = tail.iter().fold(max, |m, &x| m.max(x));
    let (max8, scale8) = (_mm256_set1_ps(max), _mm256_set1_ps(scale));
    let mut sum8 = _mm256_setzero_ps();
    for chunk in lanes.chunks_exact_mut(8) {
        // SAFETY: `chunk` holds 8 floats.
        unsafe {
            let x = _mm256_loadu_ps(chunk.as_ptr());
            let e = exp8(_mm256_mul_ps(_mm256_sub_ps(x, max8), scale8));
            sum8 = _mm256_add_ps(sum8, e);
            _mm256_storeu_ps(chunk.as_mut_ptr(), e);
        }
    }
    let mut sum = horizontal(sum8, |a, b| a + b);
    if !tail.is_empty() {
        let mut padded = [f32::NEG_INFINITY; 8];
        padded[..tail.len()].copy_from_slice(tail);
        let mut e = [0f32; 8];
        // SAFETY: `padded` and `e` hold 8 floats; e^-inf is 0.
        unsafe {
            let x = _mm256_loadu_ps(padded.as_ptr());
            _mm256_storeu_ps(
                e.as_mut_ptr(),
                exp8(_mm256_mul_ps(_mm256_sub_ps(x, max8), scale8)),
            );
        }
        tail.copy_from_slice(&e[..tail.len()]);
        sum += tail.iter().sum::<f32>();
    }
    1.0 / sum
}

#[target_feature(enable = "avx2,fma")]
unsafe fn gelu(values: &mut [f32]) {
    let (lanes, tail) = values.split_at_mut(values.len() / 8 * 8);
    for chunk in lanes.chunks_exact_mut(8) {
        // SAFETY: `chunk` holds 8 floats.
        unsafe {
            let x = _mm256_loadu_ps(chunk.as_ptr());
            _mm256_storeu_ps(chunk.as_mut_ptr(), gelu8(x));
        }
    }
    if !tail.is_empty() {
        let mut padded = [0f32; 8];
        padded[..tail.len()].copy_from_slice(tail);
        // SAFETY: `padded` holds 8 floats.
        unsafe {
            let x = _mm256_loadu_ps(padded.as_ptr());
            _mm256_storeu_ps(padded.as_mut_ptr(), gelu8(x));
        }
        tail.copy_from_slice(&padded[..tail.len()]);
    }
}

/// `f` folded over the eight lanes.
#[target_feature(enable = "avx2")]
fn horizontal(v: __m256, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; 8];
    // SAFETY: `lanes` holds 8 floats.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
    lanes.into_iter().reduce(f).unwrap_or(0.0)
}

/// e^x per lane. Below ln of the smallest normal float the result is that float (not
/// 0 or a subnormal), above ln(2^127.5) it is 2^127.5 or so: both far outside what
/// softmax's non-positive exponents and GELU's -x²/2 need to tell apart.
#[target_feature(enable = "avx2,fma")]
fn exp8(x: __m256) -> __m256 {
    // Cody-Waite: x = n·ln 2 + r with ln 2 split in two, the first part 9 bits long
    // so that n·LN2_HIGH is exact for every n in range.
    const LN2_HIGH: f32 = 355.0 / 512.0;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Minimax polynomial for (e^r - 1 - r) / r² on [-ln 2 / 2, ln 2 / 2] (Cephes expf).
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let x = _mm256_min_ps(
        _mm256_max_ps(x, _mm256_set1_ps(-87.336_55)),
        _mm256_set1_ps(88.376_26),
    );
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HIGH), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LOW), r);
    let mut p = _mm256_set1_ps(P[0]);
    for &c in &P[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let r2 = _mm256_mul_ps(r, r);
    let e_r = _mm256_add_ps(_mm256_fmadd_ps(p, r2, r), _mm256_set1_ps(1.0));
    // 2^n from n's bits in the exponent field: n is in [-126, 127].
    let two_n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    _mm256_mul_ps(e_r, two_n)
}

/// x·Φ(x) per lane. Φ(x) = 1 - erfc(z)/2 for z = x/√2 ≥ 0 and erfc(-z)/2 below, with
/// erfc(|z|) = t·P(t)·e^(-z²), t = 1/(1 + p|z|) (Abramowitz and Stegun 7.1.26, within
/// 1.5e-7): the negative side needs no `1 + erf` that would cancel.
#[target_feature(enable = "avx2,fma")]
fn gelu8(x: __m256) -> __m256 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        1.061_405_4,
        -1.453_152,
        1.421_413_7,
        -0.284_496_74,
        0.254_829_6,
    ];
    let z = _mm256_mul_ps(x, _mm256_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let magnitude = _mm256_andnot_ps(_mm256_set1_ps(-0.0), z);
    let one = _mm256_set1_ps(1.0);
    let t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(P), magnitude, one));
    let mut poly = _mm256_set1_ps(A[0]);
    for &c in &A[1..] {
        poly = _mm256_fmadd_ps(poly, t, _mm256_set1_ps(c));
    }
    let minus_z2 = _mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), z), z);
    let erfc = _mm256_mul_ps(_mm256_mul_ps(poly, t), exp8(minus_z2));
    // 2Φ(x): 2 - erfc(|z|) where x ≥ 0, erfc(|z|) where x < 0.
    let negative = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_setzero_ps());
    let twice_phi = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(2.0), erfc), erfc, negative);
    _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5), x), twice_phi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;

    #[test]
    fn gelu_matches_the_exact_function() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        // Every 1/1024 from -12 to 12, and the length is not a multiple of 8.
        let inputs: Vec<f32> = (-12 * 1024..=12 * 1024)
            .map(|i| i as f32 / 1024.0)
            .collect();
        let mut values = inputs.clone();
        gelu_in_place(&mut values);
        let mut worst = 0f64;
        for (&x, &y) in inputs.iter().zip(&values) {
            let x = f64::from(x);
            let exact = reference::gelu(x);
            let error = (f64::from(y) - exact).abs() / (1.0 + x.abs());
            worst = worst.max(error);
        }
        assert!(worst < 2e-7, "GELU error {worst:e} · (1 + |x|)");
        // The libm path it replaces agrees to f32 rounding.
        for (&x, &y) in inputs.iter().zip(&values) {
            let libm = 0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2));
            assert!(
                (y - libm).abs() <= 4e-7 * (1.0 + x.abs()),
                "gelu({x}): {y} vs {libm}"
            );
        }
    }

    #[test]
    fn layer_norm_matches_an_f64_reference() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        // Widths with and without a partial last register, values off-centre so that
        // the mean matters.
        for width in [3usize, 8, 13, 768] {
            let mut state = 0x51ed_27a3_u32 ^ width as u32;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as f32 / u32::MAX as f32 * 4.0 - 1.0
            };
            let row: Vec<f32> = (0..width).map(|_| next() + 3.0).collect();
            let residual: Vec<f32> = (0..width).map(|_| next()).collect();
            let gamma: Vec<f32> = (0..width).map(|_| next()).collect();
            let beta: Vec<f32> = (0..width).map(|_| next()).collect();
            let mut got = row.clone();
            add_and_layer_norm(&mut got, &residual, &gamma, &beta, 1e-5);
            let x: Vec<f64> = row
                .iter()
                .zip(&residual)
                .map(|(&a, &b)| f64::from(a + b))
                .collect();
            let reference = reference::layer_norm(&x, &gamma, &beta, 1e-5);
            for (i, &want) in reference.iter().enumerate() {
                assert!(
                    (f64::from(got[i]) - want).abs() < 1e-5,
                    "width {width}, value {i}: {} vs {want}",
                    got[i]
                );
            }
        }
    }

    #[test]
    fn softmax_matches_an_f64_reference() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        // Widths with and without a partial last register; scores spread wide enough
        // (exponents down to -250) that some fall below the clamp at ln of the smallest
        // normal float.
        for width in [1usize, 7, 8, 13, 64, 509] {
            let mut state = 0x9e37_79b9_u32 ^ width as u32;
            let mut values: Vec<f32> = (0..3 * width)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state as f32 / u32::MAX as f32 - 0.5) * 2000.0
                })
                .collect();
            let scores = values.clone();
            let scale = 0.125;
            let mut inverse_sums = vec![0f32; 3];
            softmax_rows_unnormalized(&mut values, width, scale, &mut inverse_sums);
            for ((row, numerators), inverse) in scores
                .chunks(width)
                .zip(values.chunks(width))
                .zip(inverse_sums)
            {
                // The exponents as f32 computes them (x - max rounds at |x - max| · 2^-24),
                // their exponentials and the normalization in f64.
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let exponents: Vec<f64> =
                    row.iter().map(|&x| f64::from((x - max) * scale)).collect();
                for (&exact, &numerator) in reference::softmax(&exponents).iter().zip(numerators) {
                    let p = numerator * inverse;
                    assert!(
                        (f64::from(p) - exact).abs() <= 1e-6 * exact + 1e-37,
                        "width {width}: {p} vs {exact}"
                    );
                }
            }
        }
    }

    #[test]
    fn exp_is_within_two_epsilons() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let inputs: Vec<f32> = (-87 * 256..88 * 256)
            .map(|i| i as f32 / 256.0 + 1.0 / 1024.0)
            .collect();
        for chunk in inputs.chunks_exact(8) {
            let mut out = [0f32; 8];
            // SAFETY: AVX2 and FMA were checked; both arrays hold 8 floats.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr(), exp8(_mm256_loadu_ps(chunk.as_ptr()))) };
            for (&x, &y) in chunk.iter().zip(&out) {
                let exact = f64::from(x).exp();
                let ulp = f64::from(f32::EPSILON) * exact;
                assert!(
                    (f64::from(y) - exact).abs() <= 2.0 * ulp,
                    "exp({x}) = {y}, not {exact}"
                );
            }
        }
    }
}
