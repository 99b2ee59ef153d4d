//! A model's parameters written as the hub's `model.safetensors`, from the same name
//! table the loader reads: the hub's tensor names (the encoder's under `roberta.`),
//! PyTorch's `[out, in]` linear weights, each layer's fused query, key and value
//! projection split back into three.

use std::collections::HashMap;
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};

use super::names::{hub_name, hub_tensors};
use crate::config::RobertaConfig;
use crate::error::{Error, Result};
use crate::model::{ProjectionLayout, RobertaClassifier};

/// Writes `model` (held [`ProjectionLayout::InOut`]) to `path` in f32, as
/// `save_pretrained` lays out a `RobertaForSequenceClassification`.
pub(crate) fn save_safetensors(
    model: &RobertaClassifier,
    config: &RobertaConfig,
    path: &Path,
) -> Result<()> {
    assert_eq!(
        model.projection_layout(),
        ProjectionLayout::InOut,
        "a model packed for the CPU kernels has no tensors to write"
    );
    let mut collected = Collect {
        paths: model.parameter_paths(),
        tensors: HashMap::new(),
    };
    model.visit(&mut collected);
    let format_error = |message: String| Error::WeightsFormat {
        path: path.to_path_buf(),
        message,
    };
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for tensor in hub_tensors(config) {
        // burn's LayerNorm holds `gamma` and `beta` where the hub has `weight` and `bias`.
        let module = if tensor.hub.contains("LayerNorm") {
            tensor
                .module
                .replace(".weight", ".gamma")
                .replace(".bias", ".beta")
        } else {
            tensor.module.clone()
        };
        let (shape, values) = collected
            .tensors
            .get(&module)
            .ok_or_else(|| format_error(format!("the model has no parameter `{module}`")))?;
        let linear_weight = tensor.shape.len() == 2 && !tensor.hub.starts_with("embeddings.");
        let values: Vec<f32> = match (linear_weight, tensor.fused_part) {
            (true, part) => {
                // [in, all outputs] to this tensor's [out, in].
                let [d_out, d_in] = [tensor.shape[0], tensor.shape[1]];
                let columns = shape[1];
                let offset = part.unwrap_or(0) * d_out;
                let mut out = Vec::with_capacity(d_out * d_in);
                for o in 0..d_out {
                    out.extend((0..d_in).map(|i| values[i * columns + offset + o]));
                }
                out
            }
            (false, Some(part)) => {
                let d_out = tensor.shape[0];
                values[part * d_out..(part + 1) * d_out].to_vec()
            }
            (false, None) => values.clone(),
        };
        let expected: usize = tensor.shape.iter().product();
        if values.len() != expected {
            return Err(format_error(format!(
                "parameter `{module}` gives {} values for `{}` of shape {:?}",
                values.len(),
                tensor.hub,
                tensor.shape
            )));
        }
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((hub_name(&tensor.hub), tensor.shape.clone(), bytes));
    }
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|view| (name.clone(), view))
                .map_err(|e| format_error(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([("format".to_owned(), "pt".to_owned())]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .map_err(|e| format_error(e.to_string()))
}

/// Every float parameter's shape and f32 values, by module path.
struct Collect {
    paths: HashMap<ParamId, (String, usize)>,
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
}

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let tensor = param.val();
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 parameters");
        if let Some((path, _)) = self.paths.get(&param.id) {
            self.tensors.insert(path.clone(), (shape, values));
        }
    }
}
