//! Where to put the threshold: the one that meets a precision or recall target on
//! labelled data, and PrimeVul's VD-S, the misses left at a false-alarm budget.

use super::curve::{Confusion, Scored};
use crate::{Error, Result};

/// The false-positive-rate budget of VD-S: 0.5%.
pub const VD_S_FALSE_POSITIVE_RATE: f64 = 0.005;

/// What flagging every example scoring at or above `threshold` gives on the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperatingPoint {
    /// The lowest insecure probability flagged (one of the data's scores).
    pub threshold: f64,
    /// The decisions it makes, against the truth.
    pub confusion: Confusion,
}

impl OperatingPoint {
    /// Share of flagged examples that are insecure.
    pub fn precision(&self) -> f64 {
        self.confusion.precision()
    }

    /// Share of insecure examples flagged.
    pub fn recall(&self) -> f64 {
        self.confusion.recall()
    }

    /// Share of secure examples flagged.
    pub fn false_positive_rate(&self) -> f64 {
        self.confusion.false_positive_rate()
    }
}

/// What a threshold is chosen to meet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Precision at or above this, with the most recall (then the most precision).
    Precision(f64),
    /// Recall at or above this, with the most precision (then the most recall).
    Recall(f64),
}

impl Target {
    /// Fails unless the target is in (0, 1].
    fn check(self) -> Result<f64> {
        let (argument, value) = match self {
            Target::Precision(p) => ("target_precision", p),
            Target::Recall(r) => ("target_recall", r),
        };
        if value > 0.0 && value <= 1.0 {
            Ok(value)
        } else {
            Err(Error::InvalidArgument {
                argument,
                message: format!("is {value}, expected a share in (0, 1]"),
            })
        }
    }
}

/// Every threshold the data can tell apart (each distinct score), with what it gives.
pub fn operating_points(data: &Scored) -> Vec<OperatingPoint> {
    let (positives, negatives) = (data.positive_count(), data.negative_count());
    data.curve()
        .into_iter()
        .map(|p| OperatingPoint {
            threshold: p.threshold,
            confusion: Confusion {
                true_positive: p.true_positives,
                false_positive: p.false_positives,
                false_negative: positives - p.true_positives,
                true_negative: negatives - p.false_positives,
            },
        })
        .collect()
}

/// The threshold that meets `target` on the data, or `None` when none does. Among the
/// thresholds meeting a precision target, the one with the most recall wins (ties: the
/// most precision, which is the higher threshold); for a recall target, the most
/// precision (ties: the most recall, the lower threshold).
pub fn threshold_for(data: &Scored, target: Target) -> Result<Option<OperatingPoint>> {
    let wanted = target.check()?;
    let key = |p: &OperatingPoint| match target {
        Target::Precision(_) => (p.recall(), p.precision()),
        Target::Recall(_) => (p.precision(), p.recall()),
    };
    let mut best: Option<OperatingPoint> = None;
    for point in operating_points(data) {
        let meets = match target {
            Target::Precision(_) => point.precision() >= wanted,
            Target::Recall(_) => point.recall() >= wanted,
        };
        if meets && best.is_none_or(|b| key(&point) > key(&b)) {
            best = Some(point);
        }
    }
    Ok(best)
}

/// PrimeVul's VD-S: the lowest false-negative rate over the thresholds whose
/// false-positive rate is at most 0.5% (flagging nothing counts, at a rate of 1).
/// `None` when the data hold one class only.
pub fn vd_s(data: &Scored) -> Option<f64> {
    if data.positive_count() == 0 || data.negative_count() == 0 {
        return None;
    }
    let best_recall = operating_points(data)
        .iter()
        .filter(|p| p.false_positive_rate() <= VD_S_FALSE_POSITIVE_RATE)
        .map(|p| p.recall())
        .fold(0.0, f64::max);
    Some(1.0 - best_recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every threshold tried, kept by the same rule: the reference `threshold_for` is
    /// held to.
    fn brute_force(scores: &[f64], positives: &[bool], target: Target) -> Option<f64> {
        let data = Scored::new(scores, positives).unwrap();
        let mut best: Option<(f64, (f64, f64))> = None;
        for &t in scores {
            let c = data.confusion_at(t);
            let (meets, key) = match target {
                Target::Precision(p) => (c.precision() >= p, (c.recall(), c.precision())),
                Target::Recall(r) => (c.recall() >= r, (c.precision(), c.recall())),
            };
            // Equal keys mean equal counts, so the same distinct score: strict `>`.
            if meets && best.is_none_or(|(_, bk)| key > bk) {
                best = Some((t, key));
            }
        }
        best.map(|(t, _)| t)
    }

    #[test]
    fn the_chosen_threshold_is_the_brute_force_one() {
        // A pseudo-random set with ties, from a fixed linear congruential sequence.
        let mut state = 12345u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as f64 / (1u64 << 31) as f64
        };
        let mut scores = Vec::new();
        let mut positives = Vec::new();
        for _ in 0..300 {
            let s = (next() * 40.0).floor() / 40.0;
            scores.push(s);
            positives.push(next() < 0.2 + 0.6 * s);
        }
        let data = Scored::new(&scores, &positives).unwrap();
        for target in [0.3, 0.5, 0.6, 0.75, 0.9, 1.0] {
            for t in [Target::Precision(target), Target::Recall(target)] {
                let chosen = threshold_for(&data, t).unwrap().map(|p| p.threshold);
                assert_eq!(chosen, brute_force(&scores, &positives, t), "{t:?}");
                if let Some(point) = threshold_for(&data, t).unwrap() {
                    assert_eq!(point.confusion, data.confusion_at(point.threshold));
                }
            }
        }
    }

    #[test]
    fn a_target_out_of_range_is_refused() {
        let data = Scored::new(&[0.1, 0.9], &[false, true]).unwrap();
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            let err = threshold_for(&data, Target::Recall(bad)).unwrap_err();
            assert!(err.to_string().contains("target_recall"), "{err}");
        }
    }

    #[test]
    fn vd_s_is_the_misses_left_within_the_false_alarm_budget() {
        // 1 negative in 300 may be flagged (0.33% <= 0.5%), 2 may not.
        let mut scores = vec![0.1; 300];
        let mut positives = vec![false; 300];
        scores[0] = 0.95; // a negative above every positive
        scores[1] = 0.9;
        scores.extend([0.99, 0.92, 0.5, 0.2]);
        positives.extend([true, true, true, true]);
        let data = Scored::new(&scores, &positives).unwrap();
        // At 0.92: one negative flagged, two of four positives found.
        assert_eq!(vd_s(&data), Some(0.5));
        assert_eq!(vd_s(&Scored::new(&[0.3], &[true]).unwrap()), None);
        // Exactly at the budget: 1 negative in 200 is 0.5%, which is allowed, so the
        // threshold 0.8 finds both positives (`<` would stop at 0.95, missing half).
        let mut scores = vec![0.1; 200];
        scores[0] = 0.9;
        scores.extend([0.95, 0.8]);
        let mut positives = vec![false; 200];
        positives.extend([true, true]);
        let data = Scored::new(&scores, &positives).unwrap();
        assert_eq!(vd_s(&data), Some(0.0));
    }
}
