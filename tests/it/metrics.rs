//! The evaluation metrics and the loss, held to what scikit-learn and transformers
//! computed on the same scores, logits and labels (recorded by
//! `tests/fixtures/make_fixtures.py` in `metrics.json` and each checkpoint's
//! `evaluation.json`), and `icd evaluate` held to the same references end to end.

use std::process::Command;

use insecure_code_detector::evaluation::{
    reliability_bins, threshold_for, Evaluation, Metrics, OperatingPoint, ProblemType, Scored,
    Target, CALIBRATION_BINS,
};
use insecure_code_detector::{Prediction, RobertaConfig};
use serde_json::Value;

use crate::common::{fixture, CHECKPOINTS};

/// The agreement the issue asks of every metric with scikit-learn's.
const METRIC_TOLERANCE: f64 = 1e-6;

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn close(name: &str, got: f64, want: &Value, tolerance: f64) {
    let want = want
        .as_f64()
        .unwrap_or_else(|| panic!("{name}: reference is {want}"));
    assert!(
        (got - want).abs() <= tolerance,
        "{name}: {got} against scikit-learn's {want}"
    );
}

/// Every metric of `metrics` against the reference object `want` (scikit-learn's).
fn assert_metrics(metrics: &Metrics, want: &Value, tolerance: f64) {
    let c = &metrics.confusion;
    let cm = &want["confusion_matrix"];
    assert_eq!(
        [
            c.true_positive,
            c.false_positive,
            c.true_negative,
            c.false_negative
        ],
        [
            "true_positive",
            "false_positive",
            "true_negative",
            "false_negative"
        ]
        .map(|k| cm[k].as_u64().unwrap() as usize)
    );
    close("accuracy", c.accuracy(), &want["accuracy"], tolerance);
    close("precision", c.precision(), &want["precision"], tolerance);
    close("recall", c.recall(), &want["recall"], tolerance);
    close("f1", c.f1(), &want["f1"], tolerance);
    close(
        "roc_auc",
        metrics.roc_auc.unwrap(),
        &want["roc_auc"],
        tolerance,
    );
    close(
        "pr_auc",
        metrics.pr_auc.unwrap(),
        &want["pr_auc"],
        tolerance,
    );
    close("brier", metrics.brier, &want["brier"], tolerance);
    close("ece", metrics.ece, &want["ece"], tolerance);
    close("vd_s", metrics.vd_s.unwrap(), &want["vd_s"], tolerance);
}

