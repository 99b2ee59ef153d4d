//! How good the verdicts are on labelled data, with the definitions security teams
//! meet in scikit-learn and PrimeVul: the loss transformers trains on, metrics that
//! rank (ROC AUC, average precision), metrics of calibration (Brier score, expected
//! calibration error), and operating points (the threshold for a precision or recall
//! target, VD-S).
//!
//! ```
//! use insecure_code_detector::evaluation::{Scored, Metrics};
//! let scores = [0.9, 0.7, 0.4, 0.2];
//! let insecure = [true, false, true, false];
//! let metrics = Metrics::of(&Scored::new(&scores, &insecure)?, 0.5);
//! assert_eq!(metrics.roc_auc, Some(0.75));
//! assert_eq!(metrics.confusion.true_positive, 1);
//! # Ok::<(), insecure_code_detector::Error>(())
//! ```

mod curve;
mod loss;
mod operating_point;
mod ranking;
mod reliability;

pub use curve::{Confusion, Scored};
pub use loss::{check_label, label_range, loss, ProblemType};
pub use operating_point::{
    operating_points, threshold_for, vd_s, OperatingPoint, Target, VD_S_FALSE_POSITIVE_RATE,
};
pub use ranking::{average_precision, precision_recall_curve, roc_auc, PrecisionRecall};
pub use reliability::{
    brier, expected_calibration_error, reliability_bins, ReliabilityBin, CALIBRATION_BINS,
};

use crate::calibration::{fit_platt, fit_temperature, Calibration, Fit};
use crate::detector::InsecureScore;
use crate::{Prediction, Result, RobertaConfig};

/// Every metric of insecure probabilities against the truth, at one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    /// Examples.
    pub examples: usize,
    /// Insecure examples among them.
    pub positives: usize,
    /// The threshold the confusion matrix flags at (probability at or above it).
    pub threshold: f64,
    /// Decisions at `threshold` against the truth; accuracy, precision, recall and F1
    /// are read off it.
    pub confusion: Confusion,
    /// Area under the ROC curve ([`roc_auc`]); `None` with one class only.
    pub roc_auc: Option<f64>,
    /// Average precision ([`average_precision`]); `None` with no insecure example.
    pub pr_auc: Option<f64>,
    /// Brier score ([`brier`]).
    pub brier: f64,
    /// Expected calibration error over 15 bins ([`expected_calibration_error`]).
    pub ece: f64,
    /// PrimeVul's VD-S ([`vd_s`]); `None` with one class only.
    pub vd_s: Option<f64>,
}

impl Metrics {
    /// The metrics of `data`, its confusion matrix taken at `threshold`.
    pub fn of(data: &Scored, threshold: f64) -> Metrics {
        Metrics {
            examples: data.len(),
            positives: data.positive_count(),
            threshold,
            confusion: data.confusion_at(threshold),
            roc_auc: roc_auc(data),
            pr_auc: average_precision(data),
            brier: brier(data),
            ece: expected_calibration_error(data),
            vd_s: vd_s(data),
        }
    }
}

/// Predictions gathered with their labels, for the metrics and the mean loss of a
/// labelled data set.
///
/// ```
/// # fn main() -> insecure_code_detector::Result<()> {
/// # let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/roberta-2-labels");
/// use insecure_code_detector::{evaluation::Evaluation, Detector};
/// let detector = Detector::from_pretrained(&dir)?;
/// let mut evaluation = Evaluation::new(detector.config())?;
/// for (code, label) in [("int f(void) { return 0; }", 0), ("void g(char *s) { gets(s); }", 1)] {
///     evaluation.push(&detector.predict(code)?, label)?;
/// }
/// println!("loss {:.4}, ROC AUC {:?}", evaluation.mean_loss(), evaluation.metrics(0.5)?.roc_auc);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Evaluation {
    problem: ProblemType,
    num_labels: usize,
    insecure: InsecureScore,
    scores: Vec<f64>,
    positives: Vec<bool>,
    logits: Vec<Vec<f32>>,
    labels: Vec<usize>,
    loss_sum: f64,
}

impl Evaluation {
    /// An empty evaluation for the checkpoint configured by `config`.
    /// Fails for a checkpoint whose problem type has no loss against one class index
    /// per example ([`ProblemType::check`]).
    pub fn new(config: &RobertaConfig) -> Result<Evaluation> {
        let problem = ProblemType::of(config)?;
        problem.check(config.num_labels)?;
        Ok(Evaluation {
            problem,
            num_labels: config.num_labels,
            insecure: InsecureScore::for_labels(&config.id2label),
            scores: Vec::new(),
            positives: Vec::new(),
            logits: Vec::new(),
            labels: Vec::new(),
            loss_sum: 0.0,
        })
    }

    /// Whether an example labelled `label` is insecure for this checkpoint (label 1 of
    /// two, the one named insecure, or any but the safe one of more); fails for a
    /// label the checkpoint does not have.
    pub fn is_insecure_label(&self, label: usize) -> Result<bool> {
        check_label(self.num_labels, label)?;
        Ok(self.insecure.is_insecure(label))
    }

    /// Adds `prediction` of an example labelled `label`, returning its loss.
    pub fn push(&mut self, prediction: &Prediction, label: usize) -> Result<f64> {
        let insecure = self.is_insecure_label(label)?;
        let loss = loss(self.problem, &prediction.logits, label)?;
        self.scores.push(f64::from(prediction.insecure_probability));
        self.positives.push(insecure);
        self.logits.push(prediction.logits.clone());
        self.labels.push(label);
        self.loss_sum += loss;
        Ok(loss)
    }

    /// The calibration that maximises the likelihood of the labels: Platt scaling of
    /// the log-odds for one or two labels (of insecure against secure), temperature
    /// scaling of the logits for more (of the labels themselves). Fitted on the model's
    /// logits, whatever calibration made the pushed predictions' probabilities.
    pub fn fit_calibration(&self) -> Result<Fit> {
        if self.num_labels <= 2 {
            let log_odds: Vec<f64> = self.logits.iter().map(|l| self.insecure.log_odds(l)).collect();
            fit_platt(&log_odds, &self.positives)
        } else {
            fit_temperature(&self.logits, &self.labels)
        }
    }

    /// This evaluation with every insecure probability recomputed under `calibration`
    /// (`None`: the model's own); the logits, labels and loss are unchanged.
    pub fn recalibrated(&self, calibration: Option<&Calibration>) -> Result<Evaluation> {
        if let Some(c) = calibration {
            c.check(self.num_labels)?;
        }
        let mut out = self.clone();
        out.scores = self
            .logits
            .iter()
            .map(|l| f64::from(self.insecure.calibrated(l, calibration)))
            .collect();
        Ok(out)
    }

    /// Examples added.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The mean loss, as transformers' `outputs.loss` over them as one batch (0 when
    /// empty).
    pub fn mean_loss(&self) -> f64 {
        if self.scores.is_empty() {
            0.0
        } else {
            self.loss_sum / self.scores.len() as f64
        }
    }

    /// The insecure probabilities with the truth, for the functions of this module.
    pub fn scored(&self) -> Result<Scored<'_>> {
        Scored::new(&self.scores, &self.positives)
    }

    /// Every metric, the confusion matrix at `threshold`.
    pub fn metrics(&self, threshold: f64) -> Result<Metrics> {
        Ok(Metrics::of(&self.scored()?, threshold))
    }
}
