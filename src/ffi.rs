//! The C ABI: a thin skin over [`crate::Detector`].
//!
//! Conventions, the same for every function:
//! - Strings are passed as pointer + length in bytes; none needs a NUL terminator.
//!   Source code must be UTF-8 (`ICD_ERR_INVALID_UTF8` otherwise).
//! - Every fallible function returns an `icd_status` and writes its outputs only when
//!   it returns `ICD_OK`. Its last parameter, `error_out`, may be NULL; when it is not
//!   and the call fails, it receives a new `icd_error` carrying the message, which the
//!   caller frees with `icd_error_free`. No message is kept in a global.
//! - Handles are opaque, made by one constructor and released by one free function.
//! - No panic crosses this boundary: each entry point catches it and returns
//!   `ICD_ERR_PANIC`. A failed call leaves the detector usable.
//! - An `icd_detector` may be used by several threads at once for predictions and
//!   queries; `icd_detector_free` must not race with any other call on it.

//!
//! Every entry point that takes a pointer is an `unsafe fn` whose `# Safety` section
//! states what the caller must uphold beyond what the function checks itself. Inside,
//! pointers are read only through the checked helpers at the end of this file
//! (`ref_arg`, `out_arg`, `check_slice`, `slice_arg`, `bytes_arg`, `str_arg`, `path_arg`),
//! which refuse NULL and impossible lengths with a status naming the argument, and the
//! body runs inside the one panic boundary, `guard`.

#![allow(non_camel_case_types)]
#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::ptr;

use crate::backend::panic_message;
use crate::{Backend, Detector, Error, Precision, Preprocessing};

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
}

impl icd_status {
    /// Every status, in the order of their numbers.
    const ALL: [icd_status; 11] = [
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
    ];
}

/// The values of `icd_options.precision`.
// The Rust `Precision`'s numbers and names: `tests::the_c_option_enums_are_the_rust_tables`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum icd_precision {
    /// f32 throughout; logits equal transformers' within 1e-4.
    ICD_PRECISION_F32 = 0,
    /// bf16 matrix products, faster on CPUs with AVX512-BF16; probabilities within
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

/// The values of `icd_find_functions`'s `language`.
// The Rust `scan::Language`'s numbers and names, checked as `icd_precision`'s are.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum icd_language {
    /// C, parsed with tree-sitter's C grammar.
    ICD_LANGUAGE_C = 0,
    /// C++, parsed with tree-sitter's C++ grammar.
    ICD_LANGUAGE_CPP = 1,
}

/// One function definition that `icd_find_functions` found. Its strings are
/// NUL-terminated and owned by the `icd_functions` it came from.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_function {
    /// Its name as written (`foo`, `Class::method`, `operator==`, or `<anonymous>`).
    pub name: *const c_char,
    /// The name's length in bytes.
    pub name_len: usize,
    /// First line (from 1) of the definition, return type and template header included.
    pub start_line: usize,
    /// Last line of the definition (inclusive).
    pub end_line: usize,
    /// The definition's bytes in the source are `[start_byte, end_byte)`: the text to
    /// classify.
    pub start_byte: usize,
    /// End of the definition's bytes (exclusive).
    pub end_byte: usize,
    /// A comment holding `icd: ignore` is on its first line or the line before it.
    pub suppressed: bool,
    /// Identifies the function across moves and edits elsewhere: a hash of its name and
    /// text without comments or whitespace, then `:N` among equal ones in the source
    /// (as `icd scan` reports it).
    pub fingerprint: *const c_char,
}

/// An inclusive range of lines (from 1).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_line_range {
    /// First line.
    pub start_line: usize,
    /// Last line (inclusive).
    pub end_line: usize,
}

/// Opaque: the function definitions of one source buffer. Made by
/// `icd_find_functions`, read through `icd_functions_items` and
/// `icd_functions_unparsed_lines` (from several threads at once if need be), released
/// by `icd_functions_free`.
pub struct icd_functions {
    items: Vec<icd_function>,
    unparsed: Vec<icd_line_range>,
    /// What `items`' name and fingerprint pointers point into.
    _strings: Vec<CString>,
}

/// One function definition `icd_find_functions_under` found, with its file. Strings
/// are NUL-terminated and owned by the `icd_tree` it came from.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_tree_function {
    /// The file, as the walk found it (the path given, joined with the path below it).
    pub file: *const c_char,
    /// The file's length in bytes.
    pub file_len: usize,
    /// An `icd_language` value: by the file's extension (C for a file named by the
    /// caller whose extension is neither).
    pub language: u32,
    /// The definition: name, lines, bytes in `code`'s file, suppression, fingerprint.
    pub function: icd_function,
    /// The definition's text, what to classify (UTF-8: the file decoded as `icd scan`
    /// decodes it, each invalid sequence U+FFFD).
    pub code: *const c_char,
    /// The text's length in bytes.
    pub code_len: usize,
}

