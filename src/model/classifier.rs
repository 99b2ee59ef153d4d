use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

use super::dropout::Dropout;
use super::encoder::linear;
use crate::config::RobertaConfig;

/// `RobertaClassificationHead`: the hidden state of `<s>`, dense, tanh, projection.
#[derive(Module, Debug)]
pub struct ClassificationHead {
    /// `classifier.dense`.
    pub dense: Linear,
    /// `classifier.out_proj`.
    pub out_proj: Linear,
}

impl ClassificationHead {
    pub(crate) fn new(config: &RobertaConfig, device: &Device) -> Self {
        Self {
            dense: linear(config.hidden_size, config.hidden_size, device),
            out_proj: linear(config.hidden_size, config.num_labels, device),
        }
    }

    /// Logits `[inputs, num_labels]` from the inputs' first rows alone (their `<s>`
    /// tokens), `[1, inputs, hidden]`.
    pub fn forward(&self, first_rows: Tensor<3>) -> Tensor<2> {
        let [_, inputs, width] = first_rows.dims();
        let first = first_rows.reshape([inputs, width]);
        self.out_proj.forward(self.dense.forward(first).tanh())
    }

    /// [`ClassificationHead::forward`] as it runs in training: `dropout` on its input
    /// and again after the tanh, as in transformers.
    #[cfg_attr(not(feature = "train"), allow(dead_code))] // used by training only
    pub(crate) fn forward_training(
        &self,
        first_rows: Tensor<3>,
        dropout: &Dropout<'_>,
    ) -> Tensor<2> {
        let [_, inputs, width] = first_rows.dims();
        let first = dropout.forward(first_rows.reshape([inputs, width]));
        let hidden = dropout.forward(self.dense.forward(first).tanh());
        self.out_proj.forward(hidden)
    }
}
