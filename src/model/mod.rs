//! RoBERTa encoder and sequence-classification head as burn modules.
//!
//! The structure follows transformers' `RobertaForSequenceClassification` one to one;
//! `crate::weights` maps the hub's tensor names onto these fields.

#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
pub(crate) mod bf16_gemm;
mod classifier;
mod embeddings;
mod encoder;
#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
pub(crate) mod f32_gemm;
#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
pub(crate) mod int8_gemm;
mod packed;
#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
pub(crate) mod vector_math;

/// A reproducible value in [-1, 1) from `seed` (xorshift64), for the kernels' tests.
#[cfg(all(test, target_arch = "x86_64", feature = "cpu-kernels"))]
pub(crate) fn random(seed: &mut u64) -> f32 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    (*seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
}

pub use classifier::ClassificationHead;
pub use embeddings::{position_ids, RobertaEmbeddings};
pub use encoder::{EncoderLayer, ProjectionLayout, SelfAttention};
pub(crate) use packed::Packing;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::config::RobertaConfig;

/// `RobertaForSequenceClassification`: embeddings, post-LayerNorm encoder layers and
/// the classification head on the first token.
#[derive(Module, Debug)]
pub struct RobertaClassifier {
    /// Word, position and token-type embeddings.
    pub embeddings: RobertaEmbeddings,
    /// The encoder stack.
    pub layers: Vec<EncoderLayer>,
    /// Dense, tanh, projection on `<s>`.
    pub classifier: ClassificationHead,
}

impl RobertaClassifier {
    /// A model with the configuration's shapes, its weights zero until loaded.
    pub fn new(config: &RobertaConfig, device: &Device) -> Self {
        Self::with_layout(config, ProjectionLayout::InOut, device)
    }

    /// [`RobertaClassifier::new`] with the encoder's projections held in `layout`.
    pub fn with_layout(config: &RobertaConfig, layout: ProjectionLayout, device: &Device) -> Self {
        Self {
            embeddings: RobertaEmbeddings::new(config, device),
            layers: (0..config.num_hidden_layers)
                .map(|_| EncoderLayer::new(config, layout, device))
                .collect(),
            classifier: ClassificationHead::new(config, device),
        }
    }

    /// How the encoder's projections hold their weights (the same in every layer).
    pub fn projection_layout(&self) -> ProjectionLayout {
        self.layers
            .first()
            .map_or(ProjectionLayout::InOut, |layer| layer.layout())
    }

    /// Runs the encoder's matrix products on this crate's CPU kernel for `packing`
    /// from now on; their f32 weights are released. The model must have been made
    /// with [`ProjectionLayout::OutIn`]. Call only where [`Packing::available`]
    /// holds, on a CPU backend.
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    pub(crate) fn pack(&mut self, packing: Packing) {
        for layer in &mut self.layers {
            layer.pack(packing);
        }
    }

    /// Logits `[inputs, num_labels]` for inputs laid end to end in one row.
    ///
    /// `input_ids` and `position_ids` are `[1, total]`, the inputs one after another
    /// with no padding; `lengths` gives each input's token count (they sum to `total`).
    /// Matrix products run over all tokens at once and attention within each input, so
    /// no work is spent on padding and the result for an input does not depend on the
    /// others beside it. [`position_ids`] gives an input's position ids. `row_parts`
    /// splits each layer's row-wise work across threads ([`crate::Backend::row_parts`]);
    /// the result does not depend on it.
    pub fn forward(
        &self,
        input_ids: Tensor<2, Int>,
        position_ids: Tensor<2, Int>,
        lengths: &[usize],
        row_parts: usize,
    ) -> Tensor<2> {
        let mut hidden = self.embeddings.forward(input_ids, position_ids);
        // The head reads only each input's first token, so the last layer computes
        // only those tokens' outputs (every token counting through attention).
        let Some((last, layers)) = self.layers.split_last() else {
            return self.classifier.forward(hidden, lengths);
        };
        let first_tokens = if last.is_packed() && layers.iter().all(EncoderLayer::is_packed) {
            encoder::forward_packed(&self.layers, hidden, lengths, true)
        } else {
            for layer in layers {
                hidden = layer.forward(hidden, lengths, row_parts);
            }
            last.forward_first_tokens(hidden, lengths, row_parts)
        };
        self.classifier.forward_first_tokens(first_tokens)
    }
}

/// Each input's first token of `hidden` (`[1, total, hidden]`, inputs laid end to
/// end, `lengths` tokens each): `[1, inputs, hidden]`.
fn first_tokens(hidden: Tensor<3>, lengths: &[usize]) -> Tensor<3> {
    let starts: Vec<i64> = lengths
        .iter()
        .scan(0, |start, &len| {
            let this = *start;
            *start += len;
            Some(this as i64)
        })
        .collect();
    let device = hidden.device();
    let starts = Tensor::<1, Int>::from_data(TensorData::new(starts, [lengths.len()]), &device);
    hidden.select(1, starts)
}
