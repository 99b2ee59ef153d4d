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

    /// `[batch, seq, hidden]` to logits `[batch, num_labels]`.
    pub fn forward(&self, hidden: Tensor<3>) -> Tensor<2> {
        let [batch, _, width] = hidden.dims();
        let first = hidden.narrow(1, 0, 1).reshape([batch, width]);
        self.out_proj.forward(self.dense.forward(first).tanh())
    }
}
