//! Whether the scores mean what they say: of the functions given probability 0.8,
//! are four in five insecure? The Brier score and the expected calibration error over
//! equal-width bins, binned as scikit-learn's `calibration_curve(strategy="uniform")`.

use super::curve::Scored;

/// Bins of the expected calibration error.
pub const CALIBRATION_BINS: usize = 15;

/// Mean squared difference between the insecure probability and the truth (1 for
/// insecure, 0 for secure): scikit-learn's `brier_score_loss`. 0 is perfect; always
/// answering 0.5 scores 0.25.
pub fn brier(data: &Scored) -> f64 {
    let sum: f64 = data
        .scores()
        .iter()
        .zip(data.insecure())
        .map(|(&s, &positive)| (s - f64::from(u8::from(positive))).powi(2))
        .sum();
    sum / data.len() as f64
}

/// One bin of the reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReliabilityBin {
    /// Lowest probability the bin holds (exclusive, but for the first bin).
    pub lower: f64,
    /// Highest probability the bin holds (inclusive).
    pub upper: f64,
    /// Examples in the bin.
    pub count: usize,
    /// Their mean insecure probability (0 for an empty bin).
    pub mean_probability: f64,
    /// The share of them that are insecure (0 for an empty bin).
    pub positive_rate: f64,
}

/// `bins` equal-width bins over [0, 1]: the first is [0, 1/bins], each next
/// (lower, upper], as `numpy.searchsorted` on the inner edges places a probability.
pub fn reliability_bins(data: &Scored, bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    // numpy.linspace(0, 1, bins + 1): edge k is k * (1 / bins), the last exactly 1.
    let step = 1.0 / bins as f64;
    let edge = |k: usize| if k == bins { 1.0 } else { k as f64 * step };
    let mut counts = vec![0usize; bins];
    let mut sums = vec![0.0f64; bins];
    let mut positives = vec![0usize; bins];
    for (&s, &positive) in data.scores().iter().zip(data.insecure()) {
        // Inner edges strictly below s.
        let bin = (1..bins).take_while(|&k| edge(k) < s).count();
        counts[bin] += 1;
        sums[bin] += s;
        positives[bin] += usize::from(positive);
    }
    (0..bins)
        .map(|k| ReliabilityBin {
            lower: edge(k),
            upper: edge(k + 1),
            count: counts[k],
            mean_probability: if counts[k] == 0 {
                0.0
            } else {
                sums[k] / counts[k] as f64
            },
            positive_rate: if counts[k] == 0 {
                0.0
            } else {
                positives[k] as f64 / counts[k] as f64
            },
        })
        .collect()
}

/// Expected calibration error over [`CALIBRATION_BINS`] equal-width bins: the sum over
/// bins of |mean probability - share insecure|, each weighted by the bin's share of the
/// examples. 0 is perfect.
pub fn expected_calibration_error(data: &Scored) -> f64 {
    reliability_bins(data, CALIBRATION_BINS)
        .iter()
        .map(|b| b.count as f64 / data.len() as f64 * (b.mean_probability - b.positive_rate).abs())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probability_on_an_edge_goes_to_the_lower_bin() {
        let data = Scored::new(&[0.0, 0.5, 0.5000001, 1.0], &[false, true, true, true]).unwrap();
        let bins = reliability_bins(&data, 2);
        assert_eq!(bins.iter().map(|b| b.count).collect::<Vec<_>>(), [2, 2]);
        assert_eq!(
            (bins[0].lower, bins[0].upper, bins[1].upper),
            (0.0, 0.5, 1.0)
        );
    }

    #[test]
    fn a_calibrated_constant_has_no_calibration_error() {
        let data = Scored::new(&[0.25; 4], &[true, false, false, false]).unwrap();
        assert!(expected_calibration_error(&data).abs() < 1e-15);
        assert!((brier(&data) - (0.75f64.powi(2) + 3.0 * 0.0625) / 4.0).abs() < 1e-15);
    }
}
