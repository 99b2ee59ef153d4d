//! The AVX2 and FMA microkernels of the f32 products: six rows by one 16-column block
//! in 8-lane registers, and the transpose that packs six input rows into a panel.

use std::arch::x86_64::*;

use super::{Tile, COLUMNS, ROWS, SLACK};

/// The 16 weights of one step of a column block's panel, as the two 8-lane f32
/// registers the FMAs take: columns 0-7 and 8-15.
pub(crate) trait PanelStep: Copy + Send + Sync + 'static {
    /// The step's weights at `p`.
    ///
    /// # Safety
    /// AVX2 is present; `p` is valid for 16 values.
    unsafe fn load(p: *const Self) -> (__m256, __m256);
}

impl PanelStep for f32 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> (__m256, __m256) {
        // SAFETY: the caller's: 16 floats at `p`.
        unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
    }
}

/// A weight's bf16 bits: the upper half of an f32's, so widening one is exact. A
/// step's 16 are stored columns 0-3, 8-11, 4-7, 12-15 ([`Bf16::position`]), the order
/// in which interleaving them with zeros (within each 128-bit half) yields columns
/// 0-7 and 8-15 as f32: two shuffles where an f32 panel takes a second load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(transparent)]
pub(crate) struct Bf16(pub(crate) u16);

impl Bf16 {
    /// Where column `c` (of 16) of a step is stored.
    pub(crate) fn position(c: usize) -> usize {
        match c {
            4..8 => c + 4,
            8..12 => c - 4,
            _ => c,
        }
    }
}

impl PanelStep for Bf16 {
    #[inline(always)]
    unsafe fn load(p: *const Bf16) -> (__m256, __m256) {
        // SAFETY: the caller's: 16 values (32 bytes) at `p`, and AVX2.
        unsafe {
            let stored = _mm256_loadu_si256(p.cast());
            let zero = _mm256_setzero_si256();
            (
                _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, stored)),
                _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, stored)),
            )
        }
    }
}

