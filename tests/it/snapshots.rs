//! `icd`'s outputs, whole, on one tree: every format of every command, the help of
//! every command, and the errors people meet most, held to snapshots
//! (`tests/it/snapshots/*.snap`, insta). A change to a flag, a column, a JSON field, a
//! SARIF property or an exit status shows here as a diff to review.
//!
//! Paths that depend on where the test runs are replaced by `[TREE]`, `[MODEL]` and
//! `[CACHE]`; floating-point numbers in JSON are rounded to 4 decimals, so that a
//! change of summation order where one is meant (a new kernel, another backend) shows
//! as the change of verdicts or columns it makes, not as noise in the last digits.
//! Logits bit for bit are `scripts/logits_bits`'s job.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use serde_json::Value;

/// A long function: about 1,400 tokens, so that `--window` classifies it in windows.
fn long_function() -> String {
    let mut code = String::from("int long_sum(const int *a, int n)\n{\n    int s = 0;\n");
    for i in 0..200 {
        code += &format!("    s += a[{i}] * {};\n", i % 7 + 1);
    }
    code + "    return s;\n}\n"
}

/// The scanned tree: the function-finding fixtures, a suppressed function, a long
/// function, a binary file and an excluded one.
fn write_tree(root: &Path) {
    let src = root.join("src");
    std::fs::create_dir_all(&src).unwrap();
    for entry in std::fs::read_dir(fixture("scan-trees")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), src.join(entry.file_name())).unwrap();
    }
    std::fs::write(
        src.join("copy.c"),
        "#include <string.h>\n\n\
         // icd: ignore reviewed: callers pass buffers of 64 bytes\n\
         static void copy_name(char *dst, const char *src)\n{\n    strcpy(dst, src);\n}\n\n\
         int get(const int *a, int i)\n{\n    return a[i];\n}\n",
    )
    .unwrap();
    std::fs::write(src.join("long.c"), long_function()).unwrap();
    std::fs::write(src.join("blob.c"), b"int x;\0\x01\x02binary\n").unwrap();
    std::fs::create_dir_all(root.join("vendor")).unwrap();
    std::fs::write(root.join("vendor/zlib.c"), "int vendored(void) { return 0; }\n").unwrap();
    std::fs::write(
        root.join(".icd.toml"),
        "exclude = [\"vendor/**\"]\ncache = false\n",
    )
    .unwrap();
    std::fs::write(
        root.join("data.jsonl"),
        "{\"idx\": 0, \"func\": \"int f(char *s) { char b[4]; strcpy(b, s); return 0; }\", \"target\": 1}\n\
         {\"idx\": 1, \"func\": \"int g(void) { return 0; }\", \"target\": 0}\n\
         {\"idx\": 2, \"func\": \"int h(int *a, int i) { return a[i]; }\", \"target\": 1}\n",
    )
    .unwrap();
}

/// Rounds every floating-point number in `value` to 4 decimals.
fn round_floats(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let x = (n.as_f64().unwrap() * 1e4).round() / 1e4;
            *value = serde_json::json!(x);
        }
        Value::Array(items) => items.iter_mut().for_each(round_floats),
        Value::Object(map) => map.values_mut().for_each(round_floats),
        _ => {}
    }
}

/// `text` with its JSON (a pretty-printed document, or one object a line) rewritten
/// with floats rounded, and the machine's paths replaced.
fn normalize(text: &str, root: &Path, cache: &Path) -> String {
    let is_jsonl = !text.is_empty()
        && text
            .lines()
            .all(|line| serde_json::from_str::<Value>(line).is_ok_and(|v| v.is_object()));
    let text = if text.starts_with("{\n") {
        match serde_json::from_str::<Value>(text) {
            Ok(mut value) => {
                round_floats(&mut value);
                serde_json::to_string_pretty(&value).unwrap() + "\n"
            }
            Err(_) => text.to_owned(),
        }
    } else if is_jsonl {
        text.lines()
            .map(|line| {
                let mut value: Value = serde_json::from_str(line).unwrap();
                round_floats(&mut value);
                value.to_string() + "\n"
            })
            .collect()
    } else {
        text.to_owned()
    };
    let model = fixture("roberta-2-labels").display().to_string();
    let root = root.canonicalize().unwrap().display().to_string();
    text.replace(&cache.display().to_string(), "[CACHE]")
        .replace(&model, "[MODEL]")
        .replace(&root, "[TREE]")
}

/// `icd ARGS` in the tree: its exit status, stdout and stderr, normalized.
fn run(root: &Path, args: &[&str]) -> String {
    let cache = root.join("cache");
    let out = Command::new(env!("CARGO_BIN_EXE_icd"))
        .current_dir(root)
        .args(args)
        .env_remove("BURN_DEVICE")
        .env_remove("ICD_MODEL")
        .env("ICD_CACHE_DIR", &cache)
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    format!(
        "exit: {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        normalize(&stdout, root, &cache),
        normalize(&stderr, root, &cache)
    )
}

