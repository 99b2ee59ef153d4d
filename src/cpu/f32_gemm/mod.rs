//! f32 matrix products with FMAs on weights packed at load, for the CPU backends on
//! CPUs with AVX2 (and, where present, AVX-512).
//!
//! There burn-flex's general matrix product (the gemm crate's kernels) reaches about
//! half of the FMA peak on a layer's shapes, and a third on short inputs (64 tokens),
//! as it packs the weights again on every call. The weights of a model do not change,
//! so they are laid out once, at load, in the order the kernel reads them, and each
//! call only streams them. With AVX-512 the kernel takes four column blocks at a time
//! in 16-lane registers: its 24 sums fill most of AVX-512's 32 registers, and each
//! broadcast input value serves four multiply-adds where AVX2's serves two.
//!
//! The sums are f32 FMAs along `k` in order, one per output, the same with either
//! instruction set: the logits stay within the library's 1e-4 of transformers'.

use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::driver::{self, Epilogue, Microkernel};
use super::CpuFeatures;

mod avx2;
mod avx512;
pub(crate) mod bf16_weights;

use avx2::{interleave, kernel_on};
use avx512::wide_kernel;

/// Output columns per kernel call: two 8-lane registers.
pub(crate) const COLUMNS: usize = 16;
/// Rows per kernel call: 6 rows x 2 registers = 12 accumulators, which with the two
/// weight registers and the broadcast input value fill 15 of AVX2's 16 registers.
const ROWS: usize = 6;
/// Steps of `k` per cache block: all of a 768-wide input, a quarter of a 3072-wide one.
/// A column block's weights for them take 48 KiB and a band's panels 288 KiB, both in
/// L2. Each kernel call then keeps its sums in registers through 768 steps, where a
/// depth of 256 (weights in L1) reloaded them from memory every 256 steps and measured
/// slower over a pass (`benches/ab.py`).
const DEPTH: usize = 768;
/// Rows per cache block: their inputs for `DEPTH` steps take 288 KiB.
pub(crate) const BAND: usize = 96;
/// A block of steps of zeros, the values of a panel's rows past the last.
static ZEROS: [f32; DEPTH] = [0.0; DEPTH];
/// Column blocks per AVX-512 kernel call: 6 rows x 4 registers = 24 accumulators.
const WIDE_BLOCKS: usize = 4;

/// The instruction set of an f32 product's microkernel: chosen once, when its matrix
/// is packed, and carried by it. Both give the same sums, bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// [`kernel_on`]: one column block per call, 8-lane registers.
    Avx2,
    /// [`wide_kernel`]: up to [`WIDE_BLOCKS`] column blocks per call, 16-lane registers.
    Avx512,
}

impl Isa {
    /// The widest this CPU runs ([`CpuFeatures::get`], as capped).
    pub(crate) fn best() -> Isa {
        if CpuFeatures::get().avx512f {
            Isa::Avx512
        } else {
            Isa::Avx2
        }
    }

    /// Column blocks per kernel call.
    fn blocks_per_call(self) -> usize {
        match self {
            Isa::Avx2 => 1,
            Isa::Avx512 => WIDE_BLOCKS,
        }
    }

    /// Panics where this CPU lacks the instructions (the kernels' safety rests on it).
    pub(crate) fn assert_supported(self) {
        let cpu = CpuFeatures::get();
        assert!(cpu.avx2_fma, "the CPU has no AVX2 and FMA");
        assert!(
            self == Isa::Avx2 || cpu.avx512f,
            "the CPU has no AVX-512F for {self:?}"
        );
    }
}

/// A weight matrix (`k` inputs, `n` outputs) and its bias laid out for the kernel:
/// for each block of 16 output columns, the block's 16 weights of each input in turn
/// (zeros past the matrix's last column).
#[derive(Clone)]
pub struct PackedF32 {
    k: usize,
    n: usize,
    blocks: Vec<f32>,
    bias: Vec<f32>,
    isa: Isa,
}

impl std::fmt::Debug for PackedF32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_shape(f, "PackedF32", self.k, self.n)
    }
}

