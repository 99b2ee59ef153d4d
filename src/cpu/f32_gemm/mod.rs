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

use rayon::prelude::*;

use super::CpuFeatures;

mod avx2;
mod avx512;

use avx2::{interleave, kernel_on};
use avx512::wide_kernel;

/// Output columns per kernel call: two 8-lane registers.
const COLUMNS: usize = 16;
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
const BAND: usize = 96;
/// A block of steps of zeros, the values of a panel's rows past the last.
static ZEROS: [f32; DEPTH] = [0.0; DEPTH];
/// Column blocks per AVX-512 kernel call: 6 rows x 4 registers = 24 accumulators.
const WIDE_BLOCKS: usize = 4;

/// Column blocks per kernel call on this CPU: [`WIDE_BLOCKS`] where it has AVX-512F
/// (for [`wide_kernel`]), else 1 ([`kernel_on`]).
fn blocks_per_call() -> usize {
    if CpuFeatures::get().avx512f {
        WIDE_BLOCKS
    } else {
        1
    }
}

/// A weight matrix (`k` inputs, `n` outputs) and its bias laid out for the kernel:
/// for each block of 16 output columns, the block's 16 weights of each input in turn
/// (zeros past the matrix's last column).
#[derive(Clone)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    blocks: Vec<f32>,
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        super::debug_shape(f, self.k, self.n)
    }
}

