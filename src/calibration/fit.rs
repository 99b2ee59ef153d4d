//! Maximum-likelihood fits of the calibrations: Newton's method with a backtracking
//! line search on objectives that are convex in the parameters fitted.

use super::{sigmoid, Calibration};
use crate::{Error, Result};

/// A calibration fitted, with the mean negative log-likelihood it reaches on the data
/// (the objective: binary log-loss for Platt, cross-entropy for temperature).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// The calibration.
    pub calibration: Calibration,
    /// Mean negative log-likelihood at the fit.
    pub loss: f64,
    /// Mean negative log-likelihood of the uncalibrated scores (a = 1, b = 0, or T = 1).
    pub loss_before: f64,
}

const MAX_ITERATIONS: usize = 200;

fn refuse(message: String) -> Error {
    Error::InvalidArgument {
        argument: "calibration data",
        message,
    }
}

/// ln(1 + e^z), without overflow.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + (-z.abs()).exp().ln_1p()
}

/// Platt scaling: the a and b that maximise the likelihood of `positives` under
/// sigmoid(a * log_odds + b), as an unregularised logistic regression on the one
/// feature `log_odds`. Refused for data of one class, and where the classes are
/// separable (no finite maximum).
pub fn fit_platt(log_odds: &[f64], positives: &[bool]) -> Result<Fit> {
    if log_odds.len() != positives.len() {
        return Err(refuse(format!(
            "{} scores for {} labels",
            log_odds.len(),
            positives.len()
        )));
    }
    if let Some(i) = log_odds.iter().position(|x| !x.is_finite()) {
        return Err(refuse(format!(
            "row {i}: the log-odds {} are not finite",
            log_odds[i]
        )));
    }
    let n_pos = positives.iter().filter(|&&p| p).count();
    if n_pos == 0 || n_pos == positives.len() {
        return Err(refuse(format!(
            "all {} rows are {}: a fit needs insecure and secure rows",
            positives.len(),
            if n_pos == 0 { "secure" } else { "insecure" }
        )));
    }
    // One feature with an intercept has a finite maximum exactly when the classes
    // overlap: else the likelihood rises forever as the slope grows.
    let range = |class: bool| {
        log_odds
            .iter()
            .zip(positives)
            .filter(|&(_, &y)| y == class)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (&x, _)| {
                (lo.min(x), hi.max(x))
            })
    };
    let ((pos_lo, pos_hi), (neg_lo, neg_hi)) = (range(true), range(false));
    if log_odds.iter().all(|&x| x == log_odds[0]) {
        return Err(refuse(format!(
            "every row has the same score ({}): there is no slope to fit",
            log_odds[0]
        )));
    }
    if neg_hi <= pos_lo || pos_hi <= neg_lo {
        return Err(refuse(format!(
            "the scores separate the classes (insecure log-odds {pos_lo}..{pos_hi}, secure \
             {neg_lo}..{neg_hi}): Platt scaling has no finite fit, and any threshold between \
             them is exact on this data"
        )));
    }
    let n = log_odds.len() as f64;
    let mean = log_odds.iter().sum::<f64>() / n;
    let sd = (log_odds.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    // Newton's method on the standardised feature (x - mean) / sd, from zero as
    // scikit-learn's newton-cholesky starts: every sigmoid starts at 1/2, so no
    // scale of the log-odds saturates the first steps.
    let feature: Vec<f64> = log_odds.iter().map(|x| (x - mean) / sd).collect();
    let loss = |a: f64, b: f64| {
        feature
            .iter()
            .zip(positives)
            .map(|(&x, &y)| {
                let z = a * x + b;
                softplus(z) - if y { z } else { 0.0 }
            })
            .sum::<f64>()
            / n
    };
    // The model's own probabilities: a = 1, b = 0 on the log-odds.
    let loss_before = loss(sd, mean);
    let (mut a, mut b) = (0.0, 0.0);
    let mut current = loss(a, b);
    let finish = |a: f64, b: f64, loss: f64| -> Result<Fit> {
        // Back to the log-odds: a x' + b = (a / sd) x + (b - a mean / sd).
        let (slope, intercept) = (a / sd, b - a * mean / sd);
        if slope <= 0.0 {
            return Err(refuse(format!(
                "the best fit reverses the model's ranking (a = {slope}): on this data it \
                 scores secure functions above insecure ones, and a calibration would invert \
                 its verdicts"
            )));
        }
        Ok(Fit {
            calibration: Calibration::Platt {
                a: slope,
                b: intercept,
            },
            loss,
            loss_before,
        })
    };
    for _ in 0..MAX_ITERATIONS {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in feature.iter().zip(positives) {
            let p = sigmoid(a * x + b);
            let r = p - f64::from(u8::from(y));
            let w = p * (1.0 - p);
            ga += r * x;
            gb += r;
            haa += w * x * x;
            hab += w * x;
            hbb += w;
        }
        let (ga, gb, haa, hab, hbb) = (ga / n, gb / n, haa / n, hab / n, hbb / n);
        if ga.abs().max(gb.abs()) < 1e-13 {
            return finish(a, b, current);
        }
        let det = haa * hbb - hab * hab;
        if !(det > 0.0) {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        let mut step = 1.0;
        loop {
            let (na, nb) = (a - step * da, b - step * db);
            let next = loss(na, nb);
            if next <= current || step < 1e-10 {
                if (na - a).abs() + (nb - b).abs() < 1e-15 * (1.0 + a.abs() + b.abs()) {
                    return finish(na, nb, next.min(current));
                }
                (a, b, current) = (na, nb, next);
                break;
            }
            step /= 2.0;
        }
    }
    Err(refuse(format!(
        "Platt scaling found no maximum in {MAX_ITERATIONS} steps (a = {a}, b = {b} on the \
         standardised log-odds)"
    )))
}

/// Temperature scaling: the T that maximises the likelihood of `labels` under
/// softmax(logits / T). The objective is convex in 1/T, which is fitted. Refused for
/// data of one class, and where the logits rank the labels worse than chance (no
/// positive T).
pub fn fit_temperature(logits: &[Vec<f32>], labels: &[usize]) -> Result<Fit> {
    if logits.len() != labels.len() || logits.is_empty() {
        return Err(refuse(format!(
            "{} rows of logits for {} labels",
            logits.len(),
            labels.len()
        )));
    }
    for (i, (row, &label)) in logits.iter().zip(labels).enumerate() {
        if label >= row.len() || row.iter().any(|l| !l.is_finite()) {
            return Err(refuse(format!(
                "row {i}: label {label} for {} logits {row:?}",
                row.len()
            )));
        }
    }
    if labels.iter().all(|&l| l == labels[0]) {
        return Err(refuse(format!(
            "all {} rows have label {}: a fit needs more than one class",
            labels.len(),
            labels[0]
        )));
    }
    // Where every row's label has the one highest logit, sharpening the softmax only
    // ever raises the likelihood: no finite temperature.
    let all_first = logits.iter().zip(labels).all(|(row, &label)| {
        row.iter()
            .enumerate()
            .all(|(j, &l)| j == label || l <= row[label])
    });
    if all_first {
        return Err(refuse(
            "every row's label has the highest logit (or shares it): sharpening the softmax \
             only ever helps, so temperature scaling has no finite fit"
                .into(),
        ));
    }
    let n = logits.len() as f64;
    // For scale s = 1/T: the loss, its first and second derivative (the latter the
    // mean variance of the logits under the scaled softmax: never negative).
    let evaluate = |s: f64| {
        let (mut loss, mut d1, mut d2) = (0.0, 0.0, 0.0);
        for (row, &label) in logits.iter().zip(labels) {
            let z: Vec<f64> = row.iter().map(|&l| f64::from(l)).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let weights: Vec<f64> = z.iter().map(|&l| (s * (l - max)).exp()).collect();
            let total: f64 = weights.iter().sum();
            let mean: f64 = z.iter().zip(&weights).map(|(l, w)| l * w).sum::<f64>() / total;
            let second: f64 = z.iter().zip(&weights).map(|(l, w)| l * l * w).sum::<f64>() / total;
            loss += s * max + total.ln() - s * z[label];
            d1 += mean - z[label];
            d2 += second - mean * mean;
        }
        (loss / n, d1 / n, d2 / n)
    };
    // The slope at 1/T = 0 (the uniform softmax): where it is not negative, the loss
    // only falls as the logits are flattened away, and no positive 1/T is best.
    let (_, slope_at_zero, _) = evaluate(0.0);
    if slope_at_zero >= 0.0 {
        return Err(refuse(
            "the logits rank the labels no better than chance on this data: temperature \
             scaling has no positive temperature"
                .into(),
        ));
    }
    let mut s = 1.0;
    let (loss_before, _, _) = evaluate(s);
    let (mut current, mut d1, mut d2) = evaluate(s);
    for _ in 0..MAX_ITERATIONS {
        if d1.abs() < 1e-13 {
            return temperature_fit(s, current, loss_before);
        }
        if !(d2 > 0.0) {
            break;
        }
        let full = d1 / d2;
        let mut step = 1.0;
        loop {
            let next_s = s - step * full;
            if next_s > 0.0 {
                let (next, nd1, nd2) = evaluate(next_s);
                if next <= current || step < 1e-10 {
                    let converged = (next_s - s).abs() < 1e-15 * s;
                    (s, current, d1, d2) = (next_s, next, nd1, nd2);
                    if converged {
                        return temperature_fit(s, current, loss_before);
                    }
                    break;
                }
            } else if step < 1e-10 {
                break;
            }
            step /= 2.0;
        }
    }
    Err(refuse(format!(
        "temperature scaling found no positive temperature (1/T = {s} after \
         {MAX_ITERATIONS} steps): the logits rank the labels no better than chance"
    )))
}

/// The fit at scale `s` = 1/T, refused where T is outside the accepted range.
fn temperature_fit(s: f64, loss: f64, loss_before: f64) -> Result<Fit> {
    let calibration = Calibration::Temperature {
        temperature: 1.0 / s,
    };
    calibration
        .check(2)
        .map_err(|e| refuse(format!("the fitted {e}")))?;
    Ok(Fit {
        calibration,
        loss,
        loss_before,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_and_separable_data_are_refused() {
        let err = fit_platt(&[0.1, 0.2], &[true, true]).unwrap_err();
        assert!(err.to_string().contains("all 2 rows are insecure"), "{err}");
        let err = fit_platt(&[-1.0, -0.5, 0.5, 1.0], &[false, false, true, true]).unwrap_err();
        assert!(err.to_string().contains("separate the classes"), "{err}");
        // Touching at one score is still separation: no finite maximum.
        let err = fit_platt(&[-1.0, 0.5, 0.5, 1.0], &[false, false, true, true]).unwrap_err();
        assert!(err.to_string().contains("separate the classes"), "{err}");
        let err = fit_temperature(&[vec![0.0, 1.0], vec![1.0, 0.0]], &[1, 0]).unwrap_err();
        assert!(err.to_string().contains("no finite fit"), "{err}");
        let err = fit_temperature(&[vec![1.0, 1.0], vec![1.0, 0.0]], &[1, 0]).unwrap_err();
        assert!(err.to_string().contains("no finite fit"), "a tie: {err}");
        let err = fit_platt(&[0.3, 0.3, 0.3], &[true, false, true]).unwrap_err();
        assert!(err.to_string().contains("same score"), "{err}");
        // Insecure rows scoring below secure ones: the fit would invert the verdicts.
        let x = [2.0, 1.0, 1.5, -1.0, -2.0, 0.5, -0.5];
        let y = [false, false, true, true, true, false, true];
        let err = fit_platt(&x, &y).unwrap_err();
        assert!(
            err.to_string().contains("reverses the model's ranking"),
            "{err}"
        );
        let err = fit_temperature(&[vec![0.0, 1.0], vec![1.0, 0.0]], &[1, 1]).unwrap_err();
        assert!(err.to_string().contains("more than one class"), "{err}");
    }

    #[test]
    fn large_log_odds_with_overlapping_classes_fit() {
        // Margins near +-50 with one insecure row among the secure ones: scikit-learn
        // fits a = 0.23304, b = 9.32956 here; a fit starting at a = 1 saturates every
        // sigmoid.
        let x = [-50.0, -45.0, -42.0, 45.0, 48.0, 50.0, -44.0];
        let y = [false, false, false, true, true, true, true];
        let fit = fit_platt(&x, &y).unwrap();
        let Calibration::Platt { a, b } = fit.calibration else {
            panic!()
        };
        assert!(
            (a - 0.23304).abs() < 1e-5 && (b - 9.32956).abs() < 1e-4,
            "a = {a}, b = {b}"
        );
    }

    #[test]
    fn a_fit_lowers_the_loss_and_zeroes_the_gradient() {
        let x = [-2.0, -1.0, -0.5, 0.0, 0.3, 0.9, 1.5, 2.5];
        let y = [false, true, false, false, true, false, true, true];
        let fit = fit_platt(&x, &y).unwrap();
        assert!(fit.loss < fit.loss_before);
        let Calibration::Platt { a, b } = fit.calibration else {
            panic!()
        };
        let g: f64 = x
            .iter()
            .zip(&y)
            .map(|(&x, &y)| sigmoid(a * x + b) - f64::from(u8::from(y)))
            .sum();
        assert!(g.abs() < 1e-10, "{g}");
    }
}
