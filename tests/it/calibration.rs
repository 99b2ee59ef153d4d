//! Calibration: the Platt and temperature fits held to scikit-learn's and torch's
//! (recorded by `tests/fixtures/make_fixtures.py` in `calibration.json`), calibrated
//! probabilities held to the reference's softmax-then-Platt, and `icd calibrate` and
//! `--calibration` as users meet them, bad files included.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use insecure_code_detector::calibration::{fit_platt, fit_temperature, Calibration};
use insecure_code_detector::evaluation::{threshold_for, Evaluation, Target};
use insecure_code_detector::{Prediction, RobertaConfig};
use serde_json::Value;

use crate::common::fixture;

fn reference() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("calibration.json")).unwrap()).unwrap()
}

fn logits_of(rows: &Value) -> Vec<Vec<f32>> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_f64().unwrap() as f32)
                .collect()
        })
        .collect()
}

fn labels_of(rows: &Value) -> Vec<usize> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap() as usize)
        .collect()
}

#[test]
fn platt_scaling_reaches_scikit_learns_likelihood() {
    let reference = reference();
    let platt = &reference["platt"];
    let logits = logits_of(&platt["logits"]);
    let labels = labels_of(&platt["labels"]);
    // Through the evaluation, as `icd calibrate` fits: log-odds of a two-label softmax.
    let config =
        RobertaConfig::from_file(&fixture("roberta-2-labels").join("config.json")).unwrap();
    let mut evaluation = Evaluation::new(&config).unwrap();
    for (l, &label) in logits.iter().zip(&labels) {
        let p = Prediction::from_logits(&config.id2label, l, 1, false).unwrap();
        evaluation.push(&p, label).unwrap();
    }
    let fit = evaluation.fit_calibration().unwrap();
    let want_loss = platt["loss"].as_f64().unwrap();
    assert!(
        (fit.loss - want_loss).abs() <= 1e-6,
        "log-loss {} against scikit-learn's {want_loss}",
        fit.loss
    );
    let Calibration::Platt { a, b } = fit.calibration else {
        panic!("two labels fit Platt scaling, not {:?}", fit.calibration)
    };
    assert!((a - platt["a"].as_f64().unwrap()).abs() < 1e-6, "a = {a}");
    assert!((b - platt["b"].as_f64().unwrap()).abs() < 1e-6, "b = {b}");
    assert!(fit.loss < fit.loss_before);

    // The threshold for a precision target under the fit, against the reference's.
    let after = evaluation.recalibrated(Some(&fit.calibration)).unwrap();
    let want = &platt["metrics_after"]["target_precision"][0];
    let point = threshold_for(
        &after.scored().unwrap(),
        Target::Precision(want["target"].as_f64().unwrap()),
    )
    .unwrap()
    .unwrap();
    for (got, key) in [
        (point.threshold, "threshold"),
        (point.precision(), "precision"),
        (point.recall(), "recall"),
    ] {
        let expected = want["point"][key].as_f64().unwrap();
        assert!(
            (got - expected).abs() < 1e-6,
            "{key}: {got} against {expected}"
        );
    }
    // The calibrated scores rank as the raw ones: Platt is monotone (a > 0).
    assert!(a > 0.0);
    let raw_auc = evaluation.metrics(0.5).unwrap().roc_auc.unwrap();
    let calibrated_auc = after.metrics(0.5).unwrap().roc_auc.unwrap();
    assert!((raw_auc - calibrated_auc).abs() < 1e-9);
}

#[test]
fn temperature_scaling_reaches_torchs_likelihood() {
    let reference = reference();
    let temperature = &reference["temperature"];
    let logits = logits_of(&temperature["logits"]);
    let labels = labels_of(&temperature["labels"]);
    let fit = fit_temperature(&logits, &labels).unwrap();
    let want_loss = temperature["loss"].as_f64().unwrap();
    assert!(
        (fit.loss - want_loss).abs() <= 1e-6,
        "cross-entropy {} against torch's {want_loss}",
        fit.loss
    );
    let Calibration::Temperature { temperature: t } = fit.calibration else {
        panic!("{:?}", fit.calibration)
    };
    assert!(
        (t - temperature["temperature"].as_f64().unwrap()).abs() < 1e-5,
        "T = {t}"
    );
}

#[test]
fn the_platt_fit_is_refused_on_one_class() {
    let err = fit_platt(&[0.5, -0.5, 1.0], &[false, false, false]).unwrap_err();
    assert!(err.to_string().contains("all 3 rows are secure"), "{err}");
}

