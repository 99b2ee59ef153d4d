//! The encoder layers on projections packed for one of this crate's kernels, on plain
//! f32 rows: the CPU backends' encoder wherever a kernel runs ([`super::Kernel`]).
//!
//! burn's tensors between the operations would cost a copy and a pass over memory per
//! operation; here each is one pass, split across threads, into buffers reused from
//! layer to layer.

use rayon::prelude::*;

use super::packed::PackedMatrix;
use super::{f32_gemm, vector_math, Kernel};

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
struct PackedLayer {
    query_key_value: PackedMatrix,
    attention_output: PackedMatrix,
    intermediate: PackedMatrix,
    output: PackedMatrix,
    attention_norm: NormParameters,
    output_norm: NormParameters,
}

/// The encoder stack packed for one kernel.
#[derive(Debug)]
pub(crate) struct PackedEncoder {
    layers: Vec<PackedLayer>,
    heads: usize,
    width: usize,
}

impl PackedEncoder {
    /// Packs each layer's projections for `kernel` (which [`Kernel::select`] chose for
    /// this CPU); the f32 weights are released as they are packed.
    pub(crate) fn new(
        kernel: Kernel,
        width: usize,
        heads: usize,
        layers: impl IntoIterator<Item = LayerWeights>,
    ) -> Self {
        let pack = |p: Projection| PackedMatrix::new(kernel, p.weight, p.bias.as_deref(), p.k, p.n);
        let layers = layers
            .into_iter()
            .map(|w| PackedLayer {
                query_key_value: pack(w.query_key_value),
                attention_output: pack(w.attention_output),
                intermediate: pack(w.intermediate),
                output: pack(w.output),
                attention_norm: w.attention_norm,
                output_norm: w.output_norm,
            })
            .collect();
        Self {
            layers,
            heads,
            width,
        }
    }

    /// The layers in turn on `hidden` (`[total, width]` row-major, inputs laid end to
    /// end, `lengths` tokens each): the encoder's output rows.
    ///
    /// With `first_tokens_out`, the result is only each input's first token,
    /// `[inputs, width]`, those rows of the full result: the last layer computes all
    /// of its work for the first tokens alone, as the classification head reads
    /// nothing else. Every token still counts through attention: on f32 projections,
    /// through keys and values folded into the first tokens' queries (see
    /// `f32_gemm::first_token_context`: equal within rounding), elsewhere through
    /// every token's keys and values (value for value).
    ///
    /// # Panics
    /// When the shapes disagree, or, with `first_tokens_out`, an input has no tokens.
    pub(crate) fn forward(
        &self,
        hidden: Vec<f32>,
        lengths: &[usize],
        first_tokens_out: bool,
    ) -> Vec<f32> {
        let mut activations = Activations {
            hidden,
            ..Activations::default()
        };
        for (index, layer) in self.layers.iter().enumerate() {
            let first_only = first_tokens_out && index + 1 == self.layers.len();
            self.layer(layer, &mut activations, lengths, first_only);
        }
        if first_tokens_out && self.layers.is_empty() {
            activations.hidden = first_rows(&activations.hidden, lengths, self.width);
        }
        activations.hidden
    }

    /// One post-LayerNorm layer on the rows in `a.hidden`, replaced by its output: the
    /// query, key and value projection and attention, the output projection, residual
    /// and LayerNorm, the GELU feed-forward block, residual and LayerNorm. With
    /// `first_only`, the output is only each input's first token (see
    /// [`PackedEncoder::forward`]).
    fn layer(&self, layer: &PackedLayer, a: &mut Activations, lengths: &[usize], first_only: bool) {
        self.attend(layer, a, lengths, first_only);
        // From here on every step works on each row alone: with `first_only`, on the
        // first tokens' rows, the residual's included.
        if first_only {
            a.hidden = first_rows(&a.hidden, lengths, self.width);
        }
        let rows = a.hidden.len() / self.width;
        layer
            .attention_output
            .matmul_into(&a.context, rows, &mut a.attended);
        layer
            .attention_norm
            .add_and_normalize(&mut a.attended, &a.hidden);
        // Exact GELU, x·Φ(x) through erf, as transformers' "gelu": on the f32 kernel in
        // the product's own pass, each tile's values while still in cache.
        match layer.intermediate.as_f32() {
            Some(matrix) => matrix.matmul_gelu_into(&a.attended, rows, &mut a.expanded),
            None => {
                layer
                    .intermediate
                    .matmul_into(&a.attended, rows, &mut a.expanded);
                gelu_in_place(&mut a.expanded);
            }
        }
        // The layer's output goes where its input was, no longer needed.
        layer.output.matmul_into(&a.expanded, rows, &mut a.hidden);
        layer
            .output_norm
            .add_and_normalize(&mut a.hidden, &a.attended);
    }

    /// The attention context (before the output projection) of the rows in
    /// `a.hidden` into `a.context`: `[total, width]`, or with `first_only` each
    /// input's first row alone, `[inputs, width]`.
    fn attend(
        &self,
        layer: &PackedLayer,
        a: &mut Activations,
        lengths: &[usize],
        first_only: bool,
    ) {
        let rows = a.hidden.len() / self.width;
        match layer.query_key_value.as_f32() {
            // For the first tokens alone, f32 keys and values fold into the queries,
            // and no other token is projected.
            Some(qkv) if first_only => {
                f32_gemm::first_token_context(qkv, &a.hidden, lengths, self.heads, &mut a.context)
            }
            _ => {
                layer
                    .query_key_value
                    .matmul_into(&a.hidden, rows, &mut a.qkv);
                f32_gemm::attention(
                    &a.qkv,
                    lengths,
                    self.heads,
                    self.width,
                    first_only,
                    &mut a.context,
                );
            }
        }
    }
}

/// Each input's first row of `values` (`width` values per row, inputs laid end to end,
/// `lengths` rows each).
fn first_rows(values: &[f32], lengths: &[usize], width: usize) -> Vec<f32> {
    assert!(
        !lengths.contains(&0),
        "an input without tokens has no first token"
    );
    let mut rows = Vec::with_capacity(lengths.len() * width);
    let mut start = 0;
    for &len in lengths {
        rows.extend_from_slice(&values[start * width..][..width]);
        start += len;
    }
    rows
}

/// The activations between layers and between a layer's steps, as plain f32 rows,
/// reused from layer to layer: each buffer is allocated, and its pages first touched,
/// once per pass rather than once per layer.
#[derive(Debug, Default)]
struct Activations {
    /// `[total, hidden]`: a layer's input, replaced by its output.
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    expanded: Vec<f32>,
}

impl NormParameters {
    /// Each row of `rows` replaced by LayerNorm(row + the same row of `residual`), as
    /// transformers computes it in f32 (see [`vector_math::add_and_layer_norm`]).
    fn add_and_normalize(&self, rows: &mut [f32], residual: &[f32]) {
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

/// Exact GELU in place, in parallel chunks.
fn gelu_in_place(values: &mut [f32]) {
    values
        .par_chunks_mut(16 * 1024)
        .for_each(vector_math::gelu_in_place);
}