/// A part of the tree `icd_find_functions_under` did not cover: a file not read (a
/// link, not a regular file, unreadable, too large, binary) or lines that could not be
/// parsed. Strings are NUL-terminated and owned by the `icd_tree`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_gap {
    /// The file.
    pub file: *const c_char,
    /// The file's length in bytes.
    pub file_len: usize,
    /// What was not covered, in one line (as `icd scan` reports it).
    pub message: *const c_char,
}

/// Opaque: the function definitions under some paths and the gaps. Made by
/// `icd_find_functions_under`, read through `icd_tree_functions` and `icd_tree_gaps`
/// (from several threads at once if need be), released by `icd_tree_free`.
pub struct icd_tree {
    functions: Vec<icd_tree_function>,
    gaps: Vec<icd_gap>,
    /// What the pointers above point into.
    _strings: Vec<CString>,
}

/// A long function's verdict: the window (of `icd_detector_max_tokens` tokens) most
/// likely insecure.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_window_prediction {
    /// That window's prediction (`truncated` is false: each window fits).
    pub prediction: icd_prediction,
    /// The window covers bytes `[start_byte, end_byte)` of the code as given.
    pub start_byte: usize,
    /// End of the window's bytes (exclusive).
    pub end_byte: usize,
    /// Windows classified.
    pub windows: usize,
}

/// Opaque: a loaded classifier. Made by `icd_detector_open`, released by
/// `icd_detector_free`.
pub struct icd_detector {
    detector: Detector,
    /// Label names, NUL-terminated, for `icd_detector_label_name`.
    label_names: Vec<CString>,
    /// What the model runs on, NUL-terminated, for `icd_detector_execution`.
    execution: CString,
}

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

/// Opaque: the status and message of a failed call. Released by `icd_error_free`.
pub struct icd_error {
    status: icd_status,
    message: CString,
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

/// One classification. The logits go to a separate caller buffer.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct icd_prediction {
    /// Index of the highest logit; its name is `icd_detector_label_name(label)`.
    pub label: u32,
    /// Probability that the function is insecure, in [0, 1].
    pub insecure_probability: f32,
    /// Tokens fed to the model, `<s>` and `</s>` included.
    pub tokens: u32,
    /// Whether the input was cut to `max_tokens`.
    pub truncated: bool,
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
    NAMES.as_ptr()
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

/// `0 (f32), 1 (bf16), ...` in the order of the numbers.
fn choices<const N: usize>(mut table: [(u32, &str); N]) -> String {
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
    match icd_status::ALL.iter().position(|&s| s as u32 == status) {
        Some(index) => NAMES[index].as_ptr(),
        None => c"ICD_UNKNOWN_STATUS".as_ptr(),
    }
}

/// Loads a checkpoint directory.
///
/// `model_dir`/`model_dir_len`: the directory (bytes of a path; no NUL needed).
/// `backend`/`backend_len`: "auto", "flex", "ndarray", "wgpu" or "cuda"; NULL (with
/// length 0) for the default CPU backend. `options`: NULL for the defaults.
/// On `ICD_OK`, `*detector_out` receives a handle the caller releases with
/// `icd_detector_free`; on failure it is left untouched.
///
/// # Safety
/// `model_dir` and `backend` must each be NULL or point to their length's readable
/// bytes; `options` NULL or a valid `icd_options`; `detector_out` NULL or writable;
/// `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_open(
    model_dir: *const c_char,
    model_dir_len: usize,
    backend: *const c_char,
    backend_len: usize,
    options: *const icd_options,
    detector_out: *mut *mut icd_detector,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        let detector_out = out_arg(detector_out, "detector_out")?;
        // SAFETY: NULL or `model_dir_len` readable bytes (the contract).
        let dir = unsafe { path_arg(model_dir, model_dir_len, "model_dir") }?;
        let options = if options.is_null() {
            icd_options_default()
        } else {
            // SAFETY: a valid `icd_options` (the contract).
            *unsafe { ref_arg(options, "options") }?
        };
        let mut builder = Detector::builder(dir);
        if !backend.is_null() || backend_len != 0 {
            // SAFETY: NULL or `backend_len` readable bytes (the contract).
            let name = unsafe { str_arg(backend, backend_len, "backend") }?;
            builder = builder.backend(name.parse()?);
        }
        if options.max_tokens != 0 {
            builder = builder.max_tokens(options.max_tokens as usize);
        }
        if options.batch_size != 0 {
            builder = builder.batch_size(options.batch_size as usize);
        }
        let preprocessing = Preprocessing::from_code(options.preprocessing).ok_or_else(|| {
            Error::InvalidArgument {
                argument: "options.preprocessing",
                message: format!(
                    "is {}, expected {}",
                    options.preprocessing,
                    choices(Preprocessing::ALL.map(|p| (p.code(), p.name())))
                ),
            }
        })?;
        let precision =
            Precision::from_code(options.precision).ok_or_else(|| Error::InvalidArgument {
                argument: "options.precision",
                message: format!(
                    "is {}, expected {}",
                    options.precision,
                    choices(Precision::ALL.map(|p| (p.code(), p.name())))
                ),
            })?;
        builder = builder.preprocessing(preprocessing).precision(precision);
        let detector = builder.build()?;
        let label_names = detector
            .labels()
            .iter()
            .map(|name| CString::new(name.replace('\0', "\u{fffd}")).expect("NULs replaced"))
            .collect();
        let execution =
            CString::new(detector.execution().to_string()).expect("plan names have no NUL");
        let handle = Box::into_raw(Box::new(icd_detector {
            detector,
            label_names,
            execution,
        }));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { detector_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// Releases a detector. NULL is ignored. The handle must not be used afterwards, nor
/// freed while another thread is using it.
///
/// # Safety
/// `detector` must be NULL or a handle from `icd_detector_open` not yet freed, with no
/// other call on it running or to come.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_free(detector: *mut icd_detector) {
    if !detector.is_null() {
        // Dropping burn tensors does not panic in practice; if it ever did, the
        // process must not unwind into C.
        // SAFETY: the handle came from `Box::into_raw` and is freed once (the contract).
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(detector) })
        }));
    }
}

