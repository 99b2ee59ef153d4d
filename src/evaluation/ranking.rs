//! How well the scores rank insecure functions above secure ones, at every threshold at
//! once: the area under the ROC curve and average precision, as scikit-learn defines
//! them (`roc_auc_score`, `average_precision_score`).

use super::curve::{ratio, Scored};

/// Area under the ROC curve (true-positive rate against false-positive rate, the
/// trapezoidal rule through every distinct score): the chance that a random insecure
/// function scores above a random secure one, ties counting half. `None` when the data
/// hold one class only (scikit-learn warns and returns NaN).
pub fn roc_auc(data: &Scored) -> Option<f64> {
    let (positives, negatives) = (data.positive_count(), data.negative_count());
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut area = 0.0;
    let (mut fpr, mut tpr) = (0.0, 0.0);
    for point in data.curve() {
        let next_fpr = ratio(point.false_positives, negatives);
        let next_tpr = ratio(point.true_positives, positives);
        area += (next_fpr - fpr) * (tpr + next_tpr) / 2.0;
        (fpr, tpr) = (next_fpr, next_tpr);
    }
    Some(area)
}

/// Average precision, the area under the precision-recall curve as scikit-learn
/// computes it: the precision at each distinct score weighted by the recall it adds,
/// with no interpolation. `None` when no example is positive (scikit-learn warns and
/// returns 0).
pub fn average_precision(data: &Scored) -> Option<f64> {
    let positives = data.positive_count();
    if positives == 0 {
        return None;
    }
    let mut sum = 0.0;
    let mut recall = 0.0;
    for point in data.curve() {
        let next_recall = ratio(point.true_positives, positives);
        let precision = ratio(
            point.true_positives,
            point.true_positives + point.false_positives,
        );
        sum += (next_recall - recall) * precision;
        recall = next_recall;
    }
    Some(sum)
}

/// One point of the precision-recall curve: flagging what scores at or above
/// `threshold` has this precision and recall.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrecisionRecall {
    /// The lowest score flagged.
    pub threshold: f64,
    /// Share of flagged examples that are insecure.
    pub precision: f64,
    /// Share of insecure examples flagged.
    pub recall: f64,
}

/// The precision-recall curve, one point per distinct score, highest threshold first
/// (empty when no example is positive).
pub fn precision_recall_curve(data: &Scored) -> Vec<PrecisionRecall> {
    let positives = data.positive_count();
    if positives == 0 {
        return Vec::new();
    }
    data.curve()
        .into_iter()
        .map(|p| PrecisionRecall {
            threshold: p.threshold,
            precision: ratio(p.true_positives, p.true_positives + p.false_positives),
            recall: ratio(p.true_positives, positives),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_ranking_has_area_one_and_a_reversed_one_zero() {
        let scores = [0.9, 0.8, 0.3, 0.1];
        let perfect = Scored::new(&scores, &[true, true, false, false]).unwrap();
        assert_eq!(roc_auc(&perfect), Some(1.0));
        assert_eq!(average_precision(&perfect), Some(1.0));
        let reversed = Scored::new(&scores, &[false, false, true, true]).unwrap();
        assert_eq!(roc_auc(&reversed), Some(0.0));
        // Precision 1/3 at the first positive, 2/4 at the second.
        assert!((average_precision(&reversed).unwrap() - (0.5 / 3.0 + 0.25)).abs() < 1e-12);
    }

    #[test]
    fn tied_scores_count_half() {
        let tied = Scored::new(&[0.5, 0.5], &[true, false]).unwrap();
        assert_eq!(roc_auc(&tied), Some(0.5));
        assert_eq!(average_precision(&tied), Some(0.5));
    }

    #[test]
    fn one_class_has_no_area() {
        let negatives = Scored::new(&[0.2, 0.7], &[false, false]).unwrap();
        assert_eq!(roc_auc(&negatives), None);
        assert_eq!(average_precision(&negatives), None);
        let positives = Scored::new(&[0.2, 0.7], &[true, true]).unwrap();
        assert_eq!(roc_auc(&positives), None);
        assert_eq!(average_precision(&positives), Some(1.0));
    }
}
