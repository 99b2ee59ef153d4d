//! A run's state after each epoch, kept in a directory of its own so that an
//! interrupted run continues from its last finished epoch with the same result as if
//! it had not stopped: the weights (the hub's layout), AdamW's moments (by parameter
//! path) and step count, the epochs' figures and which epoch is the best so far.
//!
//! An epoch's files are written first, under names that carry the epoch; `state.json`,
//! replaced in one rename, then names them; the files it no longer names go last. The
//! directory therefore always holds one whole state.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::ParamId;
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::{EpochRecord, TrainingRecipe};
use crate::error::{Error, Result};
use crate::model::RobertaClassifier;

/// The layout of `state.json`.
const STATE_FORMAT: &str = "icd-training-state/1";

/// What `state.json` holds.
#[derive(Serialize, Deserialize)]
pub(super) struct SavedState {
    format: String,
    /// The recipe, as JSON: a run continues only with the same one.
    recipe: serde_json::Value,
    train_sha256: String,
    validation_sha256: Option<String>,
    /// Epochs finished.
    pub(super) epoch: usize,
    /// Optimizer steps taken.
    pub(super) step: usize,
    /// AdamW's step count.
    pub(super) adam_steps: u64,
    pub(super) epochs: Vec<EpochRecord>,
    /// The best epoch so far (with validation data; else the last) and its accuracy.
    pub(super) best_epoch: usize,
    pub(super) best_accuracy: Option<f64>,
}

impl SavedState {
    /// The state after epoch `epoch`, to be written by [`StateDir::write`].
    pub(super) fn after(
        epoch: usize,
        step: usize,
        adam_steps: u64,
        epochs: Vec<EpochRecord>,
        best_epoch: usize,
        best_accuracy: Option<f64>,
    ) -> Self {
        Self {
            format: String::new(),
            recipe: serde_json::Value::Null,
            train_sha256: String::new(),
            validation_sha256: None,
            epoch,
            step,
            adam_steps,
            epochs,
            best_epoch,
            best_accuracy,
        }
    }
}

/// The weights file of epoch `epoch`.
fn weights_name(epoch: usize) -> String {
    format!("epoch-{epoch}.safetensors")
}

/// AdamW's moments after epoch `epoch`.
fn moments_name(epoch: usize) -> String {
    format!("epoch-{epoch}.optimizer.safetensors")
}

/// A state directory, and what identifies the run it belongs to.
pub(super) struct StateDir {
    dir: PathBuf,
    recipe: serde_json::Value,
    train_sha256: String,
    validation_sha256: Option<String>,
}