/// The non-empty calibration bins against calibration_curve's, bin by bin: where each
/// probability falls, not only the error they sum to.
fn assert_reliability(data: &Scored, want: &Value, tolerance: f64) {
    let bins: Vec<_> = reliability_bins(data, CALIBRATION_BINS)
        .into_iter()
        .filter(|b| b.count > 0)
        .collect();
    let want = &want["reliability"];
    let counts: Vec<usize> = want["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(bins.iter().map(|b| b.count).collect::<Vec<_>>(), counts);
    for (i, bin) in bins.iter().enumerate() {
        close("mean_probability", bin.mean_probability, &want["mean_probability"][i], tolerance);
        close("positive_rate", bin.positive_rate, &want["positive_rate"][i], tolerance);
    }
}

/// Each target's threshold, precision and recall against the reference's pick off
/// scikit-learn's precision-recall curve (`null` where none meets the target).
fn assert_targets(data: &Scored, want: &Value, tolerance: f64) {
    let mut checked = 0;
    for (key, make) in [
        ("target_precision", Target::Precision as fn(f64) -> Target),
        ("target_recall", Target::Recall),
    ] {
        for case in want[key].as_array().unwrap() {
            let target = make(case["target"].as_f64().unwrap());
            let got: Option<OperatingPoint> = threshold_for(data, target).unwrap();
            match (&case["point"], got) {
                (Value::Null, None) => {}
                (point, Some(got)) if !point.is_null() => {
                    close("threshold", got.threshold, &point["threshold"], tolerance);
                    close("precision", got.precision(), &point["precision"], tolerance);
                    close("recall", got.recall(), &point["recall"], tolerance);
                }
                (point, got) => panic!("{target:?}: {got:?} against the reference's {point}"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 4, "the reference holds targets of both kinds");
}

#[test]
fn metrics_equal_scikit_learns_on_a_set_with_ties_and_bin_edges() {
    let reference = read_json(&fixture("metrics.json"));
    let scores: Vec<f64> = reference["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_f64().unwrap())
        .collect();
    let positives: Vec<bool> = reference["positives"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap() == 1)
        .collect();
    let data = Scored::new(&scores, &positives).unwrap();
    assert_metrics(
        &Metrics::of(&data, 0.5),
        &reference["metrics"],
        METRIC_TOLERANCE,
    );
    assert_reliability(&data, &reference["metrics"], 1e-12);
    assert_targets(&data, &reference["metrics"], 1e-12);
}

#[test]
fn loss_and_metrics_equal_transformers_and_scikit_learn_on_every_checkpoint() {
    for name in CHECKPOINTS {
        let dir = fixture(name);
        let reference = read_json(&dir.join("evaluation.json"));
        let config = RobertaConfig::from_file(&dir.join("config.json")).unwrap();
        let problem = ProblemType::of(&config).unwrap();
        let expected_problem = match reference["problem_type"].as_str().unwrap() {
            "regression" => ProblemType::Regression,
            _ => ProblemType::SingleLabelClassification,
        };
        assert_eq!(problem, expected_problem, "{name}");
        let mut evaluation = Evaluation::new(&config).unwrap();
        for (i, row) in reference["rows"].as_array().unwrap().iter().enumerate() {
            let logits: Vec<f32> = row["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_f64().unwrap() as f32)
                .collect();
            let label = row["label"].as_u64().unwrap() as usize;
            let prediction = Prediction::from_logits(&config.id2label, &logits, 1, false).unwrap();
            let loss = evaluation.push(&prediction, label).unwrap();
            close(
                &format!("{name} row {i} loss"),
                loss,
                &row["loss"],
                METRIC_TOLERANCE,
            );
        }
        close(
            &format!("{name} mean loss"),
            evaluation.mean_loss(),
            &reference["mean_loss"],
            METRIC_TOLERANCE,
        );
        let positives: Vec<bool> = reference["positives"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap() == 1)
            .collect();
        let scored = evaluation.scored().unwrap();
        assert_eq!(scored.insecure(), positives.as_slice(), "{name}");
        assert_metrics(
            &evaluation.metrics(0.5).unwrap(),
            &reference["metrics"],
            METRIC_TOLERANCE,
        );
        assert_reliability(&scored, &reference["metrics"], METRIC_TOLERANCE);
        assert_targets(&scored, &reference["metrics"], METRIC_TOLERANCE);
    }
}

fn icd(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

/// The fixture inputs as CodeXGLUE rows labelled as `evaluation.json` labels them.
fn labelled_data(checkpoint: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let texts = read_json(&fixture("inputs.json"));
    let reference = read_json(&fixture(checkpoint).join("evaluation.json"));
    let rows: Vec<String> = texts
        .as_array()
        .unwrap()
        .iter()
        .zip(reference["rows"].as_array().unwrap())
        .enumerate()
        .map(|(i, (text, row))| {
            serde_json::json!({"idx": i, "func": text, "target": row["label"]}).to_string()
        })
        .collect();
    let path = dir.join(format!("{checkpoint}.jsonl"));
    std::fs::write(&path, rows.join("\n") + "\n").unwrap();
    path
}

#[test]
fn icd_evaluate_reports_the_references_metrics_on_every_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    for name in CHECKPOINTS {
        let data = labelled_data(name, tmp.path());
        let model = fixture(name).display().to_string();
        let predictions = tmp.path().join("predictions.txt").display().to_string();
        let out = icd(&[
            "--model",
            &model,
            "evaluate",
            &data.display().to_string(),
            "--predictions",
            &predictions,
            "--format",
            "json",
            "--target-recall",
            "0.5",
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let reference = read_json(&fixture(name).join("evaluation.json"));
        let want = &reference["metrics"];
        // The model's logits match transformers' to 1e-4 (the parity tests), so the
        // metrics of its probabilities match to about as much.
        let tolerance = 1e-4;
        for key in [
            "accuracy",
            "precision",
            "recall",
            "f1",
            "roc_auc",
            "pr_auc",
            "brier",
            "ece",
            "vd_s",
        ] {
            close(
                &format!("{name} {key}"),
                report[key].as_f64().unwrap(),
                &want[key],
                tolerance,
            );
        }
        assert_eq!(
            report["confusion_matrix"], want["confusion_matrix"],
            "{name}"
        );
        close(
            &format!("{name} loss"),
            report["loss"].as_f64().unwrap(),
            &reference["mean_loss"],
            tolerance,
        );
        let point = &want["target_recall"][0];
        assert_eq!(point["target"], 0.5);
        for key in ["threshold", "precision", "recall"] {
            close(
                &format!("{name} target {key}"),
                report["target"][key].as_f64().unwrap(),
                &point["point"][key],
                tolerance,
            );
        }
        assert_eq!(report["target"]["recall_at_least"], 0.5);
    }
}

#[test]
fn icd_evaluate_table_shows_the_same_numbers_as_its_json() {
    let tmp = tempfile::tempdir().unwrap();
    let data = labelled_data("roberta-2-labels", tmp.path())
        .display()
        .to_string();
    let model = fixture("roberta-2-labels").display().to_string();
    let predictions = tmp.path().join("predictions.txt").display().to_string();
    let run = |format: &str| {
        let out = icd(&[
            "--model",
            &model,
            "evaluate",
            &data,
            "--predictions",
            &predictions,
            "--format",
            format,
            "--target-precision",
            "0.99",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let report: Value = serde_json::from_str(&run("json")).unwrap();
    let table = run("table");
    for key in [
        "accuracy", "loss", "roc_auc", "pr_auc", "brier", "ece", "vd_s",
    ] {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no `{key}` line in\n{table}"));
        let shown: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(
            (shown - report[key].as_f64().unwrap()).abs() <= 5e-5,
            "{line}"
        );
    }
    // No threshold reaches a precision of 0.99 on this data: said, not invented.
    assert!(report["target"]["threshold"].is_null(), "{report}");
    assert!(table.contains("0.99: no threshold meets it"), "{table}");
}

#[test]
fn icd_evaluate_refuses_labels_the_checkpoint_does_not_have() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data.jsonl");
    std::fs::write(
        &data,
        "{\"idx\": 0, \"func\": \"int a;\", \"target\": 4}\n{\"idx\": 1, \"func\": \"int b;\", \"target\": 5}\n",
    )
    .unwrap();
    let predictions = tmp.path().join("predictions.txt");
    for (name, expected) in [
        (
            "roberta-5-labels",
            "data.jsonl:2: `target` is 5, expected 0 to 4",
        ),
        (
            "roberta-1-label-old-config",
            "data.jsonl:1: `target` is 4, expected 0 or 1",
        ),
    ] {
        let out = icd(&[
            "--model",
            &fixture(name).display().to_string(),
            "evaluate",
            &data.display().to_string(),
            "--predictions",
            &predictions.display().to_string(),
        ]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{name}: {stderr}");
        assert!(!predictions.exists(), "nothing written on a bad label");
    }
    for (flag, value) in [
        ("--target-precision", "0"),
        ("--target-recall", "1.5"),
        ("--threshold", "1.01"),
    ] {
        let out = icd(&["evaluate", &data.display().to_string(), flag, value]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(flag),
            "{flag}"
        );
    }
    std::fs::write(&data, "\n").unwrap();
    let out = icd(&[
        "--model",
        &fixture("roberta-2-labels").display().to_string(),
        "evaluate",
        &data.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no rows"));
}

#[test]
fn icd_evaluate_plot_draws_both_curves_as_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let data = labelled_data("roberta-2-labels", tmp.path()).display().to_string();
    let model = fixture("roberta-2-labels").display().to_string();
    let predictions = tmp.path().join("predictions.txt").display().to_string();
    let plot = tmp.path().join("evaluation.svg");
    let out = icd(&[
        "--model", &model, "evaluate", &data, "--predictions", &predictions, "--plot",
        &plot.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let svg = std::fs::read_to_string(&plot).unwrap();
    let document = roxmltree::Document::parse(&svg).expect("the plot is well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let texts: Vec<&str> = document
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for caption in ["Precision-recall", "Reliability (15 bins)", "recall", "share insecure"] {
        assert!(texts.contains(&caption), "no {caption:?} in {texts:?}");
    }
    // One polyline per curve drawn: the base rate, the model's precision-recall steps
    // (recall 0, then two corners per distinct score), the diagonal and the
    // reliability curve (one point per non-empty bin).
    let reference = read_json(&fixture("roberta-2-labels").join("evaluation.json"));
    let mut logits: Vec<String> = reference["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["logits"].to_string())
        .collect();
    logits.sort();
    logits.dedup();
    let distinct_scores = logits.len();
    let lengths: Vec<usize> = document
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .map(|n| n.attribute("points").unwrap_or("").split_whitespace().count())
        .collect();
    assert!(
        lengths.contains(&(2 * distinct_scores + 1)),
        "no polyline of {} points among {lengths:?}",
        2 * distinct_scores + 1
    );
    let out = icd(&["evaluate", &data, "--plot", "curve.png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name a .svg file"));
}
