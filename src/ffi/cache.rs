//! The prediction cache of `icd scan`, attached to a detector handle
//! (`icd_detector_use_cache`): its predictions are then taken from the cache where it
//! holds them and kept there when computed, so that processes sharing a cache
//! directory (a scanner's runs, a distributed scan's workers on one machine) classify
//! each text once.

use std::ffi::c_char;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use super::boundary::*;
use super::detector::icd_detector;
use super::errors::{icd_error, icd_status, null_argument, CallError};
use crate::{Detector, Prediction, Result};

/// What a detector handle classifies through: the cache where one is attached, each
/// function the model classifies counted in `model_calls`.
impl icd_detector {
    /// `Detector::predict_batch`, through the attached cache where there is one. The
    /// cache's lock is held while it is read and written, not while the model runs, so
    /// that threads sharing the handle classify at once.
    pub(super) fn predict_batch(&self, codes: &[&str]) -> Result<Vec<Prediction>> {
        let Some(cache) = &self.cache else {
            let predictions = self.detector.predict_batch(codes)?;
            self.model_calls
                .fetch_add(codes.len() as u64, Ordering::Relaxed);
            return Ok(predictions);
        };
        let lock = || {
            cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        // The cache only saves work: one that cannot be read or written (locked by
        // another program past its wait, a full disk) is passed over, never a failure.
        let found = lock()
            .cached(&self.detector, codes)
            .unwrap_or_else(|_| vec![None; codes.len()]);
        let missing = crate::detector::missing(&found);
        // Each missing text classified once, however often the batch repeats it.
        let mut distinct: Vec<&str> = Vec::new();
        let mut slot = std::collections::HashMap::new();
        let places: Vec<usize> = missing
            .iter()
            .map(|&i| {
                *slot.entry(codes[i]).or_insert_with(|| {
                    distinct.push(codes[i]);
                    distinct.len() - 1
                })
            })
            .collect();
        let predicted = match distinct.is_empty() {
            true => Vec::new(),
            false => self.detector.predict_batch(&distinct)?,
        };
        self.model_calls
            .fetch_add(distinct.len() as u64, Ordering::Relaxed);
        let _ = lock().keep(&distinct, &predicted);
        let classified = places.iter().map(|&p| predicted[p].clone()).collect();
        Ok(crate::detector::fill(found, &missing, classified))
    }
}

/// A cache attached to a detector: the store, and the key of the detector's files and
/// settings.
#[cfg(feature = "cache")]
pub(super) struct AttachedCache {
    store: crate::cache::PredictionCache,
    model: crate::cache::ModelKey,
}

/// No cache can be attached in a build without the `cache` feature.
#[cfg(not(feature = "cache"))]
pub(super) enum AttachedCache {}

impl AttachedCache {
    #[cfg(feature = "cache")]
    fn cached(&mut self, detector: &Detector, codes: &[&str]) -> Result<Vec<Option<Prediction>>> {
        self.store.cached_predictions(&self.model, detector, codes)
    }

    #[cfg(feature = "cache")]
    fn keep(&mut self, codes: &[&str], predictions: &[Prediction]) -> Result<()> {
        self.store.keep_predictions(&self.model, codes, predictions)
    }

    #[cfg(not(feature = "cache"))]
    fn cached(&mut self, _: &Detector, _: &[&str]) -> Result<Vec<Option<Prediction>>> {
        match *self {}
    }

    #[cfg(not(feature = "cache"))]
    fn keep(&mut self, _: &[&str], _: &[Prediction]) -> Result<()> {
        match *self {}
    }
}

/// Attaches the prediction cache in directory `dir` (made if absent; the file `icd
/// scan` uses there, shared with it and with other processes on this machine; not on
/// a network file system, where SQLite's locks do not hold) to `detector`, keeping at
/// most `max_entries` (0: 100,000) predictions, the least recently used dropped past
/// them. From then on `icd_detector_predict` and `icd_detector_predict_batch` take
/// each function's prediction from the cache where it holds one for this checkpoint's
/// files and this detector's settings, and keep what the model computes (a text a batch
/// repeats, once); results are those the model gives, and a cache that cannot be read
/// or written then is passed over (the model classifies). The checkpoint's files must be those the detector loaded: one
/// replaced since is an error (`ICD_ERR_IO`) rather than results kept under the
/// wrong key. A build without the `cache` cargo feature fails with
/// `ICD_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `detector` must be NULL or a live handle that no other call uses meanwhile; `dir`
/// NULL or `dir_len` readable bytes; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_use_cache(
    detector: *mut icd_detector,
    dir: *const c_char,
    dir_len: usize,
    max_entries: u64,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        // SAFETY: NULL or a live handle used by no other call (the contract).
        let d = unsafe { detector.as_mut() }.ok_or_else(|| null_argument("detector"))?;
        // SAFETY: NULL or `dir_len` readable bytes (the contract).
        let dir = unsafe { path_arg(dir, dir_len, "dir") }?;
        d.cache = Some(Mutex::new(attach(d, &dir, max_entries)?));
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "cache")]
fn attach(
    d: &icd_detector,
    dir: &std::path::Path,
    max_entries: u64,
) -> Result<AttachedCache, CallError> {
    use crate::cache::{PredictionCache, DEFAULT_MAX_ENTRIES};
    let max_entries = match max_entries {
        0 => DEFAULT_MAX_ENTRIES,
        n => n,
    };
    let (mut store, _warning) = PredictionCache::open(dir, max_entries)?;
    let model = store.model_key(&d.builder)?;
    if d.checkpoint_changed()? {
        return Err(crate::Error::Cache {
            path: store.path().to_path_buf(),
            message: "the checkpoint's files changed after the detector loaded them: results would be kept under another model's key (open the detector again)".into(),
        }
        .into());
    }
    Ok(AttachedCache { store, model })
}

#[cfg(not(feature = "cache"))]
fn attach(_: &icd_detector, _: &std::path::Path, _: u64) -> Result<AttachedCache, CallError> {
    Err(CallError::invalid(
        "dir",
        "cannot be used: this build has no prediction cache (cargo feature `cache`)",
    ))
}

/// How many functions the model has classified through `detector` since it was opened:
/// each one `icd_detector_predict` or `icd_detector_predict_batch` was given, less
/// those an attached cache answered. 0 for NULL.
///
/// # Safety
/// `detector` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_model_calls(detector: *const icd_detector) -> u64 {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { read_handle(detector, 0, |d| d.model_calls.load(Ordering::Relaxed)) }
}
