//! What a detector returns, and how it is read off the logits: the label (argmax) and
//! its name, and the insecure probability for one, two or more labels.

use crate::calibration::Calibration;
use crate::error::{Error, Result};

/// The classifier's verdict on one function. Serializes (serde) field by field, with
/// the logits and probability as the f32 they are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Prediction {
    /// Index of the highest logit, as transformers' argmax (always 0 for a
    /// single-logit model: read `insecure_probability` there).
    pub label: usize,
    /// That label's name from `id2label` (`LABEL_1` and the like when unnamed).
    pub label_name: String,
    /// Probability that the function is insecure: softmax of the insecure label for a
    /// two-label model (label 1, CodeXGLUE's "defective"), sigmoid of the logit for a
    /// one-label model, and for more labels one minus the probability of the safe label
    /// (the one named `safe`, `secure`, `benign`, `clean` or `LABEL_0`; else label 0).
    pub insecure_probability: f32,
    /// The raw logits, one per label.
    pub logits: Vec<f32>,
    /// Tokens fed to the model, `<s>` and `</s>` included.
    pub tokens: usize,
    /// Whether the input had more tokens than `max_tokens` and was cut.
    pub truncated: bool,
}

impl Prediction {
    /// The prediction a detector gives for these logits, for a checkpoint whose labels
    /// are `labels` (`id2label` by index, as [`RobertaConfig::id2label`](crate::RobertaConfig)):
    /// the argmax, its name and the insecure probability, read as the detector reads
    /// them. Non-finite logits are refused ([`Error::NonFiniteLogits`]), as are logits
    /// that are not one per label.
    ///
    /// ```
    /// use insecure_code_detector::Prediction;
    /// let labels = ["LABEL_0".to_owned(), "LABEL_1".to_owned()];
    /// let p = Prediction::from_logits(&labels, &[0.0, 2.0], 12, false)?;
    /// assert_eq!((p.label, p.label_name.as_str()), (1, "LABEL_1"));
    /// assert!((p.insecure_probability - 0.8808).abs() < 1e-4);
    /// # Ok::<(), insecure_code_detector::Error>(())
    /// ```
    pub fn from_logits(
        labels: &[String],
        logits: &[f32],
        tokens: usize,
        truncated: bool,
    ) -> Result<Prediction> {
        Self::calibrated_from_logits(labels, None, logits, tokens, truncated)
    }

    /// [`from_logits`](Self::from_logits) with the insecure probability calibrated by
    /// `calibration`, as a detector built with it gives.
    pub fn calibrated_from_logits(
        labels: &[String],
        calibration: Option<&Calibration>,
        logits: &[f32],
        tokens: usize,
        truncated: bool,
    ) -> Result<Prediction> {
        if logits.len() != labels.len() || labels.is_empty() {
            return Err(Error::InvalidArgument {
                argument: "logits",
                message: format!("has {} values for {} labels", logits.len(), labels.len()),
            });
        }
        Labels::new(labels)
            .calibrated(calibration.copied())?
            .prediction(0, logits, tokens, truncated)
    }
}

/// The verdict on a long function classified as overlapping windows: the window with
/// the highest insecure probability.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowedPrediction {
    /// The prediction for that window (`truncated` is false: each window fits).
    pub prediction: Prediction,
    /// Byte range of the code as given that the window covers (with
    /// [`Preprocessing::CollapseWhitespace`](crate::Preprocessing::CollapseWhitespace), mapped back
    /// from the collapsed text by
    /// [`Preprocessing::source_range`](crate::Preprocessing::source_range)).
    pub byte_range: std::ops::Range<usize>,
    /// Windows classified.
    pub windows: usize,
}

/// The checkpoint's labels, and how a prediction is read off one input's logits.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    names: Vec<String>,
    insecure: InsecureScore,
    calibration: Option<Calibration>,
}

