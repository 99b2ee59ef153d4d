//! The counts every ranking metric is read from: for each distinct score, from the
//! highest down, how many positives and negatives score at or above it (scikit-learn's
//! `_binary_clf_curve`).

use crate::{Error, Result};

/// Scores paired with whether each example is positive (insecure), checked once.
#[derive(Debug, Clone, Copy)]
pub struct Scored<'a> {
    scores: &'a [f64],
    positives: &'a [bool],
}

impl<'a> Scored<'a> {
    /// `scores[i]` is example `i`'s insecure probability, `positives[i]` whether it is
    /// insecure. Fails when the lengths differ, there are no examples, or a score is
    /// not a probability (NaN and values outside [0, 1] included), naming the index.
    pub fn new(scores: &'a [f64], positives: &'a [bool]) -> Result<Self> {
        if scores.len() != positives.len() {
            return Err(Error::InvalidArgument {
                argument: "positives",
                message: format!("has {} values for {} scores", positives.len(), scores.len()),
            });
        }
        if scores.is_empty() {
            return Err(Error::InvalidArgument {
                argument: "scores",
                message: "is empty: metrics need at least one example".into(),
            });
        }
        if let Some(i) = scores.iter().position(|s| !(0.0..=1.0).contains(s)) {
            return Err(Error::InvalidArgument {
                argument: "scores",
                message: format!("scores[{i}] is {}, not a probability in [0, 1]", scores[i]),
            });
        }
        Ok(Self { scores, positives })
    }

    /// The scores.
    pub fn scores(&self) -> &'a [f64] {
        self.scores
    }

    /// Whether each example is insecure.
    pub fn insecure(&self) -> &'a [bool] {
        self.positives
    }

    /// Examples.
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Always false: a `Scored` holds at least one example.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Positive examples.
    pub fn positive_count(&self) -> usize {
        self.positives.iter().filter(|&&p| p).count()
    }

    /// Negative examples.
    pub fn negative_count(&self) -> usize {
        self.len() - self.positive_count()
    }

    /// One point per distinct score, highest first.
    pub(crate) fn curve(&self) -> Vec<CurvePoint> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by(|&a, &b| self.scores[b].total_cmp(&self.scores[a]));
        let mut points: Vec<CurvePoint> = Vec::new();
        let (mut true_positives, mut false_positives) = (0, 0);
        for (rank, &i) in order.iter().enumerate() {
            if self.positives[i] {
                true_positives += 1;
            } else {
                false_positives += 1;
            }
            // A point closes where the next score is lower: tied scores are one
            // threshold, so ties never order positives before negatives.
            let last_of_tie = order
                .get(rank + 1)
                .is_none_or(|&next| self.scores[next] != self.scores[i]);
            if last_of_tie {
                points.push(CurvePoint {
                    threshold: self.scores[i],
                    true_positives,
                    false_positives,
                });
            }
        }
        points
    }

    /// The confusion matrix of flagging every example scoring at or above `threshold`.
    pub fn confusion_at(&self, threshold: f64) -> Confusion {
        let mut c = Confusion::default();
        for (&s, &positive) in self.scores.iter().zip(self.positives) {
            match (s >= threshold, positive) {
                (true, true) => c.true_positive += 1,
                (true, false) => c.false_positive += 1,
                (false, true) => c.false_negative += 1,
                (false, false) => c.true_negative += 1,
            }
        }
        c
    }
}

/// The examples scoring at or above `threshold`, counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct CurvePoint {
    pub threshold: f64,
    pub true_positives: usize,
    pub false_positives: usize,
}

/// Counts of a binary decision against the truth, insecure being positive.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Confusion {
    /// Insecure and flagged.
    pub true_positive: usize,
    /// Secure but flagged: a false alarm.
    pub false_positive: usize,
    /// Secure and not flagged.
    pub true_negative: usize,
    /// Insecure but not flagged: a miss.
    pub false_negative: usize,
}

impl Confusion {
    /// Examples counted.
    pub fn total(&self) -> usize {
        self.true_positive + self.false_positive + self.true_negative + self.false_negative
    }

    /// Share of examples decided right.
    pub fn accuracy(&self) -> f64 {
        ratio(self.true_positive + self.true_negative, self.total())
    }

    /// Share of flagged examples that are insecure (0 when none is flagged, as
    /// scikit-learn's `zero_division` default).
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// Share of insecure examples flagged (0 when there are none).
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    /// Share of secure examples flagged (0 when there are none).
    pub fn false_positive_rate(&self) -> f64 {
        ratio(
            self.false_positive,
            self.false_positive + self.true_negative,
        )
    }

    /// Harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

pub(crate) fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}