impl PackedMatrix {
    /// Packs `weight` (`[n, k]` row-major: the checkpoint's `[out, in]` layout) and
    /// `bias` (`n` values, zeros when `None`).
    pub fn new(weight: &[f32], bias: Option<&[f32]>, k: usize, n: usize) -> Self {
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
        Self { k, n, blocks, bias }
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major: `[m, n]` row-major.
    /// The work is split across the rayon pool (see [`PackedMatrix::matmul_into`]).
    ///
    /// # Panics
    /// When the CPU lacks AVX2 or FMA or `input` is not `m × k`.
    #[cfg(test)]
    pub fn matmul(&self, input: &[f32], m: usize) -> Vec<f32> {
        let mut output = Vec::new();
        self.matmul_into(input, m, &mut output);
        output
    }

    /// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized
    /// to `[m, n]` row-major. Every value is written, so a buffer reused from call to
    /// call is not cleared again: only what it grows by is zeroed.
    ///
    /// Many rows (at least a band per thread) are split into bands of whole 6-row
    /// blocks, a whole number of rounds of the threads, which take them as they come
    /// free: a thread slowed by other work on its core takes fewer, where an even split
    /// would have the others wait for it. Each band streams all the weights, as it
    /// would inside an even split. Fewer rows are not split: each thread takes a share
    /// of the column blocks for all the rows, so that it streams only its share of the
    /// weights, where a split of the rows would have every thread stream all of them.
    ///
    /// # Panics
    /// When the CPU lacks AVX2 or FMA or `input` is not `m × k`.
    pub fn matmul_into(&self, input: &[f32], m: usize, output: &mut Vec<f32>) {
        self.product_into(input, m, output, blocks_per_call(), false);
    }

    /// [`PackedMatrix::matmul_into`] followed by exact GELU on every value (as
    /// [`super::vector_math::gelu_in_place`]), each tile's as soon as its sums are
    /// complete, while they are in L1: the same values as a pass over the whole output
    /// afterwards, without that pass's trip through memory.
    ///
    /// # Panics
    /// As [`PackedMatrix::matmul_into`].
    pub fn matmul_gelu_into(&self, input: &[f32], m: usize, output: &mut Vec<f32>) {
        self.product_into(input, m, output, blocks_per_call(), true);
    }

    /// [`PackedMatrix::matmul_into`] with up to `per_call` column blocks per kernel
    /// call: 1 on AVX2's kernel, more (at most [`blocks_per_call`]) on AVX-512's; with
    /// `gelu`, [`PackedMatrix::matmul_gelu_into`].
    fn product_into(
        &self,
        input: &[f32],
        m: usize,
        output: &mut Vec<f32>,
        per_call: usize,
        gelu: bool,
    ) {
        assert!(CpuFeatures::get().avx2_fma, "the CPU has no AVX2 and FMA");
        assert!(
            (1..=blocks_per_call()).contains(&per_call),
            "{per_call} blocks per call: the CPU has no AVX-512F"
        );
        let (k, n) = (self.k, self.n);
        assert_eq!(input.len(), m * k, "input is not [{m}, {k}]");
        output.resize(m * n, 0.0);
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 {
            for row in output.chunks_exact_mut(n) {
                row.copy_from_slice(&self.bias);
                if gelu {
                    super::vector_math::gelu_in_place(row);
                }
            }
            return;
        }
        let blocks = n.div_ceil(COLUMNS);
        let threads = rayon::current_num_threads().max(1);
        let (row_parts, column_parts) = if m >= threads * BAND {
            // Whole rounds of bands, so that threads equally fast end together.
            (m.div_ceil(threads * BAND) * threads, 1)
        } else {
            (1, threads.min(blocks))
        };
        // Parts of whole 6-row blocks, as even as they divide: part p takes blocks
        // [p·P/parts, (p+1)·P/parts) of the P. Parts rounded up to whole blocks each
        // would leave the remainder to the last (512 rows in 6 parts: five of 90
        // and one of 62, one thread's 270 rows against the other's 242).
        let row_blocks = m.div_ceil(ROWS);
        let row_parts = row_parts.min(row_blocks);
        let part_start = |part: usize| (part * row_blocks / row_parts * ROWS).min(m);
        let blocks_per_part = blocks.div_ceil(column_parts);
        let column_parts = blocks.div_ceil(blocks_per_part);
        let out = SharedOutput(output.as_mut_ptr());
        (0..row_parts * column_parts)
            .into_par_iter()
            .for_each(|part| {
                let first_row = part_start(part / column_parts);
                let last_row = part_start(part / column_parts + 1);
                let first_block = part % column_parts * blocks_per_part;
                let last_block = (first_block + blocks_per_part).min(blocks);
                // SAFETY: `CpuFeatures::avx2_fma` holds; the parts' (rows, column blocks) tile the
                // output without overlap, so each value has one writer; row `first_row`
                // starts at `first_row * n` of `m * n` values.
                unsafe {
                    self.rows(
                        &input[first_row * k..last_row * k],
                        k,
                        last_row - first_row,
                        out.at(first_row * n),
                        first_block..last_block,
                        (per_call, gelu),
                    )
                }
            });
    }

    /// [`PackedMatrix::new`] on a weight the caller gives up: where `n` is a whole
    /// number of column blocks, each block's 16 stored rows (contiguous) become its
    /// panel (the same size, at the same place) in place, so no second buffer the
    /// size of the matrix is allocated and touched.
    pub fn from_vec(mut weight: Vec<f32>, bias: Option<&[f32]>, k: usize, n: usize) -> Self {
        if k == 0 || !n.is_multiple_of(COLUMNS) {
            return Self::new(&weight, bias, k, n);
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
        }
    }

    /// A matrix whose row `i` of `k` (one per input, as attention's values come) is
    /// `source[i * row_stride..][..n]`, with no bias: [`PackedMatrix::new`] on its
    /// transpose, packed on the calling thread without forming it.
    pub fn from_input_rows(source: &[f32], row_stride: usize, k: usize, n: usize) -> Self {
        assert!(
            k == 0 || n == 0 || (k - 1) * row_stride + n <= source.len(),
            "source does not hold {k} rows of {n}, {row_stride} apart"
        );
        Self::without_bias(k, n, |col, width, panel| {
            for (row, values) in panel.chunks_exact_mut(COLUMNS).enumerate() {
                values[..width].copy_from_slice(&source[row * row_stride + col..][..width]);
            }
        })
    }

    /// A matrix whose output column `c` of `n` (as attention's keys come) has its `k`
    /// weights at `source[c * column_stride..][..k]`, with no bias: [`PackedMatrix::new`]
    /// on the columns gathered, packed on the calling thread without gathering them.
    pub fn from_columns(source: &[f32], column_stride: usize, k: usize, n: usize) -> Self {
        assert!(
            k == 0 || n == 0 || (n - 1) * column_stride + k <= source.len(),
            "source does not hold {n} columns of {k}, {column_stride} apart"
        );
        Self::without_bias(k, n, |col, width, panel| {
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
    /// [`first_token_context`]). Each sum runs in 16 lanes, one per column of a
    /// block, added up at the end.
    fn columns_times(&self, first: usize, vector: &[f32], group: usize) -> Vec<f32> {
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
    fn without_bias(k: usize, n: usize, mut fill: impl FnMut(usize, usize, &mut [f32])) -> Self {
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
        }
    }

    /// `a · weight + bias` for `m` rows read where they lie (row `r` at `a[r ·
    /// row_stride..][..k]`), into rows `out_stride` apart from `out`, on the calling
    /// thread: attention's product of a band's probabilities with the values, read in
    /// place (see [`kernel_on`]), and written straight into the context.
    ///
    /// # Safety
    /// AVX2 and FMA (and where `per_call` is more than 1, AVX-512F) are present; `a`
    /// holds the `m` rows; `out` is valid for `m` rows of `n` values, `out_stride`
    /// apart, that no other thread touches meanwhile.
    unsafe fn product_in_rows(
        &self,
        a: &[f32],
        row_stride: usize,
        m: usize,
        out: *mut f32,
        out_stride: usize,
        per_call: usize,
    ) {
        let k = self.k;
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
                    self.tile::<1, 0>(
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
    unsafe fn tile<const STEP: usize, const ROW: usize>(
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
                _ => kernel_on::<STEP, ROW>(a, row_stride, &b[steps], bias, out, tile),
            }
        }
    }

    /// One task's rows, in blocks that stay in cache: `DEPTH` steps of `k` at a time
    /// (a column block's weights for them, 48 KiB, stay in L2) over `BAND` rows at a
    /// time, each block adding onto what the steps before it summed. A block's inputs
    /// are first copied into panels of 6 rows interleaved step by step (288 KiB, in
    /// L2), so that the kernel reads one sequential stream instead of six rows.
    ///
    /// Row `r` of the `m` is `a[r * row_stride..][..k]`. With `gelu`, each tile's
    /// outputs go through exact GELU once its last block of steps has summed them.
    ///
    /// # Safety
    /// AVX2 and FMA (and where `per_call` is more than 1, AVX-512F) are present; `out`
    /// points at `a`'s rows in an output of `n` values per row, whose columns of
    /// `blocks` no other thread touches meanwhile.
    unsafe fn rows(
        &self,
        a: &[f32],
        row_stride: usize,
        m: usize,
        out: *mut f32,
        blocks: std::ops::Range<usize>,
        (per_call, gelu): (usize, bool),
    ) {
        let k = self.k;
        assert!(
            m == 0 || (m - 1) * row_stride + k <= a.len(),
            "a does not hold {m} rows"
        );
        // Panels as deep as a block of steps, or all of `k` where that is less.
        let panel_depth = DEPTH.min(k);
        // This thread's panels from its last call, grown where they are too small: as
        // every value read is written first, they need no clearing, nor fresh pages on
        // every call.
        let mut panels = PANELS.take();
        let size = BAND.min(m).div_ceil(ROWS) * ROWS * panel_depth + SLACK;
        if panels.len() < size {
            panels = vec![0f32; size];
        }
        for depth_start in (0..k).step_by(DEPTH) {
            let depth = DEPTH.min(k - depth_start);
            for band_start in (0..m).step_by(BAND) {
                let band_rows = BAND.min(m - band_start);
                // Panel p holds rows band_start + 6p .. + 6, value (i, r) at 6i + r; rows
                // past the band stay zero and their sums are never stored.
                for p in 0..band_rows.div_ceil(ROWS) {
                    let sources: [&[f32]; ROWS] = std::array::from_fn(|r| {
                        let row = band_start + p * ROWS + r;
                        if row < band_start + band_rows {
                            &a[row * row_stride + depth_start..][..depth]
                        } else {
                            &ZEROS[..depth]
                        }
                    });
                    // Panel p and the slack after it, which the next panel (or nothing)
                    // overwrites.
                    let panel = &mut panels[p * ROWS * panel_depth..][..depth * ROWS + SLACK];
                    // SAFETY: AVX2 is present (the caller's contract).
                    unsafe { interleave(sources, panel) };
                }
                for first in blocks.clone().step_by(per_call) {
                    let group = per_call.min(blocks.end - first);
                    for (p, panel) in panels
                        .chunks_exact(ROWS * panel_depth)
                        .take(band_rows.div_ceil(ROWS))
                        .enumerate()
                    {
                        let row = band_start + p * ROWS;
                        let tile = Tile {
                            rows: ROWS.min(band_start + band_rows - row),
                            depth_start,
                            depth,
                            col: first * COLUMNS,
                            stride: self.n,
                        };
                        // SAFETY: AVX2 and FMA (and for a group, AVX-512F) are present;
                        // the panel holds the tile's `depth` steps of 6 rows, the kernels
                        // assert the lengths they read, and the tile's rows and columns
                        // are in the caller's region of `out`.
                        unsafe {
                            self.tile::<ROWS, 1>(
                                panel[..depth * ROWS].as_ptr(),
                                0,
                                group,
                                out.add(row * self.n),
                                tile,
                            )
                        }
                        if gelu && depth_start + depth == k {
                            let columns = tile.col..((first + group) * COLUMNS).min(self.n);
                            for r in row..row + tile.rows {
                                // SAFETY: the tile's rows and columns are the caller's
                                // region of `out`, which no other thread touches.
                                let values = unsafe {
                                    std::slice::from_raw_parts_mut(
                                        out.add(r * self.n + columns.start),
                                        columns.len(),
                                    )
                                };
                                super::vector_math::gelu_in_place(values);
                            }
                        }
                    }
                }
            }
        }
        PANELS.set(panels);
    }
}

thread_local! {
    /// Each thread's input panels, kept from one [`PackedMatrix::rows`] call to the next.
    static PANELS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
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

/// Multi-head self-attention: the context `[total, width]` (heads side by side) from
/// the query, key and value projections `[total, 3 * width]` of inputs laid end to
/// end, `lengths` tokens each, each input attending only to its own tokens:
/// softmax(q·kᵀ / √head_dim)·v per input and head, both products on this kernel.
/// Inputs and heads run in parallel. `context` is resized to `[total, width]`, every
/// value written (as [`PackedMatrix::matmul_into`]'s output).
///
/// With `first_only`, only each input's first token attends (to all of its input's
/// tokens), and `context` is `[inputs, width]`: its rows are those of the full
/// context, value for value. Then `probabilities`, where given, receives each
/// input's attention probabilities from its first token, head by head: `heads × len`
/// values per input, inputs laid end to end.
pub fn attention(
    qkv: &[f32],
    lengths: &[usize],
    heads: usize,
    width: usize,
    first_only: bool,
    context: &mut Vec<f32>,
    probabilities: Option<&mut Vec<f32>>,
) {
    attention_on(
        qkv,
        (lengths, heads, width),
        first_only,
        (context, probabilities),
        blocks_per_call(),
    );
}

/// [`attention`] with up to `per_call` column blocks per kernel call, as
/// [`PackedMatrix::matmul_into`]'s products take them.
fn attention_on(
    qkv: &[f32],
    (lengths, heads, width): (&[usize], usize, usize),
    first_only: bool,
    (context, probabilities): (&mut Vec<f32>, Option<&mut Vec<f32>>),
    per_call: usize,
) {
    assert!(CpuFeatures::get().avx2_fma, "the CPU has no AVX2 and FMA");
    assert!(
        (1..=blocks_per_call()).contains(&per_call),
        "{per_call} blocks per call: the CPU has no AVX-512F"
    );
    let head_dim = width / heads;
    let total: usize = lengths.iter().sum();
    assert!(
        head_dim > 0 && head_dim * heads == width,
        "{width} is not {heads} heads wide"
    );
    assert_eq!(
        qkv.len(),
        total * 3 * width,
        "qkv is not [{total}, {}]",
        3 * width
    );
    let scale = 1.0 / (head_dim as f32).sqrt();
    assert!(
        !first_only || !lengths.contains(&0),
        "an input without tokens has no first token"
    );
    // (first token, tokens, head, the first token's row of `context`) of each job.
    let mut jobs = Vec::with_capacity(lengths.len() * heads);
    for (input, span) in crate::call_rows::spans(lengths).enumerate() {
        let (start, len) = (span.start, span.len());
        if len > 0 {
            let out_row = if first_only { input } else { start };
            jobs.extend((0..heads).map(|head| (start, len, head, out_row)));
        }
    }
    let context_rows = if first_only { lengths.len() } else { total };
    // Every (row, head) value is written below, each by its one job.
    context.resize(context_rows * width, 0.0);
    let out = SharedOutput(context.as_mut_ptr());
    // Each job's head's probabilities go to their own `len` values, at
    // `heads · start + head · len`: every value written once.
    let probabilities = probabilities.filter(|_| first_only).map(|p| {
        p.clear();
        p.resize(heads * total, 0.0);
        SharedOutput(p.as_mut_ptr())
    });
    let row = 3 * width;
    jobs.par_iter().for_each(|&(start, len, head, out_row)| {
        let queries = if first_only { 1 } else { len };
        // This input's query, key and value columns of this head: row `token` of each
        // at `token * row` from these.
        let part = |part: usize| &qkv[start * row + part * width + head * head_dim..];
        let keys = PackedMatrix::from_columns(part(1), row, head_dim, len);
        let values = PackedMatrix::from_input_rows(part(2), row, len, head_dim);
        // A band of queries at a time: its scores, [rows, len], stay in cache from the
        // product that makes them through the softmax to the product that reads them,
        // where all of a long input's scores would not.
        let mut scores = vec![0f32; BAND.min(queries) * len];
        let mut inverse_sums = vec![0f32; BAND.min(queries)];
        for band_start in (0..queries).step_by(BAND) {
            let rows = BAND.min(queries - band_start);
            let scores = &mut scores[..rows * len];
            let inverse_sums = &mut inverse_sums[..rows];
            // SAFETY (both blocks): `CpuFeatures::avx2_fma` holds (asserted above), and the products
            // assert that their inputs hold the rows they read. The first writes this
            // job's own scores, `rows` rows of `len` (the keys' columns); the second, and
            // the division, this job's head's columns of its own queries' rows of
            // `context` (`context_rows × width`), which no other job writes.
            unsafe {
                keys.rows(
                    &part(0)[band_start * row..],
                    row,
                    rows,
                    scores.as_mut_ptr(),
                    0..len.div_ceil(COLUMNS),
                    (per_call, false),
                );
            }
            super::vector_math::softmax_rows_unnormalized(scores, len, scale, inverse_sums);
            if let Some(probabilities) = probabilities {
                // SAFETY: this job's own `len` values of the `heads × total` buffer.
                let mine = unsafe {
                    std::slice::from_raw_parts_mut(
                        probabilities.at(heads * start + head * len),
                        len,
                    )
                };
                for (p, &score) in mine.iter_mut().zip(scores.iter()) {
                    *p = score * inverse_sums[0];
                }
            }
            unsafe {
                let first = out.at((out_row + band_start) * width + head * head_dim);
                values.product_in_rows(scores, len, rows, first, width, per_call);
                // The softmax's division, on head_dim values per row instead of len.
                for (r, &inverse) in inverse_sums.iter().enumerate() {
                    let head_row = std::slice::from_raw_parts_mut(first.add(r * width), head_dim);
                    for x in head_row {
                        *x *= inverse;
                    }
                }
            }
        }
    });
}

/// [`attention`] with `first_only` for a layer whose input rows are `hidden`
/// (`[total, width]`, inputs laid end to end, `lengths` tokens each) and whose query,
/// key and value projection is `qkv` (`width` inputs, `3 * width` outputs: queries,
/// keys, values), without projecting any token but the first: each input's
/// first-token context, `[inputs, width]` in `context`.
///
/// With one query, each head's key and value projections fold into it (`W` the
/// head's columns of a projection, `b` its bias, `x_j` the input's rows):
/// - score_j = q · (x_j·W_k + b_k) = x_j · (W_k q) + q · b_k, whose last term, the
///   same for every `j`, cancels in the softmax;
/// - Σ_j p_j (x_j·W_v + b_v) = (Σ_j p_j x_j)·W_v + b_v, as the p_j sum to 1.
///
/// So a head costs two products of the input's rows with one vector each, where the
/// keys and values of every token cost 2·width² multiply-adds per token: the last
/// layer's, at 512 tokens of codebert-base, about 2% of a pass. The sums are
/// reassociated, so the context differs from [`attention`]'s by rounding alone.
///
/// # Panics
/// When the CPU lacks AVX2 and FMA, the shapes disagree, or an input has no tokens.
pub fn first_token_context(
    qkv: &PackedMatrix,
    hidden: &[f32],
    lengths: &[usize],
    heads: usize,
    context: &mut Vec<f32>,
    probabilities: Option<&mut Vec<f32>>,
) {
    assert!(CpuFeatures::get().avx2_fma, "the CPU has no AVX2 and FMA");
    let width = qkv.k;
    let head_dim = width / heads.max(1);
    assert!(
        head_dim > 0 && head_dim * heads == width && qkv.n == 3 * width,
        "qkv is not [{width}, 3 x {width}] in {heads} heads"
    );
    let total: usize = lengths.iter().sum();
    assert_eq!(
        hidden.len(),
        total * width,
        "hidden is not [{total}, {width}]"
    );
    assert!(
        !lengths.contains(&0),
        "an input without tokens has no first token"
    );
    let per_call = blocks_per_call();
    let scale = 1.0 / (head_dim as f32).sqrt();
    let starts = crate::call_rows::first_rows(lengths);
    context.resize(lengths.len() * width, 0.0);
    // Each input's `heads × len` probabilities, where asked for: disjoint slices.
    let mut per_input: Vec<Option<&mut [f32]>> = match probabilities {
        Some(p) => {
            p.clear();
            p.resize(heads * total, 0.0);
            let mut rest = p.as_mut_slice();
            lengths
                .iter()
                .map(|&len| {
                    let (mine, after) = std::mem::take(&mut rest).split_at_mut(heads * len);
                    rest = after;
                    Some(mine)
                })
                .collect()
        }
        None => lengths.iter().map(|_| None).collect(),
    };
    let inputs = starts.par_iter().zip(lengths).zip(per_input.par_iter_mut());
    context.par_chunks_mut(width).zip(inputs).for_each(
        |(context, ((&start, &len), probabilities))| {
            let rows = &hidden[start * width..(start + len) * width];
            // One row of the projection's outputs, of which each step below reads the
            // columns it asked for (a partial column block's others are scratch).
            let mut projected = vec![0f32; 3 * width];
            let column_blocks =
                |first: usize, count: usize| first / COLUMNS..(first + count).div_ceil(COLUMNS);
            // SAFETY (the three `unsafe` products): `CpuFeatures::avx2_fma` holds; each reads rows
            // of the lengths it is given and writes only this task's own buffers, of the
            // sizes its output rows need (one row of `3 * width`, `len × heads`,
            // `heads × width`).
            unsafe {
                qkv.rows(
                    &rows[..width],
                    width,
                    1,
                    projected.as_mut_ptr(),
                    column_blocks(0, width),
                    (per_call, false),
                );
            }
            let query = &projected[..width];
            // Each head's folded key, W_k q: head h's is column h of a width × heads
            // matrix, its values at folded_keys[h * width..].
            let folded_keys = qkv.columns_times(width, query, head_dim);
            let folded_keys = PackedMatrix::from_columns(&folded_keys, width, width, heads);
            let mut scores_by_token = vec![0f32; len * heads];
            unsafe {
                folded_keys.product_in_rows(
                    rows,
                    width,
                    len,
                    scores_by_token.as_mut_ptr(),
                    heads,
                    per_call,
                );
            }
            let mut scores = vec![0f32; heads * len];
            for (token, by_head) in scores_by_token.chunks_exact(heads).enumerate() {
                for (head, &score) in by_head.iter().enumerate() {
                    scores[head * len + token] = score;
                }
            }
            let mut inverse_sums = vec![0f32; heads];
            super::vector_math::softmax_rows_unnormalized(
                &mut scores,
                len,
                scale,
                &mut inverse_sums,
            );
            if let Some(probabilities) = probabilities {
                for ((p, head_scores), &inverse) in probabilities
                    .chunks_exact_mut(len)
                    .zip(scores.chunks_exact(len))
                    .zip(&inverse_sums)
                {
                    for (p, &score) in p.iter_mut().zip(head_scores) {
                        *p = score * inverse;
                    }
                }
            }
            // Each head's probability-weighted mean of the rows, [heads, width].
            let token_rows = PackedMatrix::from_input_rows(rows, width, len, width);
            let mut means = vec![0f32; heads * width];
            unsafe {
                token_rows.product_in_rows(
                    &scores,
                    len,
                    heads,
                    means.as_mut_ptr(),
                    width,
                    per_call,
                );
            }
            for (head, (mean, &inverse)) in
                means.chunks_exact_mut(width).zip(&inverse_sums).enumerate()
            {
                for x in mean.iter_mut() {
                    *x *= inverse;
                }
                // The head's context: its mean row through its value columns, bias
                // included.
                let first = 2 * width + head * head_dim;
                unsafe {
                    qkv.rows(
                        mean,
                        width,
                        1,
                        projected.as_mut_ptr(),
                        column_blocks(first, head_dim),
                        (per_call, false),
                    );
                }
                context[head * head_dim..][..head_dim]
                    .copy_from_slice(&projected[first..][..head_dim]);
            }
        },
    );
}

/// The output buffer's start, shared by the threads of one product, each writing
/// only its own rows and columns.
#[derive(Clone, Copy)]
struct SharedOutput(*mut f32);

// SAFETY: the pointer is only written through in disjoint regions (see `matmul_into`).
unsafe impl Send for SharedOutput {}
// SAFETY: as above.
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// The value at `offset` (a method, so closures capture the whole `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` is inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(offset) }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::{random, reference};

    /// `w` (`[k, n]`) in the checkpoint's `[n, k]` layout, as `new` takes it.
    fn stored(w: &[f32], k: usize, n: usize) -> Vec<f32> {
        (0..n * k).map(|j| w[(j % k) * n + j / k]).collect()
    }

    /// Attention against an f64 reference, for two inputs side by side (each attending
    /// only to itself), one longer than a cache block of steps and than a band of
    /// queries.
    #[test]
    fn attention_equals_an_f64_reference() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let (heads, head_dim) = (3, 8);
        let width = heads * head_dim;
        let lengths = [5usize, 300];
        let total: usize = lengths.iter().sum();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let qkv: Vec<f32> = (0..total * 3 * width)
            .map(|_| random(&mut seed) * 3.0)
            .collect();
        // A reused buffer that holds more than the result, to be cut down.
        let mut got = vec![f32::NAN; 2 * total * width];
        attention(&qkv, &lengths, heads, width, false, &mut got, None);
        assert_eq!(got.len(), total * width);
        let want = reference::attention(&qkv, &lengths, heads, width);
        for (i, (&value, &want)) in got.iter().zip(&want).enumerate() {
            let (token, column) = (i / width, i % width);
            assert!(
                (f64::from(value) - want).abs() < 1e-5,
                "token {token}, head {}, dim {}: {value} vs {want}",
                column / head_dim,
                column % head_dim
            );
        }
        // Only the first tokens: the full context's rows, value for value.
        let mut first = vec![f32::NAN; 3];
        attention(&qkv, &lengths, heads, width, true, &mut first, None);
        let want: Vec<f32> = [0, lengths[0]]
            .iter()
            .flat_map(|&token| got[token * width..][..width].to_vec())
            .collect();
        assert_eq!(first, want);
    }

    /// The first tokens' context with keys and values folded into the queries equals
    /// attention's first rows after the full projection, within rounding: heads of
    /// partial and of several column blocks, inputs of one token and longer than a
    /// band of queries.
    #[test]
    fn folded_first_token_context_equals_attentions() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let mut seed = 0x5851_f42d_4c95_7f2du64;
        for (heads, head_dim) in [(3, 8), (2, 40), (4, 16)] {
            let width = heads * head_dim;
            let lengths = [5usize, 1, 130];
            let total: usize = lengths.iter().sum();
            let w: Vec<f32> = (0..width * 3 * width).map(|_| random(&mut seed)).collect();
            let bias: Vec<f32> = (0..3 * width).map(|_| random(&mut seed)).collect();
            let hidden: Vec<f32> = (0..total * width).map(|_| random(&mut seed)).collect();
            let qkv =
                PackedMatrix::new(&stored(&w, width, 3 * width), Some(&bias), width, 3 * width);
            let projected = qkv.matmul(&hidden, total);
            let mut want = Vec::new();
            let mut want_probabilities = Vec::new();
            let asked = Some(&mut want_probabilities);
            attention(&projected, &lengths, heads, width, true, &mut want, asked);
            // Into reused buffers longer than the results.
            let mut got = vec![f32::NAN; 4 * width];
            let mut probabilities = vec![f32::NAN; 5 * total * heads];
            let asked = Some(&mut probabilities);
            first_token_context(&qkv, &hidden, &lengths, heads, &mut got, asked);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5 * (1.0 + w.abs()),
                    "{heads} heads of {head_dim}, value {i}: {g} vs {w}"
                );
            }
            // The first tokens' attention probabilities, head by head, both ways
            // against the f64 softmax of the projected queries and keys.
            let reference = first_row_probabilities(&projected, &lengths, heads, width);
            assert_eq!(probabilities.len(), heads * total);
            assert_eq!(want_probabilities.len(), heads * total);
            for (i, &r) in reference.iter().enumerate() {
                let (folded, projected) = (probabilities[i], want_probabilities[i]);
                assert!((f64::from(folded) - r).abs() < 1e-5, "{i}: {folded} vs {r}");
                assert!(
                    (f64::from(projected) - r).abs() < 1e-5,
                    "{i}: {projected} vs {r}"
                );
            }
        }
    }