fn icd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .args(args)
        .env_remove("BURN_DEVICE")
        .env(
            "ICD_CACHE_DIR",
            std::env::temp_dir().join("icd-calibration-test-cache"),
        )
        .output()
        .unwrap()
}

/// sigmoid(a * (logit1 - logit0) + b) of a scan jsonl row's raw logits.
fn platt_of_row(row: &Value, a: f64, b: f64) -> f64 {
    let logits = row["logits"].as_array().unwrap();
    let margin = logits[1].as_f64().unwrap() - logits[0].as_f64().unwrap();
    1.0 / (1.0 + (-(a * margin + b)).exp())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `icd calibrate` on the fixture's labelled inputs, into `dir/calibration.json`.
fn calibrate(dir: &Path, extra: &[&str]) -> (Output, PathBuf) {
    // The fixture inputs labelled as roberta-2-labels' `evaluation.json` labels them.
    let data = fixture("labelled.jsonl");
    let out_path = dir.join("calibration.json");
    let model = fixture("roberta-2-labels").display().to_string();
    let mut args = vec![
        "--model",
        &model,
        "calibrate",
        data.to_str().unwrap(),
        "-o",
        out_path.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = icd(&args);
    (out, out_path)
}

#[test]
fn icd_calibrate_writes_a_file_that_classify_and_scan_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, path) = calibrate(tmp.path(), &["--target-recall", "0.6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Platt"), "{}", text(&out.stdout));
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["calibration"]["method"], "platt");
    assert_eq!(file["fitted_on"]["rows"], 10);
    assert_eq!(file["fitted_on"]["positives"], 5);
    assert_eq!(file["target"], serde_json::json!({"recall": 0.6}));
    assert!(file["metrics"]["after"]["recall"].as_f64().unwrap() >= 0.6);
    let nll = &file["metrics"]["negative_log_likelihood"];
    assert!(nll["after"].as_f64().unwrap() <= nll["before"].as_f64().unwrap());

    // With the reference's Platt parameters in the file, classify reports
    // softmax-then-Platt probabilities equal to the reference's.
    let reference = reference();
    file["calibration"]["a"] = reference["platt"]["a"].clone();
    file["calibration"]["b"] = reference["platt"]["b"].clone();
    std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
    let inputs: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("inputs.json")).unwrap()).unwrap();
    let data = tmp.path().join("inputs.jsonl");
    let rows: Vec<String> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"idx": i, "func": t}).to_string())
        .collect();
    std::fs::write(&data, rows.join("\n") + "\n").unwrap();
    let model = fixture("roberta-2-labels").display().to_string();
    let out = icd(&[
        "--model",
        &model,
        "--calibration",
        path.to_str().unwrap(),
        "classify",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want = reference["roberta-2-labels"]["probabilities"]
        .as_array()
        .unwrap();
    let got: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for (i, (row, want)) in got.iter().zip(want).enumerate() {
        let p = row["insecure_probability"].as_f64().unwrap();
        // The logits agree with transformers' to 1e-5 and a is 0.29: the calibrated
        // probabilities to well under 1e-6.
        assert!(
            (p - want.as_f64().unwrap()).abs() < 1e-6,
            "input {i}: {p} against {want}"
        );
    }

    // scan applies the same file: each jsonl row's probability is the Platt map of
    // its raw logits, and the threshold is the file's.
    let (a, b) = (
        file["calibration"]["a"].as_f64().unwrap(),
        file["calibration"]["b"].as_f64().unwrap(),
    );
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/sample.c");
    let out = icd(&[
        "--model",
        &model,
        "--calibration",
        path.to_str().unwrap(),
        "scan",
        sample.to_str().unwrap(),
        "--format",
        "jsonl",
        "--no-cache",
    ]);
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "{}",
        text(&out.stderr)
    );
    let rows: Vec<Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!rows.is_empty());
    for row in &rows {
        let want = platt_of_row(row, a, b);
        let got = row["insecure_probability"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-6, "{row}");
        let threshold = file["threshold"].as_f64().unwrap() as f32;
        assert_eq!(row["verdict"] != "ok", got as f32 >= threshold, "{row}");
    }
}

