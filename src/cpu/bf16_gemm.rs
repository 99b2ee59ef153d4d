//! Matrix products on bf16 weights with the CPU's bf16 dot-product instruction
//! (AVX512-BF16 `vdpbf16ps`), for [`crate::Precision::Bf16`] on the CPU backends of
//! CPUs where it outruns the f32 FMAs ([`crate::CpuFeatures::fast_bf16_dot`]).
//!
//! burn's CPU backends widen bf16 to f32 before multiplying, so bf16 weights there only
//! save memory. `vdpbf16ps` multiplies pairs of bf16 values and accumulates in f32,
//! twice the work of an f32 FMA per instruction. Weights are converted and laid out
//! for it once, at load; activations are rounded to bf16 (to nearest, ties to even)
//! at each product, and sums, bias and everything outside the products stay f32.

use rayon::prelude::*;
use std::arch::x86_64::*;
use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

use super::driver::{self, Epilogue, Microkernel};
use super::CpuFeatures;

/// Output columns per kernel call: two 16-lane registers.
const COLUMNS: usize = 32;
/// Rows per kernel call: 8 rows x 2 registers = 16 accumulators. With 12 rows (24
/// accumulators) the compiler shuffles registers inside the loop and it runs slower.
const ROWS: usize = 8;
/// Rows per cache block: as int8's, whose microkernel likewise finishes its sums in
/// one call with a column block's weights in L2 (see [`super::int8_gemm`]).
const BAND: usize = 256;

/// A `[k, n]` weight matrix (and bias) in bf16, laid out for the kernel: for each
/// block of 32 output columns, for each pair of input rows, 32 `u32`s holding the
/// pair's two bf16 values for each column (the lower half is the even row), as
/// `vdpbf16ps` reads them.
#[derive(Clone)]
pub struct PackedBf16 {
    k: usize,
    n: usize,
    blocks: Vec<u32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedBf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_shape(f, "PackedBf16", self.k, self.n)
    }
}

/// f32 to bf16 bits, rounded to nearest with ties to even, as `vcvtne2ps2bf16` does.
pub(crate) fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

impl PackedBf16 {
    /// Packs `weight` (`[n, k]` row-major: the checkpoint's `[out, in]` layout) and
    /// `bias` (`n` values, zeros when `None`).
    pub fn new(weight: &[f32], bias: Option<&[f32]>, k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not [{n}, {k}]");
        let pairs = k.div_ceil(2);
        let column_blocks = n.div_ceil(COLUMNS);
        let mut blocks = vec![0u32; column_blocks * pairs * COLUMNS];
        // Input `row`'s weights for output columns `col..col + 32`, in bf16 (zeros past
        // the edges).
        let columns = |row: usize, col: usize| -> [u16; COLUMNS] {
            let mut values = [0; COLUMNS];
            if row < k {
                let end = (col + COLUMNS).min(n);
                for (value, c) in values.iter_mut().zip(col..end) {
                    *value = bf16_bits(weight[c * k + row]);
                }
            }
            values
        };
        blocks
            .par_chunks_mut(pairs * COLUMNS)
            .enumerate()
            .for_each(|(block, panel)| {
                let col = block * COLUMNS;
                for (pair, out) in panel.chunks_exact_mut(COLUMNS).enumerate() {
                    let (even, odd) = (columns(2 * pair, col), columns(2 * pair + 1, col));
                    for ((slot, &e), &o) in out.iter_mut().zip(&even).zip(&odd) {
                        *slot = u32::from(e) | (u32::from(o) << 16);
                    }
                }
            });
        let bias = super::vector_math::bias_or_zeros(bias, n);
        Self { k, n, blocks, bias }
    }

    /// `u32` steps along an input row: its width in bf16 pairs, the last one padded.
    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized
    /// to `[m, n]` row-major, then `epilogue`: split and blocked as
    /// [`driver::product_into`] says.
    ///
    /// # Panics
    /// When the CPU lacks AVX512-BF16 (see [`CpuFeatures`]) or `input` is not
    /// `m × k`.
    pub fn matmul_into(&self, input: &[f32], m: usize, output: &mut Vec<f32>, epilogue: Epilogue) {
        driver::product_into(self, input, m, output, epilogue);
    }
}

thread_local! {
    /// Each thread's rounded input rows, kept from one product to the next.
    static PANELS: Cell<Vec<u32>> = const { Cell::new(Vec::new()) };
}

/// The driver's view of a bf16 product: a band's input rows rounded to bf16 pairs,
/// and the whole of `k` in each microkernel call.
impl Microkernel for PackedBf16 {
    /// Row r's u32 number p holds its columns 2p and 2p + 1, the layout the kernel
    /// broadcasts from.
    type Panels = Vec<u32>;

