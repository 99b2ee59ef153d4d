//! The encoder layers on projections packed for one of this crate's kernels, on plain
//! f32 rows: the CPU backends' encoder wherever a kernel runs ([`super::Kernel`]).
//! Each layer's operations are what `execution::LayerOps` asks of the packed plan;
//! the model's forward pass strings them together.
//!
//! burn's tensors between the operations would cost a copy and a pass over memory per
//! operation; here each is one pass, split across threads, into the caller's buffers.

use rayon::prelude::*;

use super::driver::Epilogue;
use super::packed::PackedProjection;
use super::{attention, vector_math, Kernel};

/// One projection's f32 weights as the checkpoint stores them, `[out, in]` row-major,
/// and its bias, before packing.
#[derive(Debug)]
pub(crate) struct Projection {
    /// `n * k` values: row `c` is output column `c`'s weights.
    pub(crate) weight: Vec<f32>,
    /// `n` values, or none for zeros.
    pub(crate) bias: Option<Vec<f32>>,
    /// Inputs.
    pub(crate) k: usize,
    /// Outputs.
    pub(crate) n: usize,
}

/// A LayerNorm's scale, shift and epsilon.
#[derive(Debug)]
pub(crate) struct NormParameters {
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) epsilon: f32,
}

/// One encoder layer's weights in f32, as [`PackedLayer::new`] takes them.
#[derive(Debug)]
pub(crate) struct LayerWeights {
    /// `attention.self.{query,key,value}` side by side: `hidden` inputs, `3 * hidden`
    /// outputs.
    pub(crate) query_key_value: Projection,
    pub(crate) attention_output: Projection,
    pub(crate) attention_norm: NormParameters,
    pub(crate) intermediate: Projection,
    pub(crate) output: Projection,
    pub(crate) output_norm: NormParameters,
}

/// An encoder layer's projections packed for a kernel, and its LayerNorms.
#[derive(Debug)]
pub(crate) struct PackedLayer {
    query_key_value: PackedProjection,
    attention_output: PackedProjection,
    intermediate: PackedProjection,
    output: PackedProjection,
    pub(crate) attention_norm: NormParameters,
    pub(crate) output_norm: NormParameters,
    heads: usize,
    /// Values per row of the feed-forward block (`intermediate_size`).
    inner_width: usize,
}

/// The encoder stack packed for one kernel.
#[derive(Debug)]
pub(crate) struct PackedEncoder {
    layers: Vec<PackedLayer>,
}

impl PackedEncoder {
    /// Packs each layer's projections for `kernel` (the detector's plan's, which the
    /// CPU has); the f32 weights are released as they are packed.
    pub(crate) fn new(
        kernel: Kernel,
        heads: usize,
        layers: impl IntoIterator<Item = LayerWeights>,
    ) -> Self {
        let pack =
            |p: Projection| PackedProjection::new(kernel, p.weight, p.bias.as_deref(), p.k, p.n);
        let layers = layers
            .into_iter()
            .map(|w| PackedLayer {
                inner_width: w.intermediate.n,
                query_key_value: pack(w.query_key_value),
                attention_output: pack(w.attention_output),
                intermediate: pack(w.intermediate),
                output: pack(w.output),
                attention_norm: w.attention_norm,
                output_norm: w.output_norm,
                heads,
            })
            .collect();
        Self { layers }
    }

    /// The packed layers, in order.
    pub(crate) fn layers(&self) -> &[PackedLayer] {
        &self.layers
    }
}

impl PackedLayer {
    /// Values per row: the hidden size.
    pub(crate) fn width(&self) -> usize {
        self.attention_norm.gamma.len()
    }

    /// The attention output projection of `context`'s rows into `out`.
    pub(crate) fn project_attention_output(&self, context: &[f32], out: &mut Vec<f32>) {
        let m = context.len() / self.width();
        self.attention_output
            .matmul_into(context, m, out, Epilogue::None);
    }

    /// The feed-forward block's output projection of `rows` (`inner_width` values
    /// each) into `out`.
    pub(crate) fn project_output(&self, rows: &[f32], out: &mut Vec<f32>) {
        let m = rows.len() / self.inner_width;
        self.output.matmul_into(rows, m, out, Epilogue::None);
    }

    /// The attention context (before the output projection) of `hidden`'s rows into
    /// `context`: `[total, width]`, or with `first_only` each input's first row alone,
    /// `[inputs, width]`. The query, key and value projections go to `qkv`, except
    /// where f32 keys and values fold into the first rows' queries (with
    /// `first_only`; see `attention::first_token_context`: equal within rounding).
    /// With `first_only`, `probabilities` (where given) receives each input's first
    /// row's attention probabilities, head by head (`heads × len` per input).
    pub(crate) fn attend(
        &self,
        hidden: &[f32],
        lengths: &[usize],
        first_only: bool,
        (qkv, context): (&mut Vec<f32>, &mut Vec<f32>),
        probabilities: Option<&mut Vec<f32>>,
    ) {
        let width = self.width();
        let rows = hidden.len() / width;
        match self.query_key_value.as_f32() {
            // For the first tokens alone, f32 keys and values fold into the queries,
            // and no other token is projected.
            Some(matrix) if first_only => attention::first_token_context(
                matrix,
                hidden,
                lengths,
                self.heads,
                context,
                probabilities,
            ),
            _ => {
                self.query_key_value
                    .matmul_into(hidden, rows, qkv, Epilogue::None);
                attention::attention(
                    qkv,
                    lengths,
                    self.heads,
                    width,
                    first_only,
                    context,
                    probabilities,
                    self.query_key_value.attention_isa(),
                );
            }
        }
    }

    /// The intermediate projection of `rows` and its exact GELU, x·Φ(x) through erf
    /// as transformers' "gelu", into `out`: in the product's own pass, each tile's
    /// values while still in cache.
    pub(crate) fn expand(&self, rows: &[f32], out: &mut Vec<f32>) {
        let m = rows.len() / self.width();
        self.intermediate.matmul_into(rows, m, out, Epilogue::Gelu);
    }
}

/// Each input's first row of `values` (`width` values per row, inputs laid end to end,
/// `lengths` rows each).
pub(crate) fn gather_first_rows(values: &[f32], lengths: &[usize], width: usize) -> Vec<f32> {
    let mut rows = Vec::with_capacity(lengths.len() * width);
    for start in crate::call_rows::first_row_indices(lengths) {
        rows.extend_from_slice(&values[start * width..][..width]);
    }
    rows
}

impl NormParameters {
    /// Each row of `rows` replaced by LayerNorm(row + the same row of `residual`), as
    /// transformers computes it in f32 (see [`vector_math::add_and_layer_norm`]).
    pub(crate) fn add_and_normalize(&self, rows: &mut [f32], residual: &[f32]) {
        let width = self.gamma.len();
        rows.par_chunks_mut(width)
            .zip(residual.par_chunks(width))
            .with_min_len(16)
            .for_each(|(row, residual)| {
                vector_math::add_and_layer_norm(
                    row,
                    residual,
                    &self.gamma,
                    &self.beta,
                    self.epsilon,
                )
            });
    }
}
