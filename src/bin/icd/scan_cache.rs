//! The prediction cache as a scan uses it: keys from the model's files, the scan's
//! mode and each function's text; entries checked against the function they are for.

use insecure_code_detector::cache::{
    self, CacheKey, ModelKey, PredictionCache, StoredClassification,
};
use insecure_code_detector::calibration::Calibration;
use insecure_code_detector::report::printable;
use insecure_code_detector::scan::FunctionSpan;
use insecure_code_detector::{DetectorBuilder, Error};

use crate::classification::{ClassifyMode, Classified};
use crate::Failure;

/// What the cache keeps of a classification, in the library's format (so that the
/// library's callers and the scan find each other's entries).
fn stored(c: &Classified) -> StoredClassification {
    StoredClassification {
        logits: c.prediction.logits.clone(),
        tokens: c.prediction.tokens,
        truncated: c.prediction.truncated,
        window: c.window.clone(),
        lines: c.lines.clone(),
    }
}

/// The prediction cache as a scan uses it: opened on the model's key, with every
/// failure a warning (results are then computed, never assumed).
pub struct ScanCache {
    store: PredictionCache,
    model: ModelKey,
    mode: ClassifyMode,
    /// `mode.request()`, part of every key.
    request: String,
    /// The checkpoint's labels and token limit, which entries are checked against.
    labels: Vec<String>,
    /// The calibration restored predictions are given.
    calibration: Option<Calibration>,
    max_tokens: usize,
    /// Set after a write failed, or when the checkpoint changed: no more are tried.
    broken: bool,
}

impl ScanCache {
    /// The cache in ICD_CACHE_DIR (or the default directory), bounded by
    /// ICD_CACHE_MAX_ENTRIES; `None`, with a warning, where it cannot be used.
    pub fn open(
        builder: &DetectorBuilder,
        mode: &ClassifyMode,
        labels: Vec<String>,
        calibration: Option<Calibration>,
        max_tokens: usize,
    ) -> Result<Option<Self>, Failure> {
        let max_entries = match std::env::var("ICD_CACHE_MAX_ENTRIES") {
            Ok(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                Failure(format!(
                    "ICD_CACHE_MAX_ENTRIES is {v:?}, expected a positive number of entries"
                ))
            })?,
            Err(_) => cache::DEFAULT_MAX_ENTRIES,
        };
        let warn = |e: &dyn std::fmt::Display| {
            eprintln!(
                "icd: warning: {}; classifying without the prediction cache",
                printable(&e.to_string())
            )
        };
        let Some(dir) = PredictionCache::default_dir() else {
            warn(&"no cache directory (set ICD_CACHE_DIR)");
            return Ok(None);
        };
        let mut store = match PredictionCache::open(&dir, max_entries) {
            Ok((store, warning)) => {
                if let Some(warning) = warning {
                    eprintln!("icd: warning: {}", printable(&warning));
                }
                store
            }
            Err(e) => {
                warn(&e);
                return Ok(None);
            }
        };
        let model = match store.model_key(builder) {
            Ok(model) => model,
            Err(e) => {
                // A checkpoint that cannot be read is reported by its load; a cache
                // that cannot be written, here.
                if matches!(e, Error::Cache { .. }) {
                    warn(&e);
                }
                return Ok(None);
            }
        };
        Ok(Some(ScanCache {
            store,
            model,
            mode: mode.clone(),
            request: mode.request(),
            labels,
            calibration,
            max_tokens,
            broken: false,
        }))
    }

    /// After the model loaded: whether its files are still the ones the key was made
    /// from. A checkpoint that changed in between would have its results kept under
    /// the old key; then none are kept.
    pub fn confirm(&mut self, builder: &DetectorBuilder) {
        let why = match self.store.model_key(builder) {
            Ok(model) if model == self.model => return,
            Ok(_) => "the checkpoint changed while it loaded".to_owned(),
            Err(e) => e.to_string(),
        };
        eprintln!(
            "icd: warning: {}; results are not being kept",
            printable(&why)
        );
        self.broken = true;
    }

    /// Where the cache's database is.
    pub fn path(&self) -> &std::path::Path {
        self.store.path()
    }

    fn key(&self, f: &FunctionSpan) -> CacheKey {
        CacheKey::new(&self.model, &self.request, &f.code)
    }

    /// Each function's cached result, where there is one that fits it.
    pub fn get(&mut self, functions: &[(String, FunctionSpan)]) -> Vec<Option<Classified>> {
        let keys: Vec<CacheKey> = functions.iter().map(|(_, f)| self.key(f)).collect();
        match self.store.get(&keys) {
            // An entry that cannot be read or does not fit is a miss, written anew.
            Ok(values) => values
                .into_iter()
                .zip(functions)
                .map(|(value, (_, f))| {
                    let stored: StoredClassification = serde_json::from_slice(&value?).ok()?;
                    let restored = stored.restore(
                        &f.code,
                        &self.labels,
                        self.calibration.as_ref(),
                        self.max_tokens,
                        self.mode.window.is_some(),
                        self.mode.explain,
                    )?;
                    Some(Classified {
                        prediction: restored.prediction,
                        window: restored.window,
                        lines: restored.lines,
                    })
                })
                .collect(),
            Err(e) => {
                eprintln!(
                    "icd: warning: {}; classifying every function",
                    printable(&e.to_string())
                );
                vec![None; functions.len()]
            }
        }
    }

    pub fn put(&mut self, functions: &[&(String, FunctionSpan)], classified: &[Classified]) {
        if self.broken {
            return;
        }
        let entries: Vec<(CacheKey, Vec<u8>)> = functions
            .iter()
            .zip(classified)
            .map(|((_, f), c)| {
                let stored = serde_json::to_vec(&stored(c)).expect("serializable");
                (self.key(f), stored)
            })
            .collect();
        if let Err(e) = self.store.put(&self.model, &entries) {
            eprintln!(
                "icd: warning: {}; results are not being kept",
                printable(&e.to_string())
            );
            self.broken = true;
        }
    }
}