/// Number of labels (logits per prediction); 0 for a NULL detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_num_labels(detector: *const icd_detector) -> usize {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { detector.as_ref() }.map_or(0, |d| d.label_names.len())
}

/// Tokens per input after truncation; 0 for a NULL detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_max_tokens(detector: *const icd_detector) -> usize {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { detector.as_ref() }.map_or(0, |d| d.detector.max_tokens())
}

/// The name of label `index` (from the checkpoint's `id2label`). On `ICD_OK`,
/// `*name_out` points to NUL-terminated UTF-8 owned by the detector, valid until it is
/// freed, and `*name_len_out` (if not NULL) receives its length in bytes.
///
/// # Safety
/// `detector` must be NULL or a live handle; `name_out`, `name_len_out` and
/// `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_label_name(
    detector: *const icd_detector,
    index: usize,
    name_out: *mut *const c_char,
    name_len_out: *mut usize,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        let name_out = out_arg(name_out, "name_out")?;
        let name = d
            .label_names
            .get(index)
            .ok_or_else(|| Error::InvalidArgument {
                argument: "index",
                message: format!("is {index}, the model has {} labels", d.label_names.len()),
            })?;
        // SAFETY: not NULL (checked) and writable (the contract), as is
        // `name_len_out` where it is not NULL.
        unsafe {
            name_out.write(name.as_ptr());
            if !name_len_out.is_null() {
                name_len_out.write(name.as_bytes().len());
            }
        }
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// The name of the backend the detector runs on ("flex", ...): static, NUL-terminated.
/// NULL for a NULL detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_backend(detector: *const icd_detector) -> *const c_char {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { detector.as_ref() }.map_or(ptr::null(), |d| d.detector.backend().c_name().as_ptr())
}

/// What the detector runs its encoder on, chosen at load: "tensors f32" (or f64,
/// bf16, f16) for the backend's own tensor operations, or one of the library's packed
/// CPU kernels and its instruction set, as "kernel f32-avx2 (AVX2+FMA)",
/// "kernel f32-avx512 (AVX-512F)", "kernel bf16-avx512 (AVX512-BF16)",
/// "kernel int8-avx2 (AVX2+FMA)" or "kernel int8-vnni (AVX512-VNNI)".
/// NUL-terminated, owned by the detector, valid until it is freed; NULL for a NULL
/// detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_execution(detector: *const icd_detector) -> *const c_char {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { detector.as_ref() }.map_or(ptr::null(), |d| d.execution.as_ptr())
}

/// Compiles the GPU kernels of every model call shape now, rather than on
/// the first call of each shape (see `Detector::warm_up`); nothing on the CPU
/// backends. On `ICD_OK`, `*calls_out` (if not NULL) receives the number of model
/// calls run: 0 on the CPU backends.
///
/// # Safety
/// `detector` must be NULL or a live handle; `calls_out` and `error_out` each NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_warm_up(
    detector: *const icd_detector,
    calls_out: *mut usize,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        let calls = d.detector.warm_up()?;
        if !calls_out.is_null() {
            // SAFETY: not NULL (checked) and writable (the contract).
            unsafe { calls_out.write(calls) };
        }
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// Classifies one function: `code_len` bytes of UTF-8 at `code`.
///
/// `logits_out` receives `icd_detector_num_labels` floats; `logits_capacity` is its
/// length in floats. It may be NULL (with capacity 0) when the logits are not wanted.
/// On `ICD_OK`, `*prediction_out` and the logits are written; otherwise neither is.
///
/// # Safety
/// `detector` must be NULL or a live handle; `code` NULL or `code_len` readable bytes;
/// `prediction_out` NULL or writable; `logits_out` NULL or `logits_capacity` writable
/// floats; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_predict(
    detector: *const icd_detector,
    code: *const c_char,
    code_len: usize,
    prediction_out: *mut icd_prediction,
    logits_out: *mut f32,
    logits_capacity: usize,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let one = icd_str {
        ptr: code,
        len: code_len,
    };
    // SAFETY: a batch of one: `codes` is one readable `icd_str`, the rest as above.
    unsafe {
        icd_detector_predict_batch(
            detector,
            &one,
            1,
            prediction_out,
            logits_out,
            logits_capacity,
            error_out,
        )
    }
}

