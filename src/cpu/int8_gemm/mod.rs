//! Matrix products on int8 weights with integer multiply-adds, for
//! [`crate::Precision::Int8`] on the CPU backends: AVX512-VNNI's `vpdpbusd` where the
//! CPU has it, AVX2's `vpmaddwd` elsewhere.
//!
//! Dynamic quantization, as ONNX Runtime's `quantize_dynamic` does it: each weight
//! column is scaled symmetrically onto [-127, 127] once, at load, and each activation
//! row (one token) likewise at every product, so a token's result does not depend on
//! the other tokens in the call. `vpmaddwd` multiplies pairs of 16-bit integers and
//! adds each pair into 32 bits: 16 multiply-adds per AVX2 instruction, where an f32
//! FMA does 8. The integer sums are exact (below [`MAX_K`] terms they cannot
//! overflow), so the only error is the rounding of the two operands; each sum is
//! scaled back to f32 and the bias added in f32.
//!
//! `vpdpbusd` multiplies unsigned by signed bytes, four pairs into each 32-bit lane:
//! 64 multiply-adds per instruction, with the weights a byte each (half the memory
//! `vpmaddwd`'s 16-bit operands stream). Activations take it shifted by 128 onto
//! [1, 255], and each column's sum sheds `128 · Σ weights` after: the same integer
//! sums, so both kernels give the same results bit for bit.

use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::driver::{self, Epilogue, Microkernel};
use super::{CpuFeatures, Kernel};

mod avx2;
mod vnni;

use avx2::{kernel, quantize_row};

/// Output columns per kernel call: two 8-lane registers.
const COLUMNS: usize = 16;
/// Rows per kernel call: 6 rows x 2 registers = 12 accumulators, which with the two
/// weight registers, the broadcast row pair and its product take all 16 of AVX2's
/// registers (the compiler keeps the loop free of spills by trading the last two);
/// each weight load then serves 6 rows where 4 rows left the loads a larger share.
const ROWS: usize = 6;
/// Rows per cache block. The microkernel keeps a column block's weights (at most
/// 96 KiB, at `k` 3072) in L2 while a band's quantized rows stream past them; bands
/// of 96 rows, as f32's, measured slower over a corpus (`benches/ab.py`), and 256 as
/// fast as one band per thread.
const BAND: usize = 256;
/// The widest input whose sums fit in i32: `k · 127²` below 2³¹.
pub const MAX_K: usize = i32::MAX as usize / (127 * 127);

/// The quantized weights in one kernel's layout.
#[derive(Clone)]
enum Weights {
    /// For each block of 16 output columns, for each pair of input rows, 32 `i16`s
    /// holding the pair's two values for each column (even row first): `vpmaddwd`'s
    /// operand layout.
    Pairs(Vec<i16>),
    /// For each block of 32 output columns, for each four input rows, 128 bytes
    /// holding the four values for each column in order: `vpdpbusd`'s. With each
    /// column's `128 · Σ weights`, what the shifted activations add to its sum.
    Quads { blocks: Vec<i8>, offsets: Vec<i32> },
}

/// A `[k, n]` weight matrix quantized to int8 per output column, with its scales and
/// bias, laid out for one [`Kernel`].
#[derive(Clone)]
pub struct PackedInt8 {
    k: usize,
    n: usize,
    weights: Weights,
    /// Per column: the weight a quantized step of 1 stands for.
    scales: Vec<f32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedInt8 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_shape(f, "PackedInt8", self.k, self.n)
    }
}

/// The scale that maps the magnitude `max_abs` onto 127, and its inverse (both 0 for
/// 0: an all-zero column or row then quantizes to zeros).
fn symmetric_scale(max_abs: f32) -> (f32, f32) {
    if max_abs > 0.0 {
        (max_abs / 127.0, 127.0 / max_abs)
    } else {
        (0.0, 0.0)
    }
}

