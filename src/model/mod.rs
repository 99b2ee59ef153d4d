//! RoBERTa encoder and sequence-classification head as burn modules.
//!
//! The structure follows transformers' `RobertaForSequenceClassification` one to one;
//! `crate::weights` maps the hub's tensor names onto these fields.

mod classifier;
mod embeddings;
mod encoder;

pub use classifier::ClassificationHead;
pub use embeddings::RobertaEmbeddings;
pub use encoder::{EncoderLayer, SelfAttention};

use burn::module::Module;
use burn::tensor::{Bool, Device, Int, Tensor};

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
        Self {
            embeddings: RobertaEmbeddings::new(config, device),
            layers: (0..config.num_hidden_layers)
                .map(|_| EncoderLayer::new(config, device))
                .collect(),
            classifier: ClassificationHead::new(config, device),
        }
    }

    /// Logits `[batch, num_labels]` for ids `[batch, seq]`; `padding` is true where a
    /// position is padding (transformers' `attention_mask == 0`), `None` when no
    /// position is.
    ///
    /// As in transformers, the attention mask and the position ids are separate
    /// things: a `<pad>` token written literally in the source text is attended to,
    /// yet its id still takes the padding position.
    pub fn forward(&self, input_ids: Tensor<2, Int>, padding: Option<Tensor<2, Bool>>, pad_token_id: usize) -> Tensor<2> {
        let [batch, seq] = input_ids.dims();
        let mut hidden = self.embeddings.forward(input_ids, pad_token_id);
        // True where a key is padding: those scores are masked out of every softmax.
        let key_mask: Option<Tensor<4, Bool>> = padding.map(|p| p.reshape([batch, 1, 1, seq]));
        for layer in &self.layers {
            hidden = layer.forward(hidden, key_mask.clone());
        }
        self.classifier.forward(hidden)
    }
}
