//! The optimizer step transformers' Trainer takes: gradients summed over a step's
//! micro-batches, clipped by their global norm as `torch.nn.utils.clip_grad_norm_`
//! clips them, then `torch.optim.AdamW`'s update, with weight decay on every
//! parameter but biases and LayerNorm weights (the Trainer's two parameter groups).

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Gradients, Tensor};

/// `torch.optim.AdamW`'s settings, as transformers' Trainer passes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct AdamWSettings {
    /// β₁ (0.9).
    pub(crate) beta1: f64,
    /// β₂ (0.999).
    pub(crate) beta2: f64,
    /// ε (1e-8), added to the bias-corrected root of the second moment.
    pub(crate) epsilon: f64,
    /// The decoupled weight decay of the parameters that decay.
    pub(crate) weight_decay: f64,
}

/// Whether a parameter decays, by its module path (`layers.0.output_norm.gamma`):
/// biases and LayerNorm parameters do not, as in the Trainer's
/// `get_decay_parameter_names`.
pub(crate) fn decays(path: &str) -> bool {
    let name = path.rsplit('.').next().unwrap_or(path);
    let module = path.rsplit_once('.').map_or("", |(module, _)| module);
    let layer_norm = module.ends_with("layer_norm") || module.ends_with("_norm");
    !(name == "bias" || layer_norm)
}

/// The gradients of the parameters that train, summed over one optimizer step's
/// micro-batches, each flattened.
#[derive(Default)]
pub(crate) struct StepGradients {
    by_param: HashMap<ParamId, Tensor<1>>,
    /// The parameters in the order the model holds them, which fixes the order the
    /// norm sums them in (parameter ids are random from process to process).
    order: Vec<ParamId>,
}

impl StepGradients {
    /// Adds the gradients that `grads` (one micro-batch's backward pass) holds for
    /// `model`'s parameters.
    pub(crate) fn add<M: Module>(&mut self, model: &M, grads: &Gradients) {
        struct Collect<'a> {
            grads: &'a Gradients,
            into: &'a mut HashMap<ParamId, Tensor<1>>,
            order: &'a mut Vec<ParamId>,
        }
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let Some(grad) = param.val().grad(self.grads) else {
                    return;
                };
                let flat: Tensor<1> = grad.flatten(0, D - 1);
                let sum = match self.into.remove(&param.id) {
                    Some(earlier) => earlier + flat,
                    None => {
                        self.order.push(param.id);
                        flat
                    }
                };
                self.into.insert(param.id, sum);
            }
        }
        model.visit(&mut Collect {
            grads,
            into: &mut self.by_param,
            order: &mut self.order,
        });
    }

    /// The global L2 norm of all the gradients, as `clip_grad_norm_` computes it: the
    /// norm of each parameter's gradient, then the norm of those norms.
    pub(crate) fn global_norm(&self) -> f64 {
        self.order
            .iter()
            .map(|id| {
                let norm = self.by_param[id]
                    .clone()
                    .powi_scalar(2)
                    .sum()
                    .sqrt()
                    .into_scalar::<f64>();
                norm * norm
            })
            .sum::<f64>()
            .sqrt()
    }

    /// Every gradient multiplied by `factor`.
    pub(crate) fn scale(&mut self, factor: f64) {
        for grad in self.by_param.values_mut() {
            *grad = grad.clone() * factor;
        }
    }

    /// Whether no parameter received a gradient.
    pub(crate) fn is_empty(&self) -> bool {
        self.by_param.is_empty()
    }
}

/// `clip_grad_norm_(parameters, max_norm)`: the total norm before clipping; the
/// gradients scaled by `max_norm / (norm + 1e-6)` where that is below 1.
pub(crate) fn clip_by_global_norm(grads: &mut StepGradients, max_norm: Option<f64>) -> f64 {
    let norm = grads.global_norm();
    if let Some(max_norm) = max_norm {
        // torch computes the coefficient in the gradients' f32.
        let coefficient = (max_norm as f32 / (norm as f32 + 1e-6)).min(1.0);
        if coefficient < 1.0 {
            grads.scale(f64::from(coefficient));
        }
    }
    norm
}

