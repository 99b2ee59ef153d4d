//! The detector handle: opening, releasing, what it is, and classifying functions.

use std::ffi::{c_char, CString};
use std::ptr;

use super::boundary::*;
use super::errors::{icd_status, choices, icd_error, CallError};
use super::library::{icd_options, icd_options_default, icd_str};
use crate::{Detector, DetectorBuilder, Error, Precision, Preprocessing};

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
    pub(super) detector: Detector,
    /// What it was built from: the files and settings of the key its results are
    /// cached under.
    pub(super) builder: DetectorBuilder,
    /// The checkpoint's files as they were when it loaded, to tell whether they are
    /// still the ones it runs.
    checkpoint: Vec<FileState>,
    /// The prediction cache predictions go through, once attached.
    pub(super) cache: Option<std::sync::Mutex<super::cache::AttachedCache>>,
    /// Functions the model has classified (`icd_detector_model_calls`).
    pub(super) model_calls: std::sync::atomic::AtomicU64,
    /// Label names, NUL-terminated, for `icd_detector_label_name`.
    pub(super) label_names: Vec<CString>,
    /// What the model runs on, NUL-terminated, for `icd_detector_execution`.
    execution: CString,
    /// The calibration file's threshold, for `icd_detector_threshold`.
    threshold: Option<f64>,
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
    // SAFETY: the caller's contract is this function's, less the calibration.
    unsafe {
        icd_detector_open_calibrated(
            model_dir,
            model_dir_len,
            backend,
            backend_len,
            options,
            ptr::null(),
            0,
            detector_out,
            error_out,
        )
    }
}

/// `icd_detector_open`, with insecure probabilities calibrated by the file that `icd
/// calibrate` wrote at `calibration`/`calibration_len` (bytes of a path; NULL with
/// length 0 for none). The file must have been fitted for this checkpoint: another
/// checkpoint's, a malformed file or another version fails with `ICD_ERR_CONFIG`,
/// naming the file. `icd_detector_threshold` gives the file's threshold.
///
/// # Safety
/// As `icd_detector_open`; `calibration` NULL or `calibration_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_open_calibrated(
    model_dir: *const c_char,
    model_dir_len: usize,
    backend: *const c_char,
    backend_len: usize,
    options: *const icd_options,
    calibration: *const c_char,
    calibration_len: usize,
    detector_out: *mut *mut icd_detector,
    error_out: *mut *mut icd_error,
) -> icd_status {
    let body = || -> Result<(), CallError> {
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
        // SAFETY: NULL or `backend_len` readable bytes (the contract).
        if let Some(name) = unsafe { optional_str_arg(backend, backend_len, "backend") }? {
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
        let mut threshold = None;
        // SAFETY: NULL or `calibration_len` readable bytes (the contract).
        let calibration =
            unsafe { optional_path_arg(calibration, calibration_len, "calibration") }?;
        if let Some(path) = calibration {
            let file = builder.read_calibration(&path)?;
            threshold = file.threshold;
            builder = builder.calibration(Some(file.calibration));
        }
        // Taken before the load, so that files replaced during it are seen as changed;
        // where they cannot be listed, the load says why.
        let before = checkpoint_state(&builder).ok();
        let detector = builder.clone().build()?;
        let checkpoint = match before {
            Some(state) => state,
            None => checkpoint_state(&builder)?,
        };
        let label_names = detector
            .labels()
            .iter()
            .map(|name| CString::new(name.replace('\0', "\u{fffd}")).expect("NULs replaced"))
            .collect();
        let execution =
            CString::new(detector.execution().to_string()).expect("plan names have no NUL");
        let handle = Box::into_raw(Box::new(icd_detector {
            detector,
            builder,
            checkpoint,
            cache: None,
            model_calls: Default::default(),
            label_names,
            execution,
            threshold,
        }));
        // SAFETY: not NULL (checked) and writable (the contract).
        unsafe { detector_out.write(handle) };
        Ok(())
    };
    // SAFETY: `error_out` is NULL or writable (the contract).
    unsafe { guard(error_out, body) }
}

/// A file as its metadata identifies it: path, size, modification and change times,
/// and (on Unix) inode and device, what the prediction cache remembers a weight file's
/// digest by. A file replaced or rewritten, whatever times it is given, differs in one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileState {
    path: std::path::PathBuf,
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    unix: (i64, i64, u64, u64),
}

