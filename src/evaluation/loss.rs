//! The loss of a prediction against a label, as transformers'
//! `RobertaForSequenceClassification(..., labels=...)` computes `outputs.loss`.

use crate::{Error, Result, RobertaConfig};

/// How transformers reads a label, from the checkpoint's `problem_type` (or, where the
/// config has none, from its label count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    /// One logit regressed onto the label: mean squared error. transformers' default for
    /// a one-label checkpoint.
    Regression,
    /// One class per example: cross-entropy of the softmax. The default for two or more
    /// labels with class-index labels, as CodeXGLUE's.
    SingleLabelClassification,
    /// Each label a yes/no: binary cross-entropy of each logit's sigmoid, averaged over
    /// the labels; a class index stands for its one-hot vector.
    MultiLabelClassification,
}

impl ProblemType {
    /// The problem type transformers trains `config`'s checkpoint for.
    pub fn of(config: &RobertaConfig) -> Result<ProblemType> {
        match config.problem_type.as_deref() {
            None if config.num_labels == 1 => Ok(ProblemType::Regression),
            None => Ok(ProblemType::SingleLabelClassification),
            Some("regression") => Ok(ProblemType::Regression),
            Some("single_label_classification") => Ok(ProblemType::SingleLabelClassification),
            Some("multi_label_classification") => Ok(ProblemType::MultiLabelClassification),
            Some(other) => Err(Error::InvalidArgument {
                argument: "problem_type",
                message: format!(
                    "is {other:?}, expected one of {}",
                    crate::config::PROBLEM_TYPES.join(", ")
                ),
            }),
        }
    }
}

/// The labels a checkpoint of `num_labels` labels takes: class indices, and 0 or 1 for
/// a one-label checkpoint (its logit regressed onto the label).
pub fn check_label(num_labels: usize, label: usize) -> Result<()> {
    let labels = num_labels.max(2);
    if label < labels {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            argument: "label",
            message: format!(
                "is {label}, but the checkpoint's labels are 0 to {} ({num_labels} label{})",
                labels - 1,
                if num_labels == 1 {
                    ", read as 0 or 1"
                } else {
                    "s"
                }
            ),
        })
    }
}

/// The loss of one example whose logits are `logits` against `label`, computed as
/// transformers computes it for `problem` (in f64: the mean of many stays exact).
pub fn loss(problem: ProblemType, logits: &[f32], label: usize) -> Result<f64> {
    check_label(logits.len(), label)?;
    if logits.iter().any(|l| !l.is_finite()) {
        return Err(Error::InvalidArgument {
            argument: "logits",
            message: format!("{logits:?} are not all finite"),
        });
    }
    let logits: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
    match problem {
        ProblemType::Regression if logits.len() == 1 => Ok((logits[0] - label as f64).powi(2)),
        ProblemType::Regression => Err(Error::InvalidArgument {
            argument: "label",
            message: format!(
                "a regression checkpoint with {} logits takes one target per logit, not a \
                 class index",
                logits.len()
            ),
        }),
        ProblemType::SingleLabelClassification => {
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum_exp = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            Ok(log_sum_exp - logits[label])
        }
        ProblemType::MultiLabelClassification => {
            // BCEWithLogits, stable form: max(x, 0) - x * y + ln(1 + e^-|x|).
            let sum: f64 = logits
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    let y = f64::from(u8::from(i == label));
                    x.max(0.0) - x * y + (-x.abs()).exp().ln_1p()
                })
                .sum();
            Ok(sum / logits.len() as f64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_entropy_of_equal_logits_is_ln_of_the_label_count() {
        let l = loss(ProblemType::SingleLabelClassification, &[0.0; 5], 3).unwrap();
        assert!((l - 5f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn regression_is_the_squared_error() {
        assert_eq!(loss(ProblemType::Regression, &[0.25], 1).unwrap(), 0.5625);
    }

    #[test]
    fn binary_cross_entropy_averages_over_the_labels() {
        // At logit 0 each label's sigmoid is 0.5: ln 2 whatever the target.
        let l = loss(ProblemType::MultiLabelClassification, &[0.0, 0.0], 1).unwrap();
        assert!((l - 2f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn a_label_outside_the_checkpoint_is_refused_by_name() {
        let err = loss(ProblemType::SingleLabelClassification, &[0.0, 1.0], 2).unwrap_err();
        assert!(err.to_string().contains("`label`: is 2"), "{err}");
        let err = loss(ProblemType::Regression, &[0.5], 2).unwrap_err();
        assert!(err.to_string().contains("0 or 1"), "{err}");
    }
}
