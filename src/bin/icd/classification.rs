//! Classifying a scan's functions as the scan's flags ask (`--window`, `--explain`): one
//! [`Classified`] per function, each error naming its function.

use insecure_code_detector::scan::FunctionSpan;
use insecure_code_detector::{Detector, Error, Explanation, LineScore, Prediction};

use crate::Failure;

/// An error classifying one function, naming it.
fn function_failure(file: &str, f: &FunctionSpan, e: Error) -> Failure {
    Failure(format!(
        "{file}:{}-{}: function `{}`: {e}",
        f.start_line, f.end_line, f.name
    ))
}

/// How a scan classifies each function: the request its cached results are kept
/// under.
#[derive(Clone)]
pub struct ClassifyMode {
    /// `--window` with this stride.
    pub window: Option<usize>,
    pub explain: bool,
}

impl ClassifyMode {
    /// The prediction cache's name for results of this mode.
    pub fn request(&self) -> String {
        let what = if self.explain {
            "explain"
        } else {
            insecure_code_detector::cache::PREDICT_REQUEST
        };
        match self.window {
            Some(stride) => format!("{what} windows stride={stride}"),
            None => what.to_owned(),
        }
    }
}

/// One function's classification.
#[derive(Clone)]
pub struct Classified {
    pub prediction: Prediction,
    /// With --window: the worst window's bytes in the function, and the number of
    /// windows.
    pub window: Option<(std::ops::Range<usize>, usize)>,
    /// With --explain: every scored line (from 1 within the function), highest first.
    pub lines: Vec<LineScore>,
}

/// Classifies `functions` (one model batch's worth) as `mode` says.
pub fn classify_functions(
    detector: &Detector,
    functions: &[&(String, FunctionSpan)],
    mode: &ClassifyMode,
) -> Result<Vec<Classified>, Failure> {
    let all_lines = |e: &Explanation| e.top_lines(usize::MAX);
    if let Some(stride) = mode.window {
        return functions
            .iter()
            .map(|(file, f)| {
                let failed = |e| function_failure(file, f, e);
                Ok(if mode.explain {
                    let e = detector.explain_windows(&f.code, stride).map_err(failed)?;
                    Classified {
                        lines: all_lines(&e.explanation),
                        prediction: e.explanation.prediction,
                        window: Some((e.byte_range, e.windows)),
                    }
                } else {
                    let w = detector.predict_windows(&f.code, stride).map_err(failed)?;
                    Classified {
                        prediction: w.prediction,
                        window: Some((w.byte_range, w.windows)),
                        lines: Vec::new(),
                    }
                })
            })
            .collect();
    }
    let codes: Vec<&str> = functions.iter().map(|(_, f)| f.code.as_str()).collect();
    let failure = |e: Error| match e {
        Error::NonFiniteLogits { input, .. } => {
            let (file, f) = functions[input];
            function_failure(file, f, e)
        }
        other => Failure::from(other),
    };
    Ok(if mode.explain {
        detector
            .explain_batch(&codes)
            .map_err(failure)?
            .into_iter()
            .map(|e| Classified {
                lines: all_lines(&e),
                prediction: e.prediction,
                window: None,
            })
            .collect()
    } else {
        detector
            .predict_batch(&codes)
            .map_err(failure)?
            .into_iter()
            .map(|prediction| Classified {
                prediction,
                window: None,
                lines: Vec::new(),
            })
            .collect()
    })
}
