//! The AVX-512F microkernel of the f32 products: six rows by up to four 16-column
//! blocks in 16-lane registers, each sum the same FMAs in the same order as AVX2's.

use std::arch::x86_64::*;

use super::{Tile, COLUMNS, ROWS};

/// [`kernel_on`](super::avx2::kernel_on) on `BLOCKS` adjacent column blocks at once with AVX-512:
/// six rows by up to `16 · BLOCKS` columns, each output's sum the same FMAs in the same order.
/// Block `j`'s weights are its panel, `b[j · k · 16..]`, from step `tile.depth_start`.
///
/// # Safety
/// AVX-512F is present; otherwise as [`kernel_on`](super::avx2::kernel_on), with `b` holding the
/// `BLOCKS` panels of `k` steps each and `bias` the group's columns: more than `16 · (BLOCKS - 1)`
/// and at most `16 · BLOCKS`.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn wide_kernel<const STEP: usize, const ROW: usize, const BLOCKS: usize>(
    a: *const f32,
    row_stride: usize,
    b: &[f32],
    k: usize,
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
    // 6 · BLOCKS FMAs.
    assert!(b.len() == BLOCKS * k * COLUMNS && depth_start + depth <= k);
    assert!((1..=ROWS).contains(&rows));
    assert!(width > (BLOCKS - 1) * COLUMNS && width <= BLOCKS * COLUMNS);
    assert!(col + width <= stride);
    // Block j's lanes in the group's columns: all 16 but in a last, partial block.
    let masks: [__mmask16; BLOCKS] = std::array::from_fn(|j| {
        let lanes = (width - j * COLUMNS).min(COLUMNS);
        (((1u32 << lanes) - 1) & 0xffff) as __mmask16
    });
    // The starting sums: the bias, or what the steps before this block left in `out`;
    // zero in rows past the tile's, through loads with no lanes (which read nothing).
    // Every sum is written once, from uninitialized memory: an array of zeros first
    // compiled to a call to memset per tile.
    let mut starts = [[std::mem::MaybeUninit::<__m512>::uninit(); BLOCKS]; ROWS];
    for (r, starts) in starts.iter_mut().enumerate() {
        for (j, start) in starts.iter_mut().enumerate() {
            let (from, mask) = if r >= rows {
                (bias.as_ptr(), 0)
            } else if depth_start == 0 {
                (bias.as_ptr(), masks[j])
            } else {
                (out.wrapping_add(r * stride + col) as *const f32, masks[j])
            };
            // SAFETY: the masked lanes are the row's columns in the group, inside
            // `bias` or the caller's part of `out` (contract); a load with no lanes
            // reads no memory.
            start.write(unsafe { _mm512_maskz_loadu_ps(mask, from.wrapping_add(j * COLUMNS)) });
        }
    }
    // SAFETY: every element was written above; the arrays have the same layout.
    let mut acc: [[__m512; BLOCKS]; ROWS] = unsafe { std::mem::transmute_copy(&starts) };
    // Each row's next value, as `kernel_on` reads them, and the first block's next
    // weights; the loop advances them with no bounds or overflow checks, so that the
    // compiler keeps all the sums in registers (a panic exit inside the loop has it
    // store them to the stack on every step).
    let mut inputs: [*const f32; ROWS] =
        std::array::from_fn(|r| a.wrapping_add(r * ROW + r.min(rows - 1) * row_stride * (1 - ROW)));
    let mut weights = b.as_ptr().wrapping_add(depth_start * COLUMNS);
    let block_stride = k * COLUMNS;
    for _ in 0..depth {
        // SAFETY: each of the `depth` steps reads, per block, 16 weights inside its
        // panel (depth_start + depth ≤ k), and per row the caller's value (i, r) of `a`.
        unsafe {
            let mut w = [_mm512_setzero_ps(); BLOCKS];
            for (j, w) in w.iter_mut().enumerate() {
                *w = _mm512_loadu_ps(weights.wrapping_add(j * block_stride));
            }
            for r in 0..ROWS {
                let x = _mm512_set1_ps(*inputs[r]);
                for j in 0..BLOCKS {
                    acc[r][j] = _mm512_fmadd_ps(x, w[j], acc[r][j]);
                }
                inputs[r] = inputs[r].wrapping_add(STEP);
            }
        }
        weights = weights.wrapping_add(COLUMNS);
    }
    for (r, acc) in acc.iter().enumerate().take(rows) {
        let row = out.wrapping_add(r * stride + col);
        for (j, &acc) in acc.iter().enumerate() {
            // SAFETY: the masked lanes are the row's columns in the group, the
            // caller's part of `out` (contract).
            unsafe { _mm512_mask_storeu_ps(row.wrapping_add(j * COLUMNS), masks[j], acc) };
        }
    }
}
