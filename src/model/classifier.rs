use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor};

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

    /// `[1, total, hidden]` for inputs laid end to end (`lengths` tokens each) to
    /// logits `[inputs, num_labels]`, from each input's first token.
    pub fn forward(&self, hidden: Tensor<3>, lengths: &[usize]) -> Tensor<2> {
        let call = crate::call_rows::CallRows::end_to_end(lengths);
        self.forward_first_tokens(super::first_tokens(hidden, call))
    }

    /// Logits `[inputs, num_labels]` from the inputs' first tokens alone,
    /// `[1, inputs, hidden]`.
    pub fn forward_first_tokens(&self, first_tokens: Tensor<3>) -> Tensor<2> {
        let [_, inputs, width] = first_tokens.dims();
        let first = first_tokens.reshape([inputs, width]);
        self.out_proj.forward(self.dense.forward(first).tanh())
    }
}