#[test]
fn a_calibration_file_is_checked_before_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, path) = calibrate(tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let good = std::fs::read_to_string(&path).unwrap();
    let classify = |model: &str, file: &Path| {
        icd(&[
            "--model",
            &fixture(model).display().to_string(),
            "--calibration",
            file.to_str().unwrap(),
            "classify",
            "-",
        ])
    };
    // Another checkpoint: refused, naming both.
    let out = classify("roberta-5-labels", &path);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    let file: Value = serde_json::from_str(&good).unwrap();
    let fitted_for = file["checkpoint"]["sha256"].as_str().unwrap();
    assert!(
        stderr.contains(fitted_for) && stderr.contains("not for this one, SHA-256"),
        "{stderr}"
    );

    // Malformed, another version, a bad parameter, an unknown field: each named.
    let bad = tmp.path().join("bad.json");
    for (contents, expected) in [
        ("{\"format\": ", "EOF while parsing"),
        (
            &good.replace("\"version\": 1", "\"version\": 2")[..],
            "`version` is 2",
        ),
        (
            &good.replace("\"method\": \"platt\"", "\"method\": \"isotonic\"")[..],
            "unknown variant `isotonic`",
        ),
        (
            &good.replacen("\"threshold\": null", "\"threshold\": 1.5", 1)[..],
            "`threshold` is 1.5",
        ),
        (
            &good.replacen("{", "{\"extra\": 1,", 1)[..],
            "unknown field `extra`",
        ),
        (
            &good.replacen("\"a\": ", "\"a\": \"x\", \"_\": ", 1)[..],
            "`calibration`: invalid type: string \"x\", expected f64",
        ),
    ] {
        std::fs::write(&bad, contents).unwrap();
        let out = classify("roberta-2-labels", &bad);
        assert_eq!(out.status.code(), Some(2), "{contents}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("bad.json") && stderr.contains(expected),
            "{expected}: {stderr}"
        );
    }
    assert!(
        good.contains("\"threshold\": null"),
        "no target, no threshold"
    );
}

