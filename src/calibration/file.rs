//! `calibration.json`: a calibration, the threshold chosen with it, and what it was
//! fitted on and for, written by `icd calibrate` and read wherever probabilities are
//! reported.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Calibration;
use crate::{Error, Result};

/// The `format` field every calibration file carries.
pub const CALIBRATION_FORMAT: &str = "insecure-code-detector calibration";

/// The version of the layout this library writes and reads.
pub const CALIBRATION_VERSION: u32 = 1;

/// Largest calibration file read: a few kilobytes are written.
const FILE_LIMIT: u64 = 1 << 20;

/// The checkpoint a calibration was fitted for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointId {
    /// SHA-256 of the checkpoint's files, as [`crate::DetectorBuilder::checkpoint_sha256`].
    pub sha256: String,
    /// Its labels by index.
    pub labels: Vec<String>,
}

/// The labelled data a calibration was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FittedOn {
    /// The data file, as given.
    pub data: String,
    /// Rows.
    pub rows: usize,
    /// Insecure rows.
    pub positives: usize,
}

/// A calibration file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationFile {
    /// Always [`CALIBRATION_FORMAT`].
    pub format: String,
    /// Always [`CALIBRATION_VERSION`] for the files this library writes.
    pub version: u32,
    /// This library's version when the file was written.
    pub written_by: String,
    /// The fit.
    pub calibration: Calibration,
    /// The calibrated probability at or above which a function is a finding, chosen for
    /// `target` on the data (absent: the reader's own default).
    pub threshold: Option<f64>,
    /// What the threshold was chosen to meet: `{"precision": P}` or `{"recall": R}`.
    pub target: Option<serde_json::Value>,
    /// The checkpoint it was fitted for: using it with another is an error.
    pub checkpoint: CheckpointId,
    /// The data it was fitted on.
    pub fitted_on: FittedOn,
    /// The metrics on that data before and after calibration, as `icd evaluate`
    /// reports them: `{"before": {...}, "after": {...}}`.
    pub metrics: serde_json::Value,
}

impl CalibrationFile {
    /// Reads and checks a calibration file, naming the file and the field at fault.
    pub fn read(path: &Path) -> Result<CalibrationFile> {
        let text = crate::files::read_untrusted_text(path, FILE_LIMIT, "calibration file")?;
        let file: CalibrationFile =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(&text))
                .map_err(|e| Error::Calibration {
                    path: path.to_path_buf(),
                    message: match e.path().to_string().as_str() {
                        "." => e.inner().to_string(),
                        field => format!("`{field}`: {}", e.inner()),
                    },
                })?;
        file.check(path)?;
        Ok(file)
    }

    /// The file as pretty JSON, ending in a newline.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map(|s| s + "\n")
            .map_err(|e| Error::InvalidArgument {
                argument: "calibration",
                message: e.to_string(),
            })
    }

    fn check(&self, path: &Path) -> Result<()> {
        let fail = |message: String| {
            Err(Error::Calibration {
                path: path.to_path_buf(),
                message,
            })
        };
        if self.format != CALIBRATION_FORMAT {
            return fail(format!(
                "`format` is {:?}, expected {CALIBRATION_FORMAT:?}",
                self.format
            ));
        }
        if self.version != CALIBRATION_VERSION {
            return fail(format!(
                "`version` is {}; this library ({}) reads version {CALIBRATION_VERSION}",
                self.version,
                env!("CARGO_PKG_VERSION")
            ));
        }
        if let Some(t) = self.threshold {
            if !(0.0..=1.0).contains(&t) {
                return fail(format!(
                    "`threshold` is {t}, expected a probability in [0, 1]"
                ));
            }
        }
        if self.checkpoint.labels.is_empty() {
            return fail("`checkpoint.labels` is empty".into());
        }
        if let Err(e) = self.calibration.check(self.checkpoint.labels.len()) {
            return fail(format!("`calibration`: {e}"));
        }
        Ok(())
    }

    /// Fails unless the file was fitted for the checkpoint whose files have digest
    /// `sha256` and whose labels are `labels`, naming both checkpoints.
    pub fn check_checkpoint(&self, path: &Path, sha256: &str, labels: &[String]) -> Result<()> {
        if self.checkpoint.sha256 != sha256 || self.checkpoint.labels != labels {
            return Err(Error::Calibration {
                path: path.to_path_buf(),
                message: format!(
                    "fitted for the checkpoint with SHA-256 {} (labels {:?}), not for this \
                     one, SHA-256 {sha256} (labels {labels:?}): fit it again with icd calibrate",
                    self.checkpoint.sha256, self.checkpoint.labels
                ),
            });
        }
        Ok(())
    }
}