/// `torch.optim.AdamW`: its moments per parameter and its step count.
pub(crate) struct AdamW {
    settings: AdamWSettings,
    steps: u64,
    moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
}

impl AdamW {
    /// An optimizer that has taken no step.
    pub(crate) fn new(settings: AdamWSettings) -> Self {
        Self {
            settings,
            steps: 0,
            moments: HashMap::new(),
        }
    }

    /// The step count and each parameter's first and second moments.
    pub(crate) fn state(&self) -> (u64, &HashMap<ParamId, (Tensor<1>, Tensor<1>)>) {
        (self.steps, &self.moments)
    }

    /// Continues from a saved [`AdamW::state`].
    pub(crate) fn restore(
        &mut self,
        steps: u64,
        moments: HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
    ) {
        self.steps = steps;
        self.moments = moments;
    }

    /// One update of `model`'s parameters that have gradients in `grads`, at
    /// learning rate `lr`, with weight decay on those in `decaying`. Gradients are
    /// taken out of `grads`.
    pub(crate) fn step<M: Module>(
        &mut self,
        model: M,
        lr: f64,
        grads: &mut StepGradients,
        decaying: &HashSet<ParamId>,
    ) -> M {
        self.steps += 1;
        let mut update = Update {
            optimizer: self,
            lr,
            grads: &mut grads.by_param,
            decaying,
        };
        model.map(&mut update)
    }
}

/// The parameters of `paths` (module paths by id) that decay (see [`decays`]).
pub(crate) fn decaying(paths: &HashMap<ParamId, (String, usize)>) -> HashSet<ParamId> {
    paths
        .iter()
        .filter(|(_, (path, _))| decays(path))
        .map(|(id, _)| *id)
        .collect()
}

/// The update of one step, parameter by parameter.
struct Update<'a> {
    optimizer: &'a mut AdamW,
    lr: f64,
    grads: &'a mut HashMap<ParamId, Tensor<1>>,
    decaying: &'a HashSet<ParamId>,
}

impl ModuleMapper for Update<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(grad) = self.grads.remove(&param.id) else {
            return param;
        };
        let decay = self.decaying.contains(&param.id);
        let (id, tensor, mapper) = param.consume();
        let shape = tensor.shape();
        let require_grad = tensor.is_require_grad();
        let value: Tensor<1> = tensor.inner().flatten(0, D - 1);
        let AdamWSettings {
            beta1,
            beta2,
            epsilon,
            weight_decay,
        } = self.optimizer.settings;
        let lr = self.lr;
        let t = self.optimizer.steps as i32;
        let (m, v) = match self.optimizer.moments.remove(&id) {
            Some(moments) => moments,
            None => (grad.zeros_like(), grad.zeros_like()),
        };
        // torch's single-tensor AdamW, operation by operation.
        let value = if decay && weight_decay != 0.0 {
            value * (1.0 - lr * weight_decay)
        } else {
            value
        };
        let m = m.clone() + (grad.clone() - m) * (1.0 - beta1);
        let v = v * beta2 + grad.clone() * grad * (1.0 - beta2);
        let bias_correction1 = 1.0 - beta1.powi(t);
        let bias_correction2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bias_correction1;
        let denominator = v.clone().sqrt() / bias_correction2_sqrt + epsilon;
        let value = value - m.clone() / denominator * step_size;
        self.optimizer.moments.insert(id, (m, v));
        let value = value.reshape(shape).autodiff();
        let value = if require_grad {
            value.require_grad()
        } else {
            value
        };
        Param::from_mapped_value(id, value, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::decays;

    #[test]
    fn biases_and_layer_norms_do_not_decay() {
        assert!(decays("layers.0.attention.query_key_value.weight"));
        assert!(decays("embeddings.word_embeddings.weight"));
        assert!(decays("classifier.out_proj.weight"));
        assert!(!decays("layers.0.attention.query_key_value.bias"));
        assert!(!decays("layers.1.output_norm.gamma"));
        assert!(!decays("layers.1.attention_norm.beta"));
        assert!(!decays("embeddings.layer_norm.gamma"));
    }
}
