//! Flags insecure C and C++ functions with CodeBERT fine-tuned for defect detection
//! (`mrm8488/codebert-base-finetuned-detect-insecure-code`), in pure Rust.
//!
//! The RoBERTa encoder and classification head run on [burn](https://burn.dev), on the
//! backend chosen at build time (cargo features `flex`, `ndarray`, `wgpu`, `cuda`) and at
//! run time ([`Backend`]). Weights load from the hub checkpoint's `model.safetensors` or
//! `pytorch_model.bin`, tokens come from the `tokenizers` crate, and the logits equal
//! transformers' on the same checkpoint.
//!
//! ```no_run
//! use insecure_code_detector::Detector;
//!
//! let detector = Detector::from_pretrained("models/codebert-insecure")?;
//! let functions = ["int f(int *a, int i) { return a[i]; }", "int g(void) { return 0; }"];
//! for (code, p) in functions.iter().zip(detector.predict_batch(&functions)?) {
//!     println!("{:.3} {}", p.insecure_probability, code);
//! }
//! # Ok::<(), insecure_code_detector::Error>(())
//! ```

#![warn(missing_docs)]

// The public API is what `pub use` names below, and the modules marked `pub`: the
// prediction cache, calibration, evaluation on labelled data, checkpoint resolution,
// untrusted-file handling, report escaping and function finding, which the `icd` tool
// and other front ends build on. Everything else is the implementation.
mod backend;
#[cfg(feature = "cache")]
pub mod cache;
pub mod calibration;
mod call_rows;
mod config;
mod cpu;
mod detector;
mod error;
pub mod evaluation;
mod execution;
/// The C ABI as Rust items, for the fuzz targets; C callers use
/// `include/insecure_code_detector.h`.
#[doc(hidden)]
pub mod ffi;
pub mod files;
pub mod hub;
mod model;
mod names;
mod precision;
#[cfg(feature = "scan")]
pub mod report;
#[cfg(feature = "scan")]
pub mod scan;
mod tokenizer;
#[cfg(feature = "train")]
pub mod training;
mod weights;

pub use backend::Backend;
pub use config::RobertaConfig;
pub use cpu::{CpuFeatures, Kernel};
pub use detector::{
    CallShapes, Detector, DetectorBuilder, Explanation, LineScore, Prediction, Preprocessing,
    TokenScore, WindowedExplanation, WindowedPrediction,
};
pub use error::{Error, Result};
pub use execution::ExecutionPlan;
pub use precision::Precision;
pub use tokenizer::{CodeTokenizer, TokenizedInput};
pub use weights::{convert_pytorch_to_safetensors, StorageDtype};

/// The hub checkpoint this library is built for.
pub const HUB_MODEL_ID: &str = "mrm8488/codebert-base-finetuned-detect-insecure-code";

/// `model_max_length` from the checkpoint's `tokenizer_config.json`, when it has one
/// that is a usable number (transformers writes a huge sentinel for "no limit").
pub(crate) fn tokenizer_max_length(dir: &std::path::Path) -> Result<Option<usize>> {
    let path = dir.join("tokenizer_config.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = files::read_untrusted_text(&path, files::CONFIG_LIMIT, "tokenizer_config.json")?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Tokenizer {
        path: path.clone(),
        message: e.to_string(),
    })?;
    Ok(value
        .get("model_max_length")
        .and_then(serde_json::Value::as_u64)
        .filter(|n| (2..1 << 32).contains(n))
        .map(|n| n as usize))
}
