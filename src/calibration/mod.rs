//! Calibrated insecure probabilities: a fit, made on labelled data of the team's own,
//! that maps the model's scores to probabilities that mean what they say, and the file
//! that records it with the threshold chosen on the same data.
//!
//! Two labels (and one): Platt scaling on the log-odds of the insecure probability
//! (for two labels that is the logit margin, logit(insecure) - logit(other); for one
//! label the logit), p = sigmoid(a * log_odds + b). More labels: temperature scaling,
//! softmax(logits / T), the insecure probability read off it as without calibration.
//! Both are fitted by maximum likelihood, without regularisation.

mod file;
mod fit;

pub use file::{CalibrationFile, CheckpointId, FittedOn, CALIBRATION_FORMAT, CALIBRATION_VERSION};
pub use fit::{fit_platt, fit_temperature, Fit};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The smallest temperature accepted: logits divided by it stay finite in f64.
pub const MIN_TEMPERATURE: f64 = 1e-6;

/// The largest temperature accepted.
pub const MAX_TEMPERATURE: f64 = 1e6;

/// A calibration of the insecure probability.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum Calibration {
    /// p = sigmoid(a * log_odds + b), log_odds the uncalibrated insecure probability's.
    Platt {
        /// Slope: below 1 where the model is overconfident.
        a: f64,
        /// Intercept: shifts for the base rate of the data fitted on.
        b: f64,
    },
    /// softmax(logits / temperature).
    Temperature {
        /// Above 1 where the model is overconfident.
        temperature: f64,
    },
}

impl Calibration {
    /// Fails unless the parameters are finite (and the temperature positive), and the
    /// method fits a checkpoint of `num_labels` labels: Platt for one or two,
    /// temperature for two or more.
    pub fn check(&self, num_labels: usize) -> Result<()> {
        let invalid = |message: String| {
            Err(Error::InvalidArgument {
                argument: "calibration",
                message,
            })
        };
        match *self {
            Calibration::Platt { a, b } if !(a.is_finite() && b.is_finite()) => {
                invalid(format!("Platt parameters a = {a}, b = {b} are not finite"))
            }
            Calibration::Temperature { temperature: t }
                if !(MIN_TEMPERATURE..=MAX_TEMPERATURE).contains(&t) =>
            {
                invalid(format!(
                    "temperature {t} is outside [{MIN_TEMPERATURE}, {MAX_TEMPERATURE}]"
                ))
            }
            Calibration::Platt { .. } if num_labels > 2 => invalid(format!(
                "Platt scaling is for one or two labels; this checkpoint has {num_labels}: \
                 fit temperature scaling"
            )),
            Calibration::Temperature { .. } if num_labels < 2 => invalid(
                "temperature scaling needs two or more labels; this checkpoint has one: fit \
                 Platt scaling"
                    .into(),
            ),
            _ => Ok(()),
        }
    }

    /// The calibrated probability of a Platt fit from uncalibrated `log_odds`; `None`
    /// for a temperature, which applies to the logits.
    pub fn platt_probability(&self, log_odds: f64) -> Option<f64> {
        match *self {
            Calibration::Platt { a, b } => Some(sigmoid(a * log_odds + b)),
            Calibration::Temperature { .. } => None,
        }
    }

    /// The short name of the method (`platt`, `temperature`).
    pub fn method(&self) -> &'static str {
        match self {
            Calibration::Platt { .. } => "platt",
            Calibration::Temperature { .. } => "temperature",
        }
    }
}

impl std::fmt::Display for Calibration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Calibration::Platt { a, b } => write!(f, "Platt a={a} b={b}"),
            Calibration::Temperature { temperature } => write!(f, "temperature {temperature}"),
        }
    }
}

/// The logistic function, without overflow at either end.
pub(crate) fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}