    fn panels() -> &'static LocalKey<Cell<Vec<u32>>> {
        &PANELS
    }

    fn k(&self) -> usize {
        self.k
    }

    fn n(&self) -> usize {
        self.n
    }

    fn bias(&self) -> &[f32] {
        &self.bias
    }

    fn tile_shape(&self) -> (usize, usize) {
        (ROWS, COLUMNS)
    }

    fn depth(&self) -> usize {
        self.k.max(1)
    }

    fn band(&self) -> usize {
        BAND
    }

    fn assert_supported(&self) {
        assert!(CpuFeatures::get().avx512_bf16, "the CPU has no AVX512-BF16");
    }

    unsafe fn pack_rows(
        &self,
        a: &[f32],
        row_stride: usize,
        rows: usize,
        _steps: Range<usize>,
        panels: &mut Vec<u32>,
    ) {
        let pairs = self.pairs();
        panels.resize(rows * pairs, 0);
        for (r, out) in panels[..rows * pairs].chunks_exact_mut(pairs).enumerate() {
            // SAFETY: AVX512-BF16 is present (the caller's contract).
            unsafe { round_row(&a[r * row_stride..][..self.k], out) }
        }
    }

    unsafe fn tile(
        &self,
        panels: &Vec<u32>,
        first_row: usize,
        rows: usize,
        _steps: Range<usize>,
        blocks: Range<usize>,
        out: *mut f32,
    ) {
        let pairs = self.pairs();
        let block = blocks.start;
        let b = &self.blocks[block * pairs * COLUMNS..][..pairs * COLUMNS];
        let col = block * COLUMNS;
        let width = COLUMNS.min(self.n - col);
        let bias = &self.bias[col..col + width];
        let a = &panels[first_row * pairs..(first_row + rows) * pairs];
        let n = self.n;
        // SAFETY: the driver's contract: AVX512-BF16, and the tile's columns
        // `col..col + width` of its `rows` rows, `n` apart from `out`, are the
        // caller's; the kernel asserts the lengths it reads of `a`, `b` and `bias`.
        unsafe {
            match rows {
                8 => kernel::<8>(a, b, pairs, bias, out, n, col, width),
                7 => kernel::<7>(a, b, pairs, bias, out, n, col, width),
                6 => kernel::<6>(a, b, pairs, bias, out, n, col, width),
                5 => kernel::<5>(a, b, pairs, bias, out, n, col, width),
                4 => kernel::<4>(a, b, pairs, bias, out, n, col, width),
                3 => kernel::<3>(a, b, pairs, bias, out, n, col, width),
                2 => kernel::<2>(a, b, pairs, bias, out, n, col, width),
                _ => kernel::<1>(a, b, pairs, bias, out, n, col, width),
            }
        }
    }
}

/// One row of f32 rounded to bf16 pairs (`out.len()` = `row.len()` / 2, rounded up).
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn round_row(row: &[f32], out: &mut [u32]) {
    let mut i = 0;
    while i + 32 <= row.len() {
        // SAFETY: 32 floats from `i` are in `row`; 16 u32 from `i / 2` are in `out`.
        unsafe {
            let lo = _mm512_loadu_ps(row.as_ptr().wrapping_add(i));
            let hi = _mm512_loadu_ps(row.as_ptr().wrapping_add(i + 16));
            // The second operand fills the lower half.
            let packed = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(
                out.as_mut_ptr().wrapping_add(i / 2).cast(),
                std::mem::transmute::<__m512bh, __m512i>(packed),
            );
        }
        i += 32;
    }
    while i < row.len() {
        let low = u32::from(bf16_bits(row[i]));
        let high = row.get(i + 1).map_or(0, |&x| u32::from(bf16_bits(x)));
        out[i / 2] = low | (high << 16);
        i += 2;
    }
}

