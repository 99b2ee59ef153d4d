//! Explanations: which tokens and lines the model looked at, and the handle that holds
//! them.

use std::ffi::c_char;
use std::ptr;

use super::boundary::*;
use super::detector::{icd_detector, icd_prediction};
use super::errors::{icd_status, icd_error, CallError};
use super::library::icd_str;

/// Opaque: a prediction with its token and line scores. Made by
/// `icd_detector_explain` or `icd_detector_explain_batch`, read through the
/// `icd_explanation_*` functions (from several threads at once if need be), released
/// by `icd_explanation_free`.
pub struct icd_explanation {
    prediction: icd_prediction,
    logits: Vec<f32>,
    tokens: Vec<icd_token_score>,
    lines: Vec<icd_line_score>,
}

/// One token's share of the last layer's attention from `<s>`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_token_score {
    /// The token id.
    pub id: u32,
    /// The bytes `[start, end)` of the code as given that the token came from; `start
    /// == end` for the `<s>` and `</s>` around the input.
    pub start: usize,
    /// End of the token's bytes (exclusive).
    pub end: usize,
    /// The line (from 1) of the token's first byte that is not whitespace; 0 for `<s>`,
    /// `</s>` and tokens of whitespace alone.
    pub line: usize,
    /// The mean over heads of the attention probability from `<s>` to this token.
    pub score: f32,
}

/// A line's score: the sum of the scores of its tokens.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_line_score {
    /// The line, from 1.
    pub line: usize,
    /// The sum of its tokens' scores.
    pub score: f32,
}

/// Classifies one function and says where the model looked: on `ICD_OK`,
/// `*explanation_out` receives a new `icd_explanation` (the prediction, each token's
/// score, each line's) that the caller releases with `icd_explanation_free`; on
/// failure it is left untouched. A token's score is the mean over heads of the last
/// encoder layer's attention probability from `<s>` to it; it goes to the line of its
/// first byte that is not whitespace (lines from 1 within the code).
///
/// # Safety
/// `detector` must be NULL or a live handle; `code` NULL or `code_len` readable bytes;
/// `explanation_out` and `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_explain(
    detector: *const icd_detector,
    code: *const c_char,
    code_len: usize,
    explanation_out: *mut *mut icd_explanation,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        let explanation_out = out_arg(explanation_out, "explanation_out")?;
        // SAFETY: NULL or `code_len` readable bytes (the contract).
        let code = unsafe { str_arg(code, code_len, "code") }?;
        let handle = Box::into_raw(Box::new(icd_explanation::from(d.detector.explain(code)?)));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { explanation_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// `icd_detector_explain` for `count` functions, batched as
/// `icd_detector_predict_batch` batches them: on `ICD_OK`, `explanations_out[i]`
/// receives input `i`'s new `icd_explanation` (each released with
/// `icd_explanation_free`); nothing is written unless the whole batch succeeds.
///
/// # Safety
/// `detector` must be NULL or a live handle; `codes` NULL or `count` readable
/// `icd_str`s, each NULL or pointing to its `len` readable bytes; `explanations_out`
/// NULL or `count` writable pointers; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_explain_batch(
    detector: *const icd_detector,
    codes: *const icd_str,
    count: usize,
    explanations_out: *mut *mut icd_explanation,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        if count == 0 {
            return Ok(());
        }
        // SAFETY: NULL or `count` readable `icd_str`s (the contract).
        let inputs = unsafe { slice_arg(codes, count, "codes") }?;
        check_slice(explanations_out, count, "explanations_out")?;
        // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
        let texts = unsafe { strs_arg(inputs, "codes") }?;
        // Every handle made before any is written: nothing is written on failure.
        let handles: Vec<Box<icd_explanation>> = d
            .detector
            .explain_batch(&texts)?
            .into_iter()
            .map(|e| Box::new(icd_explanation::from(e)))
            .collect();
        for (i, handle) in handles.into_iter().enumerate() {
            // SAFETY: `explanations_out` holds `count` writable pointers (the contract;
            // checked as an array above), and `i < count`.
            unsafe { explanations_out.add(i).write(Box::into_raw(handle)) };
        }
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

impl From<crate::Explanation> for icd_explanation {
    fn from(e: crate::Explanation) -> Self {
        icd_explanation {
            prediction: icd_prediction::from(&e.prediction),
            logits: e.prediction.logits.clone(),
            tokens: e
                .tokens
                .iter()
                .map(|t| {
                    let range = t.byte_range.clone().unwrap_or(0..0);
                    icd_token_score {
                        id: t.id,
                        start: range.start,
                        end: range.end,
                        line: t.line.unwrap_or(0),
                        score: t.score,
                    }
                })
                .collect(),
            lines: e
                .lines
                .iter()
                .map(|l| icd_line_score {
                    line: l.line,
                    score: l.score,
                })
                .collect(),
        }
    }
}

/// The explanation's prediction, owned by it (valid until it is freed); NULL for a
/// NULL explanation.
///
/// # Safety
/// `explanation` must be NULL or a live explanation.
#[no_mangle]
pub unsafe extern "C" fn icd_explanation_prediction(
    explanation: *const icd_explanation,
) -> *const icd_prediction {
    // SAFETY: NULL or a live explanation (the contract).
    unsafe { read_handle(explanation, ptr::null(), |e| &e.prediction as *const _) }
}

/// The prediction's logits (`icd_detector_num_labels` floats), owned by the
/// explanation; `*count_out` (if not NULL) receives their number. NULL (and 0) for a
/// NULL explanation.
///
/// # Safety
/// `explanation` must be NULL or a live explanation; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_explanation_logits(
    explanation: *const icd_explanation,
    count_out: *mut usize,
) -> *const f32 {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(explanation, count_out, |e| &e.logits) }
}

/// Every token fed to the model, `<s>` and `</s>` included, in order (their scores sum
/// to 1), owned by the explanation; `*count_out` (if not NULL) receives their number.
/// NULL (and 0) for a NULL explanation.
///
/// # Safety
/// `explanation` must be NULL or a live explanation; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_explanation_tokens(
    explanation: *const icd_explanation,
    count_out: *mut usize,
) -> *const icd_token_score {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(explanation, count_out, |e| &e.tokens) }
}

/// Every line that received a score, in line order, owned by the explanation;
/// `*count_out` (if not NULL) receives their number. NULL (and 0) for a NULL
/// explanation.
///
/// # Safety
/// `explanation` must be NULL or a live explanation; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_explanation_lines(
    explanation: *const icd_explanation,
    count_out: *mut usize,
) -> *const icd_line_score {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(explanation, count_out, |e| &e.lines) }
}

/// Releases an explanation. NULL is ignored.
///
/// # Safety
/// `explanation` must be NULL or an explanation not yet freed, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_explanation_free(explanation: *mut icd_explanation) {
    // SAFETY: from `Box::into_raw`, freed once (the contract).
    unsafe { free_handle(explanation) }
}