/// `x · inverse_scale` clamped to [-127, 127] and rounded to the nearest integer,
/// ties to even (0 for NaN).
#[inline(always)]
fn quantize(x: f32, inverse_scale: f32) -> i16 {
    // Adding and subtracting 1.5 · 2²³ rounds any |v| < 2²² to an integer in the
    // current rounding mode (nearest, ties to even): plain arithmetic that vectorizes,
    // where `round_ties_even` is a libm call per value.
    const ROUND: f32 = 12_582_912.0;
    let v = (x * inverse_scale).clamp(-127.0, 127.0);
    ((v + ROUND) - ROUND) as i16
}

impl PackedInt8 {
    /// Quantizes and packs `weight` (`[n, k]` row-major: the checkpoint's `[out, in]`
    /// layout) and `bias` (`n` values, zeros when `None`), laid out for `kernel`.
    ///
    /// # Panics
    /// When the slices do not have those shapes, `k` exceeds [`MAX_K`] or `kernel` is
    /// not an int8 one.
    pub fn for_kernel(
        kernel: Kernel,
        weight: &[f32],
        bias: Option<&[f32]>,
        k: usize,
        n: usize,
    ) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not [{n}, {k}]");
        assert!(
            k > 0 && k <= MAX_K,
            "k = {k} is not in 1..={MAX_K}: i32 sums could overflow"
        );
        // Output column c's weights are row c of the stored matrix.
        let (scales, inverses): (Vec<f32>, Vec<f32>) = weight
            .chunks_exact(k)
            .map(|column| symmetric_scale(column.iter().fold(0f32, |m, &x| m.max(x.abs()))))
            .unzip();
        // Output column c's quantized weights are `quantized[c * k..][..k]`.
        let mut quantized = vec![0i16; n * k];
        quantized
            .par_chunks_mut(k)
            .zip(weight.par_chunks(k))
            .zip(&inverses)
            .for_each(|((q, column), &inverse)| {
                for (q, &x) in q.iter_mut().zip(column) {
                    *q = quantize(x, inverse);
                }
            });
        let weights = match kernel {
            Kernel::Int8Avx2 => Weights::Pairs(pack(&quantized, k, n, COLUMNS, 2, |q| q)),
            Kernel::Int8Vnni => {
                let blocks = pack(&quantized, k, n, vnni::COLUMNS, 4, |q| q as i8);
                // Wrapping: a sum less its offset is exact modulo 2³², and the
                // difference, the true sum, fits (`MAX_K`).
                let offsets = quantized
                    .chunks_exact(k)
                    .map(|column| {
                        column
                            .iter()
                            .fold(0i32, |sum, &q| sum.wrapping_add(i32::from(q) * 128))
                    })
                    .collect();
                Weights::Quads { blocks, offsets }
            }
            other => panic!("{other} is not an int8 kernel"),
        };
        let bias = super::vector_math::bias_or_zeros(bias, n);
        Self {
            k,
            n,
            weights,
            scales,
            bias,
        }
    }

    /// The kernel this matrix is laid out for.
    pub fn kernel(&self) -> Kernel {
        match self.weights {
            Weights::Pairs(_) => Kernel::Int8Avx2,
            Weights::Quads { .. } => Kernel::Int8Vnni,
        }
    }

    /// `i16` values per quantized input row: its width rounded up to whole pairs.
    fn row_width(&self) -> usize {
        self.k.div_ceil(2) * 2
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized
    /// to `[m, n]` row-major, then `epilogue`: split and blocked as
    /// [`driver::product_into`] says.
    ///
    /// # Panics
    /// When the CPU lacks the kernel's instructions (see [`CpuFeatures`]) or `input`
    /// is not `m × k`.
    pub fn matmul_into(&self, input: &[f32], m: usize, output: &mut Vec<f32>, epilogue: Epilogue) {
        driver::product_into(self, input, m, output, epilogue);
    }

    /// The packed matrix's products as a vector: for the tests.
    #[cfg(test)]
    fn matmul(&self, input: &[f32], m: usize) -> Vec<f32> {
        let mut output = Vec::new();
        self.matmul_into(input, m, &mut output, Epilogue::None);
        output
    }
}

