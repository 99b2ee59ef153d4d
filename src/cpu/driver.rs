//! The one driver of every packed matrix product, laid out as the gemm crate and ggml
//! lay theirs out: this file splits a product across the rayon pool, blocks it for the
//! caches and calls a precision's microkernel on each tile; a precision supplies only
//! its packed weights, the layout of a band of input rows its microkernel reads, and
//! the microkernel ([`Microkernel`]). f32 ([`super::f32_gemm`]), bf16
//! ([`super::bf16_gemm`]) and int8 ([`super::int8_gemm`]) all run here.
//!
//! The loops, outermost first: parts of the output (one per rayon task); blocks of
//! `k` steps ([`Microkernel::depth`]); bands of rows ([`Microkernel::band`]), laid out
//! once per band and block of steps; groups of column blocks (one microkernel call's
//! width); tiles of rows. Every output's sum runs along `k` in order through one
//! microkernel per block of steps, however the work is split, so the results do not
//! depend on the thread count.

use std::cell::Cell;
use std::ops::Range;
use std::thread::LocalKey;

use rayon::prelude::*;

use super::vector_math::gelu_in_place;

/// What a precision's packed `[k, n]` matrix (weights and bias) gives the driver.
pub(crate) trait Microkernel: Sync {
    /// A band of input rows laid out for the microkernel: interleaved f32 panels,
    /// bf16 pairs, or int8 values with each row's scale.
    type Panels: Default + 'static;

    /// Each thread's panels, kept from one product to the next: as every value read
    /// is written first, they need no clearing, nor fresh pages on every call.
    fn panels() -> &'static LocalKey<Cell<Self::Panels>>;

    /// Inputs: the rows of the weight.
    fn k(&self) -> usize;

    /// Outputs: the columns of the weight.
    fn n(&self) -> usize;

    /// The bias, `n` values.
    fn bias(&self) -> &[f32];

    /// Rows per microkernel call, and output columns per column block of the packed
    /// weights.
    fn tile_shape(&self) -> (usize, usize);

    /// Column blocks per microkernel call.
    fn blocks_per_call(&self) -> usize {
        1
    }

    /// Steps of `k` per cache block, at least 1: the microkernel starts each block's
    /// sums from what the blocks before it left in the output. `k` where the
    /// microkernel finishes its sums in one call (scaling integer sums, say).
    fn depth(&self) -> usize;

    /// Rows per cache block: a band's panels stay in L2 while every column block
    /// streams past them.
    fn band(&self) -> usize;

    /// Panics where this CPU lacks the microkernel's instructions: every `unsafe`
    /// call below rests on it.
    fn assert_supported(&self);

    /// Lays out `rows` input rows, row `r` at `a[r * row_stride..]`, for `steps` of
    /// `k`, into `panels`.
    ///
    /// # Safety
    /// [`Microkernel::assert_supported`] holds: the layout may use the microkernel's
    /// instructions.
    unsafe fn pack_rows(
        &self,
        a: &[f32],
        row_stride: usize,
        rows: usize,
        steps: Range<usize>,
        panels: &mut Self::Panels,
    );

    /// The microkernel on the band's rows `first_row..first_row + rows` (`first_row`
    /// a multiple of the tile's rows, `rows` at most that), column blocks `blocks` (at
    /// most [`Microkernel::blocks_per_call`]) and `steps` of `k`, as laid out by the
    /// last [`Microkernel::pack_rows`]. Its rows of `out` are `n` apart from `out`.
    ///
    /// # Safety
    /// [`Microkernel::assert_supported`] holds; `out` is valid for the tile's rows,
    /// and their columns in `blocks` are the caller's alone.
    unsafe fn tile(
        &self,
        panels: &Self::Panels,
        first_row: usize,
        rows: usize,
        steps: Range<usize>,
        blocks: Range<usize>,
        out: *mut f32,
    );
}

/// What happens to each output value once its sum is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Epilogue {
    /// Nothing: the product and its bias.
    None,
    /// Exact GELU ([`gelu_in_place`]), each tile's values while they are in L1: the
    /// same values as a pass over the whole output afterwards, without its trip
    /// through memory.
    Gelu,
}

