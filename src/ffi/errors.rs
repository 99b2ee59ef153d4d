//! How a call fails: `icd_status`, the `icd_error` a failed call hands back, and the
//! one table from the library's [`Error`] to a status.

use std::ffi::{c_char, CString};

use super::boundary::{free_handle, read_handle};
use crate::Error;

/// Result of every fallible call.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum icd_status {
    /// Success; outputs were written.
    ICD_OK = 0,
    /// A required pointer argument was NULL.
    ICD_ERR_NULL_ARGUMENT = 1,
    /// A string argument was not valid UTF-8.
    ICD_ERR_INVALID_UTF8 = 2,
    /// An argument was out of range (an option, a buffer too small, an index).
    ICD_ERR_INVALID_ARGUMENT = 3,
    /// A checkpoint file or directory could not be read.
    ICD_ERR_IO = 4,
    /// `config.json` is malformed or describes a model that cannot run.
    ICD_ERR_CONFIG = 5,
    /// The tokenizer files are missing or malformed.
    ICD_ERR_TOKENIZER = 6,
    /// The weight file is missing, malformed, or does not match the config.
    ICD_ERR_WEIGHTS = 7,
    /// The backend is not compiled in or its device is absent.
    ICD_ERR_BACKEND_UNAVAILABLE = 8,
    /// The model failed while running.
    ICD_ERR_INFERENCE = 9,
    /// A bug: a panic inside the library was caught at the boundary.
    ICD_ERR_PANIC = 10,
    /// The caller stopped the call (a training callback that returned nonzero).
    ICD_ERR_STOPPED = 11,
}

impl icd_status {
    /// Every status, in the order of their numbers.
    pub(super) const ALL: [icd_status; 12] = [
        icd_status::ICD_OK,
        icd_status::ICD_ERR_NULL_ARGUMENT,
        icd_status::ICD_ERR_INVALID_UTF8,
        icd_status::ICD_ERR_INVALID_ARGUMENT,
        icd_status::ICD_ERR_IO,
        icd_status::ICD_ERR_CONFIG,
        icd_status::ICD_ERR_TOKENIZER,
        icd_status::ICD_ERR_WEIGHTS,
        icd_status::ICD_ERR_BACKEND_UNAVAILABLE,
        icd_status::ICD_ERR_INFERENCE,
        icd_status::ICD_ERR_PANIC,
        icd_status::ICD_ERR_STOPPED,
    ];
}

/// Opaque: the status and message of a failed call. Released by `icd_error_free`.
pub struct icd_error {
    pub(super) status: icd_status,
    pub(super) message: CString,
}

/// `0 (f32), 1 (bf16), ...` in the order of the numbers.
pub(super) fn choices<const N: usize>(mut table: [(u32, &str); N]) -> String {
    table.sort();
    let named: Vec<String> = table
        .iter()
        .map(|(n, name)| format!("{n} ({name})"))
        .collect();
    match named.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}


/// The status of a failed call. `ICD_ERR_NULL_ARGUMENT` for a NULL error.
///
/// # Safety
/// `error` must be NULL or an error from a failed call, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn icd_error_status(error: *const icd_error) -> icd_status {
    // SAFETY: NULL or a live error (the contract).
    unsafe { read_handle(error, icd_status::ICD_ERR_NULL_ARGUMENT, |e| e.status) }
}

/// The message of a failed call: NUL-terminated UTF-8 owned by the error, valid until
/// `icd_error_free`. An empty string for a NULL error.
///
/// # Safety
/// `error` must be NULL or an error from a failed call, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn icd_error_message(error: *const icd_error) -> *const c_char {
    // SAFETY: NULL or a live error (the contract).
    unsafe { read_handle(error, c"".as_ptr(), |e| e.message.as_ptr()) }
}

/// Releases an error. NULL is ignored.
///
/// # Safety
/// `error` must be NULL or an error from a failed call, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_error_free(error: *mut icd_error) {
    // SAFETY: the error came from `Box::into_raw` in `guard` and is freed once.
    unsafe { free_handle(error) }
}

/// A failed call: its status and message.
pub(super) struct CallError {
    pub(super) status: icd_status,
    pub(super) message: String,
}

impl From<Error> for CallError {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::Io { .. }
            | Error::NoWeights { .. }
            | Error::FileRefused { .. }
            | Error::Cache { .. } => icd_status::ICD_ERR_IO,
            Error::ConfigParse { .. }
            | Error::ConfigValue { .. }
            | Error::UnsupportedModel { .. }
            | Error::Calibration { .. } => icd_status::ICD_ERR_CONFIG,
            Error::Tokenizer { .. } => icd_status::ICD_ERR_TOKENIZER,
            Error::WeightsFormat { .. }
            | Error::MissingTensor { .. }
            | Error::TensorShape { .. }
            | Error::TensorDtype { .. }
            | Error::UnexpectedTensors { .. }
            | Error::NonFiniteTensor { .. } => icd_status::ICD_ERR_WEIGHTS,
            Error::InvalidArgument { .. } | Error::OutputIsInput { .. } => {
                icd_status::ICD_ERR_INVALID_ARGUMENT
            }
            Error::BackendUnavailable { .. } => icd_status::ICD_ERR_BACKEND_UNAVAILABLE,
            Error::Inference(_) | Error::NonFiniteLogits { .. } | Error::Training(_) => {
                icd_status::ICD_ERR_INFERENCE
            }
            Error::Stopped { .. } => icd_status::ICD_ERR_STOPPED,
        };
        CallError {
            status,
            message: error.to_string(),
        }
    }
}

impl CallError {
    pub(super) fn invalid(argument: &str, message: impl std::fmt::Display) -> Self {
        CallError {
            status: icd_status::ICD_ERR_INVALID_ARGUMENT,
            message: format!("argument `{argument}` {message}"),
        }
    }
}

pub(super) fn null_argument(argument: &str) -> CallError {
    CallError {
        status: icd_status::ICD_ERR_NULL_ARGUMENT,
        message: format!("argument `{argument}` is NULL"),
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use crate::ffi::icd_status_name;
    use crate::Precision;

    #[test]
    fn every_status_is_named_after_its_variant() {
        let names = [
            "ICD_OK",
            "ICD_ERR_NULL_ARGUMENT",
            "ICD_ERR_INVALID_UTF8",
            "ICD_ERR_INVALID_ARGUMENT",
            "ICD_ERR_IO",
            "ICD_ERR_CONFIG",
            "ICD_ERR_TOKENIZER",
            "ICD_ERR_WEIGHTS",
            "ICD_ERR_BACKEND_UNAVAILABLE",
            "ICD_ERR_INFERENCE",
            "ICD_ERR_PANIC",
            "ICD_ERR_STOPPED",
        ];
        assert_eq!(icd_status::ALL.len(), names.len());
        for (number, (status, want)) in icd_status::ALL.iter().zip(names).enumerate() {
            assert_eq!(*status as usize, number);
            // SAFETY: icd_status_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(icd_status_name(number as u32)) };
            assert_eq!(name.to_str().unwrap(), want);
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(icd_status_name(12)) };
        assert_eq!(unknown.to_str().unwrap(), "ICD_UNKNOWN_STATUS");
        assert_eq!(
            choices(Precision::ALL.map(|p| (p.code(), p.name()))),
            "0 (f32), 1 (bf16), 2 (f16), 3 (int8) or 4 (tf32)"
        );
    }
}
