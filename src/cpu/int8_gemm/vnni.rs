//! The AVX512-VNNI kernel (`vpdpbusd` on bytes) and its activation layout.

use super::{quantize, row_scale, PackedInt8, Weights};
use std::arch::x86_64::*;

/// Output columns per kernel call: two 16-lane registers.
pub(super) const COLUMNS: usize = 32;
/// Rows per kernel call: 8 rows x 2 registers = 16 accumulators, half of
/// AVX-512's registers, each step's multiply-adds independent of one another.
pub(super) const ROWS: usize = 8;

/// The kernel on one tile: `row_scales.len()` quantized rows from `first_row` of
/// `quantized` (shifted onto [1, 255], whole quads each) by the column block at `col`.
///
/// # Safety
/// AVX512-F, AVX512-BW and AVX512-VNNI are present; `out` points at the tile's first
/// row, its rows `n` apart, whose columns in the block are valid and the caller's
/// alone.
pub(super) unsafe fn tile(
    matrix: &PackedInt8,
    quantized: &[u8],
    row_scales: &[f32],
    first_row: usize,
    col: usize,
    out: *mut f32,
) {
    let Weights::Quads { blocks, offsets } = &matrix.weights else {
        unreachable!("the VNNI kernel on the AVX2 layout")
    };
    let (n, width) = (matrix.n, matrix.k.div_ceil(4) * 4);
    let columns = COLUMNS.min(n - col);
    let tile = Tile {
        b: &blocks[col / COLUMNS * width * COLUMNS..][..width * COLUMNS],
        offsets: &offsets[col..col + columns],
        scales: &matrix.scales[col..col + columns],
        bias: &matrix.bias[col..col + columns],
        col,
        stride: n,
    };
    let rows = row_scales.len();
    let a = &quantized[first_row * width..(first_row + rows) * width];
    // SAFETY: the caller's contract; the slices have the lengths `kernel` asks for,
    // which it asserts.
    unsafe {
        match rows {
            8 => kernel::<8>(a, row_scales, &tile, out),
            7 => kernel::<7>(a, row_scales, &tile, out),
            6 => kernel::<6>(a, row_scales, &tile, out),
            5 => kernel::<5>(a, row_scales, &tile, out),
            4 => kernel::<4>(a, row_scales, &tile, out),
            3 => kernel::<3>(a, row_scales, &tile, out),
            2 => kernel::<2>(a, row_scales, &tile, out),
            _ => kernel::<1>(a, row_scales, &tile, out),
        }
    }
}

/// One row of f32 quantized as [`super::quantize_row`] does, each value plus 128
/// as a byte (`out` past the row keeps its values): returns the row's scale.
#[target_feature(enable = "avx512f")]
pub(super) fn quantize_row(row: &[f32], out: &mut [u8]) -> f32 {
    let (scale, inverse) = row_scale(row);
    // Sixteen at a time, rounded as `quantize` does (`vcvtps2dq`: to nearest, ties
    // to even); the shifted values fit a byte, so `vpmovdb`'s truncation keeps them.
    let inverse16 = _mm512_set1_ps(inverse);
    let (low, high) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    let shift = _mm512_set1_epi32(128);
    let whole = row.len() / 16 * 16;
    for (q, x) in out.chunks_exact_mut(16).zip(row[..whole].chunks_exact(16)) {
        // SAFETY: `x` holds 16 floats and `q` 16 bytes.
        unsafe {
            let v = _mm512_mul_ps(_mm512_loadu_ps(x.as_ptr()), inverse16);
            let v = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(v, low), high));
            let bytes = _mm512_cvtepi32_epi8(_mm512_add_epi32(v, shift));
            _mm_storeu_si128(q.as_mut_ptr().cast(), bytes);
        }
    }
    for (q, &x) in out[whole..].iter_mut().zip(&row[whole..]) {
        *q = (quantize(x, inverse) + 128) as u8;
    }
    scale
}

/// What the kernel needs of one column block: its packed weights (`quads × 128`
/// bytes), the block's column offsets, scales and bias (`columns` ≤ 32 each), its
/// first column and the output's row stride.
struct Tile<'a> {
    b: &'a [i8],
    offsets: &'a [i32],
    scales: &'a [f32],
    bias: &'a [f32],
    col: usize,
    stride: usize,
}