/// Classifies `count` functions, several per model call (end to end on the CPU
/// backends, padded to a bounded set of shapes on the GPU backends); results come
/// back in input order and equal `icd_detector_predict`'s.
///
/// `predictions_out` has room for `count` predictions. `logits_out` receives
/// `count * icd_detector_num_labels` floats, row by row; `logits_capacity` is its length
/// in floats, and it may be NULL (with capacity 0). Nothing is written unless the
/// whole batch succeeds.
///
/// # Safety
/// `detector` must be NULL or a live handle; `codes` NULL or `count` readable
/// `icd_str`s, each NULL or pointing to its `len` readable bytes; `predictions_out`
/// NULL or `count` writable predictions; `logits_out` NULL or `logits_capacity`
/// writable floats; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_predict_batch(
    detector: *const icd_detector,
    codes: *const icd_str,
    count: usize,
    predictions_out: *mut icd_prediction,
    logits_out: *mut f32,
    logits_capacity: usize,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        if count == 0 {
            return Ok(());
        }
        // SAFETY: NULL or `count` readable `icd_str`s (the contract).
        let inputs = unsafe { slice_arg(codes, count, "codes") }?;
        // Checked as the arrays they must be, though only written at the end.
        check_slice(predictions_out, count, "predictions_out")?;
        let labels = d.label_names.len();
        check_logits(logits_out, logits_capacity, count, labels)?;
        let texts = inputs
            .iter()
            .enumerate()
            // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
            .map(|(i, s)| unsafe { str_arg(s.ptr, s.len, &format!("codes[{i}]")) })
            .collect::<Result<Vec<&str>, Failure>>()?;
        let predictions = d.detector.predict_batch(&texts)?;
        // Written through the pointers, never read: the caller's arrays may be
        // uninitialized.
        for (i, p) in predictions.iter().enumerate() {
            let prediction = icd_prediction::from(p);
            // SAFETY: `predictions_out` holds `count` writable predictions and
            // `logits_out`, where not NULL, `count * labels` writable floats (the
            // contract; both checked as arrays above), and `i < count`.
            unsafe {
                predictions_out.add(i).write(prediction);
                if !logits_out.is_null() {
                    let row = logits_out.add(i * labels);
                    ptr::copy_nonoverlapping(p.logits.as_ptr(), row, labels);
                }
            }
        }
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// Classifies a function of any length as overlapping windows of
/// `icd_detector_max_tokens` tokens, each `stride` tokens after the previous one (0:
/// half a window, 255 tokens for 512), and gives the window most likely insecure. A function that fits in
/// one window gives `icd_detector_predict`'s result, with the whole code as its
/// window.
///
/// `logits_out` receives the window's `icd_detector_num_labels` logits, as in
/// `icd_detector_predict` (NULL with capacity 0 when not wanted). On `ICD_OK`,
/// `*prediction_out` and the logits are written; otherwise neither is.
///
/// # Safety
/// `detector` must be NULL or a live handle; `code` NULL or `code_len` readable bytes;
/// `prediction_out` NULL or writable; `logits_out` NULL or `logits_capacity` writable
/// floats; `error_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_predict_windows(
    detector: *const icd_detector,
    code: *const c_char,
    code_len: usize,
    stride: usize,
    prediction_out: *mut icd_window_prediction,
    logits_out: *mut f32,
    logits_capacity: usize,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        let prediction_out = out_arg(prediction_out, "prediction_out")?;
        let labels = d.label_names.len();
        check_logits(logits_out, logits_capacity, 1, labels)?;
        // SAFETY: NULL or `code_len` readable bytes (the contract).
        let code = unsafe { str_arg(code, code_len, "code") }?;
        let stride = match stride {
            0 => Detector::default_stride(d.detector.max_tokens()),
            n => n,
        };
        let w = d.detector.predict_windows(code, stride)?;
        let window = icd_window_prediction {
            prediction: icd_prediction::from(&w.prediction),
            start_byte: w.byte_range.start,
            end_byte: w.byte_range.end,
            windows: w.windows,
        };
        // SAFETY: `prediction_out` is writable and `logits_out`, where not NULL, holds
        // `labels` writable floats (the contract; checked above).
        unsafe {
            prediction_out.write(window);
            if !logits_out.is_null() {
                ptr::copy_nonoverlapping(w.prediction.logits.as_ptr(), logits_out, labels);
            }
        }
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
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
    let body = || -> Result<(), Failure> {
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
    let body = || -> Result<(), Failure> {
        // SAFETY: NULL or a live handle (the contract).
        let d = unsafe { ref_arg(detector, "detector") }?;
        if count == 0 {
            return Ok(());
        }
        // SAFETY: NULL or `count` readable `icd_str`s (the contract).
        let inputs = unsafe { slice_arg(codes, count, "codes") }?;
        check_slice(explanations_out, count, "explanations_out")?;
        let texts = inputs
            .iter()
            .enumerate()
            // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
            .map(|(i, s)| unsafe { str_arg(s.ptr, s.len, &format!("codes[{i}]")) })
            .collect::<Result<Vec<&str>, Failure>>()?;
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

impl From<&crate::Prediction> for icd_prediction {
    fn from(p: &crate::Prediction) -> Self {
        icd_prediction {
            label: p.label as u32,
            insecure_probability: p.insecure_probability,
            tokens: p.tokens as u32,
            truncated: p.truncated,
        }
    }
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
    unsafe { explanation.as_ref() }.map_or(ptr::null(), |e| &e.prediction)
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
    if !explanation.is_null() {
        // SAFETY: from `Box::into_raw`, freed once (the contract).
        drop(unsafe { Box::from_raw(explanation) });
    }
}

/// One of a handle's arrays and its length (into `count_out` where not NULL); NULL
/// and 0 for a NULL handle.
///
/// # Safety
/// `handle` must be NULL or a live handle; `count_out` NULL or writable.
unsafe fn array_of<H, T>(
    handle: *const H,
    count_out: *mut usize,
    array: impl FnOnce(&H) -> &Vec<T>,
) -> *const T {
    // SAFETY: NULL or a live handle (the contract).
    let (values, count) = match unsafe { handle.as_ref() } {
        Some(e) => {
            let values = array(e);
            (values.as_ptr(), values.len())
        }
        None => (ptr::null(), 0),
    };
    if !count_out.is_null() {
        // SAFETY: not NULL, writable (the contract).
        unsafe { count_out.write(count) };
    }
    values
}

/// Finds the function definitions in `source_len` bytes of UTF-8 source at `source`,
/// as `icd scan` does (tree-sitter, with a reading per preprocessor branch where the
/// file has syntax errors). `language` is an `icd_language` value. On `ICD_OK`,
/// `*functions_out` receives a new `icd_functions` that the caller releases with
/// `icd_functions_free`; on failure it is left untouched. A build without the `scan`
/// cargo feature fails with `ICD_ERR_INVALID_ARGUMENT`.
///
/// # Safety
/// `source` must be NULL or point to `source_len` readable bytes; `functions_out` and
/// `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_find_functions(
    source: *const c_char,
    source_len: usize,
    language: u32,
    functions_out: *mut *mut icd_functions,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        let functions_out = out_arg(functions_out, "functions_out")?;
        // SAFETY: NULL or `source_len` readable bytes (the contract).
        let source = unsafe { str_arg(source, source_len, "source") }?;
        let handle = Box::into_raw(Box::new(find_functions(source, language)?));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { functions_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "scan")]
fn find_functions(source: &str, language: u32) -> Result<icd_functions, Failure> {
    use crate::scan::Language;
    let language = Language::from_code(language).ok_or_else(|| {
        Failure::invalid(
            "language",
            format!(
                "is {language}, expected {}",
                choices(Language::ALL.map(|l| (l.code(), l.name())))
            ),
        )
    })?;
    let found = crate::scan::find_functions(source, language);
    let mut strings = Vec::with_capacity(2 * found.functions.len());
    let items = found
        .functions
        .iter()
        .map(|f| icd_function::of(f, &mut strings))
        .collect();
    Ok(icd_functions {
        items,
        unparsed: found
            .unparsed_lines
            .iter()
            .map(|r| icd_line_range {
                start_line: r.start_line,
                end_line: r.end_line,
            })
            .collect(),
        _strings: strings,
    })
}

#[cfg(not(feature = "scan"))]
fn find_functions(_: &str, _: u32) -> Result<icd_functions, Failure> {
    Err(Failure::invalid(
        "source",
        "cannot be read: this build has no function finding (cargo feature `scan`)",
    ))
}

/// Finds the function definitions under `count` paths (files, or directories walked as
/// `icd scan` walks them: in a git work tree every tracked file whatever `.gitignore`
/// says, untracked files unless `.gitignore` leaves them out, `.ignore` files only with
/// `dot_ignore`; hidden files included; symbolic links never followed) and what could
/// not be covered. `max_file_size`: the largest file read, in bytes (0: 16 MiB). On
/// `ICD_OK`, `*tree_out` receives a new `icd_tree` that the caller releases with
/// `icd_tree_free`; a path given that does not exist or cannot be read is an error.
///
/// # Safety
/// `paths` must be NULL or `count` readable `icd_str`s, each NULL or pointing to its
/// `len` readable bytes; `tree_out` and `error_out` each NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_find_functions_under(
    paths: *const icd_str,
    count: usize,
    max_file_size: u64,
    dot_ignore: bool,
    tree_out: *mut *mut icd_tree,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), Failure> {
        let tree_out = out_arg(tree_out, "tree_out")?;
        // SAFETY: NULL or `count` readable `icd_str`s (the contract).
        let inputs = unsafe { slice_arg(paths, count, "paths") }?;
        let paths = inputs
            .iter()
            .enumerate()
            // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
            .map(|(i, p)| unsafe { path_arg(p.ptr, p.len, &format!("paths[{i}]")) })
            .collect::<Result<Vec<PathBuf>, Failure>>()?;
        let handle = Box::into_raw(Box::new(find_functions_under(
            &paths,
            max_file_size,
            dot_ignore,
        )?));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { tree_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

#[cfg(feature = "scan")]
fn find_functions_under(
    paths: &[PathBuf],
    max_file_size: u64,
    dot_ignore: bool,
) -> Result<icd_tree, Failure> {
    use crate::scan::{Language, TreeOptions};
    let options = TreeOptions {
        max_file_size: match max_file_size {
            0 => TreeOptions::DEFAULT_MAX_FILE_SIZE,
            n => n,
        },
        dot_ignore,
    };
    let found = crate::scan::find_functions_under(paths, &options, None)?;
    let mut strings = Vec::new();
    let mut functions = Vec::with_capacity(found.functions.len());
    for (file, f) in &found.functions {
        let (file_ptr, file_len) = keep(&mut strings, file);
        let function = icd_function::of(f, &mut strings);
        let (code, code_len) = keep(&mut strings, &f.code);
        functions.push(icd_tree_function {
            file: file_ptr,
            file_len,
            language: Language::from_path(std::path::Path::new(file))
                .unwrap_or(Language::C)
                .code(),
            function,
            code,
            code_len,
        });
    }
    let mut gaps = Vec::with_capacity(found.gaps.len());
    for gap in &found.gaps {
        let (file, file_len) = keep(&mut strings, &gap.file);
        let (message, _) = keep(&mut strings, &gap.message());
        gaps.push(icd_gap {
            file,
            file_len,
            message,
        });
    }
    Ok(icd_tree {
        functions,
        gaps,
        _strings: strings,
    })
}

#[cfg(not(feature = "scan"))]
fn find_functions_under(_: &[PathBuf], _: u64, _: bool) -> Result<icd_tree, Failure> {
    Err(Failure::invalid(
        "paths",
        "cannot be read: this build has no function finding (cargo feature `scan`)",
    ))
}

/// The functions `icd_find_functions_under` found, file by file in path order and in
/// source order within a file, owned by `tree`; `*count_out` (if not NULL) receives
/// their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `tree` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_tree_functions(
    tree: *const icd_tree,
    count_out: *mut usize,
) -> *const icd_tree_function {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(tree, count_out, |t| &t.functions) }
}

