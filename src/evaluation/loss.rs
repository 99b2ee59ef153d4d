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
    /// Each label a yes/no (binary cross-entropy of each logit's sigmoid): no loss
    /// against one class index, so not evaluated here.
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

impl ProblemType {
    /// Fails unless a checkpoint of `num_labels` labels trained for this problem type
    /// has a loss against one class index per example: regression needs one logit,
    /// single-label classification two or more, and a multi-label checkpoint takes a
    /// yes/no per label rather than a class index (transformers refuses class indices
    /// there too).
    pub fn check(self, num_labels: usize) -> Result<()> {
        let message = match self {
            ProblemType::Regression if num_labels != 1 => format!(
                "regression with {num_labels} logits takes one target per logit, not a class \
                 index"
            ),
            ProblemType::SingleLabelClassification if num_labels < 2 => {
                "single-label classification with one logit has no class to choose".into()
            }
            ProblemType::MultiLabelClassification => {
                "a multi-label checkpoint takes a yes/no per label, not one class index".into()
            }
            _ => return Ok(()),
        };
        Err(Error::InvalidArgument {
            argument: "problem_type",
            message,
        })
    }
}

/// The labels a checkpoint of `num_labels` labels takes as class indices: 0 to
/// `num_labels - 1`, and 0 or 1 for a one-logit checkpoint (its regression target).
pub fn check_label(num_labels: usize, label: usize) -> Result<()> {
    let labels = num_labels.max(2);
    if label < labels {
        Ok(())
    } else {
        Err(Error::InvalidArgument {
            argument: "label",
            message: format!("is {label}, expected {}", label_range(num_labels)),
        })
    }
}

/// The class indices a checkpoint of `num_labels` labels takes, in words.
pub fn label_range(num_labels: usize) -> String {
    match num_labels {
        0..=2 => "0 or 1".into(),
        n => format!("0 to {}", n - 1),
    }
}

/// The loss of one example whose logits are `logits` against `label`, computed as
/// transformers computes it for `problem` (in f64: the mean of many stays exact).
/// Fails where `problem` has no loss for a class index ([`ProblemType::check`]).
pub fn loss(problem: ProblemType, logits: &[f32], label: usize) -> Result<f64> {
    problem.check(logits.len())?;
    check_label(logits.len(), label)?;
    if logits.iter().any(|l| !l.is_finite()) {
        return Err(Error::InvalidArgument {
            argument: "logits",
            message: format!("{logits:?} are not all finite"),
        });
    }
    let logits: Vec<f64> = logits.iter().map(|&l| f64::from(l)).collect();
    Ok(match problem {
        ProblemType::Regression => (logits[0] - label as f64).powi(2),
        _ => {
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let log_sum_exp = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            log_sum_exp - logits[label]
        }
    })
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
    fn problem_types_without_a_class_index_loss_are_refused() {
        for (problem, logits) in [
            (ProblemType::MultiLabelClassification, &[0.3f32, -0.2][..]),
            (ProblemType::SingleLabelClassification, &[0.3][..]),
            (ProblemType::Regression, &[0.3, -0.2][..]),
        ] {
            let err = loss(problem, logits, 0).unwrap_err();
            assert!(err.to_string().contains("problem_type"), "{problem:?}: {err}");
        }
    }

    #[test]
    fn a_label_outside_the_checkpoint_is_refused_by_name() {
        let err = loss(ProblemType::SingleLabelClassification, &[0.0, 1.0], 2).unwrap_err();
        assert!(err.to_string().contains("`label`: is 2, expected 0 or 1"), "{err}");
        let err = loss(ProblemType::Regression, &[0.5], 2).unwrap_err();
        assert!(err.to_string().contains("0 or 1"), "{err}");
    }
}
