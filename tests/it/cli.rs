//! The `icd` binary on C and C++ files made for the tests: the functions found, line
//! ranges, every output format and exit status, classify/evaluate/convert, and model
//! resolution from a Hugging Face cache laid out by the test.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::*;
use insecure_code_detector::Detector;
use serde_json::Value;

/// The scanned tree, written by each test into its own temporary directory.
const TREE: &[(&str, &str)] = &[
    (
        "src/basic.c",
        r#"#include <string.h>

static int copy_name(char *dst, const char *src)
{
    strcpy(dst, src);
    return 0;
}

int checked_get(const int *a, int len, int i)
{
    if (i < 0 || i >= len) {
        return -1;
    }
    return a[i];
}
"#,
    ),
    (
        "src/kr.c",
        r#"int add(a, b)
    int a;
    int b;
{
    return a + b;
}
"#,
    ),
    (
        "src/macros.c",
        r#"#define WITH_LOCK(l, body) do { lock(l); body; unlock(l); } while (0)

#ifdef HAVE_FEATURE
static int guarded(void)
{
    WITH_LOCK(&g, { counter++; });
    return counter;
}
#endif
"#,
    ),
    (
        "src/methods.cpp",
        r#"namespace ns {

class Buffer {
  public:
    int size() const { return n_; }

  private:
    int n_;
};

template <typename T>
T clamp(T v, T lo, T hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

}  // namespace ns

int ns_size(const ns::Buffer &b) { return b.size(); }
"#,
    ),
    (
        "src/broken.c",
        r#"}}}} int ((( {
"#,
    ),
    ("src/empty.c", r#""#),
    (
        "src/notes.txt",
        r#"not C at all
"#,
    ),
    (
        ".gitignore",
        r#"ignored/
"#,
    ),
    (
        "ignored/skip.c",
        r#"int skipped(void) { return 1; }
"#,
    ),
];

fn write_tree(root: &Path) {
    for (path, text) in TREE {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    // Latin-1 bytes in a comment: not UTF-8.
    std::fs::write(
        root.join("src/latin1.c"),
        b"/* caf\xe9 */\nint latin(void)\n{\n    return 1; /* \xff */\n}\n",
    )
    .unwrap();
}

fn icd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_icd"))
        .args(args)
        .env_remove("BURN_DEVICE")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// `icd --model FIXTURE EXTRA... classify PATH --format json`, which must succeed: its
/// JSON rows.
fn classify_json(extra: &[&str], path: &Path) -> Vec<Value> {
    let model = model();
    let path = path.display().to_string();
    let mut args = vec!["--model", &model];
    args.extend_from_slice(extra);
    args.extend(["classify", &path, "--format", "json"]);
    let output = icd(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A JSON row's `logits` as f32.
fn logits_of(row: &Value) -> Vec<f32> {
    row["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn model() -> String {
    fixture("roberta-2-labels").display().to_string()
}

fn scan_jsonl(root: &Path, extra: &[&str]) -> (Output, Vec<Value>) {
    let (model, root) = (model(), root.display().to_string());
    let mut args = vec!["--model", &model, "scan", &root, "--format", "jsonl"];
    args.extend_from_slice(extra);
    let output = icd(&args);
    let rows = stdout(&output)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (output, rows)
}

#[test]
fn scan_finds_functions_with_line_ranges_and_respects_gitignore() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path());
    let (output, rows) = scan_jsonl(tmp.path(), &["--threshold", "0"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "threshold 0 flags everything: {stderr}"
    );
    assert!(
        stderr.contains("1 line of") && stderr.contains("broken.c could not be parsed (line 1)"),
        "{stderr}"
    );

    let found: Vec<(String, String, u64, u64)> = rows
        .iter()
        .map(|r| {
            let file = r["file"].as_str().unwrap();
            let relative = Path::new(file)
                .strip_prefix(tmp.path())
                .unwrap()
                .display()
                .to_string();
            (
                relative,
                r["function"].as_str().unwrap().to_owned(),
                r["start_line"].as_u64().unwrap(),
                r["end_line"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = |file: &str, name: &str, start: u64, end: u64| {
        assert!(
            found.contains(&(file.to_owned(), name.to_owned(), start, end)),
            "{file}: {name} {start}-{end} not in {found:#?}"
        );
    };
    expect("src/basic.c", "copy_name", 3, 7);
    expect("src/basic.c", "checked_get", 9, 15);
    expect("src/kr.c", "add", 1, 6);
    expect("src/macros.c", "guarded", 4, 8);
    expect("src/methods.cpp", "size", 5, 5);
    expect("src/methods.cpp", "clamp", 11, 15);
    expect("src/methods.cpp", "ns_size", 19, 19);
    expect("src/latin1.c", "latin", 2, 5);
    assert!(
        found.iter().all(|(file, ..)| !file.starts_with("ignored/")),
        "gitignored file scanned: {found:?}"
    );
    assert!(found
        .iter()
        .all(|(file, ..)| file != "src/empty.c" && file != "src/notes.txt"));

    // The probabilities are the library's own for the same text.
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let basic = std::fs::read_to_string(tmp.path().join("src/basic.c")).unwrap();
    let copy_name: String = basic.lines().skip(2).take(5).collect::<Vec<_>>().join("\n");
    let row = rows.iter().find(|r| r["function"] == "copy_name").unwrap();
    let expected = detector.predict(&copy_name).unwrap();
    assert_logits_close(
        &logits_of(row),
        &expected.logits,
        "copy_name through icd scan",
    );
    assert_eq!(row["verdict"], "insecure");
}

#[test]
fn functions_lists_what_scan_classifies_without_a_model() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path());
    let root = tmp.path().display().to_string();
    let listed = icd(&["functions", &root, "--format", "jsonl"]);
    assert_eq!(listed.status.code(), Some(0));
    let listed: Vec<(String, u64, u64)> = stdout(&listed)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["start_line"].as_u64().unwrap(),
                r["end_line"].as_u64().unwrap(),
            )
        })
        .collect();
    let (_, rows) = scan_jsonl(tmp.path(), &["--threshold", "0"]);
    let scanned: Vec<(String, u64, u64)> = rows
        .iter()
        .map(|r| {
            (
                r["function"].as_str().unwrap().to_owned(),
                r["start_line"].as_u64().unwrap(),
                r["end_line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, scanned);
    assert!(listed.len() >= 8, "{listed:?}");

    let table = icd(&["functions", &root]);
    let text = stdout(&table);
    assert!(text.starts_with("LOCATION"), "{text}");
    assert!(
        text.contains(&format!("{} functions in ", listed.len())),
        "{text}"
    );
    assert!(
        text.contains("broken.c could not be parsed (line 1)"),
        "{text}"
    );
}

#[test]
fn scan_exit_statuses_and_table_format() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path());
    let root = tmp.path().display().to_string();
    // Probabilities are below 1: no findings at threshold 1.
    let none = icd(&["--model", &model(), "scan", &root, "--threshold", "1"]);
    assert_eq!(none.status.code(), Some(0));
    let table = stdout(&none);
    assert!(table.starts_with("VERDICT"), "{table}");
    assert!(
        table.contains("basic.c:3-7") && table.contains("copy_name"),
        "{table}"
    );
    assert!(
        table.contains("\n0 of 8 functions at or above 1\n"),
        "{table}"
    );
    // The footer names what could not be covered.
    assert!(
        table
            .trim_end()
            .ends_with("broken.c could not be parsed (line 1); functions there are not scanned"),
        "{table}"
    );

    let bad_model = icd(&["--model", "/nonexistent/model", "scan", &root]);
    assert_eq!(bad_model.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_model.stderr).contains("/nonexistent/model"));
    let bad_path = icd(&["--model", &model(), "scan", "/nonexistent/src"]);
    assert_eq!(bad_path.status.code(), Some(2));
    let bad_threshold = icd(&["--model", &model(), "scan", &root, "--threshold", "2"]);
    assert_eq!(bad_threshold.status.code(), Some(2));
}

#[test]
fn scan_window_reports_the_worst_window_of_long_functions() {
    let tmp = tempfile::tempdir().unwrap();
    let body: String = (0..400)
        .map(|i| format!("    buf[{i}] = src[{i}] + len;\n"))
        .collect();
    std::fs::write(
        tmp.path().join("long.c"),
        format!("void long_function(char *buf, const char *src, int len)\n{{\n{body}}}\n"),
    )
    .unwrap();
    let (output, rows) = scan_jsonl(
        tmp.path(),
        &["--window", "--stride", "200", "--threshold", "0"],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(rows.len(), 1);
    let window = &rows[0]["window"];
    let windows = window["windows"].as_u64().unwrap();
    assert!(windows >= 3, "{window}");
    let (start, end) = (
        window["start_line"].as_u64().unwrap(),
        window["end_line"].as_u64().unwrap(),
    );
    assert!(1 <= start && start < end && end <= 403, "{window}");
    assert_eq!(rows[0]["truncated"], false);
    // Without --window the same function is truncated.
    let (_, rows) = scan_jsonl(tmp.path(), &["--threshold", "0"]);
    assert_eq!(rows[0]["truncated"], true);
}

#[test]
fn scan_sarif_is_valid_sarif_2_1_0() {
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path());
    let root = tmp.path().join("src").display().to_string();
    let sarif_path = tmp.path().join("out.sarif");
    let output = icd(&[
        "--model",
        &model(),
        "scan",
        &root,
        "--format",
        "sarif",
        "--threshold",
        "0",
        "--explain",
        "--output",
        &sarif_path.display().to_string(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let sarif: Value =
        serde_json::from_str(&std::fs::read_to_string(&sarif_path).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["rules"][0]["id"], "ICD001");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    let first = results
        .iter()
        .find(|r| r["locations"][0]["logicalLocations"][0]["name"] == "checked_get")
        .unwrap();
    assert_eq!(first["ruleId"], "ICD001");
    assert_eq!(
        first["locations"][0]["physicalLocation"]["region"]["startLine"],
        9
    );
    assert_eq!(
        first["locations"][0]["physicalLocation"]["region"]["endLine"],
        15
    );
    let p = first["properties"]["insecureProbability"].as_f64().unwrap();
    assert!((first["rank"].as_f64().unwrap() - p * 100.0).abs() < 0.01);
    assert!(first["properties"]["tokens"].as_u64().unwrap() > 2);
    // --explain: the top three lines as related locations, inside the function, the
    // best first and named in the message.
    let related = first["relatedLocations"].as_array().unwrap();
    assert_eq!(related.len(), 3, "{related:#?}");
    let lines: Vec<u64> = related
        .iter()
        .map(|r| {
            r["physicalLocation"]["region"]["startLine"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!(lines.iter().all(|l| (9..=15).contains(l)), "{lines:?}");
    let message = first["message"]["text"].as_str().unwrap();
    assert!(
        message.contains(&format!("attended most to line {}.", lines[0])),
        "{message}"
    );
    assert!(related[0]["message"]["text"]
        .as_str()
        .unwrap()
        .starts_with("attention score "));

    // The file that does not parse is named, with its lines, as a tool notification.
    let invocation = &run["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], true);
    let notifications = invocation["toolExecutionNotifications"].as_array().unwrap();
    assert_eq!(notifications.len(), 1, "{notifications:#?}");
    let unparsed = &notifications[0];
    assert_eq!(unparsed["descriptor"]["id"], "ICD-UNPARSED");
    assert_eq!(
        run["tool"]["driver"]["notifications"][0]["id"],
        "ICD-UNPARSED"
    );
    let location = &unparsed["locations"][0]["physicalLocation"];
    assert!(location["artifactLocation"]["uri"]
        .as_str()
        .unwrap()
        .ends_with("src/broken.c"));
    assert_eq!(location["region"]["startLine"], 1);
    assert_eq!(location["region"]["endLine"], 1);
    assert!(unparsed["message"]["text"]
        .as_str()
        .unwrap()
        .contains("could not be parsed"));

    // At threshold 1 nothing is reported, and the log is still valid.
    let empty = icd(&[
        "--model",
        &model(),
        "scan",
        &root,
        "--format",
        "sarif",
        "--threshold",
        "1",
    ]);
    assert_eq!(empty.status.code(), Some(0));
    let empty: Value = serde_json::from_str(&stdout(&empty)).unwrap();
    assert_eq!(empty["runs"][0]["results"].as_array().unwrap().len(), 0);

    // Validation against the official schema (shared data), with Python's jsonschema.
    let Some(schema) = shared_file("sarif/sarif-schema-2.1.0.json") else {
        return;
    };
    let check = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')",
        ])
        .arg(&sarif_path)
        .arg(&schema)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&check.stderr);
    if stderr.contains("No module named 'jsonschema'") {
        panic!("Python's jsonschema is needed to validate SARIF: pip install jsonschema (./scripts/test does)");
    }
    assert!(
        check.status.success() && stdout(&check).trim() == "valid",
        "SARIF is not valid: {stderr}"
    );
}

#[test]
fn classify_json_equals_the_library_logits() {
    let reference = reference("roberta-2-labels");
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("data.jsonl");
    let lines: Vec<String> = reference
        .inputs
        .iter()
        .enumerate()
        .map(|(i, input)| {
            serde_json::json!({"idx": i, "func": input.text, "target": 0}).to_string()
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let rows = classify_json(&[], &jsonl);
    assert_eq!(rows.len(), reference.inputs.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["idx"], i);
        assert_logits_close(
            &logits_of(row),
            &reference.inputs[i].raw.logits,
            &format!("icd classify row {i}"),
        );
        assert!(row["insecure_probability"].as_f64().unwrap() >= 0.0);
    }
    // One function from a file.
    let file = tmp.path().join("f.c");
    std::fs::write(&file, &reference.inputs[0].text).unwrap();
    let rows = classify_json(&[], &file);
    assert_eq!(rows.len(), 1, "one function, one row");
    assert_logits_close(
        &logits_of(&rows[0]),
        &reference.inputs[0].raw.logits,
        "icd classify FILE",
    );
    // --precision bf16 and int8: the same input, its probability within 1e-2 and 2e-2;
    // tf32 on the CPU backend, which has no TF32 products, exactly the same.
    let exact = rows[0]["insecure_probability"].as_f64().unwrap();
    for (precision, tolerance) in [("bf16", 1e-2), ("int8", 2e-2), ("tf32", 0.0)] {
        let rows = classify_json(&["--precision", precision], &file);
        assert_eq!(rows.len(), 1, "one function, one row");
        let reduced = rows[0]["insecure_probability"].as_f64().unwrap();
        assert!(
            (reduced - exact).abs() <= tolerance,
            "{precision} {reduced} vs f32 {exact}"
        );
    }
    let output = icd(&[
        "--model",
        &model(),
        "--precision",
        "int4",
        "classify",
        &file.display().to_string(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown precision is a usage error"
    );
}

#[test]
fn evaluate_reports_metrics_computed_independently() {
    let reference = reference("roberta-2-labels");
    let detector = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let jsonl = tmp.path().join("test.jsonl");
    // Alternate labels so that every cell of the confusion matrix can fill.
    let rows: Vec<(usize, &str, i64)> = reference
        .inputs
        .iter()
        .enumerate()
        .map(|(i, r)| (i, r.text.as_str(), (i % 2) as i64))
        .collect();
    let text: Vec<String> = rows
        .iter()
        .map(|(i, f, t)| serde_json::json!({"idx": i, "func": f, "target": t}).to_string())
        .collect();
    std::fs::write(&jsonl, text.join("\n")).unwrap();
    let predictions_path = tmp.path().join("predictions.txt");
    let output = icd(&[
        "--model",
        &model(),
        "evaluate",
        &jsonl.display().to_string(),
        "--predictions",
        &predictions_path.display().to_string(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap();

    let (mut tp, mut fp, mut tn, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    let mut expected_lines = String::new();
    for (i, code, target) in &rows {
        let predicted = i64::from(detector.predict(code).unwrap().insecure_probability >= 0.5);
        expected_lines += &format!("{i}\t{predicted}\n");
        match (predicted, *target) {
            (1, 1) => tp += 1.0,
            (1, 0) => fp += 1.0,
            (0, 0) => tn += 1.0,
            _ => fn_ += 1.0,
        }
    }
    let accuracy = (tp + tn) / rows.len() as f64;
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if tp + fn_ > 0.0 { tp / (tp + fn_) } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    assert_eq!(report["examples"], rows.len());
    assert!((report["accuracy"].as_f64().unwrap() - accuracy).abs() < 1e-12);
    assert!((report["precision"].as_f64().unwrap() - precision).abs() < 1e-12);
    assert!((report["recall"].as_f64().unwrap() - recall).abs() < 1e-12);
    assert!((report["f1"].as_f64().unwrap() - f1).abs() < 1e-12);
    assert_eq!(
        report["confusion_matrix"]["true_negative"]
            .as_f64()
            .unwrap(),
        tn
    );
    assert_eq!(
        std::fs::read_to_string(&predictions_path).unwrap(),
        expected_lines
    );
}

#[test]
fn convert_output_loads_back_with_identical_logits() {
    let tmp = copy_fixture("roberta-2-labels");
    let safetensors = tmp.path().join("model.safetensors");
    std::fs::remove_file(&safetensors).unwrap();
    let output = icd(&["convert", &tmp.path().display().to_string()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(safetensors.is_file());
    let converted = Detector::from_pretrained(tmp.path()).unwrap();
    let original = Detector::from_pretrained(fixture("roberta-2-labels")).unwrap();
    let reference = reference("roberta-2-labels");
    for input in &reference.inputs {
        assert_eq!(
            converted.predict(&input.text).unwrap().logits,
            original.predict(&input.text).unwrap().logits
        );
    }
    // Same names and shapes as the hub's safetensors.
    let ours = std::fs::read(&safetensors).unwrap();
    let theirs = std::fs::read(fixture("roberta-2-labels").join("model.safetensors")).unwrap();
    let ours = safetensors::SafeTensors::deserialize(&ours).unwrap();
    let theirs = safetensors::SafeTensors::deserialize(&theirs).unwrap();
    let mut a = ours.names();
    let mut b = theirs.names();
    a.sort();
    b.sort();
    assert_eq!(a, b);

    // f16 halves the size; a pickle naming os.system is refused.
    let half = tmp.path().join("half.safetensors");
    let output = icd(&[
        "convert",
        &tmp.path().join("pytorch_model.bin").display().to_string(),
        &half.display().to_string(),
        "--dtype",
        "f16",
    ]);
    assert!(output.status.success());
    assert!(
        std::fs::metadata(&half).unwrap().len()
            < std::fs::metadata(&safetensors).unwrap().len() * 6 / 10
    );
}

#[test]
fn default_model_comes_from_the_hugging_face_cache() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache
        .path()
        .join("models--mrm8488--codebert-base-finetuned-detect-insecure-code");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    std::fs::create_dir_all(&snapshot).unwrap();
    for entry in std::fs::read_dir(fixture("roberta-2-labels")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), snapshot.join(entry.file_name())).unwrap();
    }
    let input = cache.path().join("f.c");
    std::fs::write(&input, "int main(void) { return 0; }").unwrap();
    let run = |env: &[(&str, &Path)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_icd"));
        command.args(["classify", &input.display().to_string(), "--format", "json"]);
        command
            .env_remove("HF_HUB_CACHE")
            .env_remove("HF_HOME")
            .env_remove("BURN_DEVICE")
            .env_remove("HF_ENDPOINT");
        command
            .env("HF_HUB_OFFLINE", "1")
            .env("ICD_CACHE_DIR", cache.path().join("converted"));
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let found = run(&[("HF_HUB_CACHE", cache.path())]);
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );
    // HF_HOME/hub is the cache when HF_HUB_CACHE is unset.
    let home = tempfile::tempdir().unwrap();
    std::fs::rename(
        cache
            .path()
            .join("models--mrm8488--codebert-base-finetuned-detect-insecure-code"),
        {
            std::fs::create_dir_all(home.path().join("hub")).unwrap();
            home.path()
                .join("hub/models--mrm8488--codebert-base-finetuned-detect-insecure-code")
        },
    )
    .unwrap();
    let found = run(&[("HF_HOME", home.path())]);
    assert!(
        found.status.success(),
        "{}",
        String::from_utf8_lossy(&found.stderr)
    );

    let empty = tempfile::tempdir().unwrap();
    let missing = run(&[("HF_HUB_CACHE", empty.path())]);
    assert_eq!(missing.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("huggingface-cli download") && stderr.contains("--model"),
        "{stderr}"
    );
}

const HUB_REPO: &str = "mrm8488/codebert-base-finetuned-detect-insecure-code";

/// A stand-in for huggingface.co on loopback, answering as the hub does the two
/// requests a download makes: the repository listing
/// (`/api/models/{repo}/revision/main`) and ranged file reads
/// (`/{repo}/resolve/main/{file}`, with `ETag`, `X-Repo-Commit` and `Content-Range`).
/// Returns its address and the paths it was asked for.
fn serve_fake_hub(
    commit: &'static str,
    files: Vec<(String, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = requests.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let mut range: Option<(usize, Option<usize>)> = None;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap() == 0 || header == "\r\n" {
                    break;
                }
                if let Some(value) = header.to_ascii_lowercase().strip_prefix("range: bytes=") {
                    let (start, end) = value.trim().split_once('-').unwrap();
                    range = Some((start.parse().unwrap(), end.parse().ok()));
                }
            }
            seen.lock().unwrap().push(path.clone());
            let listing = format!("/api/models/{HUB_REPO}/revision/main");
            let (status, headers, body) = if path == listing {
                let siblings: Vec<Value> = files
                    .iter()
                    .map(|(name, _)| serde_json::json!({ "rfilename": name }))
                    .collect();
                let body = serde_json::json!({ "sha": commit, "siblings": siblings })
                    .to_string()
                    .into_bytes();
                (
                    "200 OK",
                    "Content-Type: application/json\r\n".to_owned(),
                    body,
                )
            } else if let Some((name, data)) = path
                .strip_prefix(&format!("/{HUB_REPO}/resolve/main/"))
                .and_then(|name| files.iter().find(|(file, _)| file == name))
            {
                // "bytes=0-0" is how a download first asks for the size; "bytes=N-" reads on.
                let (start, last) = range.unwrap_or((0, None));
                let end = last.map_or(data.len(), |last| (last + 1).min(data.len()));
                let body = data[start.min(end)..end].to_vec();
                let headers = format!(
                    "ETag: \"etag-{}\"\r\nX-Repo-Commit: {commit}\r\nContent-Range: bytes {start}-{}/{}\r\n",
                    name.replace('.', "-"),
                    end.saturating_sub(1),
                    data.len()
                );
                ("206 Partial Content", headers, body)
            } else {
                ("404 Not Found", String::new(), b"not found".to_vec())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
    });
    (endpoint, requests)
}

#[test]
fn default_model_is_downloaded_when_missing_and_its_bin_converted_once() {
    let checkpoint = fixture("roberta-1-label-old-config");
    let files: Vec<(String, Vec<u8>)> = [
        "config.json",
        "vocab.json",
        "merges.txt",
        "pytorch_model.bin",
    ]
    .iter()
    .map(|name| {
        (
            name.to_string(),
            std::fs::read(checkpoint.join(name)).unwrap(),
        )
    })
    .collect();
    let commit = "5e1f0e2c0ffee5e1f0e2c0ffee5e1f0e2c0ffee5";
    let (endpoint, requests) = serve_fake_hub(commit, files);

    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("f.c");
    std::fs::write(&input, "int main(void) { char b[4]; gets(b); return 0; }").unwrap();
    let hub_cache = tmp.path().join("hub");
    let converted = tmp.path().join("converted");
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_icd"));
        command.args(["classify", &input.display().to_string(), "--format", "json"]);
        command
            .env_remove("HF_HOME")
            .env_remove("BURN_DEVICE")
            .env_remove("HF_HUB_OFFLINE")
            .env_remove("HF_ENDPOINT");
        command
            .env("HF_HUB_CACHE", &hub_cache)
            .env("ICD_CACHE_DIR", &converted);
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let expected = icd(&[
        "classify",
        &input.display().to_string(),
        "--format",
        "json",
        "--model",
        &checkpoint.display().to_string(),
    ]);
    assert!(expected.status.success());

    let first = run(&[("HF_ENDPOINT", &endpoint)]);
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert_eq!(
        stdout(&first),
        stdout(&expected),
        "downloaded model gives other logits"
    );
    assert!(
        stderr.contains("converted the cached pytorch_model.bin once"),
        "{stderr}"
    );
    let repo = hub_cache.join("models--mrm8488--codebert-base-finetuned-detect-insecure-code");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main"))
            .unwrap()
            .trim(),
        commit
    );
    for name in [
        "config.json",
        "vocab.json",
        "merges.txt",
        "pytorch_model.bin",
    ] {
        assert_eq!(
            std::fs::read(repo.join("snapshots").join(commit).join(name)).unwrap(),
            std::fs::read(checkpoint.join(name)).unwrap(),
            "{name} in the cache differs from the served file"
        );
    }
    let safetensors = converted
        .join("models--mrm8488--codebert-base-finetuned-detect-insecure-code")
        .join(commit)
        .join("model.safetensors");
    assert!(safetensors.is_file());
    let asked = requests.lock().unwrap().clone();
    assert!(
        asked.contains(&format!("/api/models/{HUB_REPO}/revision/main")),
        "{asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|path| path.ends_with("/resolve/main/pytorch_model.bin")),
        "{asked:?}"
    );

    // Second run: all from the caches, with the hub unreachable and no conversion.
    let second = run(&[
        ("HF_ENDPOINT", "http://127.0.0.1:9"),
        ("HF_HUB_OFFLINE", "1"),
    ]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert_eq!(stdout(&second), stdout(&expected));
    assert!(!stderr.contains("converted"), "{stderr}");
    assert_eq!(
        requests.lock().unwrap().len(),
        asked.len(),
        "the second run went to the hub"
    );

    // Nothing cached and the hub unreachable: the error says why and what to do.
    std::fs::remove_dir_all(&hub_cache).unwrap();
    let unreachable = run(&[("HF_ENDPOINT", "http://127.0.0.1:9")]);
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was not downloaded") && stderr.contains("--model"),
        "{stderr}"
    );
    let offline = run(&[("HF_ENDPOINT", &endpoint), ("HF_HUB_OFFLINE", "1")]);
    let stderr = String::from_utf8_lossy(&offline.stderr);
    assert_eq!(offline.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("HF_HUB_OFFLINE is set"), "{stderr}");
    assert_eq!(
        requests.lock().unwrap().len(),
        asked.len(),
        "HF_HUB_OFFLINE went to the hub"
    );
}

/// `icd --version` says what each precision runs on this CPU, as the library chooses it.
#[test]
fn version_reports_the_cpu_and_what_each_precision_runs() {
    use insecure_code_detector::{CpuFeatures, Kernel};
    use insecure_code_detector::Precision;
    let out = icd(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("icd {}\n", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("\ncpu: {}\n", CpuFeatures::get())),
        "{text}"
    );
    let f32 = match Kernel::select(Precision::F32, CpuFeatures::get()) {
        Some(kernel) => format!("f32 kernel {kernel} ({})", kernel.isa()),
        None => "f32 tensors f32".to_owned(),
    };
    assert!(
        text.contains(&format!("cpu backends run: {f32}, ")),
        "{text}"
    );
    // Where bf16 runs the f32 kernel, the line says so.
    if let Some(kernel) = Kernel::select(Precision::Bf16, CpuFeatures::get()) {
        let runs = format!("bf16 kernel {kernel} ({})", kernel.isa());
        let expected = match kernel.precision() {
            Precision::Bf16 => format!("{runs}, "),
            _ => format!("{runs} in f32 (no faster bf16 kernel here), "),
        };
        assert!(text.contains(&expected), "{text}");
    }
}

/// `ICD_MAX_CPU_ISA` caps the kernels: `avx2` runs the AVX2 kernels (on an AVX-512 CPU
/// too), `none` the backend's tensors, with the same verdicts; an unknown value is an
/// error naming the variable, never a silent fallback.
#[test]
fn the_cpu_isa_cap_picks_the_kernels_that_run() {
    use insecure_code_detector::CpuFeatures;
    let with_cap = |cap: &str, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_icd"))
            .args(args)
            .env_remove("BURN_DEVICE")
            .env("ICD_MAX_CPU_ISA", cap)
            .output()
            .unwrap()
    };
    let version = |cap: &str| stdout(&with_cap(cap, &["--version"]));
    let none = version("none");
    assert!(none.contains("\ncpu: none\n"), "{none}");
    assert!(none.contains("cpu backends run: f32 tensors f32, "), "{none}");
    let avx2 = version("AVX2");
    if CpuFeatures::get().avx2_fma {
        assert!(avx2.contains("\ncpu: AVX2+FMA\n"), "{avx2}");
        assert!(
            avx2.contains("cpu backends run: f32 kernel f32-avx2 (AVX2+FMA), "),
            "{avx2}"
        );
        assert!(avx2.contains("int8 kernel int8-avx2 (AVX2+FMA)"), "{avx2}");
    }
    // The same function under each cap: the AVX2 kernel's logits are the default
    // kernel's bit for bit (AVX-512's sums are AVX2's), the tensors' within 1e-4.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("f.c");
    std::fs::write(&file, "int f(char *s) { char b[8]; strcpy(b, s); return b[0]; }\n").unwrap();
    let model = model();
    let file = file.display().to_string();
    let args = ["--model", &model, "classify", &file, "--format", "json"];
    let logits = |out: Output| -> Vec<f32> {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        logits_of(&serde_json::from_str(stdout(&out).trim()).unwrap())
    };
    let default = logits(icd(&args));
    let capped = logits(with_cap("avx2", &args));
    assert_eq!(default, capped);
    assert_logits_close(&logits(with_cap("none", &args)), &default, "ICD_MAX_CPU_ISA=none");
    let bad = with_cap("sse2", &args);
    assert_eq!(bad.status.code(), Some(2));
    let message = String::from_utf8_lossy(&bad.stderr);
    assert!(
        message.contains("ICD_MAX_CPU_ISA") && message.contains("none, avx2, avx512"),
        "{message}"
    );
}

/// `classify --format json --explain` gives transformers' token scores (every token,
/// specials included) and line sums, here for the CRLF-and-tabs fixture input;
/// `scan --explain --top-lines K` the K best lines of each function, highest first,
/// in file line numbers.
#[test]
fn explain_gives_token_and_line_scores() {
    let reference = reference_json("roberta-2-labels");
    let input = &reference["inputs"][2];
    let text = input["text"].as_str().unwrap();
    assert!(text.contains("\r\n\t"), "the CRLF-and-tabs input");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f.c");
    std::fs::write(&path, text).unwrap();
    let row = &classify_json(&[], &path)[0];
    assert!(row.get("token_scores").is_none(), "only with --explain");
    let model = model();
    let path_arg = path.display().to_string();
    let output = icd(&[
        "--model",
        &model,
        "classify",
        &path_arg,
        "--format",
        "json",
        "--explain",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let row: Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let got: Vec<f64> = row["token_scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let want: Vec<f64> = input["raw"]["token_scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(
        got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5),
        "{got:?} vs {want:?}"
    );
    let lines = row["line_scores"].as_array().unwrap();
    let want_lines = input["raw"]["line_scores"].as_array().unwrap();
    assert_eq!(lines.len(), want_lines.len());
    for (l, w) in lines.iter().zip(want_lines) {
        assert_eq!(l["line"], w[0]);
        assert!((l["score"].as_f64().unwrap() - w[1].as_f64().unwrap()).abs() < 1e-5);
    }

    // scan: each function's two best lines, in the file's numbering.
    write_tree(tmp.path());
    let (output, rows) = scan_jsonl(&tmp.path().join("src"), &["--explain", "--top-lines", "2"]);
    assert!(output.status.code().is_some_and(|c| c <= 1));
    assert!(!rows.is_empty());
    for row in &rows {
        let lines = row["lines"].as_array().unwrap();
        let (start, end) = (
            row["start_line"].as_u64().unwrap(),
            row["end_line"].as_u64().unwrap(),
        );
        assert!(!lines.is_empty() && lines.len() <= 2, "{row}");
        let scores: Vec<f64> = lines.iter().map(|l| l["score"].as_f64().unwrap()).collect();
        assert!(
            scores.windows(2).all(|p| p[0] >= p[1]),
            "highest first: {row}"
        );
        assert!(
            lines
                .iter()
                .all(|l| (start..=end).contains(&l["line"].as_u64().unwrap())),
            "{row}"
        );
    }
    let (_, plain) = scan_jsonl(&tmp.path().join("src"), &[]);
    assert!(plain.iter().all(|r| r.get("lines").is_none()));
}
