//! f32 products on weights stored in bf16, for [`crate::Precision::Bf16`] on AVX2
//! CPUs without AVX-512 ([`crate::Kernel::Bf16Avx2`]).
//!
//! burn's bf16 tensors on such a CPU convert and multiply slower than f32. Here the
//! weights are rounded to bf16 once, at load (to nearest, ties to even), which halves
//! their memory and the traffic of streaming them; each step of the microkernel widens
//! its 16 weights to f32 in registers (exact: a bf16 is the upper half of an f32) and
//! runs the f32 kernel's FMAs in the f32 kernel's order. Activations, sums and
//! everything outside the products stay f32: the results are the f32 kernel's on the
//! bf16-rounded weights, bit for bit.

use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::avx2::{kernel_on, Bf16};
use super::{pack_panels, Isa, Tile, BAND, COLUMNS, DEPTH, PANELS, ROWS};
use crate::cpu::bf16_gemm::bf16_bits;
use crate::cpu::driver::{self, Epilogue, Microkernel};

/// A `[k, n]` weight matrix in bf16 and its f32 bias, laid out as
/// [`super::PackedF32`] lays out f32: for each block of 16 output columns, the
/// block's 16 weights of each input in turn (zeros past the matrix's last column),
/// each step's 16 in [`Bf16::position`]'s order.
#[derive(Clone)]
pub(crate) struct PackedBf16Weights {
    k: usize,
    n: usize,
    blocks: Vec<Bf16>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedBf16Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::cpu::debug_shape(f, "PackedBf16Weights", self.k, self.n)
    }
}

impl PackedBf16Weights {
    /// Rounds `weight` (`[n, k]` row-major: the checkpoint's `[out, in]` layout) to
    /// bf16 and packs it with `bias` (`n` values, zeros when `None`).
    pub(crate) fn new(weight: &[f32], bias: Option<&[f32]>, k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not [{n}, {k}]");
        let mut blocks = vec![Bf16::default(); n.div_ceil(COLUMNS) * k * COLUMNS];
        if k > 0 {
            blocks
                .par_chunks_mut(k * COLUMNS)
                .enumerate()
                .for_each(|(block, panel)| {
                    let col = block * COLUMNS;
                    let stored_rows = &weight[col * k..(col + COLUMNS.min(n - col)) * k];
                    for (c, column) in stored_rows.chunks_exact(k).enumerate() {
                        for (step, &x) in column.iter().enumerate() {
                            panel[step * COLUMNS + Bf16::position(c)] = Bf16(bf16_bits(x));
                        }
                    }
                });
        }
        let bias = crate::cpu::vector_math::bias_or_zeros(bias, n);
        Self { k, n, blocks, bias }
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized
    /// to `[m, n]` row-major, then `epilogue`: split and blocked as
    /// [`driver::product_into`] says.
    ///
    /// # Panics
    /// When the CPU lacks AVX2 or FMA or `input` is not `m × k`.
    pub(crate) fn matmul_into(
        &self,
        input: &[f32],
        m: usize,
        output: &mut Vec<f32>,
        epilogue: Epilogue,
    ) {
        driver::product_into(self, input, m, output, epilogue);
    }
}

/// The driver's view: the f32 kernel's, input panels and cache blocks included.
impl Microkernel for PackedBf16Weights {
    type Panels = Vec<f32>;

    fn panels() -> &'static LocalKey<Cell<Vec<f32>>> {
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
        DEPTH.min(self.k).max(1)
    }

    fn band(&self) -> usize {
        BAND
    }

    fn assert_supported(&self) {
        Isa::Avx2.assert_supported();
    }

    unsafe fn pack_rows(
        &self,
        a: &[f32],
        row_stride: usize,
        rows: usize,
        steps: Range<usize>,
        panels: &mut Vec<f32>,
    ) {
        // SAFETY: the caller's contract: AVX2.
        unsafe { pack_panels(self.depth(), a, row_stride, rows, steps, panels) };
    }

    unsafe fn tile(
        &self,
        panels: &Vec<f32>,
        first_row: usize,
        rows: usize,
        steps: Range<usize>,
        blocks: Range<usize>,
        out: *mut f32,
    ) {
        let (k, col) = (self.k, blocks.start * COLUMNS);
        let panel = &panels[first_row * self.depth()..][..steps.len() * ROWS];
        let b =
            &self.blocks[blocks.start * k * COLUMNS..][steps.start * COLUMNS..steps.end * COLUMNS];
        let bias = &self.bias[col..(col + COLUMNS).min(self.n)];
        let tile = Tile {
            rows,
            depth_start: steps.start,
            depth: steps.len(),
            col,
            stride: self.n,
        };
        // SAFETY: AVX2 and FMA (the driver's contract); the panel holds the tile's
        // steps of 6 rows, `b` the column block's weights for them, as `kernel_on`
        // asserts; the tile's rows and columns of `out` are the caller's.
        unsafe { kernel_on::<ROWS, 1, Bf16>(panel.as_ptr(), 0, b, bias, out, tile) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::f32_gemm::{stored, PackedF32};
    use crate::cpu::CpuFeatures;

    /// The product on bf16 weights is the f32 kernel's on the same weights rounded to
    /// bf16, bit for bit: the widening is exact and the FMAs are the f32 kernel's, in
    /// its order. Shapes with partial column blocks and row tiles, deeper than a block
    /// of steps, on bands.
    #[test]
    fn products_are_the_f32_kernels_on_rounded_weights() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let mut seed = 0x5eed_0bf1_6000_0001u64;
        for &(m, k, n) in &[(1, 1, 16), (5, 7, 17), (13, 1000, 150), (250, 100, 40)] {
            let (a, w, bias) = crate::cpu::random_product(&mut seed, (m, k, n));
            let weight = stored(&w, k, n);
            let rounded: Vec<f32> = weight
                .iter()
                .map(|&x| f32::from_bits(u32::from(bf16_bits(x)) << 16))
                .collect();
            assert_ne!(rounded, weight, "the rounding changes some weights");
            let mut want = Vec::new();
            PackedF32::new(Isa::Avx2, &rounded, Some(&bias), k, n).matmul_into(
                &a,
                m,
                &mut want,
                Epilogue::None,
            );
            let mut got = Vec::new();
            PackedBf16Weights::new(&weight, Some(&bias), k, n).matmul_into(
                &a,
                m,
                &mut got,
                Epilogue::None,
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "[{m}x{k}x{n}]");
        }
    }

    /// Each column's stored place, and back: the 16 places once each.
    #[test]
    fn positions_are_a_permutation() {
        let mut places: Vec<usize> = (0..COLUMNS).map(Bf16::position).collect();
        assert_eq!(places[..8], [0, 1, 2, 3, 8, 9, 10, 11]);
        places.sort_unstable();
        assert_eq!(places, (0..COLUMNS).collect::<Vec<_>>());
    }
}