/// What could not be covered, by file, owned by `tree`; `*count_out` (if not NULL)
/// receives their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `tree` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_tree_gaps(
    tree: *const icd_tree,
    count_out: *mut usize,
) -> *const icd_gap {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(tree, count_out, |t| &t.gaps) }
}

/// Releases what `icd_find_functions_under` made. NULL is ignored.
///
/// # Safety
/// `tree` must be NULL or a handle not yet freed, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_tree_free(tree: *mut icd_tree) {
    if !tree.is_null() {
        // SAFETY: from `Box::into_raw`, freed once (the contract).
        drop(unsafe { Box::from_raw(tree) });
    }
}

/// `text` as a C string kept in `strings`: its pointer and length. A CString's bytes
/// stay where they are when the CString itself moves, so the pointer lives as long as
/// `strings` holds it.
#[cfg(feature = "scan")]
fn keep(strings: &mut Vec<CString>, text: &str) -> (*const c_char, usize) {
    let s = c_string(text);
    let pointer = (s.as_ptr(), s.as_bytes().len());
    strings.push(s);
    pointer
}

#[cfg(feature = "scan")]
impl icd_function {
    /// `f`, its strings kept in `strings`.
    fn of(f: &crate::scan::FunctionSpan, strings: &mut Vec<CString>) -> Self {
        let (name, name_len) = keep(strings, &f.name);
        let (fingerprint, _) = keep(strings, &f.fingerprint);
        icd_function {
            name,
            name_len,
            start_line: f.start_line,
            end_line: f.end_line,
            start_byte: f.start_byte,
            end_byte: f.end_byte,
            suppressed: f.suppressed,
            fingerprint,
        }
    }
}