/// A band of input rows quantized for the kernel of the matrix being run: int8
/// values as `i16` pairs (AVX2) or as bytes shifted by 128 (VNNI), each row padded
/// to whole pairs or quads, and each row's scale.
#[derive(Default)]
pub(crate) struct QuantizedRows {
    pairs: Vec<i16>,
    bytes: Vec<u8>,
    scales: Vec<f32>,
}

thread_local! {
    /// Each thread's quantized input rows, kept from one product to the next.
    static PANELS: Cell<QuantizedRows> = Cell::new(QuantizedRows::default());
}

/// The driver's view of an int8 product: a band's input rows quantized per row, and
/// the whole of `k` in each microkernel call, whose integer sums it scales back.
impl Microkernel for PackedInt8 {
    type Panels = QuantizedRows;

    fn panels() -> &'static LocalKey<Cell<QuantizedRows>> {
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
        match self.weights {
            Weights::Pairs(_) => (ROWS, COLUMNS),
            Weights::Quads { .. } => (vnni::ROWS, vnni::COLUMNS),
        }
    }

    fn depth(&self) -> usize {
        self.k
    }

    fn band(&self) -> usize {
        BAND
    }

    fn assert_supported(&self) {
        assert!(
            self.kernel().runs_on(CpuFeatures::get()),
            "the CPU lacks {}",
            self.kernel().isa()
        );
    }

    unsafe fn pack_rows(
        &self,
        a: &[f32],
        row_stride: usize,
        rows: usize,
        _steps: Range<usize>,
        panels: &mut QuantizedRows,
    ) {
        let k = self.k;
        panels.scales.resize(rows, 0.0);
        let input_rows = (0..rows).map(|r| &a[r * row_stride..][..k]);
        match self.weights {
            Weights::Pairs(_) => {
                let width = self.row_width();
                panels.pairs.resize(rows * width, 0);
                for ((q, scale), row) in panels
                    .pairs
                    .chunks_exact_mut(width)
                    .zip(&mut panels.scales)
                    .zip(input_rows)
                {
                    // SAFETY: AVX2 is present (the caller's contract).
                    *scale = unsafe { quantize_row(row, q) };
                    q[k..].fill(0);
                }
            }
            Weights::Quads { .. } => {
                let width = k.div_ceil(4) * 4;
                panels.bytes.resize(rows * width, 0);
                for ((q, scale), row) in panels
                    .bytes
                    .chunks_exact_mut(width)
                    .zip(&mut panels.scales)
                    .zip(input_rows)
                {
                    // SAFETY: AVX512-VNNI is present (the caller's contract).
                    *scale = unsafe { vnni::quantize_row(row, q) };
                    // 128 is a quantized 0: the padding adds nothing (its weights are 0).
                    q[k..].fill(128);
                }
            }
        }
    }

    unsafe fn tile(
        &self,
        panels: &QuantizedRows,
        first_row: usize,
        rows: usize,
        _steps: Range<usize>,
        blocks: Range<usize>,
        out: *mut f32,
    ) {
        let (_, columns_per_block) = self.tile_shape();
        let col = blocks.start * columns_per_block;
        let columns = columns_per_block.min(self.n - col);
        let scales = &panels.scales[first_row..first_row + rows];
        let Weights::Pairs(blocks) = &self.weights else {
            // SAFETY: the driver's contract: AVX512-VNNI, and the tile's columns in
            // the block, `n` apart from `out`, are the caller's.
            unsafe { vnni::tile(self, &panels.bytes, scales, first_row, col, out) };
            return;
        };
        let width = self.row_width();
        let panel = width * COLUMNS;
        let tile = Tile {
            b: &blocks[col / COLUMNS * panel..][..panel],
            scales: &self.scales[col..col + columns],
            bias: &self.bias[col..col + columns],
            col,
            stride: self.n,
        };
        let a = &panels.pairs[first_row * width..(first_row + rows) * width];
        // SAFETY: the driver's contract: AVX2, and the tile's columns in the block,
        // `n` apart from `out`, are the caller's; the slices have the lengths `kernel`
        // asks for, which it asserts.
        unsafe {
            match rows {
                6 => kernel::<6>(a, scales, &tile, out),
                5 => kernel::<5>(a, scales, &tile, out),
                4 => kernel::<4>(a, scales, &tile, out),
                3 => kernel::<3>(a, scales, &tile, out),
                2 => kernel::<2>(a, scales, &tile, out),
                _ => kernel::<1>(a, scales, &tile, out),
            }
        }
    }
}