/// `input · weight + bias` for `input` `[m, k]` row-major into `output`, resized to
/// `[m, n]` row-major, then `epilogue`. Every value is written, so a buffer reused
/// from call to call is not cleared again: only what it grows by is zeroed.
///
/// Many rows (at least a band per thread) are split into parts of whole tiles, a
/// whole number of rounds of bands for the threads, which take them as they come
/// free: a thread slowed by other work on its core takes fewer, where an even split
/// would have the others wait for it. Each band streams all the weights, as it would
/// inside an even split. Fewer rows are split by columns: each thread takes a share
/// of the column blocks for all the rows, so that it streams only its share of the
/// weights, where a split of the rows would have every thread stream all of them;
/// only where the column blocks are too few to keep every thread busy are the rows
/// split as well.
///
/// # Panics
/// When the CPU lacks the microkernel's instructions or `input` is not `m × k`.
pub(crate) fn product_into<K: Microkernel>(
    matrix: &K,
    input: &[f32],
    m: usize,
    output: &mut Vec<f32>,
    epilogue: Epilogue,
) {
    matrix.assert_supported();
    let (k, n) = (matrix.k(), matrix.n());
    assert_eq!(input.len(), m * k, "input is not [{m}, {k}]");
    output.resize(m * n, 0.0);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in output.chunks_exact_mut(n) {
            row.copy_from_slice(matrix.bias());
            if epilogue == Epilogue::Gelu {
                gelu_in_place(row);
            }
        }
        return;
    }
    let (tile_rows, columns) = matrix.tile_shape();
    let band = matrix.band();
    let blocks = n.div_ceil(columns);
    let threads = rayon::current_num_threads().max(1);
    let (row_parts, column_parts) = if m >= threads.saturating_mul(band) {
        // Whole rounds of bands, so that threads equally fast end together.
        (m.div_ceil(threads * band) * threads, 1)
    } else {
        // Where there are fewer column blocks than threads (or a remainder of them
        // that would leave threads idle), the rows are split too.
        let column_parts = threads.min(blocks);
        let column_parts = blocks.div_ceil(blocks.div_ceil(column_parts));
        (threads / column_parts, column_parts)
    };
    // Parts of whole tiles, as even as they divide: part p takes tiles
    // [p·T/parts, (p+1)·T/parts) of the T. Parts rounded up to whole tiles each
    // would leave the remainder to the last (512 rows in 6 parts of 6-row tiles: five
    // of 90 and one of 62, one thread's 270 rows against the other's 242).
    let row_tiles = m.div_ceil(tile_rows);
    let row_parts = row_parts.min(row_tiles);
    let part_start = |part: usize| (part * row_tiles / row_parts * tile_rows).min(m);
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
            // SAFETY: `assert_supported` held above; the parts' (rows, column blocks)
            // tile the output without overlap, so each value has one writer; row
            // `first_row` starts at `first_row * n` of `m * n` values.
            unsafe {
                rows(
                    matrix,
                    &input[first_row * k..last_row * k],
                    k,
                    last_row - first_row,
                    out.at(first_row * n),
                    first_block..last_block,
                    epilogue,
                )
            }
        });
}

/// One part of a product, on the calling thread: `m` rows, row `r` read at
/// `a[r * row_stride..][..k]`, into the rows of `out` (`n` values apart), in the
/// column blocks `blocks`, blocked for the caches as the module's loops say.
///
/// # Safety
/// [`Microkernel::assert_supported`] holds; `out` is valid for `m` rows of `n` values,
/// whose columns in `blocks` no other thread touches meanwhile.
pub(crate) unsafe fn rows<K: Microkernel>(
    matrix: &K,
    a: &[f32],
    row_stride: usize,
    m: usize,
    out: *mut f32,
    blocks: Range<usize>,
    epilogue: Epilogue,
) {
    let (k, n) = (matrix.k(), matrix.n());
    assert!(
        m == 0 || (m - 1) * row_stride + k <= a.len(),
        "a does not hold {m} rows"
    );
    let (tile_rows, columns) = matrix.tile_shape();
    let per_call = matrix.blocks_per_call();
    let (depth, band) = (matrix.depth(), matrix.band());
    assert!(depth > 0 && band > 0 && blocks.end * columns < n + columns);
    let mut panels = K::panels().take();
    for depth_start in (0..k).step_by(depth) {
        let steps = depth_start..(depth_start + depth).min(k);
        for band_start in (0..m).step_by(band) {
            let band_rows = band.min(m - band_start);
            let band_out = out.wrapping_add(band_start * n);
            // SAFETY: the caller's contract: `assert_supported` holds.
            unsafe {
                matrix.pack_rows(
                    &a[band_start * row_stride..],
                    row_stride,
                    band_rows,
                    steps.clone(),
                    &mut panels,
                )
            };
            for first in blocks.clone().step_by(per_call) {
                let group = first..(first + per_call).min(blocks.end);
                let group_columns = first * columns..(group.end * columns).min(n);
                for row in (0..band_rows).step_by(tile_rows) {
                    let rows = tile_rows.min(band_rows - row);
                    let tile_out = band_out.wrapping_add(row * n);
                    // SAFETY: the caller's contract: the tile's rows are inside `out`'s
                    // `m`, and the group's columns are the caller's.
                    unsafe {
                        matrix.tile(&panels, row, rows, steps.clone(), group.clone(), tile_out)
                    };
                    if epilogue == Epilogue::Gelu && steps.end == k {
                        for r in 0..rows {
                            // SAFETY: as above, for this row's columns of the group.
                            let values = unsafe {
                                std::slice::from_raw_parts_mut(
                                    tile_out.add(r * n + group_columns.start),
                                    group_columns.len(),
                                )
                            };
                            gelu_in_place(values);
                        }
                    }
                }
            }
        }
    }
    K::panels().set(panels);
}

