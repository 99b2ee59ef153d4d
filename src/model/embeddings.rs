use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig};
use burn::tensor::{Device, Int, Tensor};

use crate::config::RobertaConfig;

/// RoBERTa's embeddings: word + position + token type, then LayerNorm.
#[derive(Module, Debug)]
pub struct RobertaEmbeddings {
    /// `embeddings.word_embeddings`.
    pub word_embeddings: Embedding,
    /// `embeddings.position_embeddings`.
    pub position_embeddings: Embedding,
    /// `embeddings.token_type_embeddings`.
    pub token_type_embeddings: Embedding,
    /// `embeddings.LayerNorm`.
    pub layer_norm: LayerNorm,
}

impl RobertaEmbeddings {
    pub(crate) fn new(config: &RobertaConfig, device: &Device) -> Self {
        let embedding = |rows| {
            EmbeddingConfig::new(rows, config.hidden_size)
                .with_initializer(Initializer::Zeros)
                .init(device)
        };
        Self {
            word_embeddings: embedding(config.vocab_size),
            position_embeddings: embedding(config.max_position_embeddings),
            token_type_embeddings: embedding(config.type_vocab_size),
            layer_norm: LayerNormConfig::new(config.hidden_size)
                .with_epsilon(config.layer_norm_eps)
                .init(device),
        }
    }

    /// `[batch, seq]` ids to `[batch, seq, hidden]`.
    ///
    /// Position ids count non-padding tokens and start at `pad_token_id + 1`, padding
    /// itself sitting at `pad_token_id`, exactly as transformers'
    /// `create_position_ids_from_input_ids`: so left and right padding give the same
    /// result for every real token.
    pub fn forward(&self, input_ids: Tensor<2, Int>, pad_token_id: usize) -> Tensor<3> {
        let not_padding = input_ids.clone().not_equal_elem(pad_token_id as i64).int();
        let position_ids = not_padding.clone().cumsum(1) * not_padding + pad_token_id as i64;
        // RoBERTa has a single token type; every token uses its row 0.
        let token_type_ids = input_ids.zeros_like();
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(token_type_ids)
            + self.position_embeddings.forward(position_ids);
        self.layer_norm.forward(embeddings)
    }
}
