use std::sync::Arc;

use burn::module::Module;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use super::packed::PackedMatrix;
#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
use super::Packing;
use crate::config::RobertaConfig;

pub(crate) fn linear(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// How the encoder's projections hold their weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProjectionLayout {
    /// `[in, out]`, as burn's `Linear::forward` multiplies them.
    InOut,
    /// `[out, in]`, as the checkpoint stores them: loaded without a transpose, for
    /// `RobertaClassifier::pack` to lay out for a CPU kernel. `forward` cannot run
    /// until then.
    OutIn,
}

/// A projection from `d_input` to `d_output` whose weight is held in `layout`.
fn projection(
    d_input: usize,
    d_output: usize,
    layout: ProjectionLayout,
    device: &Device,
) -> Linear {
    match layout {
        ProjectionLayout::InOut => linear(d_input, d_output, device),
        ProjectionLayout::OutIn => {
            // The swapped config gives the weight its [out, in] shape and the bias the
            // wrong length, which is set right here.
            let mut swapped = linear(d_output, d_input, device);
            swapped.bias = Some(burn::module::Param::from_tensor(Tensor::zeros(
                [d_output],
                device,
            )));
            swapped
        }
    }
}

/// Multi-head self-attention and its output projection (applied by [`EncoderLayer`]
/// together with the rest of its row-wise work).
#[derive(Module, Debug)]
pub struct SelfAttention {
    /// `attention.self.query`, `.key` and `.value` side by side (`[hidden, 3 * hidden]`):
    /// one matrix product for all three, joined at load by `crate::weights`.
    pub query_key_value: Linear,
    /// `attention.output.dense`.
    pub output: Linear,
    heads: usize,
}

impl SelfAttention {
    fn new(config: &RobertaConfig, layout: ProjectionLayout, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            query_key_value: projection(h, 3 * h, layout, device),
            output: projection(h, h, layout, device),
            heads: config.num_attention_heads,
        }
    }

    /// Attention context `[1, total, hidden]` (before the output projection) from the
    /// query, key and value projections `[1, total, 3 * hidden]` of inputs laid end to
    /// end, `lengths` tokens each: each input attends only to its own tokens.
    fn context(&self, qkv: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let [_, total, width3] = qkv.dims();
        let width = width3 / 3;
        let heads = self.heads;
        let head_dim = width / heads;
        let mut contexts = Vec::with_capacity(lengths.len());
        let mut start = 0;
        for &len in lengths {
            // [1, len, 3·width] -> [1, 3·heads, len, head_dim]: query heads, then key
            // heads, then value heads.
            let part = if len == total {
                qkv.clone()
            } else {
                qkv.clone().narrow(1, start, len)
            };
            let part = part.reshape([1, len, 3 * heads, head_dim]).swap_dims(1, 2);
            let q = part.clone().narrow(1, 0, heads);
            let k = part.clone().narrow(1, heads, heads);
            let v = part.narrow(1, 2 * heads, heads);
            // softmax(q·kᵀ / sqrt(head_dim)) · v. burn's fused op keeps the scores in a
            // per-thread scratch block; spelled as matmul, softmax, matmul it allocates
            // [heads, len, len] twice per layer, and at 512 tokens those fresh pages
            // cost more than the faster softmax saves.
            let context = attention(q, k, v, None, None, AttentionModuleOptions::default());
            contexts.push(context.swap_dims(1, 2).reshape([1, len, width]));
            start += len;
        }
        if contexts.len() == 1 {
            contexts.pop().expect("one context")
        } else {
            Tensor::cat(contexts, 1)
        }
    }
}

/// One post-LayerNorm transformer layer: attention, then the GELU feed-forward block,
/// each added to its input and normalized.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    /// Self-attention and its output projection.
    pub attention: SelfAttention,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm,
    /// The four projections packed for one of this crate's CPU kernels, when
    /// `EncoderLayer::pack` has replaced the f32 ones with them.
    #[module(skip)]
    packed: Option<Arc<PackedProjections>>,
    /// How the four projections' f32 weights are held.
    #[module(skip)]
    layout: ProjectionLayout,
    /// Both LayerNorms' epsilon (`layer_norm_eps`).
    #[module(skip)]
    norm_epsilon: f64,
}