    /// softmax(q₀·kⱼ / √head_dim) in f64 for each input's first query, head by head:
    /// `heads × len` values per input, inputs laid end to end.
    fn first_row_probabilities(
        qkv: &[f32],
        lengths: &[usize],
        heads: usize,
        width: usize,
    ) -> Vec<f64> {
        let head_dim = width / heads;
        let at = |token: usize, part: usize, head: usize, d: usize| {
            f64::from(qkv[token * 3 * width + part * width + head * head_dim + d])
        };
        let mut out = Vec::new();
        for span in crate::call_rows::spans(lengths) {
            for head in 0..heads {
                let scores: Vec<f64> = span
                    .clone()
                    .map(|key| {
                        (0..head_dim)
                            .map(|d| at(span.start, 0, head, d) * at(key, 1, head, d))
                            .sum::<f64>()
                            / (head_dim as f64).sqrt()
                    })
                    .collect();
                out.extend(reference::softmax(&scores));
            }
        }
        out
    }

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

    /// A product with GELU applied tile by tile equals the product followed by GELU
    /// over all of it, bit for bit: deeper than a block of steps, partial column
    /// groups, rows split and columns split across 1 to 3 threads, and no inputs.
    #[test]
    fn gelu_products_equal_products_then_gelu() {
        if !CpuFeatures::get().avx2_fma {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        let mut seed = 0x0bad_5eed_1234_5678u64;
        for &(m, k, n) in &[(7, 33, 70), (13, 1000, 150), (250, 100, 200), (3, 0, 20)] {
            let a: Vec<f32> = (0..m * k).map(|_| random(&mut seed) * 2.0).collect();
            let w: Vec<f32> = (0..k * n).map(|_| random(&mut seed)).collect();
            let bias: Vec<f32> = (0..n).map(|_| random(&mut seed)).collect();
            let packed = PackedMatrix::new(&stored(&w, k, n), Some(&bias), k, n);
            let mut want = packed.matmul(&a, m);
            crate::cpu::vector_math::gelu_in_place(&mut want);
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool");
                let mut got = vec![f32::NAN; 3];
                pool.install(|| packed.matmul_gelu_into(&a, m, &mut got));
                assert_eq!(
                    bits(&got),
                    bits(&want),
                    "[{m}x{k}x{n}] on {threads} threads"
                );
            }
        }
    }