/// The state of each checkpoint file.
fn checkpoint_state(builder: &DetectorBuilder) -> Result<Vec<FileState>, CallError> {
    let mut state = Vec::new();
    for path in builder.checkpoint_files()? {
        let meta = std::fs::metadata(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        #[cfg(unix)]
        let unix = {
            use std::os::unix::fs::MetadataExt;
            (meta.ctime(), meta.ctime_nsec(), meta.ino(), meta.dev())
        };
        state.push(FileState {
            path,
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            unix,
        });
    }
    Ok(state)
}

impl icd_detector {
    /// Whether the checkpoint's files differ from those it loaded.
    pub(super) fn checkpoint_changed(&self) -> Result<bool, CallError> {
        Ok(checkpoint_state(&self.builder)? != self.checkpoint)
    }
}

/// The threshold of the calibration file the detector was opened with: flag a function
/// whose insecure probability is at or above it. NaN where the detector has no
/// calibration, or its file sets no threshold, or `detector` is NULL.
///
/// # Safety
/// `detector` must be NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_threshold(detector: *const icd_detector) -> f64 {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { read_handle(detector, f64::NAN, |d| d.threshold.unwrap_or(f64::NAN)) }
}

/// Releases a detector. NULL is ignored. The handle must not be used afterwards, nor
/// freed while another thread is using it.
///
/// # Safety
/// `detector` must be NULL or a handle from `icd_detector_open` not yet freed, with no
/// other call on it running or to come.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_free(detector: *mut icd_detector) {
    // SAFETY: from `icd_detector_open`'s `Box::into_raw`, freed once (the contract).
    unsafe { free_handle(detector) }
}

/// Number of labels (logits per prediction); 0 for a NULL detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_num_labels(detector: *const icd_detector) -> usize {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { read_handle(detector, 0, |d| d.label_names.len()) }
}

/// Tokens per input after truncation; 0 for a NULL detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_max_tokens(detector: *const icd_detector) -> usize {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { read_handle(detector, 0, |d| d.detector.max_tokens()) }
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
    let body = || -> Result<(), CallError> {
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
    unsafe {
        read_handle(detector, ptr::null(), |d| {
            d.detector.backend().c_name().as_ptr()
        })
    }
}

/// What the detector runs its encoder on, chosen at load: "tensors f32" (or f64,
/// bf16, f16) for the backend's own tensor operations, or one of the library's packed
/// CPU kernels and its instruction set, as "kernel f32-avx2 (AVX2+FMA)",
/// "kernel f32-avx512 (AVX-512F)", "kernel bf16-avx512 (AVX512-BF16)",
/// "kernel bf16-avx2 (AVX2+FMA)", "kernel int8-avx2 (AVX2+FMA)" or
/// "kernel int8-vnni (AVX512-VNNI)".
/// NUL-terminated, owned by the detector, valid until it is freed; NULL for a NULL
/// detector.
///
/// # Safety
/// `detector` must be NULL or a live handle from `icd_detector_open`.
#[no_mangle]
pub unsafe extern "C" fn icd_detector_execution(detector: *const icd_detector) -> *const c_char {
    // SAFETY: NULL or a live handle (the contract).
    unsafe { read_handle(detector, ptr::null(), |d| d.execution.as_ptr()) }
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
    let body = || -> Result<(), CallError> {
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
    let body = || -> Result<(), CallError> {
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
        // SAFETY: each NULL or pointing to its `len` readable bytes (the contract).
        let texts = unsafe { strs_arg(inputs, "codes") }?;
        let predictions = d.predict_batch(&texts)?;
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
    let body = || -> Result<(), CallError> {
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
