//! What the library is and how it is opened: its version, the backends compiled in,
//! `icd_detector_open`'s options with the enums of their values, and the names of the
//! status values.

use std::ffi::{c_char, CStr, CString};

use super::boundary::guard_value;
use super::errors::icd_status;
use crate::Backend;

/// The values of `icd_options.precision`.
// The Rust `Precision`'s numbers and names: `tests::the_c_option_enums_are_the_rust_tables`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum icd_precision {
    /// f32 throughout; logits equal transformers' within 1e-4.
    ICD_PRECISION_F32 = 0,
    /// bf16 weights in the matrix products where a bf16 kernel runs, half their
    /// memory; on the CPU kernels about f32's speed or faster; probabilities within
    /// about 1e-2 of f32.
    ICD_PRECISION_BF16 = 1,
    /// f16 weights and activations; probabilities within about 1e-2 of f32.
    ICD_PRECISION_F16 = 2,
    /// int8 matrix products on CPU backends with AVX2, the fastest mode there;
    /// probabilities within a few 1e-2 of f32.
    ICD_PRECISION_INT8 = 3,
    /// TF32 tensor-core products on the cuda backend (logits about 2e-4 off); f32
    /// elsewhere.
    ICD_PRECISION_TF32 = 4,
}

/// The values of `icd_options.preprocessing`.
// The Rust `Preprocessing`'s numbers and names, checked as `icd_precision`'s are.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum icd_preprocessing {
    /// The text as given (the model card's usage).
    ICD_PREPROCESSING_RAW = 0,
    /// Whitespace runs collapsed to one space, as CodeXGLUE does
    /// (`' '.join(code.split())`).
    ICD_PREPROCESSING_COLLAPSE_WHITESPACE = 1,
}

/// A borrowed string: `len` bytes at `ptr` (which may be NULL when `len` is 0).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_str {
    /// First byte.
    pub ptr: *const c_char,
    /// Length in bytes.
    pub len: usize,
}

/// Options for `icd_detector_open`; start from `icd_options_default()`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_options {
    /// Tokens per input, `<s>` and `</s>` included; 0 means the checkpoint's limit (512).
    pub max_tokens: u32,
    /// Inputs per model call in `icd_detector_predict_batch`; 0 means 8.
    pub batch_size: u32,
    /// An `icd_preprocessing` value; 0 (`ICD_PREPROCESSING_RAW`) by default.
    pub preprocessing: u32,
    /// An `icd_precision` value; 0 (`ICD_PRECISION_F32`) by default.
    pub precision: u32,
}

const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("version has no interior NUL"),
    };

/// The library version, e.g. "0.1.0": static, NUL-terminated, never freed.
#[no_mangle]
pub extern "C" fn icd_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The backends compiled into this build, comma-separated (e.g. "flex,ndarray"):
/// static, NUL-terminated, never freed. "auto" is accepted besides these.
#[no_mangle]
pub extern "C" fn icd_backends() -> *const c_char {
    static NAMES: once_cell::sync::Lazy<CString> = once_cell::sync::Lazy::new(|| {
        let names: Vec<&str> = Backend::compiled().iter().map(|b| b.name()).collect();
        CString::new(names.join(",")).expect("backend names have no NUL")
    });
    guard_value(c"".as_ptr(), || NAMES.as_ptr())
}

/// The default options: the checkpoint's token limit, batches of 8, raw text, f32.
#[no_mangle]
pub extern "C" fn icd_options_default() -> icd_options {
    icd_options {
        max_tokens: 0,
        batch_size: 0,
        preprocessing: icd_preprocessing::ICD_PREPROCESSING_RAW as u32,
        precision: icd_precision::ICD_PRECISION_F32 as u32,
    }
}

/// A static, NUL-terminated name for a status value ("ICD_OK", ...), or
/// "ICD_UNKNOWN_STATUS" for a value that is none of them.
#[no_mangle]
pub extern "C" fn icd_status_name(status: u32) -> *const c_char {
    // The enum's own variant names, made once.
    static NAMES: once_cell::sync::Lazy<Vec<CString>> = once_cell::sync::Lazy::new(|| {
        icd_status::ALL
            .iter()
            .map(|s| CString::new(format!("{s:?}")).expect("variant names have no NUL"))
            .collect()
    });
    guard_value(c"ICD_UNKNOWN_STATUS".as_ptr(), || {
        match icd_status::ALL.iter().position(|&s| s as u32 == status) {
            Some(index) => NAMES[index].as_ptr(),
            None => c"ICD_UNKNOWN_STATUS".as_ptr(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Precision, Preprocessing};

    #[test]
    fn the_c_option_enums_are_the_rust_tables() {
        use icd_precision::*;
        use icd_preprocessing::*;
        let precisions = [
            ICD_PRECISION_F32,
            ICD_PRECISION_BF16,
            ICD_PRECISION_F16,
            ICD_PRECISION_INT8,
            ICD_PRECISION_TF32,
        ];
        assert_eq!(precisions.len(), Precision::ALL.len());
        for c in precisions {
            let p = Precision::from_code(c as u32).expect("a Rust precision");
            assert_eq!(
                format!("{c:?}"),
                format!("ICD_PRECISION_{}", p.name().to_uppercase())
            );
        }
        let preprocessings = [ICD_PREPROCESSING_RAW, ICD_PREPROCESSING_COLLAPSE_WHITESPACE];
        assert_eq!(preprocessings.len(), Preprocessing::ALL.len());
        for c in preprocessings {
            let p = Preprocessing::from_code(c as u32).expect("a Rust preprocessing");
            assert_eq!(
                format!("{c:?}"),
                format!("ICD_PREPROCESSING_{}", p.name().to_uppercase())
            );
        }
    }
}
