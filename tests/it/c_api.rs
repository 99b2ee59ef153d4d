//! Compiles C and C++ programs against the checked-in header and the built library,
//! with warnings as errors, and runs them: the API test (every function, each error
//! status) also under valgrind when it is installed, and the two embedding examples.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use insecure_code_detector::Detector;

/// target/debug (or wherever cargo put this test binary's library).
fn library_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

fn compile(compiler: &str, std: &str, source: &Path, out: &Path) {
    compile_with(compiler, std, source, out, &[]);
}

fn compile_with(compiler: &str, std: &str, source: &Path, out: &Path, extra: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = library_dir();
    assert!(
        lib.join("libinsecure_code_detector.so").is_file(),
        "the cdylib is missing from {}: run `cargo build` with the same features first (./scripts/test does)",
        lib.display()
    );
    let status = Command::new(compiler)
        .arg(format!("-std={std}"))
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic", "-g"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(source)
        .arg("-o")
        .arg(out)
        .arg(format!("-L{}", lib.display()))
        .arg("-linsecure_code_detector")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .args(extra)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
    assert!(
        status.success(),
        "{compiler} failed on {}",
        source.display()
    );
}

/// "predict LABEL PROB TOKENS TRUNCATED LOGITS..." lines of the API test.
fn parse_predictions(stdout: &str) -> Vec<(usize, f32, usize, bool, Vec<f32>)> {
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("predict "))
        .map(|rest| {
            let f: Vec<&str> = rest.split(' ').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
                f[3] == "1",
                f[4..].iter().map(|x| x.parse().unwrap()).collect(),
            )
        })
        .collect()
}

/// Damaged copies of the 2-label fixture, for the API test's CONFIG, TOKENIZER and
/// WEIGHTS statuses: a config that is not JSON, no merges.txt, a truncated weight file.
fn damaged_checkpoints() -> [tempfile::TempDir; 3] {
    let bad_config = copy_fixture("roberta-2-labels");
    std::fs::write(bad_config.path().join("config.json"), "{ not json").unwrap();
    let bad_tokenizer = copy_fixture("roberta-2-labels");
    std::fs::remove_file(bad_tokenizer.path().join("merges.txt")).unwrap();
    let bad_weights = copy_fixture("roberta-2-labels");
    std::fs::write(bad_weights.path().join("model.safetensors"), [0u8; 16]).unwrap();
    [bad_config, bad_tokenizer, bad_weights]
}

/// A calibration file for the 2-label fixture, from `icd calibrate` on the labelled
/// fixture rows, at `dir/calibration.json`.
fn calibration_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("calibration.json");
    let out = Command::new(env!("CARGO_BIN_EXE_icd"))
        .arg("--model")
        .arg(fixture("roberta-2-labels"))
        .arg("calibrate")
        .arg(fixture("labelled.jsonl"))
        .arg("-o")
        .arg(&path)
        .args(["--target-precision", "0.6"])
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    path
}

