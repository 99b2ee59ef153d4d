//! The fuzz targets' bodies, shared by the cargo-fuzz binaries in `fuzz_targets/` and by
//! `tests/it/fuzz_regressions.rs`, which replays the committed seeds and every input a
//! fuzz run ever failed on through these same functions with a stable toolchain.
//!
//! Each body feeds hostile bytes to one entry point and asserts what the library
//! promises there: an `Ok` that makes sense or an `Err`, never a panic, and for the C
//! ABI, a status with nothing written on failure.

#![allow(dead_code)]

use std::ffi::c_char;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use insecure_code_detector::RobertaConfig;
use insecure_code_detector::ffi::{self, icd_detector, icd_prediction, icd_status, icd_str};
use insecure_code_detector::{Backend, Detector};

/// The repository root (this file's crate is either the library or `fuzz/`).
fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("tests/fixtures").is_dir() {
        here.to_path_buf()
    } else {
        here.parent().expect("fuzz/ has a parent").to_path_buf()
    }
}

/// The two-label test checkpoint: config, vocab.json + merges.txt, safetensors and bin.
fn fixture() -> PathBuf {
    repo_root().join("tests/fixtures/roberta-2-labels")
}

fn detector() -> &'static Detector {
    static DETECTOR: OnceLock<Detector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        Detector::builder(fixture())
            .backend(Backend::Flex)
            .build()
            .expect("fixture loads")
    })
}

fn check_prediction(prediction: &insecure_code_detector::Prediction, max_tokens: usize) {
    assert!(
        prediction.logits.iter().all(|l| l.is_finite()),
        "non-finite logits {:?}",
        prediction.logits
    );
    assert!((0.0..=1.0).contains(&prediction.insecure_probability));
    assert!(prediction.label < prediction.logits.len());
    assert!(
        prediction.tokens >= 2 && prediction.tokens <= max_tokens,
        "{} tokens",
        prediction.tokens
    );
}

/// `config.json` text: parsed and checked, never a panic (nor an arithmetic overflow
/// in the size checks); an accepted configuration is one a model can be built from.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = RobertaConfig::from_json_str(text, Path::new("config.json")) else {
        return;
    };
    assert!(config.num_attention_heads > 0 && config.hidden_size % config.num_attention_heads == 0);
    assert!(config.head_dim() * config.num_attention_heads == config.hidden_size);
    assert!(config.pad_token_id < config.vocab_size);
    assert!(config.max_tokens() >= 2 && config.max_tokens() < config.max_position_embeddings);
    assert!(config.num_labels >= 1);
    assert!(config.layer_norm_eps > 0.0 && config.layer_norm_eps < 1.0);
    config.parameter_count();
}

/// A checkpoint directory with one file replaced by the input: the first byte picks
/// which (safetensors weights, pytorch_model.bin, config.json, vocab.json, merges.txt),
/// the rest is its content. Loading gives an error or a detector that predicts.
pub fn checkpoint(data: &[u8]) {
    let Some((&which, content)) = data.split_first() else {
        return;
    };
    let replaced = [
        "model.safetensors",
        "pytorch_model.bin",
        "config.json",
        "vocab.json",
        "merges.txt",
    ];
    let replaced = replaced[which as usize % replaced.len()];
    let dir = tempfile::tempdir().expect("temporary directory");
    for name in [
        "config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixture().join(name), dir.path().join(name)).expect("fixture file");
    }
    // One weight file only, so that the replaced one is the one read.
    let weights = if replaced == "pytorch_model.bin" {
        "pytorch_model.bin"
    } else {
        "model.safetensors"
    };
    std::fs::copy(fixture().join(weights), dir.path().join(weights)).expect("fixture weights");
    std::fs::write(dir.path().join(replaced), content).expect("write input");
    let Ok(loaded) = Detector::builder(dir.path()).backend(Backend::Flex).build() else {
        return;
    };
    let prediction = loaded
        .predict("int f(char *s) { char b[8]; strcpy(b, s); return 0; }")
        .expect("a loaded detector predicts");
    check_prediction(&prediction, loaded.max_tokens());
}

