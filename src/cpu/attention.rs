//! Multi-head self-attention on plain f32 rows, for every packed kernel: the scores
//! and the weighted values are products on the f32 kernel ([`super::f32_gemm`]),
//! whatever precision the projections run in.

use rayon::prelude::*;

use super::driver::{self, Epilogue, Microkernel, SharedOutput};
use super::f32_gemm::{Isa, PackedF32, BAND, COLUMNS};
use super::vector_math;

/// Multi-head self-attention: the context `[total, width]` (heads side by side) from
/// the query, key and value projections `[total, 3 * width]` of inputs laid end to
/// end, `lengths` tokens each, each input attending only to its own tokens:
/// softmax(q·kᵀ / √head_dim)·v per input and head, both products on the f32 kernel with
/// `isa`.
/// Inputs and heads run in parallel. `context` is resized to `[total, width]`, every
/// value written (as [`driver::product_into`]'s output).
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
    isa: Isa,
) {
    isa.assert_supported();
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
        let keys = PackedF32::from_columns(isa, part(1), row, head_dim, len);
        let values = PackedF32::from_input_rows(isa, part(2), row, len, head_dim);
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
                driver::rows(
                    &keys,
                    &part(0)[band_start * row..],
                    row,
                    rows,
                    scores.as_mut_ptr(),
                    0..len.div_ceil(COLUMNS),
                    Epilogue::None,
                );
            }
            vector_math::softmax_rows_unnormalized(scores, len, scale, inverse_sums);
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
                values.product_in_rows(scores, len, rows, first, width);
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
    qkv: &PackedF32,
    hidden: &[f32],
    lengths: &[usize],
    heads: usize,
    context: &mut Vec<f32>,
    probabilities: Option<&mut Vec<f32>>,
) {
    let isa = qkv.isa();
    isa.assert_supported();
    let width = qkv.k();
    let head_dim = width / heads.max(1);
    assert!(
        head_dim > 0 && head_dim * heads == width && qkv.n() == 3 * width,
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
    let scale = 1.0 / (head_dim as f32).sqrt();
    let starts = crate::call_rows::first_row_indices(lengths);
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
                driver::rows(
                    qkv,
                    &rows[..width],
                    width,
                    1,
                    projected.as_mut_ptr(),
                    column_blocks(0, width),
                    Epilogue::None,
                );
            }
            let query = &projected[..width];
            // Each head's folded key, W_k q: head h's is column h of a width × heads
            // matrix, its values at folded_keys[h * width..].
            let folded_keys = qkv.columns_times(width, query, head_dim);
            let folded_keys = PackedF32::from_columns(isa, &folded_keys, width, width, heads);
            let mut scores_by_token = vec![0f32; len * heads];
            unsafe {
                folded_keys.product_in_rows(rows, width, len, scores_by_token.as_mut_ptr(), heads);
            }
            let mut scores = vec![0f32; heads * len];
            for (token, by_head) in scores_by_token.chunks_exact(heads).enumerate() {
                for (head, &score) in by_head.iter().enumerate() {
                    scores[head * len + token] = score;
                }
            }
            let mut inverse_sums = vec![0f32; heads];
            vector_math::softmax_rows_unnormalized(&mut scores, len, scale, &mut inverse_sums);
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
            let token_rows = PackedF32::from_input_rows(isa, rows, width, len, width);
            let mut means = vec![0f32; heads * width];
            unsafe {
                token_rows.product_in_rows(&scores, len, heads, means.as_mut_ptr(), width);
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
                    driver::rows(
                        qkv,
                        mean,
                        width,
                        1,
                        projected.as_mut_ptr(),
                        column_blocks(first, head_dim),
                        Epilogue::None,
                    );
                }
                context[head * head_dim..][..head_dim]
                    .copy_from_slice(&projected[first..][..head_dim]);
            }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::f32_gemm::stored;
    use crate::cpu::{random, reference, CpuFeatures};

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
        attention(
            &qkv,
            &lengths,
            heads,
            width,
            false,
            &mut got,
            None,
            Isa::best(),
        );
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
        attention(
            &qkv,
            &lengths,
            heads,
            width,
            true,
            &mut first,
            None,
            Isa::best(),
        );
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
            let qkv = PackedF32::new(
                Isa::best(),
                &stored(&w, width, 3 * width),
                Some(&bias),
                width,
                3 * width,
            );
            let projected = qkv.matmul(&hidden, total);
            let mut want = Vec::new();
            let mut want_probabilities = Vec::new();
            let asked = Some(&mut want_probabilities);
            attention(
                &projected,
                &lengths,
                heads,
                width,
                true,
                &mut want,
                asked,
                Isa::best(),
            );
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
}
