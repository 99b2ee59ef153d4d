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

    /// `[batch, seq]` ids and their position ids to `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: Tensor<2, Int>, position_ids: Tensor<2, Int>) -> Tensor<3> {
        // RoBERTa has a single token type; every token uses its row 0.
        let token_type_ids = input_ids.zeros_like();
        let embeddings = self.word_embeddings.forward(input_ids)
            + self.token_type_embeddings.forward(token_type_ids)
            + self.position_embeddings.forward(position_ids);
        self.layer_norm.forward(embeddings)
    }
}

/// RoBERTa's position ids for one input, exactly as transformers'
/// `create_position_ids_from_input_ids`: tokens that are not `<pad>` count up from
/// `pad_token_id + 1`, and a `<pad>` id takes position `pad_token_id` even when it is
/// written literally in the source text (transformers derives positions from the ids,
/// not from the attention mask).
pub fn position_ids(input_ids: &[u32], pad_token_id: usize) -> Vec<i64> {
    let pad = pad_token_id as i64;
    let mut count = 0;
    input_ids
        .iter()
        .map(|&id| {
            if i64::from(id) == pad {
                pad
            } else {
                count += 1;
                pad + count
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_literal_pad_takes_the_pad_position_and_the_others_count_on() {
        assert_eq!(
            super::position_ids(&[0, 42, 1, 42, 2], 1),
            vec![2, 3, 1, 4, 5]
        );
    }
}