/// Quantized weights (`[n, k]`, a column's `k` values together) laid out in blocks of
/// `columns` output columns, each block for each `group` input rows holding the
/// group's values for each column in turn (rows past `k` and columns past `n` zero),
/// each value `as_element(quantized)`.
fn pack<T: Copy + Default + Send>(
    quantized: &[i16],
    k: usize,
    n: usize,
    columns: usize,
    group: usize,
    as_element: impl Fn(i16) -> T + Sync,
) -> Vec<T> {
    let groups = k.div_ceil(group);
    let mut blocks = vec![T::default(); n.div_ceil(columns) * groups * group * columns];
    blocks
        .par_chunks_mut(groups * group * columns)
        .enumerate()
        .for_each(|(block, panel)| {
            let col = block * columns;
            for c in 0..columns.min(n - col) {
                let column = &quantized[(col + c) * k..][..k];
                for (row, &q) in column.iter().enumerate() {
                    // Group `row / group`, column c, place `row % group`.
                    panel[(row / group) * group * columns + group * c + row % group] =
                        as_element(q);
                }
            }
        });
    blocks
}

/// A row's scale and its inverse ([`symmetric_scale`] of its largest magnitude).
#[inline(always)]
fn row_scale(row: &[f32]) -> (f32, f32) {
    // The largest magnitude as bit patterns, whose order is the magnitudes' for
    // non-negative floats, NaN above infinity; an integer maximum that vectorizes.
    let max_bits = row
        .iter()
        .map(|x| x.to_bits() & 0x7fff_ffff)
        .max()
        .unwrap_or(0);
    // A non-finite value makes the row's scale, and so its results, NaN: as in f32,
    // it does not vanish silently.
    if max_bits < f32::INFINITY.to_bits() {
        symmetric_scale(f32::from_bits(max_bits))
    } else {
        (f32::NAN, 0.0)
    }
}

