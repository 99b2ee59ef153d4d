use burn::module::Module;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Tensor};

use crate::config::RobertaConfig;

pub(crate) fn linear(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_initializer(Initializer::Zeros)
        .init(device)
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
    fn new(config: &RobertaConfig, device: &Device) -> Self {
        let h = config.hidden_size;
        Self {
            query_key_value: linear(h, 3 * h, device),
            output: linear(h, h, device),
            heads: config.num_attention_heads,
        }
    }

    /// Attention context `[1, total, hidden]` (before the output projection) for
    /// inputs laid end to end, `lengths` tokens each: each input attends only to its
    /// own tokens.
    fn forward(&self, hidden: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
        let [_, total, width] = hidden.dims();
        let heads = self.heads;
        let head_dim = width / heads;
        let qkv = self.query_key_value.forward(hidden);
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
            // softmax(q·kᵀ / sqrt(head_dim)) · v
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
}

impl EncoderLayer {
    pub(crate) fn new(config: &RobertaConfig, device: &Device) -> Self {
        let norm = || {
            LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device)
        };
        Self {
            attention: SelfAttention::new(config, device),
            attention_norm: norm(),
            intermediate: linear(config.hidden_size, config.intermediate_size, device),
            output: linear(config.intermediate_size, config.hidden_size, device),
            output_norm: norm(),
        }
    }

    /// `[1, total, hidden]` for inputs laid end to end (`lengths` tokens each) to the
    /// same shape.
    ///
    /// Everything after attention works on each token alone, so it runs on `row_parts`
    /// slices of the tokens side by side (see [`crate::Backend::row_parts`]).
    pub fn forward(&self, hidden: Tensor<3>, lengths: &[usize], row_parts: usize) -> Tensor<3> {
        let context = self.attention.forward(hidden.clone(), lengths);
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