/// `R` rows by up to 32 columns: `out[r][col..col + width] = Σ_p a[r][p] · b[p] + bias`.
///
/// # Safety
/// AVX512-F and AVX512-BF16 are present; `a` has `R × pairs` values, `b` has
/// `pairs × 32`, `bias` has `width` ≤ 32 (both asserted); `out` points at the first of
/// `R` rows `stride` floats apart, whose columns `col..col + width` are valid and the
/// caller's alone, with `col + width` ≤ `stride`.
#[target_feature(enable = "avx512f,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel<const R: usize>(
    a: &[u32],
    b: &[u32],
    pairs: usize,
    bias: &[f32],
    out: *mut f32,
    stride: usize,
    col: usize,
    width: usize,
) {
    // The contract, checked on every call: once per tile, beside `pairs` steps of 16
    // products each (and this crate's debug assertions are off in its one profile).
    assert!(a.len() >= R * pairs && b.len() >= pairs * COLUMNS);
    assert!(width <= COLUMNS && bias.len() >= width);
    assert!(col + width <= stride);
    let mut acc = [[_mm512_setzero_ps(); 2]; ROWS];
    let b = b.as_ptr();
    // Each row's start in `a`; rows past `R` are never read.
    let mut row_start = [a.as_ptr(); ROWS];
    for (r, start) in row_start.iter_mut().enumerate().take(R) {
        *start = a[r * pairs..].as_ptr();
    }
    // The rows are spelled out (`r` a literal, `r < R` known at compile time) so that
    // the 16 accumulators live in registers.
    macro_rules! step {
        ($p:expr, $b0:expr, $b1:expr; $($r:literal)*) => {$(
            if $r < R {
                // SAFETY: row `$r` < R has `pairs` values from its start; $p < pairs.
                let x: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(*row_start[$r].wrapping_add($p) as i32)) };
                acc[$r][0] = _mm512_dpbf16_ps(acc[$r][0], x, $b0);
                acc[$r][1] = _mm512_dpbf16_ps(acc[$r][1], x, $b1);
            }
        )*};
    }
    for p in 0..pairs {
        // SAFETY: p < pairs, so both 16-lane reads are inside `b` (pairs × 32 values).
        let (b0, b1): (__m512bh, __m512bh) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    b.wrapping_add(p * COLUMNS).cast(),
                )),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    b.wrapping_add(p * COLUMNS + 16).cast(),
                )),
            )
        };
        step!(p, b0, b1; 0 1 2 3 4 5 6 7);
    }
    // Lanes past `width` (the matrix's last, partial column block) are not written.
    let mask0: __mmask16 = if width >= 16 {
        0xffff
    } else {
        (1u16 << width) - 1
    };
    let mask1: __mmask16 = if width >= 32 {
        0xffff
    } else if width > 16 {
        (1u16 << (width - 16)) - 1
    } else {
        0
    };
    // SAFETY: masked loads and stores touch only the first `width` columns from `col`
    // of each of the `R` rows, inside `bias` and `out` by the contract.
    unsafe {
        let bias0 = _mm512_maskz_loadu_ps(mask0, bias.as_ptr());
        let bias1 = _mm512_maskz_loadu_ps(mask1, bias.as_ptr().wrapping_add(16.min(width)));
        for (r, acc) in acc.iter().enumerate().take(R) {
            let row = out.wrapping_add(r * stride + col);
            _mm512_mask_storeu_ps(row, mask0, _mm512_add_ps(acc[0], bias0));
            _mm512_mask_storeu_ps(
                row.wrapping_add(16.min(width)),
                mask1,
                _mm512_add_ps(acc[1], bias1),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::reference;

    fn bf16(x: f32) -> f64 {
        f64::from(f32::from_bits(u32::from(bf16_bits(x)) << 16))
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(bf16_bits(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(bf16_bits(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(bf16_bits(1.0 + 3.0 / 256.0), 0x3f82);
        assert!(f32::from_bits(u32::from(bf16_bits(f32::NAN)) << 16).is_nan());
        assert_eq!(bf16_bits(f32::INFINITY), 0x7f80);
    }

    /// Products against an f64 reference on the same bf16-rounded values, for shapes
    /// with partial row and column blocks, odd widths, and rows split across threads.
    #[test]
    fn products_equal_a_reference_on_rounded_values() {
        if !CpuFeatures::get().avx512_bf16 {
            crate::cpu::skipped("AVX512-BF16");
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for &(m, k, n) in &[
            (1, 2, 32),
            (5, 7, 33),
            (12, 64, 32),
            (13, 31, 70),
            (30, 768, 96),
            (97, 100, 16),
            (0, 4, 8),
        ] {
            let (a, w, bias) = crate::cpu::random_product(&mut seed, (m, k, n));
            let stored: Vec<f32> = (0..n * k).map(|j| w[(j % k) * n + j / k]).collect();
            let packed = PackedBf16::new(&stored, Some(&bias), k, n);
            let mut got = Vec::new();
            packed.matmul_into(&a, m, &mut got, Epilogue::None);
            assert_eq!(got.len(), m * n);
            let reference = reference::matmul(&a, &w, &bias, (m, k, n), bf16);
            for r in 0..m {
                for c in 0..n {
                    let want = reference[r * n + c];
                    let diff = (f64::from(got[r * n + c]) - want).abs();
                    assert!(
                        diff < 1e-4 * (k as f64).sqrt(),
                        "[{m}x{k}x{n}] ({r}, {c}): {} vs {want}",
                        got[r * n + c]
                    );
                }
            }
        }
    }
}