#[test]
fn icd_calibrate_refuses_what_it_cannot_fit_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = fixture("roberta-2-labels").display().to_string();
    let one_class = tmp.path().join("one-class.jsonl");
    std::fs::write(
        &one_class,
        "{\"idx\": 0, \"func\": \"int a;\", \"target\": 1}\n{\"idx\": 1, \"func\": \"int b(void) { return 0; }\", \"target\": 1}\n",
    )
    .unwrap();
    let output = tmp.path().join("out.json");
    let out = icd(&[
        "--model",
        &model,
        "calibrate",
        one_class.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(
            "one-class.jsonl: invalid argument `calibration data`: all 2 rows are insecure"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!output.exists());

    let (out, path) = calibrate(tmp.path(), &["--target-precision", "1.0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("no threshold gives a calibrated precision of 1 or more"),
        "{}",
        text(&out.stderr)
    );
    assert!(!path.exists());
}

/// A tree under `dir` holding tests/c/sample.c, a calibration fitted on the fixture
/// for a precision of 0.6 (`calibration.json`) and `.icd.toml` reading `settings`.
fn calibrated_tree(dir: &Path, settings: &str) -> PathBuf {
    let (out, path) = calibrate(dir, &["--target-precision", "0.6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let tree = dir.join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/sample.c"),
        tree.join("sample.c"),
    )
    .unwrap();
    std::fs::rename(&path, tree.join("calibration.json")).unwrap();
    std::fs::write(tree.join(".icd.toml"), settings).unwrap();
    tree
}

#[test]
fn the_settings_file_names_a_calibration_that_sarif_ranks_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = calibrated_tree(tmp.path(), "calibration = \"calibration.json\"\n");
    let model = fixture("roberta-2-labels").display().to_string();
    let scan = |format: &str| {
        let out = icd(&[
            "--model",
            &model,
            "scan",
            tree.to_str().unwrap(),
            "--format",
            format,
            "--no-cache",
        ]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let rows: Vec<Value> = scan("jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(tree.join("calibration.json")).unwrap())
            .unwrap();
    let (a, b) = (
        file["calibration"]["a"].as_f64().unwrap(),
        file["calibration"]["b"].as_f64().unwrap(),
    );
    let sarif: Value = serde_json::from_str(&scan("sarif")).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        let calibrated = platt_of_row(row, a, b);
        let p = row["insecure_probability"].as_f64().unwrap();
        assert!((p - calibrated).abs() < 1e-6, "{row}");
        // Flagged at the file's threshold, and ranked in SARIF by the calibrated value.
        if row["verdict"] == "insecure" {
            let result = results
                .iter()
                .find(|r| {
                    r["partialFingerprints"]
                        .to_string()
                        .contains(row["fingerprint"].as_str().unwrap())
                })
                .unwrap_or_else(|| panic!("no SARIF result for {row}"));
            let rank = result["rank"].as_f64().unwrap();
            assert!(
                (rank - (p * 100.0 * 100.0).round() / 100.0).abs() < 1e-9,
                "{result}"
            );
        }
    }
    assert!(
        rows.iter().any(|r| r["verdict"] == "insecure"),
        "the file's threshold flags some"
    );
}

/// A copy of a fixture checkpoint in `dir`, for tests that change a file of it.
fn copy_checkpoint(name: &str, dir: &Path) -> PathBuf {
    let to = dir.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

#[test]
fn a_file_for_the_same_labels_but_other_weights_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, path) = calibrate(tmp.path(), &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The same labels; one byte more in config.json: another checkpoint.
    let copy = copy_checkpoint("roberta-2-labels", tmp.path());
    let config = std::fs::read_to_string(copy.join("config.json")).unwrap();
    std::fs::write(copy.join("config.json"), config + " ").unwrap();
    let out = icd(&[
        "--model",
        copy.to_str().unwrap(),
        "--calibration",
        path.to_str().unwrap(),
        "classify",
        "-",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not for this one, SHA-256"), "{stderr}");
    assert!(
        stderr.contains("(labels [\"LABEL_0\", \"LABEL_1\"]), not"),
        "{stderr}"
    );
}

#[test]
fn a_one_label_fit_that_would_invert_the_verdicts_is_refused() {
    // On these labels the one-label fixture ranks secure functions higher (ROC AUC
    // 0.24): a Platt fit would need a negative slope.
    let tmp = tempfile::tempdir().unwrap();
    let evaluation: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("roberta-1-label-old-config").join("evaluation.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(evaluation["metrics"]["roc_auc"].as_f64().unwrap() < 0.5);
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("inputs.json")).unwrap()).unwrap();
    let rows: Vec<String> = texts
        .iter()
        .zip(evaluation["rows"].as_array().unwrap())
        .enumerate()
        .map(|(i, (t, r))| {
            serde_json::json!({"idx": i, "func": t, "target": r["label"]}).to_string()
        })
        .collect();
    let data = tmp.path().join("data.jsonl");
    std::fs::write(&data, rows.join("\n")).unwrap();
    let output = tmp.path().join("calibration.json");
    let out = icd(&[
        "--model",
        &fixture("roberta-1-label-old-config").display().to_string(),
        "calibrate",
        data.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("reverses the model's ranking"),
        "{}",
        text(&out.stderr)
    );
    assert!(!output.exists());
}

#[test]
fn five_labels_fit_a_temperature_that_classify_applies() {
    let tmp = tempfile::tempdir().unwrap();
    let name = "roberta-5-labels";
    let evaluation: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(name).join("evaluation.json")).unwrap(),
    )
    .unwrap();
    let texts: Vec<String> =
        serde_json::from_str(&std::fs::read_to_string(fixture("inputs.json")).unwrap()).unwrap();
    let reference_logits: Vec<Vec<f32>> = evaluation["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| logits_of(&Value::Array(vec![r["logits"].clone()])).remove(0))
        .collect();
    // Labels the random model mostly gets right (its argmax), but not always: a
    // temperature with a finite best value.
    let labels: Vec<usize> = reference_logits
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let argmax = (0..l.len()).fold(0, |b, j| if l[j] > l[b] { j } else { b });
            if i % 3 == 0 {
                (argmax + 1) % l.len()
            } else {
                argmax
            }
        })
        .collect();
    let lines: Vec<String> = texts
        .iter()
        .zip(&labels)
        .enumerate()
        .map(|(i, (t, l))| serde_json::json!({"idx": i, "func": t, "target": l}).to_string())
        .collect();
    let data = tmp.path().join("data.jsonl");
    std::fs::write(&data, lines.join("\n")).unwrap();
    let output = tmp.path().join("calibration.json");
    let model = fixture(name).display().to_string();
    let out = icd(&[
        "--model",
        &model,
        "calibrate",
        data.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(file["calibration"]["method"], "temperature");
    // The same fit as the library's on transformers' logits, up to the logits' 1e-5.
    let Calibration::Temperature { temperature } = fit_temperature(&reference_logits, &labels)
        .unwrap()
        .calibration
    else {
        panic!()
    };
    let fitted = file["calibration"]["temperature"].as_f64().unwrap();
    assert!(
        (fitted - temperature).abs() < 1e-3 * temperature,
        "{fitted} against {temperature}"
    );
    // classify applies it: one minus the softmax of `safe` at logits / T.
    let out = icd(&[
        "--model",
        &model,
        "--calibration",
        output.to_str().unwrap(),
        "classify",
        "--jsonl",
        data.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for line in text(&out.stdout).lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        let z: Vec<f64> = row["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_f64().unwrap() / fitted)
            .collect();
        let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = z.iter().map(|l| (l - max).exp()).sum();
        let want = 1.0 - (z[0] - max).exp() / sum;
        let got = row["insecure_probability"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-6, "{row}");
    }
}

#[test]
fn cached_and_windowed_scans_give_what_a_fresh_calibrated_scan_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, path) = calibrate(tmp.path(), &["--target-precision", "0.6"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A function far past 512 tokens, so that --window picks a best window.
    let mut code = String::from("static int long_one(char *buf, int n)\n{\n");
    for i in 0..300 {
        code += &format!("    if (buf[{i}] != n) {{ memcpy(buf + {i}, buf, n - {i}); }}\n");
    }
    code += "    return 0;\n}\n";
    let tree = tmp.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("long.c"), code).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/sample.c"),
        tree.join("sample.c"),
    )
    .unwrap();
    let model = fixture("roberta-2-labels").display().to_string();
    let cache = tmp.path().join("cache");
    let scan = |calibrated: bool, cached: bool| {
        let mut args = vec!["--model", model.as_str()];
        if calibrated {
            args.extend(["--calibration", path.to_str().unwrap()]);
        }
        args.extend([
            "scan",
            tree.to_str().unwrap(),
            "--window",
            "--format",
            "jsonl",
        ]);
        if !cached {
            args.push("--no-cache");
        }
        let out = Command::new(env!("CARGO_BIN_EXE_icd"))
            .args(&args)
            .env_remove("BURN_DEVICE")
            .env("ICD_CACHE_DIR", &cache)
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            text(&out.stderr)
        );
        text(&out.stdout)
    };
    let fresh = scan(true, false);
    assert!(fresh.contains("long_one"), "{fresh}");
    // The cache first filled by an uncalibrated scan, then read by calibrated ones.
    let raw = scan(false, true);
    assert_ne!(raw, fresh, "the calibration changes the report");
    assert_eq!(
        scan(true, true),
        fresh,
        "first calibrated scan with the cache"
    );
    assert_eq!(scan(true, true), fresh, "calibrated scan from the cache");
    assert_eq!(
        scan(false, true),
        raw,
        "the uncalibrated entries are still there"
    );
}

#[test]
fn threshold_flags_beat_the_files_and_the_file_beats_the_settings() {
    let tmp = tempfile::tempdir().unwrap();
    // The settings' threshold would flag nothing; the file's (0.455) flags both.
    let tree = calibrated_tree(
        tmp.path(),
        "calibration = \"calibration.json\"\nthreshold = 0.99\n",
    );
    let model = fixture("roberta-2-labels").display().to_string();
    let scan = |extra: &[&str]| {
        let mut args = vec![
            "--model",
            model.as_str(),
            "scan",
            tree.to_str().unwrap(),
            "--no-cache",
        ];
        args.extend_from_slice(extra);
        icd(&args)
    };
    let out = scan(&[]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the file's threshold flags: {}",
        text(&out.stdout)
    );
    // The file's threshold as the table prints it (in f32); its last digits depend on
    // the CPU's kernels, which the fit sees through the logits.
    let file: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tree.join("calibration.json")).unwrap()).unwrap();
    let threshold = file["threshold"].as_f64().unwrap() as f32;
    assert!((threshold - 0.455).abs() < 1e-3, "{threshold}");
    assert!(
        text(&out.stdout).contains(&format!("2 of 2 functions at or above {threshold}")),
        "{}",
        text(&out.stdout)
    );
    let out = scan(&["--threshold", "0.99"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "--threshold wins: {}",
        text(&out.stdout)
    );
    // A file named by the settings that is not there: the settings file and key named.
    std::fs::write(tree.join(".icd.toml"), "calibration = \"missing.json\"\n").unwrap();
    let out = scan(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(".icd.toml: calibration:") && stderr.contains("missing.json"),
        "{stderr}"
    );
}