/// The output buffer's start, shared by the threads of one product, each writing
/// only its own rows and columns.
#[derive(Clone, Copy)]
pub(crate) struct SharedOutput(pub(crate) *mut f32);

// SAFETY: the pointer is only written through in disjoint regions (see `product_into`).
unsafe impl Send for SharedOutput {}
// SAFETY: as above.
unsafe impl Sync for SharedOutput {}

impl SharedOutput {
    /// The value at `offset` (a method, so closures capture the whole `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` is inside the buffer.
    pub(crate) unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller's.
        unsafe { self.0.add(offset) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::packed::PackedProjection;
    use crate::cpu::{CpuFeatures, Kernel};

    /// Every kernel this CPU runs gives the same bits however the driver splits the
    /// work (rows, columns or both, 1 to 4 threads, bands and whole rounds of them), into a
    /// reused buffer longer than the result and full of NaN; and its GELU epilogue
    /// equals GELU over the finished product. Shapes: deeper than a block of steps,
    /// partial column groups and row tiles, more rows than the threads' bands, none.
    #[test]
    fn every_kernel_gives_the_same_bits_however_the_work_is_split() {
        let kernels: Vec<Kernel> = Kernel::ALL
            .into_iter()
            .filter(|kernel| kernel.runs_on(CpuFeatures::get()))
            .collect();
        if kernels.is_empty() {
            crate::cpu::skipped("AVX2 and FMA");
            return;
        }
        for kernel in Kernel::ALL.into_iter().filter(|k| !kernels.contains(k)) {
            crate::cpu::skipped(&format!("{} (the {kernel} kernel untested)", kernel.isa()));
        }
        let pools: Vec<rayon::ThreadPool> = [1, 2, 3, 4]
            .into_iter()
            .map(|threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .expect("thread pool")
            })
            .collect();
        let mut seed = 0x0bad_5eed_1234_5678u64;
        // 600 rows: more than the threads' bands, split in whole rounds of them; 2
        // column blocks on 4 threads: few rows split by rows and columns together.
        for &(m, k, n) in &[
            (7, 33, 70),
            (13, 1000, 150),
            (250, 100, 200),
            (600, 40, 40),
            (40, 30, 32),
            (0, 8, 16),
            (5, 1, 3),
        ] {
            let (a, w, bias) = crate::cpu::random_product(&mut seed, (m, k, n));
            let stored = crate::cpu::f32_gemm::stored(&w, k, n);
            for &kernel in &kernels {
                let packed = PackedProjection::new(kernel, stored.clone(), Some(&bias), k, n);
                let product = |threads: usize, epilogue| {
                    let mut out = vec![f32::NAN; m * n + 5];
                    pools[threads - 1].install(|| packed.matmul_into(&a, m, &mut out, epilogue));
                    out.iter().map(|x| x.to_bits()).collect::<Vec<u32>>()
                };
                let want = product(1, Epilogue::None);
                assert_eq!(want.len(), m * n);
                assert!(
                    want.iter().all(|&x| f32::from_bits(x).is_finite()),
                    "{kernel} [{m}x{k}x{n}]"
                );
                let mut gelu: Vec<f32> = want.iter().map(|&x| f32::from_bits(x)).collect();
                gelu_in_place(&mut gelu);
                let gelu: Vec<u32> = gelu.iter().map(|x| x.to_bits()).collect();
                for threads in [1, 2, 3, 4] {
                    let case = format!("{kernel} [{m}x{k}x{n}] on {threads} threads");
                    assert_eq!(product(threads, Epilogue::None), want, "{case}");
                    assert_eq!(product(threads, Epilogue::Gelu), gelu, "{case}, GELU");
                }
            }
        }
    }
}