impl StateDir {
    /// The state directory `dir` of a run with `recipe` on data with these digests.
    pub(super) fn new(
        dir: &Path,
        recipe: &TrainingRecipe,
        train_sha256: &str,
        validation_sha256: Option<&str>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            recipe: serde_json::to_value(recipe).expect("the recipe serializes"),
            train_sha256: train_sha256.to_owned(),
            validation_sha256: validation_sha256.map(str::to_owned),
        }
    }

    fn error(&self, message: String) -> Error {
        Error::InvalidArgument {
            argument: "resume",
            message: format!("{}: {message}", self.dir.display()),
        }
    }

    /// The saved state, checked to belong to this run; `None` where the directory
    /// holds none.
    pub(super) fn read(&self) -> Result<Option<SavedState>> {
        let path = self.dir.join("state.json");
        if !path.exists() {
            return Ok(None);
        }
        let text =
            crate::files::read_untrusted_text(&path, crate::files::CONFIG_LIMIT, "state.json")?;
        let state: SavedState =
            serde_json::from_str(&text).map_err(|e| self.error(format!("state.json: {e}")))?;
        if state.format != STATE_FORMAT {
            return Err(self.error(format!(
                "state.json is {:?}, expected {STATE_FORMAT:?}",
                state.format
            )));
        }
        if state.recipe != self.recipe {
            return Err(self.error(
                "the run it holds had another recipe: continue it with the same settings".into(),
            ));
        }
        if state.train_sha256 != self.train_sha256
            || state.validation_sha256 != self.validation_sha256
        {
            return Err(self.error("the run it holds trained on other data".into()));
        }
        Ok(Some(state))
    }

    /// The weights file of `epoch`.
    pub(super) fn weights(&self, epoch: usize) -> PathBuf {
        self.dir.join(weights_name(epoch))
    }

    /// Saves the state after an epoch: `model`'s weights, the optimizer's moments by
    /// parameter path, and `state` (whose `format`, recipe and digests are set here).
    /// The weights of `state.best_epoch` are kept where it is an earlier epoch.
    pub(super) fn write(
        &self,
        model: &RobertaClassifier,
        config: &crate::config::RobertaConfig,
        moments: &HashMap<ParamId, (Tensor<1>, Tensor<1>)>,
        mut state: SavedState,
    ) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            path: self.dir.clone(),
            source,
        })?;
        let epoch = state.epoch;
        let weights = self.weights(epoch);
        crate::files::write_atomically(&weights, &[], |tmp| {
            crate::weights::save_safetensors(model, config, tmp)
        })?;
        let paths = model.parameter_paths();
        let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (id, (m, v)) in moments {
            let path = paths
                .get(id)
                .ok_or_else(|| Error::Training("an optimizer moment of no parameter".into()))?;
            for (suffix, tensor) in [("exp_avg", m), ("exp_avg_sq", v)] {
                let values = tensor
                    .clone()
                    .into_data()
                    .convert::<f32>()
                    .try_into_vec::<f32>()
                    .map_err(|e| Error::Training(format!("reading a moment: {e:?}")))?;
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                named.push((format!("{path}.{suffix}"), vec![values.len()], bytes));
            }
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let moments_path = self.dir.join(moments_name(epoch));
        crate::files::write_atomically(&moments_path, &[], |tmp| {
            let views = named
                .iter()
                .map(|(name, shape, bytes)| {
                    safetensors::tensor::TensorView::new(
                        safetensors::Dtype::F32,
                        shape.clone(),
                        bytes,
                    )
                    .map(|view| (name.clone(), view))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Training(format!("the optimizer's state: {e}")))?;
            safetensors::serialize_to_file(views, None, tmp)
                .map_err(|e| Error::Training(format!("the optimizer's state: {e}")))
        })?;
        state.format = STATE_FORMAT.to_owned();
        state.recipe = self.recipe.clone();
        state.train_sha256 = self.train_sha256.clone();
        state.validation_sha256 = self.validation_sha256.clone();
        let keep = [
            weights_name(epoch),
            moments_name(epoch),
            weights_name(state.best_epoch),
            "state.json".to_owned(),
        ];
        let text = serde_json::to_string_pretty(&state).expect("the state serializes") + "\n";
        let state_path = self.dir.join("state.json");
        crate::files::write_atomically(&state_path, &[], |tmp| {
            std::fs::write(tmp, &text).map_err(|source| Error::Io {
                path: tmp.to_path_buf(),
                source,
            })
        })?;
        // What state.json no longer names.
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("epoch-") && !keep.contains(&name) {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        Ok(())
    }

    /// AdamW's moments saved after `epoch`, keyed by `model`'s parameters, on `device`.
    pub(super) fn read_moments(
        &self,
        epoch: usize,
        model: &RobertaClassifier,
        device: &Device,
    ) -> Result<HashMap<ParamId, (Tensor<1>, Tensor<1>)>> {
        let path = self.dir.join(moments_name(epoch));
        let bytes = crate::files::read_untrusted(
            &path,
            crate::files::WEIGHTS_LIMIT * 3,
            "optimizer state",
        )?;
        let file = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| self.error(format!("{}: {e}", path.display())))?;
        let tensor = |name: &str| -> Result<Tensor<1>> {
            let view = file
                .tensor(name)
                .map_err(|e| self.error(format!("{}: `{name}`: {e}", path.display())))?;
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let len = values.len();
            Ok(Tensor::from_data(TensorData::new(values, [len]), device))
        };
        let mut moments = HashMap::new();
        for (id, name) in model.parameter_paths() {
            if file.tensor(&format!("{name}.exp_avg")).is_err() {
                continue;
            }
            moments.insert(
                id,
                (
                    tensor(&format!("{name}.exp_avg"))?,
                    tensor(&format!("{name}.exp_avg_sq"))?,
                ),
            );
        }
        Ok(moments)
    }
}
