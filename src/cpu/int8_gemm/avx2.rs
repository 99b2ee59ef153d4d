//! The AVX2 kernel (`vpmaddwd` on 16-bit operands) and its activation layout.

use std::arch::x86_64::*;

use super::{quantize, row_scale, Tile, COLUMNS, ROWS};

/// One row of f32 quantized to int8 values (held as `i16`, padded with a zero to whole
/// pairs): returns the row's scale.
#[target_feature(enable = "avx2")]
pub(super) fn quantize_row(row: &[f32], out: &mut [i16]) -> f32 {
    let (scale, inverse) = row_scale(row);
    // Eight at a time: `vcvtps2dq` rounds to nearest, ties to even, as `quantize`
    // does, and the clamped values fit 16 bits, so packing them loses nothing.
    let inverse8 = _mm256_set1_ps(inverse);
    let (low, high) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    let whole = row.len() / 8 * 8;
    for (q, x) in out.chunks_exact_mut(8).zip(row.chunks_exact(8)) {
        // SAFETY: `x` holds 8 floats and `q` 8 i16 (16 bytes).
        unsafe {
            let v = _mm256_mul_ps(_mm256_loadu_ps(x.as_ptr()), inverse8);
            let v = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(v, low), high));
            let packed =
                _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            _mm_storeu_si128(q.as_mut_ptr().cast(), packed);
        }
    }
    for (q, &x) in out[whole..].iter_mut().zip(&row[whole..]) {
        *q = quantize(x, inverse);
    }
    scale
}

/// `R` rows by up to 16 columns:
/// `out[r][col + c] = (Σ_p a[r][p] · b[p][c]) · row_scales[r] · scales[c] + bias[c]`.
///
/// # Safety
/// AVX2 is present. `out` points at the first of `R` rows `tile.stride` floats apart,
/// whose columns `tile.col..tile.col + columns` are valid and the caller's alone. The
/// asserted contract keeps the other accesses inside the slices: `a` holds `R`
/// quantized rows of `b.len() / 16` values.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel<const R: usize>(
    a: &[i16],
    row_scales: &[f32],
    tile: &Tile,
    out: *mut f32,
) {
    let columns = tile.scales.len();
    let width = tile.b.len() / COLUMNS;
    let pairs = width / 2;
    // The contract, checked on every call: once per tile, beside `pairs` steps of 16
    // multiply-adds per row.
    assert!(a.len() == R * width && row_scales.len() == R && width.is_multiple_of(2));
    assert!(columns <= COLUMNS && tile.bias.len() == columns);
    assert!(tile.col + columns <= tile.stride);
    let mut acc = [[_mm256_setzero_si256(); 2]; ROWS];
    let b = tile.b.as_ptr();
    // Each row's start in `a`; rows past `R` are never read.
    let mut row_start = [a.as_ptr(); ROWS];
    for (r, start) in row_start.iter_mut().enumerate().take(R) {
        *start = a[r * width..].as_ptr();
    }
    // The rows are spelled out (`r` a literal, `r < R` known at compile time) so that
    // the accumulators live in registers.
    macro_rules! step {
        ($p:expr, $b0:expr, $b1:expr; $($r:literal)*) => {$(
            if $r < R {
                // SAFETY: row `$r` < R has `2 · pairs` values from its start and
                // $p < pairs: the two i16 at 2·$p, read as one (unaligned) i32.
                let pair = unsafe { row_start[$r].wrapping_add(2 * $p).cast::<i32>().read_unaligned() };
                let x = _mm256_set1_epi32(pair);
                acc[$r][0] = _mm256_add_epi32(acc[$r][0], _mm256_madd_epi16(x, $b0));
                acc[$r][1] = _mm256_add_epi32(acc[$r][1], _mm256_madd_epi16(x, $b1));
            }
        )*};
    }
    for p in 0..pairs {
        // SAFETY: p < pairs, so both 16-value reads are inside `b` (pairs × 32 values).
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_si256(b.wrapping_add(p * 2 * COLUMNS).cast()),
                _mm256_loadu_si256(b.wrapping_add(p * 2 * COLUMNS + COLUMNS).cast()),
            )
        };
        step!(p, b0, b1; 0 1 2 3 4 5);
    }
    // Column scales and bias, zero past `columns` (those lanes are not written).
    let mut scales = [0f32; COLUMNS];
    let mut bias = [0f32; COLUMNS];
    scales[..columns].copy_from_slice(tile.scales);
    bias[..columns].copy_from_slice(tile.bias);
    // SAFETY: both arrays hold 16 floats: two 8-lane loads each.
    let (scale0, scale1, bias0, bias1) = unsafe {
        (
            _mm256_loadu_ps(scales.as_ptr()),
            _mm256_loadu_ps(scales.as_ptr().add(8)),
            _mm256_loadu_ps(bias.as_ptr()),
            _mm256_loadu_ps(bias.as_ptr().add(8)),
        )
    };
    for (r, acc) in acc.iter().enumerate().take(R) {
        let row_scale = _mm256_set1_ps(row_scales[r]);
        let lo = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(acc[0]),
            _mm256_mul_ps(row_scale, scale0),
            bias0,
        );
        let hi = _mm256_fmadd_ps(
            _mm256_cvtepi32_ps(acc[1]),
            _mm256_mul_ps(row_scale, scale1),
            bias1,
        );
        let start = r * tile.stride + tile.col;
        // SAFETY: the row's `columns` values from `tile.col` are the caller's alone.
        let row = unsafe { std::slice::from_raw_parts_mut(out.add(start), columns) };
        if columns == COLUMNS {
            // SAFETY: `row` holds 16 floats: two 8-lane stores.
            unsafe {
                _mm256_storeu_ps(row.as_mut_ptr(), lo);
                _mm256_storeu_ps(row.as_mut_ptr().add(8), hi);
            }
        } else {
            // A partial block through a copy (the whole block would write past it).
            let mut values = [0f32; COLUMNS];
            // SAFETY: `values` holds 16 floats.
            unsafe {
                _mm256_storeu_ps(values.as_mut_ptr(), lo);
                _mm256_storeu_ps(values.as_mut_ptr().add(8), hi);
            }
            row.copy_from_slice(&values[..columns]);
        }
    }
}