/// `text` as a C string, any NUL in it replaced (a file name or function name can hold
/// none that C could read past).
fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "\u{fffd}")).expect("NULs replaced")
}

/// The functions found, in source order, owned by `functions`; `*count_out` (if not
/// NULL) receives their number. NULL (and 0) for a NULL handle.
///
/// # Safety
/// `functions` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_functions_items(
    functions: *const icd_functions,
    count_out: *mut usize,
) -> *const icd_function {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(functions, count_out, |f| &f.items) }
}

/// Lines holding code that no reading could parse into a definition or another
/// complete item: where functions may have gone unfound. In source order, owned by
/// `functions`; `*count_out` (if not NULL) receives their number; empty when the whole
/// source parsed.
///
/// # Safety
/// `functions` must be NULL or a live handle; `count_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn icd_functions_unparsed_lines(
    functions: *const icd_functions,
    count_out: *mut usize,
) -> *const icd_line_range {
    // SAFETY: as the contract says, for both.
    unsafe { array_of(functions, count_out, |f| &f.unparsed) }
}

/// Releases what `icd_find_functions` made. NULL is ignored.
///
/// # Safety
/// `functions` must be NULL or a handle not yet freed, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_functions_free(functions: *mut icd_functions) {
    if !functions.is_null() {
        // SAFETY: from `Box::into_raw`, freed once (the contract).
        drop(unsafe { Box::from_raw(functions) });
    }
}