/// `R` rows by up to 32 columns: `out[r][col + c] = (Σ_i a[r][i] · b[i][c] -
/// offsets[c]) · row_scales[r] · scales[c] + bias[c]`, with `a` the shifted bytes.
///
/// # Safety
/// AVX512-F, AVX512-BW and AVX512-VNNI are present. `out` points at the first of `R`
/// rows `tile.stride` floats apart, whose columns `tile.col..tile.col + columns` are
/// valid and the caller's alone. The asserted contract keeps the other accesses
/// inside the slices: `a` holds `R` rows of `b.len() / 32` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const R: usize>(a: &[u8], row_scales: &[f32], tile: &Tile, out: *mut f32) {
    let columns = tile.scales.len();
    let width = tile.b.len() / COLUMNS;
    let quads = width / 4;
    // The contract, checked on every call: once per tile, beside `quads` steps of
    // 64 multiply-adds per row.
    assert!(a.len() == R * width && row_scales.len() == R && width.is_multiple_of(4));
    assert!(columns <= COLUMNS && tile.bias.len() == columns);
    assert!(tile.offsets.len() == columns);
    assert!(tile.col + columns <= tile.stride);
    let mut acc = [[_mm512_setzero_si512(); 2]; ROWS];
    let b = tile.b.as_ptr();
    // Each row's start in `a`; rows past `R` are never read.
    let mut row_start = [a.as_ptr(); ROWS];
    for (r, start) in row_start.iter_mut().enumerate().take(R) {
        *start = a[r * width..].as_ptr();
    }
    // The rows are spelled out (`r` a literal, `r < R` known at compile time) so
    // that the accumulators live in registers.
    macro_rules! step {
        ($q:expr, $b0:expr, $b1:expr; $($r:literal)*) => {$(
            if $r < R {
                // SAFETY: row `$r` < R has `4 · quads` bytes from its start and
                // $q < quads: the four at 4·$q, read as one (unaligned) i32.
                let quad = unsafe { row_start[$r].wrapping_add(4 * $q).cast::<i32>().read_unaligned() };
                let x = _mm512_set1_epi32(quad);
                acc[$r][0] = _mm512_dpbusd_epi32(acc[$r][0], x, $b0);
                acc[$r][1] = _mm512_dpbusd_epi32(acc[$r][1], x, $b1);
            }
        )*};
    }
    for q in 0..quads {
        // SAFETY: q < quads, so both 64-byte reads are inside `b` (quads × 128).
        let (b0, b1) = unsafe {
            (
                _mm512_loadu_si512(b.wrapping_add(q * 4 * COLUMNS).cast()),
                _mm512_loadu_si512(b.wrapping_add(q * 4 * COLUMNS + 64).cast()),
            )
        };
        step!(q, b0, b1; 0 1 2 3 4 5 6 7);
    }
    // Lanes past `columns` (the matrix's last, partial column block) are neither
    // read nor written.
    let mask = |from: usize| -> __mmask16 {
        match columns.saturating_sub(from) {
            0 => 0,
            c if c >= 16 => 0xffff,
            c => (1u16 << c) - 1,
        }
    };
    let (mask0, mask1) = (mask(0), mask(16));
    let second = 16.min(columns);
    // SAFETY: masked loads and stores touch only the first `columns` values from
    // each slice's start (the second half from 16), and of the `R` output rows
    // only columns `col..col + columns`, inside `out` by the contract.
    unsafe {
        let load = |values: *const f32, mask| _mm512_maskz_loadu_ps(mask, values);
        let (scale0, scale1) = (
            load(tile.scales.as_ptr(), mask0),
            load(tile.scales.as_ptr().wrapping_add(second), mask1),
        );
        let (bias0, bias1) = (
            load(tile.bias.as_ptr(), mask0),
            load(tile.bias.as_ptr().wrapping_add(second), mask1),
        );
        let (offset0, offset1) = (
            _mm512_maskz_loadu_epi32(mask0, tile.offsets.as_ptr()),
            _mm512_maskz_loadu_epi32(mask1, tile.offsets.as_ptr().wrapping_add(second)),
        );
        for (r, acc) in acc.iter().enumerate().take(R) {
            let row_scale = _mm512_set1_ps(row_scales[r]);
            // As the AVX2 kernel scales its sums, operation for operation.
            let lo = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[0], offset0)),
                _mm512_mul_ps(row_scale, scale0),
                bias0,
            );
            let hi = _mm512_fmadd_ps(
                _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[1], offset1)),
                _mm512_mul_ps(row_scale, scale1),
                bias1,
            );
            let row = out.wrapping_add(r * tile.stride + tile.col);
            _mm512_mask_storeu_ps(row, mask0, lo);
            _mm512_mask_storeu_ps(row.wrapping_add(second), mask1, hi);
        }
    }
}