/// Six rows by up to 16 columns, over `depth` steps: `out[r][col + c] (+)=
/// Σ_i a[i][r] · b[i][c]`, starting from `bias[c]` at the first step of `k` and from
/// what `out` holds after it, so each sum runs along `k` in order. Only the tile's
/// `rows` rows are read and written in `out`.
///
/// The input comes in one of two layouts. In a packed panel (`STEP` 6, `ROW` 1),
/// value (i, r) at `a[6i + r]`. In rows where they lie (`STEP` 1, `ROW` 0), at
/// `a[r · row_stride + i]`, rows from `tile.rows` on reading row `tile.rows - 1` again
/// (their sums are not stored): attention's probabilities are read so, as packing them
/// would cost about what the few column blocks (head_dim / 16) that read them save.
///
/// # Safety
/// AVX2 and FMA are present. `out` points at the first of `rows` rows of `stride`
/// floats, whose columns `col..col + bias.len()` the caller alone may access. `a` is
/// valid for the `tile.depth` values of each of the tile's rows in its layout. The
/// asserted contract keeps the other accesses inside the slices: `b` holds
/// `depth × 16` values, `bias` at most 16.
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(super) unsafe fn kernel_on<const STEP: usize, const ROW: usize, W: PanelStep>(
    a: *const f32,
    row_stride: usize,
    b: &[W],
    bias: &[f32],
    out: *mut f32,
    tile: Tile,
) {
    let Tile {
        rows,
        depth_start,
        depth,
        col,
        stride,
    } = tile;
    let width = bias.len();
    // The contract, checked on every call: once per tile, beside `depth` steps of
    // 12 FMAs.
    assert!(b.len() == depth * COLUMNS);
    assert!((1..=ROWS).contains(&rows) && width <= COLUMNS);
    assert!(col + width <= stride);
    // The starting sums: the bias, or what the steps before this block left in `out`.
    let mut acc = [[_mm256_setzero_ps(); 2]; ROWS];
    for (r, acc) in acc.iter_mut().enumerate().take(rows) {
        let at = r * stride + col;
        let start = if depth_start == 0 {
            bias
        } else {
            // SAFETY: the row's columns col..col + width are the caller's (contract).
            unsafe { std::slice::from_raw_parts(out.add(at), width) }
        };
        let mut padded = [0f32; COLUMNS];
        // A whole block is read in place; a partial one through a zero-padded copy
        // (a copy of unknown length is a library call, too slow for every tile).
        let start = if width == COLUMNS {
            start
        } else {
            padded[..width].copy_from_slice(start);
            &padded[..]
        };
        // SAFETY: `start` holds 16 floats: two 8-lane loads.
        unsafe {
            acc[0] = _mm256_loadu_ps(start.as_ptr());
            acc[1] = _mm256_loadu_ps(start.as_ptr().add(8));
        }
    }
    let b = b.as_ptr();
    // Where each row's values start: in a packed panel 0 to 5 (then STEP is 6), in
    // rows the row starts, the tile's last row standing in for absent ones.
    let starts: [usize; ROWS] =
        std::array::from_fn(|r| r * ROW + r.min(rows - 1) * row_stride * (1 - ROW));
    for i in 0..depth {
        // SAFETY: i < depth: the two 8-lane reads are inside `b` (depth × 16 values)
        // and the six reads are the caller's values (i, r) of `a`.
        unsafe {
            let (b0, b1) = W::load(b.add(i * COLUMNS));
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = _mm256_broadcast_ss(&*a.add(i * STEP + starts[r]));
                acc[0] = _mm256_fmadd_ps(x, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(x, b1, acc[1]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate().take(rows) {
        let start = r * stride + col;
        if width == COLUMNS {
            // SAFETY: the 16 floats from `start` are the caller's (contract).
            unsafe {
                let row = out.add(start);
                _mm256_storeu_ps(row, acc[0]);
                _mm256_storeu_ps(row.add(8), acc[1]);
            }
        } else {
            let mut values = [0f32; COLUMNS];
            // SAFETY: `values` holds 16 floats; the `width` floats from `start` are the
            // caller's (contract).
            unsafe {
                _mm256_storeu_ps(values.as_mut_ptr(), acc[0]);
                _mm256_storeu_ps(values.as_mut_ptr().add(8), acc[1]);
                std::ptr::copy_nonoverlapping(values.as_ptr(), out.add(start), width);
            }
        }
    }
}

/// Six rows of equal length interleaved step by step into `panel`: value (i, r) at
/// `6i + r`. Eight steps at a time, the six rows and two of zeros are transposed in
/// registers and each step's eight lanes stored in turn, the next step's store
/// overwriting the two beyond the six: so `panel` holds [`SLACK`] values more, past
/// the interleaved ones, that are left zero or overwritten.
///
/// # Safety
/// AVX2 is present.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn interleave(rows: [&[f32]; ROWS], panel: &mut [f32]) {
    let depth = rows[0].len();
    assert!(rows.iter().all(|row| row.len() == depth) && panel.len() == depth * ROWS + SLACK);
    let whole = depth / 8 * 8;
    for i in (0..whole).step_by(8) {
        let zero = _mm256_setzero_ps();
        // SAFETY: i + 8 ≤ depth: each load reads eight values of its row.
        let r: [__m256; ROWS] =
            std::array::from_fn(|r| unsafe { _mm256_loadu_ps(rows[r][i..].as_ptr()) });
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xee>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xee>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, zero);
        let u5 = _mm256_shuffle_ps::<0xee>(t4, zero);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, zero);
        let u7 = _mm256_shuffle_ps::<0xee>(t5, zero);
        // Step i + s: its six values, then two zeros.
        let steps = [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ];
        for (s, step) in steps.into_iter().enumerate() {
            // SAFETY: (i + s)·6 + 8 ≤ depth·6 + SLACK, as i + s < depth.
            unsafe { _mm256_storeu_ps(panel[(i + s) * ROWS..][..8].as_mut_ptr(), step) };
        }
    }
    for i in whole..depth {
        for (r, row) in rows.iter().enumerate() {
            panel[i * ROWS + r] = row[i];
        }
    }
}
