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
    /// The recipe as JSON text: a run continues only with the same one (compared as
    /// text, which a float's round trip through a parser need not keep).
    recipe: String,
    /// What else decides the run: the base checkpoint's files' SHA-256 and the
    /// backend.
    run: String,
    train_sha256: String,
    validation_sha256: Option<String>,
    /// Epochs finished.
    pub(super) epoch: usize,
    /// Optimizer steps taken.
    pub(super) step: usize,
    /// AdamW's step count.
    pub(super) adam_steps: u64,
    pub(super) epochs: Vec<EpochRecord>,
    /// The best epoch so far (with validation data; else the last) and its accuracy,
    /// as the bits of the f64 (exact through the text).
    pub(super) best_epoch: usize,
    best_accuracy_bits: Option<u64>,
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
            recipe: String::new(),
            run: String::new(),
            train_sha256: String::new(),
            validation_sha256: None,
            epoch,
            step,
            adam_steps,
            epochs,
            best_epoch,
            best_accuracy_bits: best_accuracy.map(f64::to_bits),
        }
    }

    /// The best epoch's validation accuracy, where there was validation data.
    pub(super) fn best_accuracy(&self) -> Option<f64> {
        self.best_accuracy_bits.map(f64::from_bits)
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
    recipe: String,
    run: String,
    train_sha256: String,
    validation_sha256: Option<String>,
}

/// The files a state directory may hold: its own, and the temporaries of writes a
/// stopped run left.
fn is_state_file(name: &str) -> bool {
    name == "state.json"
        || name.starts_with("epoch-")
        || (name.starts_with(".epoch-") || name.starts_with(".state.json"))
            && name.ends_with(".partial")
}

/// Removes a finished run's state directory (see [`super::Trainer::train_resumable`]):
/// its own files, `state.json` first, then the directory, which is left, with an
/// error, where anything else is in it.
pub fn remove(dir: &Path) -> Result<()> {
    let io = |source| Error::Io {
        path: dir.to_path_buf(),
        source,
    };
    // state.json first: a directory without it is no state to continue.
    match std::fs::remove_file(dir.join("state.json")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
        if is_state_file(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(entry.path()).map_err(io)?;
        }
    }
    std::fs::remove_dir(dir).map_err(io)
}

impl StateDir {
    /// The state directory `dir` of a run with `recipe` on data with these digests.
    pub(super) fn new(
        dir: &Path,
        recipe: &TrainingRecipe,
        run: String,
        train_sha256: &str,
        validation_sha256: Option<&str>,
    ) -> Self {
        Self {
            dir: dir.to_path_buf(),
            recipe: serde_json::to_string(recipe).expect("the recipe serializes"),
            run,
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
        if state.run != self.run {
            return Err(self.error(format!(
                "the run it holds started from another checkpoint or backend ({}, here {})",
                state.run, self.run
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

    /// Refuses a state whose figures do not fit together or this run (`epochs`
    /// epochs of `steps_per_epoch` steps), naming `state.json`.
    pub(super) fn check(
        &self,
        state: &SavedState,
        epochs: usize,
        steps_per_epoch: usize,
    ) -> Result<()> {
        let bad = |what: String| Err(self.error(format!("state.json: {what}")));
        if state.epoch == 0 || state.epoch > epochs {
            return bad(format!(
                "epoch {} is not one of this run's 1..={epochs}",
                state.epoch
            ));
        }
        if state.epochs.len() != state.epoch {
            return bad(format!(
                "{} epochs recorded for {} finished",
                state.epochs.len(),
                state.epoch
            ));
        }
        if state.step != state.epoch * steps_per_epoch {
            return bad(format!(
                "step {} after epoch {}, expected {}",
                state.step,
                state.epoch,
                state.epoch * steps_per_epoch
            ));
        }
        if state.adam_steps > state.step as u64 {
            return bad(format!(
                "{} optimizer updates in {} steps",
                state.adam_steps, state.step
            ));
        }
        if state.best_epoch == 0 || state.best_epoch > state.epoch {
            return bad(format!(
                "best epoch {} of {} finished",
                state.best_epoch, state.epoch
            ));
        }
        Ok(())
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
            let (path, _) = paths
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
        state.run = self.run.clone();
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
                if is_state_file(&name) && !keep.contains(&name) {
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
        // Each moment must be f32 and have its parameter's element count: anything
        // else is refused here, not met inside the update.
        let tensor = |name: &str, len: usize| -> Result<Option<Tensor<1>>> {
            let Ok(view) = file.tensor(name) else {
                return Ok(None);
            };
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != [len] {
                return Err(self.error(format!(
                    "{}: `{name}` is {:?} {:?}, expected F32 [{len}]",
                    path.display(),
                    view.dtype(),
                    view.shape()
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Err(self.error(format!("{}: `{name}` holds {bad}", path.display())));
            }
            Ok(Some(Tensor::from_data(
                TensorData::new(values, [len]),
                device,
            )))
        };
        let mut moments = HashMap::new();
        for (id, (name, len)) in model.parameter_paths() {
            let first = tensor(&format!("{name}.exp_avg"), len)?;
            let second = tensor(&format!("{name}.exp_avg_sq"), len)?;
            match (first, second) {
                (Some(m), Some(v)) => {
                    moments.insert(id, (m, v));
                }
                (None, None) => {}
                _ => {
                    return Err(self.error(format!(
                        "{}: `{name}` has one of its two moments",
                        path.display()
                    )))
                }
            }
        }
        Ok(moments)
    }
}