/// The status of a failed call. `ICD_ERR_NULL_ARGUMENT` for a NULL error.
///
/// # Safety
/// `error` must be NULL or an error from a failed call, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn icd_error_status(error: *const icd_error) -> icd_status {
    // SAFETY: NULL or a live error (the contract).
    unsafe { error.as_ref() }.map_or(icd_status::ICD_ERR_NULL_ARGUMENT, |e| e.status)
}

/// The message of a failed call: NUL-terminated UTF-8 owned by the error, valid until
/// `icd_error_free`. An empty string for a NULL error.
///
/// # Safety
/// `error` must be NULL or an error from a failed call, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn icd_error_message(error: *const icd_error) -> *const c_char {
    // SAFETY: NULL or a live error (the contract).
    unsafe { error.as_ref() }.map_or(c"".as_ptr(), |e| e.message.as_ptr())
}

/// Releases an error. NULL is ignored.
///
/// # Safety
/// `error` must be NULL or an error from a failed call, freed only this once.
#[no_mangle]
pub unsafe extern "C" fn icd_error_free(error: *mut icd_error) {
    if !error.is_null() {
        // SAFETY: the error came from `Box::into_raw` in `guard` and is freed once.
        drop(unsafe { Box::from_raw(error) });
    }
}

/// A failed call: its status and message.
struct Failure {
    status: icd_status,
    message: String,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let status = match &error {
            Error::Io { .. }
            | Error::NoWeights { .. }
            | Error::FileRefused { .. }
            | Error::Cache { .. } => icd_status::ICD_ERR_IO,
            Error::ConfigParse { .. }
            | Error::ConfigValue { .. }
            | Error::UnsupportedModel { .. } => icd_status::ICD_ERR_CONFIG,
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
            Error::Inference(_) | Error::NonFiniteLogits { .. } => icd_status::ICD_ERR_INFERENCE,
        };
        Failure {
            status,
            message: error.to_string(),
        }
    }
}

impl Failure {
    fn invalid(argument: &str, message: impl std::fmt::Display) -> Self {
        Failure {
            status: icd_status::ICD_ERR_INVALID_ARGUMENT,
            message: format!("argument `{argument}` {message}"),
        }
    }
}

fn null_argument(argument: &str) -> Failure {
    Failure {
        status: icd_status::ICD_ERR_NULL_ARGUMENT,
        message: format!("argument `{argument}` is NULL"),
    }
}

/// The panic boundary of every fallible entry point: runs `body`, turning its failure
/// or panic into a status and, when `error_out` is not NULL, an `icd_error`.
///
/// # Safety
/// `error_out` must be NULL or writable.
unsafe fn guard(
    error_out: *mut *mut icd_error,
    body: impl FnOnce() -> Result<(), Failure>,
) -> icd_status {
    let failure = match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => return icd_status::ICD_OK,
        Ok(Err(failure)) => failure,
        Err(panic) => Failure {
            status: icd_status::ICD_ERR_PANIC,
            message: format!("internal error (caught panic): {}", panic_message(&*panic)),
        },
    };
    if !error_out.is_null() {
        let message = c_string(&failure.message);
        let error = Box::into_raw(Box::new(icd_error {
            status: failure.status,
            message,
        }));
        // SAFETY: not NULL, and writable (the contract).
        unsafe { *error_out = error };
    }
    failure.status
}

/// `*ptr`, or a failure naming `argument` where it is NULL.
///
/// # Safety
/// `ptr` must be NULL or point to a valid `T` that outlives `'a`.
unsafe fn ref_arg<'a, T>(ptr: *const T, argument: &str) -> Result<&'a T, Failure> {
    // SAFETY: NULL or valid (the contract).
    unsafe { ptr.as_ref() }.ok_or_else(|| null_argument(argument))
}

/// `ptr` checked as a place to write a `T`: a failure naming `argument` where it is
/// NULL. Outputs are written through the pointer, never read, as the caller's memory
/// may be uninitialized.
fn out_arg<T>(ptr: *mut T, argument: &str) -> Result<*mut T, Failure> {
    if ptr.is_null() {
        Err(null_argument(argument))
    } else {
        Ok(ptr)
    }
}