impl PackedF32 {
    /// Packs `weight` (`[n, k]` row-major: the checkpoint's `[out, in]` layout) and
    /// `bias` (`n` values, zeros when `None`) for `isa`'s microkernel.
    pub fn new(isa: Isa, weight: &[f32], bias: Option<&[f32]>, k: usize, n: usize) -> Self {
        assert_eq!(weight.len(), n * k, "weight is not [{n}, {k}]");
        let mut blocks = vec![0f32; n.div_ceil(COLUMNS) * k * COLUMNS];
        if k > 0 {
            blocks
                .par_chunks_mut(k * COLUMNS)
                .enumerate()
                .for_each(|(block, panel)| {
                    let col = block * COLUMNS;
                    let width = COLUMNS.min(n - col);
                    fill_panel(panel, &weight[col * k..(col + width) * k], k);
                });
        }
        let bias = super::vector_math::bias_or_zeros(bias, n);
        Self {
            k,
            n,
            blocks,
            bias,
            isa,
        }
    }

    /// The instruction set its products run on.
    pub(crate) fn isa(&self) -> Isa {
        self.isa
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major: `[m, n]` row-major.
    /// The work is split across the rayon pool (see [`driver::product_into`]).
    ///
    /// # Panics
    /// When the CPU lacks AVX2 or FMA or `input` is not `m × k`.
    #[cfg(test)]
    pub fn matmul(&self, input: &[f32], m: usize) -> Vec<f32> {
        let mut output = Vec::new();
        self.matmul_into(input, m, &mut output, Epilogue::None);
        output
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized
    /// to `[m, n]` row-major, then `epilogue`: split and blocked as
    /// [`driver::product_into`] says.
    ///
    /// # Panics
    /// When the CPU lacks the matrix's instructions or `input` is not `m × k`.
    pub fn matmul_into(&self, input: &[f32], m: usize, output: &mut Vec<f32>, epilogue: Epilogue) {
        driver::product_into(self, input, m, output, epilogue);
    }

    /// [`PackedF32::new`] on a weight the caller gives up: where `n` is a whole
    /// number of column blocks, each block's 16 stored rows (contiguous) become its
    /// panel (the same size, at the same place) in place, so no second buffer the
    /// size of the matrix is allocated and touched.
    pub fn from_vec(
        isa: Isa,
        mut weight: Vec<f32>,
        bias: Option<&[f32]>,
        k: usize,
        n: usize,
    ) -> Self {
        if k == 0 || !n.is_multiple_of(COLUMNS) {
            return Self::new(isa, &weight, bias, k, n);
        }
        assert_eq!(weight.len(), n * k, "weight is not [{n}, {k}]");
        weight.par_chunks_mut(COLUMNS * k).for_each(|block| {
            let stored = block.to_vec();
            fill_panel(block, &stored, k);
        });
        let bias = super::vector_math::bias_or_zeros(bias, n);
        Self {
            k,
            n,
            blocks: weight,
            bias,
            isa,
        }
    }

    /// A matrix whose row `i` of `k` (one per input, as attention's values come) is
    /// `source[i * row_stride..][..n]`, with no bias: [`PackedF32::new`] on its
    /// transpose, packed on the calling thread without forming it.
    pub fn from_input_rows(
        isa: Isa,
        source: &[f32],
        row_stride: usize,
        k: usize,
        n: usize,
    ) -> Self {
        assert!(
            k == 0 || n == 0 || (k - 1) * row_stride + n <= source.len(),
            "source does not hold {k} rows of {n}, {row_stride} apart"
        );
        Self::without_bias(isa, k, n, |col, width, panel| {
            for (row, values) in panel.chunks_exact_mut(COLUMNS).enumerate() {
                values[..width].copy_from_slice(&source[row * row_stride + col..][..width]);
            }
        })
    }

    /// A matrix whose output column `c` of `n` (as attention's keys come) has its `k`
    /// weights at `source[c * column_stride..][..k]`, with no bias: [`PackedF32::new`]
    /// on the columns gathered, packed on the calling thread without gathering them.
    pub fn from_columns(
        isa: Isa,
        source: &[f32],
        column_stride: usize,
        k: usize,
        n: usize,
    ) -> Self {
        assert!(
            k == 0 || n == 0 || (n - 1) * column_stride + k <= source.len(),
            "source does not hold {n} columns of {k}, {column_stride} apart"
        );
        Self::without_bias(isa, k, n, |col, width, panel| {
            for c in 0..width {
                let column = &source[(col + c) * column_stride..][..k];
                for (row, &x) in column.iter().enumerate() {
                    panel[row * COLUMNS + c] = x;
                }
            }
        })
    }

    /// The matrix's columns from `first` on, in groups of `group`, each group times
    /// its share of `vector`: `[vector.len() / group, k]`, row g holding
    /// Σ_c weight[i][first + g·group + c] · vector[g·group + c] for each input `i`, on
    /// the calling thread. Attention's folded keys, W_k q per head (see
    /// [`crate::cpu::attention::first_token_context`]). Each sum runs in 16 lanes, one per column of a
    /// block, added up at the end.
    pub(crate) fn columns_times(&self, first: usize, vector: &[f32], group: usize) -> Vec<f32> {
        let k = self.k;
        assert!(
            group > 0 && vector.len().is_multiple_of(group) && first + vector.len() <= self.n,
            "columns {first}.. in groups of {group} are not inside the matrix"
        );
        let mut out = vec![0f32; vector.len() / group * k];
        for (g, out) in out.chunks_exact_mut(k.max(1)).enumerate() {
            let columns = first + g * group..first + (g + 1) * group;
            // Each of the group's blocks with its 16 lanes of `vector`, zero in the
            // lanes of columns outside the group.
            let blocks: Vec<(&[f32], [f32; COLUMNS])> = (columns.start / COLUMNS
                ..columns.end.div_ceil(COLUMNS))
                .map(|block| {
                    let values = std::array::from_fn(|lane| {
                        let col = block * COLUMNS + lane;
                        if columns.contains(&col) {
                            vector[col - first]
                        } else {
                            0.0
                        }
                    });
                    (&self.blocks[block * k * COLUMNS..][..k * COLUMNS], values)
                })
                .collect();
            for (i, out) in out.iter_mut().enumerate() {
                let mut lanes = [0f32; COLUMNS];
                for (panel, values) in &blocks {
                    let weights = &panel[i * COLUMNS..][..COLUMNS];
                    for ((sum, w), v) in lanes.iter_mut().zip(weights).zip(values) {
                        *sum += w * v;
                    }
                }
                *out = lanes.iter().sum();
            }
        }
        out
    }

    /// A `k × n` matrix with no bias whose column blocks `fill` packs, on the calling
    /// thread: `fill(first column, columns, panel)`, the panel zeroed beforehand.
    fn without_bias(
        isa: Isa,
        k: usize,
        n: usize,
        mut fill: impl FnMut(usize, usize, &mut [f32]),
    ) -> Self {
        let mut blocks = vec![0f32; n.div_ceil(COLUMNS) * k * COLUMNS];
        if k > 0 {
            for (block, panel) in blocks.chunks_exact_mut(k * COLUMNS).enumerate() {
                let col = block * COLUMNS;
                fill(col, COLUMNS.min(n - col), panel);
            }
        }
        Self {
            k,
            n,
            blocks,
            bias: vec![0.0; n],
            isa,
        }
    }

    /// `a · weight + bias` for `m` rows read where they lie (row `r` at `a[r ·
    /// row_stride..][..k]`), into rows `out_stride` apart from `out`, on the calling
    /// thread: attention's product of a band's probabilities with the values, read in
    /// place (see [`kernel_on`]), and written straight into the context.
    ///
    /// # Safety
    /// The matrix's [`Isa`] is supported; `a` holds the `m` rows; `out` is valid for
    /// `m` rows of `n` values, `out_stride` apart, that no other thread touches
    /// meanwhile.
    pub(crate) unsafe fn product_in_rows(
        &self,
        a: &[f32],
        row_stride: usize,
        m: usize,
        out: *mut f32,
        out_stride: usize,
    ) {
        let k = self.k;
        let per_call = self.isa.blocks_per_call();
        assert!(
            k > 0 && self.n <= out_stride,
            "no inputs to sum, or rows overlap"
        );
        assert!(
            m == 0 || (m - 1) * row_stride + k <= a.len(),
            "a does not hold {m} rows"
        );
        // Six rows at a time, through all the columns and all of `k` in one kernel
        // call each: the six rows (at most 12 KiB for 512 keys) stay in L1 while the
        // packed matrix streams from L2, and the sums stay in registers throughout.
        let all_blocks = self.n.div_ceil(COLUMNS);
        for row in (0..m).step_by(ROWS) {
            for first in (0..all_blocks).step_by(per_call) {
                let tile = Tile {
                    rows: ROWS.min(m - row),
                    depth_start: 0,
                    depth: k,
                    col: first * COLUMNS,
                    stride: out_stride,
                };
                // SAFETY: AVX2 and FMA are present; the tile's rows hold `k` values in
                // `a`, `row_stride` apart (asserted above), and its output is the caller's.
                unsafe {
                    self.microkernel::<1, 0>(
                        a.as_ptr().add(row * row_stride),
                        row_stride,
                        per_call.min(all_blocks - first),
                        out.add(row * out_stride),
                        tile,
                    )
                }
            }
        }
    }

    /// The kernel on the tile's rows and `blocks` column blocks from the one at
    /// `tile.col`: one on AVX2's kernel, more on AVX-512's.
    ///
    /// # Safety
    /// As [`kernel_on`], with AVX-512F present where `blocks` is more than 1; `blocks`
    /// is at most [`WIDE_BLOCKS`] and inside the matrix; the tile's steps are inside
    /// `k`.
    #[inline]
    unsafe fn microkernel<const STEP: usize, const ROW: usize>(
        &self,
        a: *const f32,
        row_stride: usize,
        blocks: usize,
        out: *mut f32,
        tile: Tile,
    ) {
        let k = self.k;
        let first = tile.col / COLUMNS;
        let b = &self.blocks[first * k * COLUMNS..][..blocks * k * COLUMNS];
        let bias = &self.bias[tile.col..(tile.col + blocks * COLUMNS).min(self.n)];
        let steps = tile.depth_start * COLUMNS..(tile.depth_start + tile.depth) * COLUMNS;
        // SAFETY: the caller's contract; `b` holds the blocks' panels, `k` steps each.
        unsafe {
            match blocks {
                4 => wide_kernel::<STEP, ROW, 4>(a, row_stride, b, k, bias, out, tile),
                3 => wide_kernel::<STEP, ROW, 3>(a, row_stride, b, k, bias, out, tile),
                2 => wide_kernel::<STEP, ROW, 2>(a, row_stride, b, k, bias, out, tile),
                _ => kernel_on::<STEP, ROW, f32>(a, row_stride, &b[steps], bias, out, tile),
            }
        }
    }
}

thread_local! {
    /// Each thread's input panels, kept from one product to the next.
    static PANELS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The driver's view of an f32 product. The input rows are copied into panels of 6
/// rows interleaved step by step, so that the microkernel reads one sequential
/// stream instead of six rows: `DEPTH` steps of `k` at a time (a column block's
/// weights for them, 48 KiB, stay in L2) over `BAND` rows at a time (their panels,
/// 288 KiB, in L2), each block of steps adding onto what the steps before it summed.
impl Microkernel for PackedF32 {
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

    fn blocks_per_call(&self) -> usize {
        self.isa.blocks_per_call()
    }

    fn depth(&self) -> usize {
        DEPTH.min(self.k).max(1)
    }

    fn band(&self) -> usize {
        BAND
    }

    fn assert_supported(&self) {
        self.isa.assert_supported();
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
        let panel = &panels[first_row * self.depth()..][..steps.len() * ROWS];
        let tile = Tile {
            rows,
            depth_start: steps.start,
            depth: steps.len(),
            col: blocks.start * COLUMNS,
            stride: self.n,
        };
        // SAFETY: the driver's contract; the panel holds the tile's steps of 6 rows,
        // and the kernels assert the lengths they read.
        unsafe { self.microkernel::<ROWS, 1>(panel.as_ptr(), 0, blocks.len(), out, tile) }
    }
}

/// `rows` input rows, row `r` at `a[r * row_stride..]`, for `steps` of `k`, into
/// panels of 6 rows interleaved step by step: panel p holds rows 6p .. 6p + 6, value
/// (i, r) at 6i + r, the panels `panel_depth` steps apart (a whole block of steps);
/// rows past the last are zero, and their sums never stored.
///
/// # Safety
/// AVX2 is present.
unsafe fn pack_panels(
    panel_depth: usize,
    a: &[f32],
    row_stride: usize,
    rows: usize,
    steps: Range<usize>,
    panels: &mut Vec<f32>,
) {
    let size = rows.div_ceil(ROWS) * ROWS * panel_depth + SLACK;
    if panels.len() < size {
        *panels = vec![0f32; size];
    }
    let depth = steps.len();
    for p in 0..rows.div_ceil(ROWS) {
        let sources: [&[f32]; ROWS] = std::array::from_fn(|r| {
            let row = p * ROWS + r;
            if row < rows {
                &a[row * row_stride + steps.start..][..depth]
            } else {
                &ZEROS[..depth]
            }
        });
        // Panel p and the slack after it, which the next panel (or nothing) overwrites.
        let panel = &mut panels[p * ROWS * panel_depth..][..depth * ROWS + SLACK];
        // SAFETY: AVX2 is present (the caller's contract).
        unsafe { interleave(sources, panel) };
    }
}

/// Values past a panel that [`interleave`] may write: its last step's two lanes
/// beyond the six rows.
const SLACK: usize = 2;

/// Lays a column block's stored rows (`[width, k]`, width ≤ 16) into its panel
/// (`[k, 16]`): input `row`'s weight for column `c` at `row * 16 + c`.
fn fill_panel(panel: &mut [f32], stored_rows: &[f32], k: usize) {
    for (c, column) in stored_rows.chunks_exact(k).enumerate() {
        for (row, &x) in column.iter().enumerate() {
            panel[row * COLUMNS + c] = x;
        }
    }
}

/// Where a kernel call works: output rows (up to 6) and columns from `col` in rows
/// of `stride`, for steps `depth_start..depth_start + depth` of `k`.
#[derive(Clone, Copy)]
struct Tile {
    rows: usize,
    depth_start: usize,
    depth: usize,
    col: usize,
    stride: usize,
}

/// `w` (`[k, n]`) in the checkpoint's `[n, k]` layout, as `new` takes it.
#[cfg(test)]
pub(crate) fn stored(w: &[f32], k: usize, n: usize) -> Vec<f32> {
    (0..n * k).map(|j| w[(j % k) * n + j / k]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{random, reference};

    /// Six rows interleaved step by step, for depths of whole groups of eight steps,
    /// partial ones and both; the slack after them left zero.
    #[test]
    fn six_rows_interleave_step_by_step() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let mut seed = 0x1234_5678_9abc_def1u64;
        for depth in [0usize, 1, 7, 8, 9, 16, 21] {
            let rows: Vec<Vec<f32>> = (0..ROWS)
                .map(|_| (0..depth).map(|_| random(&mut seed)).collect())
                .collect();
            let mut panel = vec![0f32; depth * ROWS + SLACK];
            // SAFETY: `CpuFeatures::avx2_fma` holds.
            unsafe { interleave(std::array::from_fn(|r| &rows[r][..]), &mut panel) };
            for i in 0..depth {
                for (r, row) in rows.iter().enumerate() {
                    assert_eq!(panel[i * ROWS + r], row[i], "depth {depth}, ({i}, {r})");
                }
            }
            assert_eq!(panel[depth * ROWS..], [0.0; SLACK], "depth {depth}");
        }
    }

    /// The AVX-512 kernel's sums are the AVX2 kernel's, bit for bit: the same FMAs in
    /// the same order. Products on groups of four column blocks and partial groups,
    /// deeper than a block of steps, on few rows and on bands; attention on heads of
    /// one partial block and of several.
    #[test]
    fn both_instruction_sets_give_the_same_bits() {
        if !CpuFeatures::get().avx2_fma || Isa::best() == Isa::Avx2 {
            crate::cpu::skipped("AVX-512F");
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for &(m, k, n) in &[
            (1, 5, 16),
            (7, 33, 70),
            (13, 1000, 150),
            (200, 1600, 40),
            (250, 768, 128),
        ] {
            let (a, w, bias) = crate::cpu::random_product(&mut seed, (m, k, n));
            // The AVX2 kernel, forced on a CPU that has AVX-512, is the one that runs.
            let narrow = PackedF32::new(Isa::Avx2, &stored(&w, k, n), Some(&bias), k, n);
            let wide = PackedF32::new(Isa::Avx512, &stored(&w, k, n), Some(&bias), k, n);
            assert_eq!((narrow.isa(), wide.isa()), (Isa::Avx2, Isa::Avx512));
            assert_eq!(Isa::Avx2.blocks_per_call(), 1);
            let (avx2, avx512) = (narrow.matmul(&a, m), wide.matmul(&a, m));
            assert!(avx2.iter().all(|x| x.is_finite()), "[{m}x{k}x{n}]");
            assert_eq!(bits(&avx2), bits(&avx512), "[{m}x{k}x{n}]");
        }
        for (heads, head_dim) in [(3, 8), (2, 40), (2, 64)] {
            let width = heads * head_dim;
            let lengths = [5usize, 130, 1];
            let total: usize = lengths.iter().sum();
            let qkv: Vec<f32> = (0..total * 3 * width)
                .map(|_| random(&mut seed) * 3.0)
                .collect();
            for first_only in [false, true] {
                let (mut avx2, mut avx512) = (Vec::new(), Vec::new());
                let attention = |out: &mut Vec<f32>, isa| {
                    let lengths = &lengths[..];
                    crate::cpu::attention::attention(
                        &qkv, lengths, heads, width, first_only, out, None, isa,
                    )
                };
                attention(&mut avx2, Isa::Avx2);
                attention(&mut avx512, Isa::Avx512);
                assert_eq!(bits(&avx2), bits(&avx512), "{heads} heads of {head_dim}");
            }
        }
    }

    fn bits(values: &[f32]) -> Vec<u32> {
        values.iter().map(|x| x.to_bits()).collect()
    }

    /// Products against an f64 reference, for shapes with partial row and column
    /// blocks, odd widths, empty dimensions, and rows split across threads.
    #[test]
    fn products_equal_an_f64_reference() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for &(m, k, n) in &[
            (1, 1, 16),
            (5, 7, 17),
            (12, 64, 32),
            (13, 31, 70),
            (30, 768, 96),
            // Deeper than a block of steps, on few rows and on rows split into bands.
            (13, 1000, 20),
            (200, 1600, 24),
            (200, 600, 40),
            (300, 40, 50),
            (7, 33, 48),
            (97, 100, 8),
            (0, 4, 8),
            (3, 0, 5),
        ] {
            let (a, w, bias) = crate::cpu::random_product(&mut seed, (m, k, n));
            let got =
                PackedF32::new(Isa::best(), &stored(&w, k, n), Some(&bias), k, n).matmul(&a, m);
            let in_place = PackedF32::from_vec(Isa::best(), stored(&w, k, n), Some(&bias), k, n);
            assert_eq!(in_place.matmul(&a, m), got, "[{m}x{k}x{n}] packed in place");
            // Packed from [k, n] rows, or from [n, k] columns spaced out, the layout as
            // the one from [n, k].
            let spaced: Vec<f32> = stored(&w, k, n)
                .chunks(k.max(1))
                .flat_map(|column| column.iter().copied().chain([f32::NAN; 3]))
                .collect();
            if k > 0 {
                assert_eq!(
                    PackedF32::from_columns(Isa::best(), &spaced, k + 3, k, n).blocks,
                    PackedF32::new(Isa::best(), &stored(&w, k, n), None, k, n).blocks,
                    "[{k}x{n}] packed from spaced columns"
                );
            }
            assert_eq!(
                PackedF32::from_input_rows(Isa::best(), &w, n, k, n).blocks,
                PackedF32::new(Isa::best(), &stored(&w, k, n), None, k, n).blocks,
                "[{k}x{n}] packed from input rows"
            );
            assert_eq!(got.len(), m * n);
            // The same sums however the work is split (rows or columns, 1 to 3 threads),
            // and into a reused buffer longer than the result and full of NaN.
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                let mut reused = vec![f32::NAN; m * n + 5];
                pool.install(|| in_place.matmul_into(&a, m, &mut reused, Epilogue::None));
                assert_eq!(reused, got, "[{m}x{k}x{n}] on {threads} threads");
            }
            let reference = reference::matmul(&a, &w, &bias, (m, k, n), f64::from);
            for r in 0..m {
                for c in 0..n {
                    let want = reference[r * n + c];
                    let diff = (f64::from(got[r * n + c]) - want).abs();
                    assert!(
                        diff < 1e-5 * (1.0 + (k as f64).sqrt()),
                        "[{m}x{k}x{n}] ({r}, {c}): {} vs {want}",
                        got[r * n + c]
                    );
                }
            }
        }
    }
}