impl Labels {
    /// The labels named `names` (`id2label`, by index).
    pub(crate) fn new(names: &[String]) -> Self {
        Self {
            names: names.to_vec(),
            insecure: InsecureScore::for_labels(names),
            calibration: None,
        }
    }

    /// These labels with insecure probabilities calibrated by `calibration` (checked
    /// against the label count).
    pub(crate) fn calibrated(mut self, calibration: Option<Calibration>) -> Result<Self> {
        if let Some(c) = &calibration {
            c.check(self.names.len())?;
        }
        self.calibration = calibration;
        Ok(self)
    }

    /// The calibration applied, if any.
    pub(crate) fn calibration(&self) -> Option<Calibration> {
        self.calibration
    }

    /// The prediction for an input of `tokens` tokens (`truncated` if it was cut) whose
    /// logits are `logits`, the input's position in its batch being `input`. Fails
    /// closed on a NaN or infinite logit: NaN compares false with every threshold, so a
    /// NaN probability would read as "not insecure".
    pub(crate) fn prediction(
        &self,
        input: usize,
        logits: &[f32],
        tokens: usize,
        truncated: bool,
    ) -> Result<Prediction> {
        if logits.iter().any(|l| !l.is_finite()) {
            return Err(Error::NonFiniteLogits {
                input,
                logits: logits.to_vec(),
            });
        }
        let label = first_maximum(logits);
        let insecure_probability = self.insecure.calibrated(logits, self.calibration.as_ref());
        if !insecure_probability.is_finite() {
            return Err(Error::NonFiniteLogits {
                input,
                logits: logits.to_vec(),
            });
        }
        Ok(Prediction {
            label,
            label_name: self.names[label].clone(),
            insecure_probability,
            logits: logits.to_vec(),
            tokens,
            truncated,
        })
    }
}

/// How `insecure_probability` is read off the logits.
#[derive(Debug, Clone, Copy)]
pub(crate) enum InsecureScore {
    Sigmoid,
    SoftmaxOf(usize),
    OneMinusSoftmaxOf(usize),
}

impl InsecureScore {
    pub(crate) fn for_labels(names: &[String]) -> Self {
        let find = |wanted: &[&str]| {
            names
                .iter()
                .position(|n| wanted.iter().any(|w| n.eq_ignore_ascii_case(w)))
        };
        if names.len() == 1 {
            return InsecureScore::Sigmoid;
        }
        if let Some(i) = find(&["insecure", "vulnerable", "defective"]) {
            return InsecureScore::SoftmaxOf(i);
        }
        if names.len() == 2 {
            return InsecureScore::SoftmaxOf(1);
        }
        InsecureScore::OneMinusSoftmaxOf(
            find(&["safe", "secure", "benign", "clean", "LABEL_0"]).unwrap_or(0),
        )
    }

    /// Whether an example labelled `label` counts as insecure: label 1 for one logit
    /// (its regression target), the insecure label, or any label but the safe one.
    pub(crate) fn is_insecure(self, label: usize) -> bool {
        match self {
            InsecureScore::Sigmoid => label == 1,
            InsecureScore::SoftmaxOf(i) => label == i,
            InsecureScore::OneMinusSoftmaxOf(i) => label != i,
        }
    }

    /// The insecure probability, calibrated where `calibration` is given.
    pub(crate) fn calibrated(self, logits: &[f32], calibration: Option<&Calibration>) -> f32 {
        match calibration {
            None => self.probability(logits),
            Some(Calibration::Temperature { temperature }) => {
                // In f64: logits divided by a small temperature can pass f32's range.
                let z: Vec<f64> = logits.iter().map(|&l| f64::from(l) / temperature).collect();
                let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = z.iter().map(|l| (l - max).exp()).sum();
                let softmax = |i: usize| (z[i] - max).exp() / sum;
                (match self {
                    InsecureScore::Sigmoid => 1.0 / (1.0 + (-z[0]).exp()),
                    InsecureScore::SoftmaxOf(i) => softmax(i),
                    InsecureScore::OneMinusSoftmaxOf(i) => 1.0 - softmax(i),
                }) as f32
            }
            Some(platt) => platt
                .platt_probability(self.log_odds(logits))
                .unwrap_or_default() as f32,
        }
    }