/// `len` values at `ptr`: none for `len` 0 (whatever `ptr` is), else a failure naming
/// `argument` where `ptr` is NULL or the values would span more than `isize::MAX`
/// bytes.
///
/// # Safety
/// `ptr` must be NULL or point to `len` readable, initialized `T`s that outlive `'a`.
unsafe fn slice_arg<'a, T>(ptr: *const T, len: usize, argument: &str) -> Result<&'a [T], Failure> {
    check_slice(ptr, len, argument)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: not NULL, aligned for C's `T`, `len` readable values (the contract) within
    // isize::MAX bytes (checked).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// NULL (with a length) and lengths past `isize::MAX` bytes refused, naming `argument`.
fn check_slice<T>(ptr: *const T, len: usize, argument: &str) -> Result<(), Failure> {
    if len == 0 {
        return Ok(());
    }
    if ptr.is_null() {
        return Err(null_argument(argument));
    }
    if len > isize::MAX as usize / std::mem::size_of::<T>().max(1) {
        return Err(Failure::invalid(
            argument,
            format!("has an impossible length {len}"),
        ));
    }
    Ok(())
}

/// A logits buffer (NULL: not wanted) checked for `count` predictions of `labels`
/// logits each.
fn check_logits(
    logits_out: *mut f32,
    logits_capacity: usize,
    count: usize,
    labels: usize,
) -> Result<(), Failure> {
    if logits_out.is_null() {
        return Ok(());
    }
    let wanted = count.saturating_mul(labels);
    if logits_capacity < wanted {
        return Err(Error::InvalidArgument {
            argument: "logits_capacity",
            message: format!(
                "is {logits_capacity}, {count} predictions of {labels} logits need {wanted}"
            ),
        }
        .into());
    }
    check_slice(logits_out, wanted, "logits_out")
}

/// `len` bytes at `ptr` ([`slice_arg`] on bytes).
///
/// # Safety
/// As [`slice_arg`].
unsafe fn bytes_arg<'a>(
    ptr: *const c_char,
    len: usize,
    argument: &str,
) -> Result<&'a [u8], Failure> {
    // SAFETY: the contract, passed on.
    unsafe { slice_arg(ptr.cast::<u8>(), len, argument) }
}

/// `len` bytes at `ptr` as UTF-8, or `ICD_ERR_INVALID_UTF8` naming `argument`.
///
/// # Safety
/// As [`slice_arg`].
unsafe fn str_arg<'a>(ptr: *const c_char, len: usize, argument: &str) -> Result<&'a str, Failure> {
    // SAFETY: the contract, passed on.
    let bytes = unsafe { bytes_arg(ptr, len, argument) }?;
    std::str::from_utf8(bytes).map_err(|e| Failure {
        status: icd_status::ICD_ERR_INVALID_UTF8,
        message: format!("argument `{argument}` is not valid UTF-8: {e}"),
    })
}

/// `len` bytes at `ptr` as a path (any bytes on Unix, UTF-8 elsewhere); empty refused.
///
/// # Safety
/// As [`slice_arg`].
unsafe fn path_arg(ptr: *const c_char, len: usize, argument: &str) -> Result<PathBuf, Failure> {
    // SAFETY: the contract, passed on.
    let bytes = unsafe { bytes_arg(ptr, len, argument) }?;
    if bytes.is_empty() {
        return Err(Failure::invalid(argument, "is empty"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(PathBuf::from)
            .map_err(|e| Failure {
                status: icd_status::ICD_ERR_INVALID_UTF8,
                message: format!("argument `{argument}` is not valid UTF-8: {e}"),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header's option enums are the Rust tables: the same numbers, and each
    /// variant named after its `name()`.
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

    #[cfg(feature = "scan")]
    #[test]
    fn the_c_language_enum_is_the_rust_table() {
        use crate::scan::Language;
        use icd_language::*;
        let languages = [ICD_LANGUAGE_C, ICD_LANGUAGE_CPP];
        assert_eq!(languages.len(), Language::ALL.len());
        for c in languages {
            let l = Language::from_code(c as u32).expect("a Rust language");
            assert_eq!(
                format!("{c:?}"),
                format!("ICD_LANGUAGE_{}", l.name().to_uppercase())
            );
        }
    }

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
        ];
        assert_eq!(icd_status::ALL.len(), names.len());
        for (number, (status, want)) in icd_status::ALL.iter().zip(names).enumerate() {
            assert_eq!(*status as usize, number);
            // SAFETY: icd_status_name returns a static NUL-terminated string.
            let name = unsafe { CStr::from_ptr(icd_status_name(number as u32)) };
            assert_eq!(name.to_str().unwrap(), want);
        }
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(icd_status_name(11)) };
        assert_eq!(unknown.to_str().unwrap(), "ICD_UNKNOWN_STATUS");
        assert_eq!(
            choices(Precision::ALL.map(|p| (p.code(), p.name()))),
            "0 (f32), 1 (bf16), 2 (f16), 3 (int8) or 4 (tf32)"
        );
    }
}