/// The API test's command line, run directly or under `wrapper` (a program and its
/// options, such as valgrind); the calibration file is made in `exe`'s directory.
fn api_test_command(
    wrapper: Option<(&str, &[&str])>,
    exe: &Path,
    damaged: &[tempfile::TempDir; 3],
) -> Command {
    let mut command = match wrapper {
        Some((program, options)) => {
            let mut c = Command::new(program);
            c.args(options).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    command.arg(fixture("roberta-2-labels"));
    command.args(damaged.iter().map(|d| d.path()));
    command.arg(calibration_file(exe.parent().unwrap()));
    command
}

#[test]
fn c_api_test_passes_and_agrees_with_the_rust_api() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("api_test");
    compile(
        "cc",
        "c11",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/api_test.c"),
        &exe,
    );
    let model = fixture("roberta-2-labels");
    let damaged = damaged_checkpoints();
    let output = api_test_command(None, &exe, &damaged).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "api_test failed:\n{stderr}");

    let detector = Detector::from_pretrained(&model).unwrap();
    let texts = [
        "int get(int *a, int i) { return a[i]; }",
        "",
        "void f(void) {}",
        "int x = 1;",
        "char *p = malloc(10); strcpy(p, s);",
    ];
    let predictions = parse_predictions(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(predictions.len(), texts.len());
    for (text, (label, probability, tokens, truncated, logits)) in texts.iter().zip(predictions) {
        let expected = detector.predict(text).unwrap();
        assert_eq!(label, expected.label, "{text:?}");
        assert_eq!(tokens, expected.tokens, "{text:?}");
        assert_eq!(truncated, expected.truncated, "{text:?}");
        assert!(
            (probability - expected.insecure_probability).abs() <= 1e-6,
            "{text:?}"
        );
        assert_logits_close(&logits, &expected.logits, text);
    }

    // The calibrated detector's threshold and probability are Rust's.
    let calibration = tmp.path().join("calibration.json");
    let builder = Detector::builder(&model);
    let file = builder.read_calibration(&calibration).unwrap();
    let calibrated = builder
        .calibration(Some(file.calibration))
        .build()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<f64> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("calibrated "))
        .unwrap_or_else(|| panic!("no calibrated line in {stdout}"))
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(fields[0], file.threshold.unwrap());
    let expected = calibrated
        .predict("char *p = malloc(10); strcpy(p, s);")
        .unwrap();
    assert!((fields[1] as f32 - expected.insecure_probability).abs() <= 1e-6);

    // The long function's windows are Rust's.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let long_code = format!("int f(void)\n{{\n{}}}\n", "    x = x + 1;\n".repeat(300));
    let expected = detector.predict_windows(&long_code, 100).unwrap();
    let fields: Vec<&str> = stdout
        .lines()
        .find_map(|l| l.strip_prefix("windows "))
        .unwrap_or_else(|| panic!("no windows line in {stdout}"))
        .split_whitespace()
        .collect();
    assert_eq!(fields[0].parse::<usize>().unwrap(), expected.windows);
    assert_eq!(
        fields[1].parse::<usize>().unwrap()..fields[2].parse::<usize>().unwrap(),
        expected.byte_range
    );
    assert!(
        (fields[3].parse::<f32>().unwrap() - expected.prediction.insecure_probability).abs()
            <= 1e-6
    );
    let logits: Vec<f32> = fields[4..].iter().map(|x| x.parse().unwrap()).collect();
    assert_logits_close(&logits, &expected.prediction.logits, "windows");

    // The explanation's scores are transformers' (the fixture's first input).
    let floats = |prefix: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {stdout}"));
        line.split_whitespace().map(str::to_owned).collect()
    };
    let reference = reference_json("roberta-2-labels");
    let expected = &reference["inputs"][0]["raw"];
    assert_eq!(
        reference["inputs"][0]["text"],
        "int main(void) { return 0; }"
    );
    let scores: Vec<f64> = floats("explain ")
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    let want = expected["token_scores"].as_array().unwrap();
    assert_eq!(scores.len(), want.len());
    for (got, want) in scores.iter().zip(want) {
        assert!(
            (got - want.as_f64().unwrap()).abs() < 1e-5,
            "{got} vs {want}"
        );
    }
    let lines = floats("lines ");
    let want = expected["line_scores"].as_array().unwrap();
    assert_eq!(lines.len(), want.len());
    for (got, want) in lines.iter().zip(want) {
        let (line, score) = got.split_once(':').unwrap();
        assert_eq!(line.parse::<u64>().unwrap(), want[0].as_u64().unwrap());
        let score: f64 = score.parse().unwrap();
        assert!((score - want[1].as_f64().unwrap()).abs() < 1e-5);
    }
}

#[test]
fn c_api_test_is_clean_under_valgrind() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("SKIPPED: valgrind is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("api_test");
    compile(
        "cc",
        "c11",
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/api_test.c"),
        &exe,
    );
    let damaged = damaged_checkpoints();
    let options: &[&str] = &[
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--quiet",
    ];
    let output = api_test_command(Some(("valgrind", options)), &exe, &damaged)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "valgrind reported errors or leaks:\n{stderr}"
    );
    assert!(stderr.contains("all C API checks passed"), "{stderr}");
}

#[test]
fn c_and_cpp_embedding_examples_build_and_report() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("roberta-2-labels");
    let sample = root.join("tests/c/sample.c");

    let scan = tmp.path().join("scan_file");
    compile("c++", "c++17", &root.join("examples/scan_file.cpp"), &scan);
    // Threshold 0: every function is a finding (exit 1); threshold above 1: none (exit 0).
    let all = Command::new(&scan)
        .arg(&model)
        .arg(&sample)
        .arg("0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&all.stdout);
    assert_eq!(
        all.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    // The functions and lines `icd scan` reports for this file (README).
    assert!(
        lines[0].contains("sample.c:4-8: copy_name insecure"),
        "{stdout}"
    );
    assert!(
        lines[1].contains("sample.c:10-17: checked_get insecure"),
        "{stdout}"
    );
    let none = Command::new(&scan)
        .arg(&model)
        .arg(&sample)
        .arg("1.5")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(0));
    let bad = Command::new(&scan)
        .arg("/nonexistent")
        .arg(&sample)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent"));

    let classify = tmp.path().join("classify_file");
    compile(
        "cc",
        "c11",
        &root.join("examples/classify_file.c"),
        &classify,
    );
    let out = Command::new(&classify)
        .arg(&model)
        .arg(&sample)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let expected = Detector::from_pretrained(&model)
        .unwrap()
        .predict(&std::fs::read_to_string(&sample).unwrap())
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(i32::from(expected.insecure_probability >= 0.5)),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{:.4}", expected.insecure_probability)),
        "{stdout}"
    );
}

