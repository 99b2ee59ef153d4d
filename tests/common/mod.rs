//! Helpers shared by the integration tests: fixture paths, transformers' reference
//! outputs, the backends to test and the shared data directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use insecure_code_detector::Backend;
use serde_json::Value;

/// Largest difference from transformers' logits the tests accept (f32).
pub const LOGIT_TOLERANCE: f32 = 1e-4;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The checkpoints the fixture script makes.
pub const CHECKPOINTS: [&str; 3] = [
    "roberta-2-labels",
    "roberta-1-label-old-config",
    "roberta-5-labels",
];

/// What transformers produced for one input in one preprocessing mode.
#[derive(Debug, Clone)]
pub struct Expected {
    pub input_ids: Vec<u32>,
    pub untruncated_length: usize,
    pub truncated: bool,
    pub logits: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct ReferenceInput {
    pub text: String,
    pub raw: Expected,
    pub collapse_whitespace: Expected,
}

#[derive(Debug, Clone)]
pub struct Reference {
    pub inputs: Vec<ReferenceInput>,
    pub padded_batch_logits: Vec<Vec<f32>>,
    pub max_length: usize,
}

/// A JSON array of numbers as f32.
pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn expected(v: &Value) -> Expected {
    Expected {
        input_ids: v["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect(),
        untruncated_length: v["untruncated_length"].as_u64().unwrap() as usize,
        truncated: v["truncated"].as_bool().unwrap(),
        logits: floats(&v["logits"]),
    }
}

/// A fixture's `reference.json` as it is (what transformers produced for it).
pub fn reference_json(checkpoint: &str) -> Value {
    let text = std::fs::read_to_string(fixture(checkpoint).join("reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn reference(checkpoint: &str) -> Reference {
    let v = reference_json(checkpoint);
    Reference {
        inputs: v["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| ReferenceInput {
                text: e["text"].as_str().unwrap().to_owned(),
                raw: expected(&e["raw"]),
                collapse_whitespace: expected(&e["collapse_whitespace"]),
            })
            .collect(),
        padded_batch_logits: v["padded_batch_logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(floats)
            .collect(),
        max_length: v["max_length"].as_u64().unwrap() as usize,
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "logit counts differ: {a:?} vs {b:?}");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn assert_logits_close(actual: &[f32], expected: &[f32], what: &str) {
    let diff = max_abs_diff(actual, expected);
    assert!(
        diff <= LOGIT_TOLERANCE,
        "{what}: max |logit - transformers| = {diff:e} > {LOGIT_TOLERANCE:e}\n  ours:         {actual:?}\n  transformers: {expected:?}"
    );
}

/// Backends the parity tests run on: `ICD_TEST_BACKENDS` (comma-separated) when set,
/// else every compiled-in CPU backend. GPU backends are opt-in because the machine
/// may lack the device.
pub fn test_backends() -> Vec<Backend> {
    match std::env::var("ICD_TEST_BACKENDS") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|name| name.trim().parse::<Backend>().unwrap())
            .inspect(|b| {
                assert!(
                    b.is_compiled(),
                    "ICD_TEST_BACKENDS names {b}, which is not compiled in"
                )
            })
            .collect(),
        _ => Backend::compiled()
            .into_iter()
            .filter(|b| matches!(b, Backend::Flex | Backend::NdArray))
            .collect(),
    }
}

/// The shared data directory (`ICD_SHARED_DIR`, else `../shared` beside the checkout).
pub fn shared_dir() -> PathBuf {
    std::env::var_os("ICD_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

/// A file under the shared directory, or None (with the reason printed) when absent.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; set ICD_SHARED_DIR to the directory holding roberta-base-tokenizer/ and c-corpus/",
            path.display()
        );
        None
    }
}

/// Copies a fixture checkpoint into a fresh temporary directory, for tests that
/// damage it.
pub fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

/// Rewrites `model.safetensors` of `dir` after `edit` changed its tensors.
pub fn rewrite_safetensors(
    dir: &Path,
    edit: impl FnOnce(&mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>),
) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                view.dtype(),
                view.shape().to_vec(),
                view.data().to_vec(),
            )
        })
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    let out =
        safetensors::serialize(views, None::<std::collections::HashMap<String, String>>).unwrap();
    std::fs::write(&path, out).unwrap();
}