/// Runs every case in one tree (so that the model loads as the tests run, and every
/// case sees the same files), asserting each against its snapshot.
#[test]
fn icd_outputs_match_their_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_tree(root);
    let model = fixture("roberta-2-labels").display().to_string();
    let m = ["--model", model.as_str(), "--backend", "flex"];
    let with_model = |args: &[&str]| -> Vec<String> {
        m.iter().chain(args).map(|s| s.to_string()).collect()
    };
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("help", vec!["--help".into()]),
        ("scan_help", vec!["scan".into(), "--help".into()]),
        ("classify_help", vec!["classify".into(), "--help".into()]),
        ("evaluate_help", vec!["evaluate".into(), "--help".into()]),
        ("calibrate_help", vec!["calibrate".into(), "--help".into()]),
        ("convert_help", vec!["convert".into(), "--help".into()]),
        ("functions_help", vec!["functions".into(), "--help".into()]),
        ("cache_help", vec!["cache".into(), "--help".into()]),
        ("triage_help", vec!["triage".into(), "--help".into()]),
        ("triage_add_help", vec!["triage".into(), "add".into(), "--help".into()]),
        ("functions_table", vec!["functions".into(), ".".into()]),
        (
            "functions_jsonl",
            vec!["functions".into(), ".".into(), "--format".into(), "jsonl".into()],
        ),
        ("scan_table", with_model(&["scan", "."])),
        (
            "scan_table_threshold_0_explain",
            with_model(&["scan", ".", "--threshold", "0", "--explain", "--top-lines", "2"]),
        ),
        (
            "scan_jsonl_explain",
            with_model(&["scan", ".", "--format", "jsonl", "--explain", "--threshold", "0.4"]),
        ),
        (
            "scan_sarif_explain",
            with_model(&["scan", ".", "--format", "sarif", "--explain", "--threshold", "0"]),
        ),
        (
            "scan_markdown_explain",
            with_model(&["scan", ".", "--format", "markdown", "--explain", "--threshold", "0.4"]),
        ),
        (
            "scan_junit",
            with_model(&["scan", ".", "--format", "junit", "--threshold", "0.4"]),
        ),
        (
            "scan_jsonl_window",
            with_model(&["scan", "src/long.c", "--format", "jsonl", "--window", "--stride", "200"]),
        ),
        (
            "scan_table_window_no_ignore",
            with_model(&["scan", ".", "--window", "--no-ignore", "--threshold", "0"]),
        ),
        (
            "scan_sarif_no_config",
            with_model(&["scan", ".", "--format", "sarif", "--no-config", "--threshold", "0.45"]),
        ),
        (
            "classify_text",
            with_model(&["classify", "src/copy.c"]),
        ),
        (
            "classify_jsonl_explain",
            with_model(&["classify", "data.jsonl", "--format", "json", "--explain"]),
        ),
        (
            "evaluate",
            with_model(&["evaluate", "data.jsonl", "--predictions", "out/predictions.txt"]),
        ),
        (
            "evaluate_table_unmet_target",
            with_model(&[
                "evaluate", "data.jsonl", "--predictions", "out/predictions.txt", "--format",
                "table", "--target-precision", "0.99",
            ]),
        ),
        (
            "error_threshold",
            with_model(&["scan", ".", "--threshold", "1.5"]),
        ),
        (
            "error_explain_needs_json",
            with_model(&["classify", "src/copy.c", "--explain"]),
        ),
        ("error_missing_model", vec!["--model".into(), "no-such-dir".into(), "classify".into(), "src/copy.c".into()]),
        ("error_unknown_flag", vec!["scan".into(), "--no-such-flag".into()]),
    ];
    std::fs::create_dir_all(root.join("out")).unwrap();
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    settings.set_omit_expression(true);
    settings.bind(|| {
        for (name, args) in &cases {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            insta::assert_snapshot!(*name, run(root, &args));
        }
    });
    // The baseline: the SARIF of a scan, then a scan against it after a change.
    let sarif = root.join("out/base.sarif");
    let base = run(
        root,
        &with_model(&["scan", ".", "--format", "sarif", "--threshold", "0", "-o", "out/base.sarif"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(base.starts_with("exit: Some(1)"), "{base}");
    assert!(sarif.is_file());
    std::fs::write(
        root.join("src/new.c"),
        "int added(char *s)\n{\n    return s[100];\n}\n",
    )
    .unwrap();
    std::fs::remove_file(root.join("src/knr.c")).unwrap();
    settings.bind(|| {
        for (name, format) in [
            ("baseline_table", "table"),
            ("baseline_sarif", "sarif"),
            ("baseline_markdown", "markdown"),
            ("baseline_junit", "junit"),
        ] {
            let args = with_model(&[
                "scan", ".", "--threshold", "0", "--baseline", "out/base.sarif", "--format", format,
            ]);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            insta::assert_snapshot!(name, run(root, &args));
        }
    });
}