    /// The AVX-512 kernel's sums are the AVX2 kernel's, bit for bit: the same FMAs in
    /// the same order. Products on groups of four column blocks and partial groups,
    /// deeper than a block of steps, on few rows and on bands; attention on heads of
    /// one partial block and of several.
    #[test]
    fn both_instruction_sets_give_the_same_bits() {
        if !CpuFeatures::get().avx2_fma || blocks_per_call() == 1 {
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
            let packed = PackedMatrix::new(&stored(&w, k, n), Some(&bias), k, n);
            let (mut avx2, mut avx512) = (Vec::new(), Vec::new());
            packed.product_into(&a, m, &mut avx2, 1, false);
            packed.product_into(&a, m, &mut avx512, WIDE_BLOCKS, false);
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
                let shape = (&lengths[..], heads, width);
                attention_on(&qkv, shape, first_only, (&mut avx2, None), 1);
                attention_on(&qkv, shape, first_only, (&mut avx512, None), WIDE_BLOCKS);
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
            let got = PackedMatrix::new(&stored(&w, k, n), Some(&bias), k, n).matmul(&a, m);
            let in_place = PackedMatrix::from_vec(stored(&w, k, n), Some(&bias), k, n);
            assert_eq!(in_place.matmul(&a, m), got, "[{m}x{k}x{n}] packed in place");
            // Packed from [k, n] rows, or from [n, k] columns spaced out, the layout as
            // the one from [n, k].
            let spaced: Vec<f32> = stored(&w, k, n)
                .chunks(k.max(1))
                .flat_map(|column| column.iter().copied().chain([f32::NAN; 3]))
                .collect();
            if k > 0 {
                assert_eq!(
                    PackedMatrix::from_columns(&spaced, k + 3, k, n).blocks,
                    PackedMatrix::new(&stored(&w, k, n), None, k, n).blocks,
                    "[{k}x{n}] packed from spaced columns"
                );
            }
            assert_eq!(
                PackedMatrix::from_input_rows(&w, n, k, n).blocks,
                PackedMatrix::new(&stored(&w, k, n), None, k, n).blocks,
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
                pool.install(|| in_place.matmul_into(&a, m, &mut reused));
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
