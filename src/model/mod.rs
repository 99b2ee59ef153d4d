//! RoBERTa encoder and sequence-classification head as burn modules.
//!
//! The structure follows transformers' `RobertaForSequenceClassification` one to one;
//! `crate::weights` maps the hub's tensor names onto these fields.

mod classifier;
mod embeddings;
mod encoder;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
pub use classifier::ClassificationHead;
pub use embeddings::{position_ids, RobertaEmbeddings};
pub use encoder::{EncoderLayer, ProjectionLayout, SelfAttention};

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
    /// The encoder stack packed for one of this crate's CPU kernels, once
    /// `RobertaClassifier::pack` has moved `layers`' projections into it.
    #[module(skip)]
    packed: Option<PackedEncoder>,
}

/// The packed CPU encoder, shared by the model's clones.
#[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
type PackedEncoder = std::sync::Arc<crate::cpu::encoder::PackedEncoder>;
/// Without the CPU kernels there is no packed encoder.
#[cfg(not(all(target_arch = "x86_64", feature = "cpu-kernels")))]
type PackedEncoder = std::convert::Infallible;

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
            packed: None,
        }
    }

    /// How the encoder's projections hold their weights (the same in every layer).
    pub fn projection_layout(&self) -> ProjectionLayout {
        self.layers
            .first()
            .map_or(ProjectionLayout::InOut, |layer| layer.layout())
    }

    /// Runs the encoder on this crate's CPU `kernel` from now on, as chosen by
    /// [`crate::cpu::Kernel::select`] for this CPU: the layers' projections are packed
    /// for it and their tensors released. The model must have been made with
    /// [`ProjectionLayout::OutIn`], on a CPU backend.
    #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
    pub(crate) fn pack(&mut self, kernel: crate::cpu::Kernel) {
        let [width] = self.embeddings.layer_norm.gamma.dims();
        let heads = self
            .layers
            .first()
            .map_or(1, |layer| layer.attention.heads());
        let layers = self.layers.iter_mut().map(EncoderLayer::take_weights);
        let encoder = crate::cpu::encoder::PackedEncoder::new(kernel, width, heads, layers);
        self.packed = Some(std::sync::Arc::new(encoder));
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
        let first_tokens = match &self.packed {
            #[cfg(all(target_arch = "x86_64", feature = "cpu-kernels"))]
            Some(encoder) => {
                // Converted from the tensor and back once for all the layers.
                let [batch, _, width] = hidden.dims();
                let device = hidden.device();
                let rows = hidden
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .expect("f32 activations");
                let rows = encoder.forward(rows, lengths, true);
                let shape = [batch, rows.len() / width, width];
                Tensor::from_data(TensorData::new(rows, shape), &device)
            }
            #[cfg(not(all(target_arch = "x86_64", feature = "cpu-kernels")))]
            Some(never) => match *never {},
            None => {
                for layer in layers {
                    hidden = layer.forward(hidden, lengths, row_parts);
                }
                last.forward_first_tokens(hidden, lengths, row_parts)
            }
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