#[test]
fn eight_c_threads_sharing_one_detector_match_serial_results() {
    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("threads_test");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/threads_test.c");
    compile_with("cc", "c11", &source, &exe, &["-pthread"]);
    let output = Command::new(&exe)
        .arg(fixture("roberta-2-labels"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("1600 concurrent predictions equal the serial ones"),
        "{stderr}"
    );
}

/// Fine-tuning through the C API, from a C program: the steps its callback sees are
/// PyTorch's for the fixture's recipe (loss within 1e-4, gradient norm within 1e-4
/// relative, the rate exact), the checkpoint it writes is bit for bit the one the Rust
/// trainer writes for the same recipe, a callback that returns nonzero stops the run
/// with nothing written, and bad arguments fail with their status and name (the
/// program checks those itself).
#[cfg(feature = "train")]
#[test]
fn a_c_program_fine_tunes_as_pytorch_and_the_rust_trainer_do() {
    use insecure_code_detector::training::{Trainer, TrainingRecipe};
    use insecure_code_detector::Backend;

    let tmp = tempfile::tempdir().unwrap();
    let exe = tmp.path().join("train_test");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/train_test.c");
    compile("cc", "c11", &source, &exe);
    let rows = training_rows("train.jsonl");
    let mut data = Vec::new();
    for row in &rows {
        data.extend_from_slice(format!("{} {}\n", row.label, row.code.len()).as_bytes());
        data.extend_from_slice(row.code.as_bytes());
    }
    std::fs::write(tmp.path().join("data"), data).unwrap();
    // The fixture's "full" recipe as the reference ran it: dropout 0, file order.
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("training/reference.json")).unwrap())
            .unwrap();
    let full = &reference["recipes"]["full"];
    let spec = &full["recipe"];
    let recipe = serde_json::to_string(&reference_recipe(spec)).unwrap();
    std::fs::write(tmp.path().join("recipe.json"), &recipe).unwrap();
    let (out, validated, stopped) = (
        tmp.path().join("out"),
        tmp.path().join("validated"),
        tmp.path().join("stopped"),
    );
    let output = Command::new(&exe)
        .arg(fixture("roberta-2-labels"))
        .arg(tmp.path().join("data"))
        .arg(tmp.path().join("recipe.json"))
        .arg(&out)
        .arg(&validated)
        .arg(&stopped)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("all checks passed"), "{stderr}");
    assert!(
        !stopped.exists(),
        "a stopped or refused run wrote {}",
        stopped.display()
    );

    let steps: Vec<Vec<f64>> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("step "))
        .map(|rest| rest.split(' ').map(|v| v.parse().unwrap()).collect())
        .collect();
    let want = full["steps"].as_array().unwrap();
    assert_eq!(steps.len(), want.len(), "steps the callback saw");
    for (ours, theirs) in steps.iter().zip(want) {
        let (loss, norm) = (
            theirs["loss"].as_f64().unwrap(),
            theirs["grad_norm"].as_f64().unwrap(),
        );
        let at = format!("step {}", ours[0]);
        assert_eq!(ours[0], theirs["step"].as_f64().unwrap(), "{at}");
        assert_eq!(ours[1], want.len() as f64, "{at}: total steps");
        assert_eq!(ours[2], theirs["epoch"].as_f64().unwrap(), "{at}: epoch");
        assert!(
            (ours[3] - loss).abs() <= 1e-4,
            "{at}: loss {} vs PyTorch {loss}",
            ours[3]
        );
        assert!(
            (ours[4] - theirs["lr"].as_f64().unwrap()).abs() <= 1e-12,
            "{at}: lr {}",
            ours[4]
        );
        assert!(
            (ours[5] - norm).abs() <= 1e-4 * norm,
            "{at}: grad_norm {} vs PyTorch {norm}",
            ours[5]
        );
    }

    let recipe = TrainingRecipe::from_json(&recipe).unwrap();
    let mut trainer = Trainer::new(&fixture("roberta-2-labels"), recipe, Backend::Auto).unwrap();
    let trained = trainer.train(&rows, None, &mut |_| {}).unwrap();
    let rust_out = tmp.path().join("rust");
    trained.save(&rust_out).unwrap();
    let weights = |dir: &Path| std::fs::read(dir.join("model.safetensors")).unwrap();
    assert!(
        weights(&out) == weights(&rust_out),
        "the C API's checkpoint differs from the Rust trainer's"
    );
    for name in ["config.json", "vocab.json", "merges.txt", "training.json"] {
        assert!(
            out.join(name).is_file(),
            "the C API's checkpoint has no {name}"
        );
    }
    // With validation data, every epoch's figures are recorded and the epoch kept is
    // the first of the best accuracy.
    let text = std::fs::read_to_string(validated.join("training.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    let epochs = record["epochs"].as_array().unwrap();
    assert_eq!(
        epochs.len() as u64,
        spec["epochs"].as_u64().unwrap(),
        "{text}"
    );
    let accuracies: Vec<f64> = epochs
        .iter()
        .map(|e| e["validation_accuracy"].as_f64().unwrap())
        .collect();
    let best = accuracies.iter().cloned().fold(f64::MIN, f64::max);
    let kept = accuracies.iter().position(|&a| a == best).unwrap() + 1;
    assert_eq!(record["kept_epoch"].as_u64(), Some(kept as u64), "{text}");
}