/// Arbitrary text through prediction, batching and windowing: results in range, a
/// batch equal to single predictions, windows covering the input.
pub fn predict(data: &[u8]) {
    let detector = detector();
    let text = String::from_utf8_lossy(data);
    let single = detector.predict(&text).expect("predict");
    check_prediction(&single, detector.max_tokens());

    // The input split at NUL bytes (or in two) as a batch of at most 8 functions.
    let mut parts: Vec<&str> = text.splitn(8, '\0').collect();
    if parts.len() == 1 {
        let middle = (0..=text.len() / 2)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        parts = vec![&text[..middle], &text[middle..]];
    }
    let batch = detector.predict_batch(&parts).expect("predict_batch");
    assert_eq!(batch.len(), parts.len());
    for (part, in_batch) in parts.iter().zip(&batch) {
        let alone = detector.predict(part).expect("predict");
        assert_eq!(alone.tokens, in_batch.tokens);
        for (a, b) in alone.logits.iter().zip(&in_batch.logits) {
            assert!(
                (a - b).abs() <= 1e-4,
                "batched logits differ: {:?} vs {:?}",
                alone.logits,
                in_batch.logits
            );
        }
    }

    // Strides from a quarter window up to a whole one: at most about four model calls
    // per window's worth of tokens, so that an input costs milliseconds, not seconds.
    let width = detector.max_tokens() - 2;
    let shortest = (width / 4).max(1);
    let stride = shortest + data.first().copied().unwrap_or(0) as usize % (width - shortest + 1);
    let windows = detector
        .predict_windows(&text, stride)
        .expect("predict_windows");
    assert!(windows.windows >= 1);
    check_prediction(&windows.prediction, detector.max_tokens());
    assert!(!windows.prediction.truncated);
    // The worst window is at least as insecure as the first 512 tokens alone.
    assert!(windows.prediction.insecure_probability + 1e-5 >= single.insecure_probability);
    let range = &windows.byte_range;
    assert!(
        range.start <= range.end && range.end <= text.len(),
        "{range:?} of {} bytes",
        text.len()
    );
}

fn open_c_detector() -> &'static CDetector {
    static HANDLE: OnceLock<CDetector> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let dir = fixture().display().to_string();
        let mut handle: *mut icd_detector = std::ptr::null_mut();
        let mut error = std::ptr::null_mut();
        let backend = "flex";
        let status = unsafe {
            ffi::icd_detector_open(
                dir.as_ptr().cast(),
                dir.len(),
                backend.as_ptr().cast(),
                backend.len(),
                std::ptr::null(),
                &mut handle,
                &mut error,
            )
        };
        assert_eq!(status, icd_status::ICD_OK);
        CDetector(handle)
    })
}

struct CDetector(*mut icd_detector);
// The handle is documented as shareable across threads.
unsafe impl Send for CDetector {}
unsafe impl Sync for CDetector {}

/// Raw bytes through `icd_detector_predict_batch`, split at NUL bytes into several
/// functions: valid UTF-8 gives `ICD_OK` and the Rust API's results; anything else
/// gives `ICD_ERR_INVALID_UTF8` naming the input, and the outputs stay untouched.
pub fn c_api(data: &[u8]) {
    let handle = open_c_detector().0;
    let parts: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let strs: Vec<icd_str> = parts
        .iter()
        .map(|p| icd_str {
            ptr: p.as_ptr().cast::<c_char>(),
            len: p.len(),
        })
        .collect();
    let labels = unsafe { ffi::icd_detector_num_labels(handle) };
    let sentinel = icd_prediction {
        label: 77,
        insecure_probability: -1.0,
        tokens: 0,
        truncated: true,
    };
    let mut predictions = vec![sentinel; parts.len()];
    let mut logits = vec![f32::NAN; parts.len() * labels];
    let mut error = std::ptr::null_mut();
    let status = unsafe {
        ffi::icd_detector_predict_batch(
            handle,
            strs.as_ptr(),
            strs.len(),
            predictions.as_mut_ptr(),
            logits.as_mut_ptr(),
            logits.len(),
            &mut error,
        )
    };
    let first_invalid = parts.iter().position(|p| std::str::from_utf8(p).is_err());
    match first_invalid {
        None => {
            assert_eq!(status, icd_status::ICD_OK);
            assert!(error.is_null());
            for (i, part) in parts.iter().enumerate() {
                let expected = detector()
                    .predict(std::str::from_utf8(part).unwrap())
                    .unwrap();
                assert_eq!(predictions[i].label as usize, expected.label);
                assert_eq!(predictions[i].tokens as usize, expected.tokens);
                for (a, b) in logits[i * labels..(i + 1) * labels]
                    .iter()
                    .zip(&expected.logits)
                {
                    assert!((a - b).abs() <= 1e-4);
                }
            }
        }
        Some(index) => {
            assert_eq!(status, icd_status::ICD_ERR_INVALID_UTF8);
            assert!(!error.is_null());
            let message = unsafe { std::ffi::CStr::from_ptr(ffi::icd_error_message(error)) }
                .to_string_lossy()
                .into_owned();
            assert!(message.contains(&format!("codes[{index}]")), "{message}");
            unsafe { ffi::icd_error_free(error) };
            assert!(predictions
                .iter()
                .all(|p| p.label == 77 && p.insecure_probability == -1.0));
            assert!(logits.iter().all(|l| l.is_nan()));
        }
    }
}

