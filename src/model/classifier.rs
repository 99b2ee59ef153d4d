use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::{Device, Int, Tensor, TensorData};

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
        let [_, _, width] = hidden.dims();
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
        let first = hidden.select(1, starts).reshape([lengths.len(), width]);
        self.out_proj.forward(self.dense.forward(first).tanh())
    }
}
