//! What the cache keeps of a classification, and plain predictions taken from it:
//! one format for `icd scan` and for the library's callers, so that each finds what
//! the other kept.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::{CacheKey, ModelKey, PredictionCache};
use crate::calibration::Calibration;
use crate::detector::{Detector, LineScore, Prediction};
use crate::error::Result;

/// The request under which plain predictions of a whole function (no windows, no
/// line scores) are kept: what `icd scan` asks without `--window` or `--explain`.
pub const PREDICT_REQUEST: &str = "predict";

/// What the cache keeps of one classification: the logits rather than the verdict,
/// which is read off them again (as the detector reads it, calibration included) when
/// the entry is used, and every part checked against the function it is for, so that
/// an entry that does not fit is a miss, never a wrong or crashing result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredClassification {
    /// The model's logits.
    pub logits: Vec<f32>,
    /// Tokens the model read.
    pub tokens: usize,
    /// Whether the function was cut at the token limit.
    pub truncated: bool,
    /// For a windowed classification: the window's bytes in the function and the
    /// number of windows.
    pub window: Option<(Range<usize>, usize)>,
    /// For an explained classification: the line scores.
    pub lines: Vec<LineScore>,
}

/// A [`StoredClassification`] that fits the function and request it was looked up
/// for.
#[derive(Debug, Clone)]
pub struct Restored {
    /// The prediction, read off the stored logits.
    pub prediction: Prediction,
    /// As stored.
    pub window: Option<(Range<usize>, usize)>,
    /// As stored.
    pub lines: Vec<LineScore>,
}

impl StoredClassification {
    /// A plain prediction's entry.
    pub fn of_prediction(p: &Prediction) -> Self {
        StoredClassification {
            logits: p.logits.clone(),
            tokens: p.tokens,
            truncated: p.truncated,
            window: None,
            lines: Vec::new(),
        }
    }

    /// The classification of `code` this entry holds, where it fits `code`, the
    /// checkpoint's `labels` and `max_tokens`, and the request: `windowed` (a window
    /// must be stored, and lie in `code`) and `explained` (line scores must be stored,
    /// each on a line of `code`, or none where not explained).
    pub fn restore(
        self,
        code: &str,
        labels: &[String],
        calibration: Option<&Calibration>,
        max_tokens: usize,
        windowed: bool,
        explained: bool,
    ) -> Option<Restored> {
        let prediction = Prediction::calibrated_from_logits(
            labels,
            calibration,
            &self.logits,
            self.tokens,
            self.truncated,
        )
        .ok()?;
        let fits_window = match (&self.window, windowed) {
            (None, false) => true,
            (Some((bytes, windows)), true) => {
                bytes.start <= bytes.end
                    && code.is_char_boundary(bytes.start)
                    && code.is_char_boundary(bytes.end)
                    && *windows >= 1
            }
            _ => false,
        };
        let line_count = code.matches('\n').count() + 1;
        let fits_lines = if explained {
            self.lines
                .iter()
                .all(|l| (1..=line_count).contains(&l.line) && l.score.is_finite())
        } else {
            self.lines.is_empty()
        };
        ((2..=max_tokens).contains(&self.tokens) && fits_window && fits_lines).then_some(Restored {
            prediction,
            window: self.window,
            lines: self.lines,
        })
    }
}

impl PredictionCache {
    /// The predictions of `codes` the cache holds under `model` (the key of
    /// `detector`'s files and settings, [`PredictionCache::model_key`]) that fit them,
    /// read off their logits as `detector` reads them; `None` for the rest.
    pub fn cached_predictions(
        &mut self,
        model: &ModelKey,
        detector: &Detector,
        codes: &[&str],
    ) -> Result<Vec<Option<Prediction>>> {
        let keys: Vec<CacheKey> = codes
            .iter()
            .map(|code| CacheKey::new(model, PREDICT_REQUEST, code))
            .collect();
        let calibration = detector.calibration();
        Ok(self
            .get(&keys)?
            .into_iter()
            .zip(codes)
            .map(|(value, code)| {
                let stored: StoredClassification = serde_json::from_slice(&value?).ok()?;
                let restored = stored.restore(
                    code,
                    detector.labels(),
                    calibration.as_ref(),
                    detector.max_tokens(),
                    false,
                    false,
                )?;
                Some(restored.prediction)
            })
            .collect())
    }

    /// Keeps `predictions` of `codes` (one each, as the model under `model` gave them).
    pub fn keep_predictions(
        &mut self,
        model: &ModelKey,
        codes: &[&str],
        predictions: &[Prediction],
    ) -> Result<()> {
        if codes.is_empty() {
            return Ok(());
        }
        let entries: Vec<(CacheKey, Vec<u8>)> = codes
            .iter()
            .zip(predictions)
            .map(|(code, p)| {
                let value = serde_json::to_vec(&StoredClassification::of_prediction(p))
                    .expect("numbers and booleans serialize");
                (CacheKey::new(model, PREDICT_REQUEST, code), value)
            })
            .collect();
        self.put(model, &entries)
    }

    /// [`Detector::predict_batch`] through the cache: each function's prediction is
    /// taken from the cache where it holds one that fits it
    /// ([`PredictionCache::cached_predictions`]); the rest are classified in one call
    /// and kept. Gives the predictions in input order, equal to `predict_batch`'s, and
    /// how many functions the model classified.
    pub fn predict_batch(
        &mut self,
        model: &ModelKey,
        detector: &Detector,
        codes: &[&str],
    ) -> Result<(Vec<Prediction>, usize)> {
        let found = self.cached_predictions(model, detector, codes)?;
        let missing = crate::detector::missing(&found);
        let texts: Vec<&str> = missing.iter().map(|&i| codes[i]).collect();
        let classified = match texts.is_empty() {
            true => Vec::new(),
            false => detector.predict_batch(&texts)?,
        };
        self.keep_predictions(model, &texts, &classified)?;
        Ok((
            crate::detector::fill(found, &missing, classified),
            missing.len(),
        ))
    }
}