/// The labelled rows of `tests/fixtures/training/NAME`, in file order.
#[cfg(feature = "train")]
pub fn training_rows(name: &str) -> Vec<insecure_code_detector::training::LabelledFunction> {
    std::fs::read_to_string(fixture(&format!("training/{name}")))
        .unwrap()
        .lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            insecure_code_detector::training::LabelledFunction {
                code: row["func"].as_str().unwrap().to_owned(),
                label: row["target"].as_u64().unwrap() as usize,
            }
        })
        .collect()
}

/// A recipe of `tests/fixtures/training/reference.json` (its `recipe` object, in
/// transformers' names), examples in file order and dropout 0 as the reference ran.
#[cfg(feature = "train")]
pub fn reference_recipe(spec: &Value) -> insecure_code_detector::training::TrainingRecipe {
    use insecure_code_detector::training::{ClassWeight, TrainingRecipe, Warmup};
    let mut recipe = TrainingRecipe::default();
    recipe.epochs = spec["epochs"].as_u64().unwrap() as usize;
    recipe.batch_size = spec["batch_size"].as_u64().unwrap() as usize;
    recipe.gradient_accumulation = spec["gradient_accumulation"].as_u64().unwrap() as usize;
    recipe.learning_rate = spec["lr"].as_f64().unwrap();
    recipe.weight_decay = spec["weight_decay"].as_f64().unwrap();
    recipe.warmup = match spec.get("warmup_ratio") {
        Some(ratio) => Warmup::Ratio(ratio.as_f64().unwrap()),
        None => Warmup::Steps(spec["warmup_steps"].as_u64().unwrap() as usize),
    };
    recipe.max_grad_norm = spec["max_grad_norm"].as_f64();
    recipe.train_layers = spec
        .get("train_layers")
        .map(|k| k.as_u64().unwrap() as usize);
    if spec.get("class_weight").and_then(Value::as_str) == Some("balanced") {
        recipe.class_weight = ClassWeight::Balanced;
    }
    recipe.dropout = Some(0.0);
    recipe.shuffle = false;
    recipe
}

/// Three small C functions, `add`, `sub` and `mul`, in that order (lines 1-4, 6-9,
/// 11-14): the scanned tree of the CI and triage tests.
pub const MATH_C: &str = "\
int add(int a, int b)
{
    return a + b;
}

int sub(int a, int b)
{
    return a - b;
}

int mul(int a, int b)
{
    return a * b;
}
";

/// `(a, b)` pairs as owned strings, to compare with (function, verdict) lists.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// `icd --model FIXTURE --backend flex ARGS` in `root`, with a prediction cache of
/// `root`'s own: the report-format tests' runner.
pub fn icd_in(root: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(root)
        .arg("--model")
        .arg(fixture("roberta-2-labels"))
        .args(["--backend", "flex"])
        .args(args)
        .env_remove("ICD_MODEL")
        .env("ICD_CACHE_DIR", root.join(".cache"))
        .output()
        .unwrap()
}

/// `tests/formats/SCRIPT ARGS` (a reader of a report format): its JSON output. A
/// missing Python module fails the test naming `needs`, which ./scripts/test installs.
pub fn format_reader(script: &str, args: &[&std::ffi::OsStr], needs: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/formats")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(&path)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("ModuleNotFoundError") {
        panic!("{script} needs Python's {needs}: pip install them (./scripts/test does)\n{stderr}");
    }
    assert!(out.status.success(), "{script} failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}
