use burn::module::Module;
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::gelu;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor};

use crate::config::RobertaConfig;

pub(crate) fn linear(d_input: usize, d_output: usize, device: &Device) -> Linear {
    LinearConfig::new(d_input, d_output)
        .with_initializer(Initializer::Zeros)
        .init(device)
}

/// Multi-head self-attention with its output projection.
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

    /// `key_mask` is `[batch, 1, 1, seq]`, true at padding.
    fn forward(&self, hidden: Tensor<3>, key_mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let [batch, seq, width] = hidden.dims();
        let heads = self.heads;
        let head_dim = width / heads;
        // [batch, seq, 3·width] -> [batch, 3·heads, seq, head_dim]: query heads, then
        // key heads, then value heads.
        let qkv = self
            .query_key_value
            .forward(hidden)
            .reshape([batch, seq, 3 * heads, head_dim])
            .swap_dims(1, 2);
        let q = qkv.clone().narrow(1, 0, heads);
        let k = qkv.clone().narrow(1, heads, heads);
        let v = qkv.narrow(1, 2 * heads, heads);
        let mask = key_mask.map(|m| m.expand([batch, heads, seq, seq]));
        // softmax(q·kᵀ / sqrt(head_dim)) · v, padding keys excluded.
        let context = attention(q, k, v, mask, None, AttentionModuleOptions::default());
        let context = context.swap_dims(1, 2).reshape([batch, seq, width]);
        self.output.forward(context)
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

    /// `[batch, seq, hidden]` to the same shape.
    pub fn forward(&self, hidden: Tensor<3>, key_mask: Option<Tensor<4, Bool>>) -> Tensor<3> {
        let attended = self.attention.forward(hidden.clone(), key_mask);
        let hidden = self.attention_norm.forward(attended + hidden);
        // Exact GELU, x·Φ(x) through erf, as transformers' "gelu".
        let expanded = gelu(self.intermediate.forward(hidden.clone()));
        self.output_norm.forward(self.output.forward(expanded) + hidden)
    }
}
