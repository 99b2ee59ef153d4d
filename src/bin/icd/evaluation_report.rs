//! What `icd evaluate` prints: one typed report, as a JSON object or a table.

use std::fmt::Write;

use insecure_code_detector::evaluation::{Metrics, OperatingPoint, Target};
use serde::Serialize;

/// The metrics of one labelled data set.
#[derive(Serialize)]
pub struct EvaluationReport {
    pub examples: usize,
    pub positives: usize,
    pub threshold: f64,
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub confusion_matrix: ConfusionMatrix,
    pub loss: f64,
    pub roc_auc: Option<f64>,
    pub pr_auc: Option<f64>,
    pub brier: f64,
    pub ece: f64,
    pub vd_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetPoint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predictions: Option<String>,
    /// The calibration the probabilities were read through (`--calibration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<String>,
}

#[derive(Serialize)]
pub struct ConfusionMatrix {
    pub true_positive: usize,
    pub false_positive: usize,
    pub true_negative: usize,
    pub false_negative: usize,
}

/// The threshold asked for with `--target-precision` or `--target-recall`: all
/// fields but the target are null when no threshold meets it.
#[derive(Serialize)]
pub struct TargetPoint {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision_at_least: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recall_at_least: Option<f64>,
    pub threshold: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub false_positive_rate: Option<f64>,
    pub flagged: Option<usize>,
}

impl TargetPoint {
    pub fn new(target: Target, point: Option<OperatingPoint>) -> TargetPoint {
        let (precision_at_least, recall_at_least) = match target {
            Target::Precision(p) => (Some(p), None),
            Target::Recall(r) => (None, Some(r)),
        };
        TargetPoint {
            precision_at_least,
            recall_at_least,
            threshold: point.map(|p| p.threshold),
            precision: point.map(|p| p.precision()),
            recall: point.map(|p| p.recall()),
            false_positive_rate: point.map(|p| p.false_positive_rate()),
            flagged: point.map(|p| p.confusion.true_positive + p.confusion.false_positive),
        }
    }
}

impl EvaluationReport {
    pub fn new(
        metrics: &Metrics,
        loss: f64,
        target: Option<TargetPoint>,
        predictions: Option<String>,
    ) -> EvaluationReport {
        let c = &metrics.confusion;
        EvaluationReport {
            examples: metrics.examples,
            positives: metrics.positives,
            threshold: metrics.threshold,
            accuracy: c.accuracy(),
            precision: c.precision(),
            recall: c.recall(),
            f1: c.f1(),
            confusion_matrix: ConfusionMatrix {
                true_positive: c.true_positive,
                false_positive: c.false_positive,
                true_negative: c.true_negative,
                false_negative: c.false_negative,
            },
            loss,
            roc_auc: metrics.roc_auc,
            pr_auc: metrics.pr_auc,
            brier: metrics.brier,
            ece: metrics.ece,
            vd_s: metrics.vd_s,
            target,
            predictions,
            calibration: None,
        }
    }

    pub fn to_json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(self)
    }

    /// The same numbers as the JSON, one a line, with what each means.
    pub fn to_table(&self) -> String {
        let number =
            |v: Option<f64>| v.map_or("n/a (one class only)".to_owned(), |v| format!("{v:.4}"));
        let c = &self.confusion_matrix;
        let mut out = String::new();
        let mut line = |name: &str, value: String, meaning: &str| {
            let _ = writeln!(out, "{name:<18}{value:<23} {meaning}");
        };
        line(
            "examples",
            format!("{} ({} insecure)", self.examples, self.positives),
            "",
        );
        line(
            "threshold",
            format!("{}", self.threshold),
            "flagged: probability at or above it",
        );
        if let Some(calibration) = &self.calibration {
            line(
                "calibration",
                calibration.clone(),
                "probabilities calibrated by it",
            );
        }
        line(
            "accuracy",
            format!("{:.4}", self.accuracy),
            "share decided right",
        );
        line(
            "precision",
            format!("{:.4}", self.precision),
            "share of flagged that are insecure",
        );
        line(
            "recall",
            format!("{:.4}", self.recall),
            "share of insecure that are flagged",
        );
        line(
            "f1",
            format!("{:.4}", self.f1),
            "harmonic mean of precision and recall",
        );
        line(
            "confusion",
            format!("TP {} FP {}", c.true_positive, c.false_positive),
            &format!("TN {} FN {}", c.true_negative, c.false_negative),
        );
        line(
            "loss",
            format!("{:.4}", self.loss),
            "mean loss, as transformers' outputs.loss",
        );
        line(
            "roc_auc",
            number(self.roc_auc),
            "chance an insecure one ranks above a secure one",
        );
        line(
            "pr_auc",
            number(self.pr_auc),
            "average precision over all thresholds",
        );
        line(
            "brier",
            format!("{:.4}", self.brier),
            "mean squared error of the probability",
        );
        line(
            "ece",
            format!("{:.4}", self.ece),
            "calibration error, 15 bins",
        );
        line(
            "vd_s",
            number(self.vd_s),
            "share of insecure missed at <= 0.5% false alarms",
        );
        if let Some(t) = &self.target {
            let (name, wanted) = match (t.precision_at_least, t.recall_at_least) {
                (Some(p), _) => ("target precision", p),
                (_, r) => ("target recall", r.unwrap_or_default()),
            };
            let value = match (t.threshold, t.precision, t.recall) {
                (Some(threshold), Some(p), Some(r)) => {
                    // In full: the value to pass as --threshold.
                    format!("{wanted}: threshold {threshold} (precision {p:.4}, recall {r:.4})")
                }
                _ => format!("{wanted}: no threshold meets it on this data"),
            };
            line(name, value, "");
        }
        if let Some(predictions) = &self.predictions {
            line("predictions", predictions.clone(), "");
        }
        out.lines()
            .map(|l| l.trim_end().to_owned() + "\n")
            .collect()
    }
}