/// Source bytes through the function finder, as C (even length) or C++: never a
/// panic; definitions in source order, none overlapping, each's text and lines those
/// of its bytes; unparsed lines inside the file and outside every definition; the same
/// result twice.
pub fn scan(data: &[u8]) {
    use insecure_code_detector::scan::{find_functions_in_bytes, Language};
    let language = match data.len() % 2 {
        0 => Language::C,
        _ => Language::Cpp,
    };
    let result = find_functions_in_bytes(data, language);
    let text = String::from_utf8_lossy(data);
    let lines = text.split('\n').count();
    let mut previous_end = 0;
    for f in &result.functions {
        assert!(
            previous_end <= f.start_byte && f.start_byte < f.end_byte && f.end_byte <= text.len(),
            "{f:?} after byte {previous_end}"
        );
        previous_end = f.end_byte;
        assert_eq!(text.get(f.start_byte..f.end_byte), Some(f.code.as_str()));
        assert_eq!(f.start_line, 1 + text[..f.start_byte].matches('\n').count());
        assert!(f.start_line <= f.end_line && f.end_line <= lines, "{f:?}");
        assert!(!f.name.is_empty());
    }
    for range in &result.unparsed_lines {
        assert!(
            1 <= range.start_line && range.start_line <= range.end_line && range.end_line <= lines
        );
        assert!(
            result
                .functions
                .iter()
                .all(|f| range.end_line < f.start_line || f.end_line < range.start_line),
            "{range:?} inside a definition"
        );
    }
    if result.unparsed_lines.is_empty() {
        assert!(result.unparsed_line_count() == 0);
    }
    assert_eq!(find_functions_in_bytes(data, language), result);
}

/// Bytes through `predict_windows` under both preprocessings (the first byte picks the
/// stride): the reported range lies within the text as given, on character
/// boundaries, and collapsing it gives words of the collapsed text.
pub fn windows(data: &[u8]) {
    use insecure_code_detector::Preprocessing;
    let text = String::from_utf8_lossy(data);
    let width = detector().max_tokens() - 2;
    let shortest = (width / 4).max(1);
    let stride = shortest + data.first().copied().unwrap_or(0) as usize % (width - shortest + 1);
    for preprocessing in [Preprocessing::Raw, Preprocessing::CollapseWhitespace] {
        static COLLAPSING: OnceLock<Detector> = OnceLock::new();
        let detector = match preprocessing {
            Preprocessing::Raw => detector(),
            _ => COLLAPSING.get_or_init(|| {
                Detector::builder(fixture())
                    .backend(Backend::Flex)
                    .preprocessing(Preprocessing::CollapseWhitespace)
                    .build()
                    .expect("fixture loads")
            }),
        };
        let w = detector
            .predict_windows(&text, stride)
            .expect("predict_windows");
        let range = w.byte_range.clone();
        assert!(
            range.start <= range.end && range.end <= text.len(),
            "{range:?} of {}",
            text.len()
        );
        let covered = text.get(range.clone()).expect("character boundaries");
        let whole = preprocessing.apply(&text);
        assert!(
            whole.contains(&*preprocessing.apply(covered)),
            "{preprocessing:?}: {covered:?} is not in the text the model saw"
        );
        check_prediction(&w.prediction, detector.max_tokens());
    }
}

/// Bytes as a file name (lossily as text) through the report's renderers: the
/// printed name holds no control or bidirectional-control character and keeps every
/// other character; the SARIF URI holds only URI characters and decodes back to the
/// name.
pub fn render(data: &[u8]) {
    use insecure_code_detector::report::{printable, sarif_uri};
    let name = String::from_utf8_lossy(data);
    let shown = printable(&name);
    let escaped = |c: char| {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    assert!(!shown.chars().any(escaped), "{shown:?}");
    let kept: String = name.chars().filter(|&c| !escaped(c)).collect();
    assert!(
        kept.chars().all(|c| shown.contains(c)),
        "{shown:?} lost a character of {name:?}"
    );
    let uri = sarif_uri(&name);
    assert!(
        uri.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=@/%:".contains(&b)),
        "{uri:?}"
    );
    let (path, absolute) = match uri.strip_prefix("file://") {
        Some(rest) if name.starts_with('/') => (rest, true),
        _ => (uri.as_str(), false),
    };
    let decoded = percent_decode(path);
    let expected = if absolute {
        name.to_string()
    } else {
        name.strip_prefix("./").unwrap_or(&name).to_string()
    };
    assert_eq!(decoded, expected.as_bytes(), "{uri:?}");
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("two hex digits");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}