/// An encoder layer's projections packed for a CPU kernel, and what the row-wise
/// work between them needs, as plain f32 slices.
#[derive(Debug)]
struct PackedProjections {
    query_key_value: PackedMatrix,
    attention_output: PackedMatrix,
    intermediate: PackedMatrix,
    output: PackedMatrix,
    attention_norm: NormParameters,
    output_norm: NormParameters,
}

/// A LayerNorm's scale, shift and epsilon.
#[derive(Debug)]
struct NormParameters {
    gamma: Vec<f32>,
    beta: Vec<f32>,
    epsilon: f32,
}

impl EncoderLayer {
    pub(crate) fn new(config: &RobertaConfig, layout: ProjectionLayout, device: &Device) -> Self {
        let norm = || {
            LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        let (h, i) = (config.hidden_size, config.intermediate_size);
        Self {
            attention: SelfAttention::new(config, layout, device),
            attention_norm: norm(),
            intermediate: projection(h, i, layout, device),
            output: projection(i, h, layout, device),
            output_norm: norm(),
            packed: None,
            layout,
            norm_epsilon: config.layer_norm_eps,
        }
    }

    /// Moves the four projections' weights, held `[out, in]`
    /// ([`ProjectionLayout::OutIn`]), into matrices packed for `packing`'s CPU kernel;
    /// their f32 tensors are released. Call only where [`Packing::available`] holds.
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    pub(crate) fn pack(&mut self, packing: Packing) {
        assert_eq!(
            self.layout,
            ProjectionLayout::OutIn,
            "packing reads [out, in] weights"
        );
        let take = |linear: &mut Linear| -> PackedMatrix {
            let [n, k] = linear.weight.dims();
            let device = linear.weight.device();
            // Taken out of the module (an empty tensor keeps its structure) so that this
            // is the tensor's only owner and reading it out need not copy it.
            let weight = std::mem::replace(
                &mut linear.weight,
                burn::module::Param::from_tensor(Tensor::zeros([0, 0], &device)),
            );
            let weight = weight
                .into_value()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("f32 weights");
            let bias = linear.bias.take().map(|b| {
                b.into_value()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 bias")
            });
            PackedMatrix::new(packing, weight, bias.as_deref(), k, n)
        };
        let epsilon = self.norm_epsilon as f32;
        let norm = |norm: &LayerNorm| {
            let values = |tensor: Tensor<1>| {
                tensor
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .expect("f32 LayerNorm parameters")
            };
            let gamma = values(norm.gamma.val());
            let beta = match &norm.beta {
                Some(beta) => values(beta.val()),
                None => vec![0.0; gamma.len()],
            };
            NormParameters {
                gamma,
                beta,
                epsilon,
            }
        };
        self.packed = Some(Arc::new(PackedProjections {
            query_key_value: take(&mut self.attention.query_key_value),
            attention_output: take(&mut self.attention.output),
            intermediate: take(&mut self.intermediate),
            output: take(&mut self.output),
            attention_norm: norm(&self.attention_norm),
            output_norm: norm(&self.output_norm),
        }));
    }

    /// Whether `EncoderLayer::pack` has packed the projections for a CPU kernel.
    pub(crate) fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// [`EncoderLayer::forward`] of a packed layer on plain f32 rows: `activations`'
    /// hidden rows (inputs laid end to end, `lengths` tokens each) are replaced by the
    /// layer's output. `device` is the model's, for attention where this crate's f32
    /// kernel cannot run.
    ///
    /// # Panics
    /// When the layer is not packed.
    fn forward_rows(
        &self,
        activations: &mut Activations,
        lengths: &[usize],
        first_only: bool,
        device: &Device,
    ) {
        let packed = self.packed.as_deref().expect("a packed layer");
        packed.forward(&self.attention, activations, lengths, first_only, device);
    }

    /// How the four projections' f32 weights are held.
    pub fn layout(&self) -> ProjectionLayout {
        self.layout
    }

    /// `[1, total, hidden]` for inputs laid end to end (`lengths` tokens each) to the
    /// same shape.
    ///
    /// Everything after attention works on each token alone, so it runs on `row_parts`
    /// slices of the tokens side by side (see [`crate::Backend::row_parts`]).
    pub fn forward(&self, hidden: Tensor<3>, lengths: &[usize], row_parts: usize) -> Tensor<3> {
        self.forward_tokens(hidden, lengths, row_parts, false)
    }

    /// [`EncoderLayer::forward`]'s output for each input's first token alone,
    /// `[1, inputs, hidden]`: those rows of the full output, from the keys and values
    /// of every token, with the rest of the layer's work (after attention, all of it
    /// row by row) spent on those rows only.
    ///
    /// # Panics
    /// When an input has no tokens.
    pub fn forward_first_tokens(
        &self,
        hidden: Tensor<3>,
        lengths: &[usize],
        row_parts: usize,
    ) -> Tensor<3> {
        self.forward_tokens(hidden, lengths, row_parts, true)
    }

    /// [`EncoderLayer::forward`], or with `first_only` [`EncoderLayer::forward_first_tokens`].
    fn forward_tokens(
        &self,
        hidden: Tensor<3>,
        lengths: &[usize],
        row_parts: usize,
        first_only: bool,
    ) -> Tensor<3> {
        let packed = self.packed.as_deref();
        assert!(
            packed.is_some() || self.layout == ProjectionLayout::InOut,
            "[out, in] projections run only once packed"
        );
        if packed.is_some() {
            return forward_packed(std::slice::from_ref(self), hidden, lengths, first_only);
        }
        assert!(
            !first_only || !lengths.contains(&0),
            "an input without tokens has no first token"
        );
        let qkv = self.attention.query_key_value.forward(hidden.clone());
        let mut context = self.attention.context(qkv, lengths);
        let mut hidden = hidden;
        if first_only {
            context = super::first_tokens(context, lengths);
            hidden = super::first_tokens(hidden, lengths);
        }
        let rows = |(context, hidden): (Tensor<3>, Tensor<3>)| {
            let attended = self.attention.output.forward(context);
            let hidden = self.attention_norm.forward(attended + hidden);
            // Exact GELU, x·Φ(x) through erf, as transformers' "gelu".
            let expanded = gelu(self.intermediate.forward(hidden.clone()));
            self.output_norm
                .forward(self.output.forward(expanded) + hidden)
        };
        on_row_parts((context, hidden), row_parts, rows)
    }
}

/// Packed `layers` in turn on `hidden` (`[1, total, hidden]`, inputs laid end to end,
/// `lengths` tokens each), as plain f32 rows: converted from the tensor and back once
/// for all of them, not at every layer.
///
/// With `first_tokens_out`, the result is only each input's first token,
/// `[1, inputs, hidden]`, those rows of the full result: the last layer computes all
/// of its work for the first tokens alone, as the classification head reads nothing
/// else. Every token still counts through attention: on f32 projections with this
/// crate's kernel, through keys and values folded into the first tokens' queries
/// (see `f32_gemm::first_token_context`: equal within rounding), elsewhere through
/// every token's keys and values (value for value).
///
/// # Panics
/// When a layer is not packed, or, with `first_tokens_out`, an input has no tokens.
pub(crate) fn forward_packed(
    layers: &[EncoderLayer],
    hidden: Tensor<3>,
    lengths: &[usize],
    first_tokens_out: bool,
) -> Tensor<3> {
    let [batch, _, width] = hidden.dims();
    let device = hidden.device();
    let mut activations = Activations::new(f32_values(hidden));
    for (index, layer) in layers.iter().enumerate() {
        let first_only = first_tokens_out && index + 1 == layers.len();
        layer.forward_rows(&mut activations, lengths, first_only, &device);
    }
    if first_tokens_out && layers.is_empty() {
        activations.hidden = first_rows(&activations.hidden, lengths, width);
    }
    let rows = activations.hidden.len() / width;
    let rows = burn::tensor::TensorData::new(activations.hidden, [batch, rows, width]);
    Tensor::from_data(rows, &device)
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

/// The packed path's activations between layers and between a layer's steps, as
/// plain f32 rows, reused from layer to layer: each buffer is allocated, and its
/// pages first touched, once per pass rather than once per layer.
#[derive(Debug, Default)]
struct Activations {
    /// `[total, hidden]`: a layer's input, replaced by its output.
    hidden: Vec<f32>,
    qkv: Vec<f32>,
    context: Vec<f32>,
    attended: Vec<f32>,
    expanded: Vec<f32>,
}

impl Activations {
    /// Activations whose hidden rows are `hidden`.
    fn new(hidden: Vec<f32>) -> Self {
        Self {
            hidden,
            ..Self::default()
        }
    }
}

impl PackedProjections {
    /// [`EncoderLayer::forward`] on the packed projections, on plain f32 rows: the
    /// query, key and value projection, attention (on this crate's f32 kernel where
    /// the CPU has it, else `attention`'s on `device`), the output projection,
    /// residual and LayerNorm, the GELU feed-forward block, residual and LayerNorm.
    /// burn's tensors in between would cost a copy and a pass over memory per
    /// operation; here each is one pass, split across threads.
    ///
    /// With `first_only`, the layer's output is only each input's first token (its
    /// rows of the full output, from every token: see [`forward_packed`]).
    fn forward(
        &self,
        attention: &SelfAttention,
        activations: &mut Activations,
        lengths: &[usize],
        first_only: bool,
        device: &Device,
    ) {
        let a = activations;
        let width = self.attention_norm.gamma.len();
        self.attend(attention, a, lengths, first_only, device);
        // From here on every step works on each row alone: with `first_only`, on the
        // first tokens' rows, the residual's included.
        if first_only {
            a.hidden = first_rows(&a.hidden, lengths, width);
        }
        let rows = a.hidden.len() / width;
        self.attention_output
            .matmul_into(&a.context, rows, &mut a.attended);
        self.attention_norm
            .add_and_normalize(&mut a.attended, &a.hidden);
        expand(&self.intermediate, &a.attended, rows, &mut a.expanded);
        // The layer's output goes where its input was, no longer needed.
        self.output.matmul_into(&a.expanded, rows, &mut a.hidden);
        self.output_norm
            .add_and_normalize(&mut a.hidden, &a.attended);
    }

    /// The attention context (before the output projection) of the rows in
    /// `a.hidden` into `a.context`: `[total, hidden]`, or with `first_only` each
    /// input's first row alone, `[inputs, hidden]`.
    fn attend(
        &self,
        attention: &SelfAttention,
        a: &mut Activations,
        lengths: &[usize],
        first_only: bool,
        device: &Device,
    ) {
        let width = self.attention_norm.gamma.len();
        let rows = a.hidden.len() / width;
        #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
        if super::f32_gemm::supported() {
            match self.query_key_value.as_f32() {
                // For the first tokens alone, f32 keys and values fold into the
                // queries, and no other token is projected.
                Some(qkv) if first_only => super::f32_gemm::first_token_context(
                    qkv,
                    &a.hidden,
                    lengths,
                    attention.heads,
                    &mut a.context,
                ),
                _ => {
                    self.query_key_value
                        .matmul_into(&a.hidden, rows, &mut a.qkv);
                    super::f32_gemm::attention(
                        &a.qkv,
                        lengths,
                        attention.heads,
                        width,
                        first_only,
                        &mut a.context,
                    );
                }
            }
            return;
        }
        self.query_key_value
            .matmul_into(&a.hidden, rows, &mut a.qkv);
        let qkv = burn::tensor::TensorData::new(std::mem::take(&mut a.qkv), [1, rows, 3 * width]);
        a.context = f32_values(attention.context(Tensor::from_data(qkv, device), lengths));
        if first_only {
            a.context = first_rows(&a.context, lengths, width);
        }
    }
}

impl NormParameters {
    /// Each row of `rows` replaced by LayerNorm(row + the same row of `residual`), as
    /// transformers computes it in f32: mean, then the mean square deviation from it.
    fn add_and_normalize(&self, rows: &mut [f32], residual: &[f32]) {
        let width = self.gamma.len();
        let n = width as f32;
        let row = |(row, residual): (&mut [f32], &[f32])| {
            #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
            if super::vector_math::supported() {
                return super::vector_math::add_and_layer_norm(
                    row,
                    residual,
                    &self.gamma,
                    &self.beta,
                    self.epsilon,
                );
            }
            for (x, r) in row.iter_mut().zip(residual) {
                *x += r;
            }
            let mean = row.iter().sum::<f32>() / n;
            let variance = row.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
            let inverse = 1.0 / (variance + self.epsilon).sqrt();
            for ((x, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
                *x = (*x - mean) * inverse * g + b;
            }
        };
        #[cfg(feature = "cpu-kernels")]
        {
            use rayon::prelude::*;
            rows.par_chunks_mut(width)
                .zip(residual.par_chunks(width))
                .with_min_len(16)
                .for_each(row);
        }
        #[cfg(not(feature = "cpu-kernels"))]
        rows.chunks_mut(width)
            .zip(residual.chunks(width))
            .for_each(row);
    }
}

/// `intermediate`'s product of `input` (`rows` rows), then exact GELU, into
/// `output`: on the f32 kernel in one pass, each tile's values while still in cache.
fn expand(intermediate: &PackedMatrix, input: &[f32], rows: usize, output: &mut Vec<f32>) {
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    if let Some(matrix) = intermediate.as_f32() {
        return matrix.matmul_gelu_into(input, rows, output);
    }
    intermediate.matmul_into(input, rows, output);
    gelu_in_place(output);
}

/// Exact GELU, x·Φ(x) = x/2 · (1 + erf(x/√2)), as transformers' "gelu", in place.
fn gelu_in_place(values: &mut [f32]) {
    let chunk = |chunk: &mut [f32]| {
        #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
        if super::vector_math::supported() {
            return super::vector_math::gelu_in_place(chunk);
        }
        for x in chunk {
            *x = 0.5 * *x * (1.0 + libm::erff(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    };
    #[cfg(feature = "cpu-kernels")]
    {
        use rayon::prelude::*;
        values.par_chunks_mut(16 * 1024).for_each(chunk);
    }
    #[cfg(not(feature = "cpu-kernels"))]
    chunk(values);
}

/// A tensor's values as f32, row-major.
fn f32_values(tensor: Tensor<3>) -> Vec<f32> {
    tensor
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 activations")
}

/// `f` on the whole of `(a, b)` (`[1, total, _]` each), or on `parts` slices of their
/// tokens run in parallel, joined back in order.
fn on_row_parts(
    (a, b): (Tensor<3>, Tensor<3>),
    parts: usize,
    f: impl Fn((Tensor<3>, Tensor<3>)) -> Tensor<3> + Send + Sync,
) -> Tensor<3> {
    let [_, total, _] = a.dims();
    // A slice of a handful of tokens is not worth a thread.
    let parts = parts.min(total / 16);
    if parts <= 1 {
        return f((a, b));
    }
    #[cfg(feature = "cpu-kernels")]
    {
        use rayon::prelude::*;
        let step = total.div_ceil(parts);
        let slices: Vec<_> = (0..total)
            .step_by(step)
            .map(|start| {
                let n = step.min(total - start);
                (a.clone().narrow(1, start, n), b.clone().narrow(1, start, n))
            })
            .collect();
        Tensor::cat(slices.into_par_iter().map(&f).collect(), 1)
    }
    #[cfg(not(feature = "cpu-kernels"))]
    f((a, b))
}