/// What the kernel needs of one column block: its packed weights (`pairs × 32`
/// values), the block's column scales and bias (`columns` ≤ 16 each), its first
/// column and the output's row stride.
struct Tile<'a> {
    b: &'a [i16],
    scales: &'a [f32],
    bias: &'a [f32],
    col: usize,
    stride: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::random;

    #[test]
    fn rows_quantize_as_each_value_does() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2");
            return;
        }
        // Largest magnitude 127, so a step is 1: ties at every half, on both sides,
        // across whole 8-value groups and a tail.
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut row: Vec<f32> = (0..29).map(|i| i as f32 - 14.5).collect();
        row.extend((0..20).map(|_| random(&mut seed) * 127.0));
        row.extend([127.0, -126.5, 126.5, 0.49999997, -0.5, 2.5000002]);
        let (_, inverse) = symmetric_scale(127.0);
        let mut got = vec![0i16; row.len().div_ceil(2) * 2];
        // SAFETY: `CpuFeatures::get().avx2_fma` holds.
        let scale = unsafe { quantize_row(&row, &mut got) };
        assert_eq!(scale, 1.0);
        let want: Vec<i16> = row.iter().map(|&x| quantize(x, inverse)).collect();
        assert_eq!(&got[..row.len()], &want[..]);
        assert!(
            got[row.len()..].iter().all(|&q| q == 0),
            "padding stays zero"
        );
    }

    #[test]
    fn quantizing_rounds_to_nearest_within_the_range() {
        let (scale, inverse) = symmetric_scale(2.0);
        assert_eq!(scale, 2.0 / 127.0);
        assert_eq!(quantize(2.0, inverse), 127);
        assert_eq!(quantize(-2.0, inverse), -127);
        assert_eq!(quantize(0.5 * scale, inverse), 0, "ties go to even");
        assert_eq!(quantize(1.5 * scale, inverse), 2, "ties go to even");
        assert_eq!(quantize(-1.4 * scale, inverse), -1);
        assert_eq!(symmetric_scale(0.0), (0.0, 0.0));
    }

    /// Products against an f64 reference on the same quantized values (so any
    /// difference is the kernel's, not quantization's), for shapes with partial row
    /// and column blocks, odd widths, zero rows and columns, and rows split across
    /// threads.
    #[test]
    fn products_equal_a_reference_on_quantized_values() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2");
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for &(m, k, n) in &[
            (1, 2, 16),
            (5, 7, 17),
            (12, 64, 32),
            (13, 31, 70),
            (30, 768, 96),
            (97, 100, 8),
            (0, 4, 8),
            (3, 1, 5),
            // Every kernel height, 1 to 6 rows, whatever the thread count.
            (2, 9, 40),
            (4, 33, 24),
            (6, 5, 16),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| random(&mut seed)).collect();
            let mut w: Vec<f32> = (0..k * n).map(|_| random(&mut seed)).collect();
            // An all-zero column: its scale is 0 and its results are the bias.
            for row in 0..k {
                w[row * n] = 0.0;
            }
            let bias: Vec<f32> = (0..n).map(|_| random(&mut seed)).collect();
            let stored: Vec<f32> = (0..n * k).map(|j| w[(j % k) * n + j / k]).collect();
            for kernel in kernels_here() {
                let packed = PackedInt8::for_kernel(kernel, &stored, Some(&bias), k, n);
                let got = packed.matmul(&a, m);
                assert_eq!(got.len(), m * n);
                check_product(&a, &w, &bias, (m, k, n), &got, kernel);
            }
        }
    }

    /// The kernels this CPU runs, each tested.
    fn kernels_here() -> Vec<Kernel> {
        let kernels: Vec<Kernel> = [Kernel::Int8Avx2, Kernel::Int8Vnni]
            .into_iter()
            .filter(|kernel| kernel.runs_on(CpuFeatures::get()))
            .collect();
        if !kernels.contains(&Kernel::Int8Vnni) {
            crate::cpu::skipped("AVX512-VNNI (only the AVX2 kernel tested)");
        }
        kernels
    }

    /// `got` against the f64 reference on the quantized values, and against f32's.
    fn check_product(
        a: &[f32],
        w: &[f32],
        bias: &[f32],
        (m, k, n): (usize, usize, usize),
        got: &[f32],
        kernel: Kernel,
    ) {
        for r in 0..m {
            let row = &a[r * k..(r + 1) * k];
            let (row_scale, row_inverse) =
                symmetric_scale(row.iter().fold(0f32, |s, &x| s.max(x.abs())));
            for c in 0..n {
                let column: Vec<f32> = (0..k).map(|i| w[i * n + c]).collect();
                let (col_scale, col_inverse) =
                    symmetric_scale(column.iter().fold(0f32, |s, &x| s.max(x.abs())));
                let sum: i64 = (0..k)
                    .map(|i| {
                        i64::from(quantize(row[i], row_inverse))
                            * i64::from(quantize(column[i], col_inverse))
                    })
                    .sum();
                let want =
                    sum as f64 * f64::from(row_scale) * f64::from(col_scale) + f64::from(bias[c]);
                let diff = (f64::from(got[r * n + c]) - want).abs();
                assert!(
                    diff < 1e-5 * (1.0 + want.abs()),
                    "{kernel:?} [{m}x{k}x{n}] ({r}, {c}): {} vs {want}",
                    got[r * n + c]
                );
                // And the product itself is close to f32's: int8 rounding only.
                let exact: f64 = (0..k)
                    .map(|i| f64::from(row[i]) * f64::from(column[i]))
                    .sum::<f64>()
                    + f64::from(bias[c]);
                assert!(
                    (f64::from(got[r * n + c]) - exact).abs() < 0.02 * (k as f64).sqrt(),
                    "{kernel:?} [{m}x{k}x{n}] ({r}, {c}): {} vs f32 {exact}",
                    got[r * n + c]
                );
            }
        }
    }

    #[test]
    fn non_finite_inputs_give_non_finite_rows() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2");
            return;
        }
        for kernel in kernels_here() {
            // [[1, 2], [3, 4]] as [k, n], stored [n, k].
            let packed = PackedInt8::for_kernel(kernel, &[1.0, 3.0, 2.0, 4.0], None, 2, 2);
            let got = packed.matmul(&[f32::INFINITY, 1.0, 1.0, 1.0, 0.5, f32::NAN], 3);
            assert!(got[0].is_nan() && got[1].is_nan(), "{kernel:?} {got:?}");
            assert!(
                (got[2] - 4.0).abs() < 0.05 && (got[3] - 6.0).abs() < 0.05,
                "{kernel:?} {got:?}"
            );
            assert!(got[4].is_nan() && got[5].is_nan(), "{kernel:?} {got:?}");
        }
    }

    /// The byte kernel's sums, less their offsets, are the 16-bit kernel's: the two
    /// give the same results bit for bit, on shapes with partial row, column and
    /// four-row groups, wide sums, and rows split across threads.
    #[test]
    fn both_kernels_give_the_same_results() {
        if !Kernel::Int8Vnni.runs_on(CpuFeatures::get()) {
            crate::cpu::skipped("AVX512-VNNI");
            return;
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for &(m, k, n) in &[
            (1, 3, 33),
            (9, 13, 31),
            (17, 768, 64),
            (40, 3072, 48),
            (3, 5, 1),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| random(&mut seed) * 4.0).collect();
            let stored: Vec<f32> = (0..n * k).map(|_| random(&mut seed)).collect();
            let bias: Vec<f32> = (0..n).map(|_| random(&mut seed)).collect();
            let avx2 = PackedInt8::for_kernel(Kernel::Int8Avx2, &stored, Some(&bias), k, n);
            let vnni = PackedInt8::for_kernel(Kernel::Int8Vnni, &stored, Some(&bias), k, n);
            assert_eq!(
                (avx2.kernel(), vnni.kernel()),
                (Kernel::Int8Avx2, Kernel::Int8Vnni)
            );
            let (want, got) = (avx2.matmul(&a, m), vnni.matmul(&a, m));
            let differing = want
                .iter()
                .zip(&got)
                .filter(|(x, y)| x.to_bits() != y.to_bits())
                .count();
            assert_eq!(differing, 0, "[{m}x{k}x{n}]: {differing} values differ");
        }
    }

    #[test]
    fn byte_rows_quantize_as_each_value_does() {
        if !Kernel::Int8Vnni.runs_on(CpuFeatures::get()) {
            crate::cpu::skipped("AVX512-VNNI");
            return;
        }
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut row: Vec<f32> = (0..33).map(|i| i as f32 - 16.5).collect();
        row.extend((0..20).map(|_| random(&mut seed) * 127.0));
        row.extend([127.0, -126.5, 126.5, 0.49999997, -0.5, 2.5000002]);
        let (_, inverse) = symmetric_scale(127.0);
        let mut got = vec![7u8; row.len() + 3];
        // SAFETY: `Kernel::Int8Vnni.runs_on(CpuFeatures::get())` holds.
        let scale = unsafe { vnni::quantize_row(&row, &mut got) };
        assert_eq!(scale, 1.0);
        let want: Vec<u8> = row
            .iter()
            .map(|&x| (quantize(x, inverse) + 128) as u8)
            .collect();
        assert_eq!(&got[..row.len()], &want[..]);
        assert_eq!(&got[row.len()..], &[7, 7, 7], "past the row is untouched");
    }
}