    /// ln(p / (1 - p)) of the uncalibrated insecure probability p, computed from the
    /// logits without forming p: for two labels the logit margin, for one the logit.
    pub(crate) fn log_odds(self, logits: &[f32]) -> f64 {
        let z: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
        // ln of the sum of e^z over every label but `i`.
        let others = |i: usize| {
            let max = z
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &l)| l)
                .fold(f64::NEG_INFINITY, f64::max);
            max + z
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, &l)| (l - max).exp())
                .sum::<f64>()
                .ln()
        };
        match self {
            InsecureScore::Sigmoid => z[0],
            InsecureScore::SoftmaxOf(i) => z[i] - others(i),
            InsecureScore::OneMinusSoftmaxOf(i) => others(i) - z[i],
        }
    }

    fn probability(self, logits: &[f32]) -> f32 {
        let softmax = |i: usize| {
            let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
            (logits[i] - max).exp() / sum
        };
        match self {
            InsecureScore::Sigmoid => 1.0 / (1.0 + (-logits[0]).exp()),
            InsecureScore::SoftmaxOf(i) => softmax(i),
            InsecureScore::OneMinusSoftmaxOf(i) => 1.0 - softmax(i),
        }
    }
}

/// The indices of the predictions `found` lacks (those a cache did not hold).
pub(crate) fn missing(found: &[Option<Prediction>]) -> Vec<usize> {
    (0..found.len()).filter(|&i| found[i].is_none()).collect()
}

/// `found` with each of `missing` (its indices without a prediction, in order) filled
/// from `classified`.
pub(crate) fn fill(
    mut found: Vec<Option<Prediction>>,
    missing: &[usize],
    classified: Vec<Prediction>,
) -> Vec<Prediction> {
    for (&i, p) in missing.iter().zip(classified) {
        found[i] = Some(p);
    }
    found
        .into_iter()
        .map(|p| p.expect("each is found or classified"))
        .collect()
}

/// The index of the first largest logit, as torch.argmax (always 0 for a
/// single-logit model, whose verdict is `insecure_probability`).
pub(crate) fn first_maximum(logits: &[f32]) -> usize {
    logits
        .iter()
        .enumerate()
        .fold(0, |best, (i, &l)| if l > logits[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_score_follows_the_label_names() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let two = InsecureScore::for_labels(&names(&["LABEL_0", "LABEL_1"]));
        assert!((two.probability(&[0.0, 0.0]) - 0.5).abs() < 1e-6);
        assert!(two.probability(&[0.0, 3.0]) > 0.9);
        let one = InsecureScore::for_labels(&names(&["LABEL_0"]));
        assert!((one.probability(&[0.0]) - 0.5).abs() < 1e-6);
        let five = InsecureScore::for_labels(&names(&["overflow", "safe", "a", "b", "c"]));
        assert!(five.probability(&[0.0, 10.0, 0.0, 0.0, 0.0]) < 0.01);
    }

    #[test]
    fn a_prediction_is_the_first_maximum_and_fails_closed_on_nan() {
        let labels = Labels::new(&["LABEL_0".into(), "LABEL_1".into()]);
        let p = labels.prediction(0, &[1.0, 1.0], 5, false).unwrap();
        assert_eq!((p.label, p.label_name.as_str()), (0, "LABEL_0"));
        let p = labels.prediction(0, &[0.0, 2.0], 5, true).unwrap();
        assert_eq!((p.label, p.tokens, p.truncated), (1, 5, true));
        let error = labels
            .prediction(3, &[f32::NAN, 0.0], 5, false)
            .unwrap_err();
        assert!(
            matches!(error, Error::NonFiniteLogits { input: 3, .. }),
            "{error}"
        );
    }
}
